//! The HTTP service's shared state and settings, and its start-up and run sequence.

pub mod activation;
mod http;
pub mod idempotency;
pub mod redaction;
mod run;
mod serving;
mod startup;

pub use run::serve;
pub use startup::{
    choose_version, prepare, register_store, register_version, start_background, StartError,
};

use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineSettings};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which API keys may call what. An empty set for a role leaves its routes open.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    /// May call POST /classify and read models.
    pub classify: HashSet<String>,
    /// May do everything, including feedback, reading transcripts and activating models.
    pub admin: HashSet<String>,
    /// Annotators' keys, each with the name its labels are recorded under: they may use the
    /// review queue and the labeling page, and nothing else.
    pub annotators: Vec<AnnotatorKey>,
    /// `/metrics` answers without a key even when keys are configured (`--public-metrics`).
    pub public_metrics: bool,
    /// `/docs` and `/openapi.json` answer without a key even when keys are configured
    /// (`--public-docs`).
    pub public_docs: bool,
}

impl ApiKeys {
    /// Parses comma-separated key lists, ignoring blanks around and between keys.
    pub fn from_lists(classify: &str, admin: &str) -> ApiKeys {
        let parse = |s: &str| {
            s.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect()
        };
        ApiKeys {
            classify: parse(classify),
            admin: parse(admin),
            annotators: Vec::new(),
            public_metrics: false,
            public_docs: false,
        }
    }

    /// No key configured at all: every route is open (a warning is logged at start-up).
    pub fn is_open(&self) -> bool {
        self.classify.is_empty() && self.admin.is_empty() && self.annotators.is_empty()
    }
}

/// One annotator's key and the name their labels carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotatorKey {
    pub name: String,
    pub key: String,
}

impl AnnotatorKey {
    /// Parses `name:key,name:key` (blanks around entries ignored). A name may not be empty
    /// or hold a comma or colon; a key may hold colons; names and keys must be unique.
    pub fn parse_list(list: &str) -> Result<Vec<AnnotatorKey>, String> {
        let mut out: Vec<AnnotatorKey> = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, key)) = entry.split_once(':') else {
                return Err(format!(
                    "annotator key entry `{}…` is not `name:key`",
                    entry.chars().take(3).collect::<String>()
                ));
            };
            let (name, key) = (name.trim(), key.trim());
            if name.is_empty() || key.is_empty() {
                return Err(format!(
                    "annotator key entry for `{name}` needs both a name and a key"
                ));
            }
            if out.iter().any(|a| a.name == name) {
                return Err(format!("annotator `{name}` is named twice"));
            }
            if out.iter().any(|a| a.key == key) {
                return Err(format!("annotator `{name}` has another annotator's key"));
            }
            out.push(AnnotatorKey {
                name: name.to_string(),
                key: key.to_string(),
            });
        }
        Ok(out)
    }
}

/// Request-shape limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub body_limit_bytes: usize,
    pub max_items_per_request: usize,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body_limit_bytes: 1 << 20,
            max_items_per_request: 256,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What one client connection may hold: slow or idle sockets are closed, and beyond
/// `max_connections` new ones are refused.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's line and headers. hyper counts it from when it
    /// starts waiting for a request, so it also bounds the wait between keep-alive requests.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            max_connections: 1024,
        }
    }
}

/// Everything `voc serve` is configured with (see `voc serve --help`).
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub bind: String,
    pub database: crate::store::DatabaseSettings,
    pub store_dir: PathBuf,
    /// Serve this version; else the one active in Postgres; else the newest in the store.
    pub model_version: Option<String>,
    pub pipeline: PipelineSettings,
    pub limits: Limits,
    pub connections: ConnectionLimits,
    pub keys: ApiKeys,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Background fine-tuning.
    pub learning: crate::learning::LearningSettings,
    /// Whether texts and call ids are redacted before the model and Postgres see them.
    pub redaction: crate::redact::Policy,
    /// The review queue's overlap and lease length.
    pub review: crate::review::queue::QueueSettings,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::PgPool,
    pub pipeline: Pipeline,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<ApiKeys>,
    pub limits: Limits,
    pub store_dir: Arc<PathBuf>,
    pub device: tch::Device,
    /// Orders model activations within this process.
    pub activation: Arc<tokio::sync::Mutex<()>>,
    /// Wakes the training scheduler (a run was requested).
    pub learning_wake: Arc<tokio::sync::Notify>,
    /// Whether texts and call ids are redacted before the model and Postgres see them.
    pub redaction: crate::redact::Policy,
    /// The review queue's overlap and lease length.
    pub review: crate::review::queue::QueueSettings,
}

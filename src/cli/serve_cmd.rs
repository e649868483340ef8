//! `voc serve`: the HTTP service (flags, each also an environment variable).

use crate::learning::{FineTuneSettings, GateSettings, LearningSettings};
use crate::pipeline::PipelineSettings;
use crate::review::queue::QueueSettings;
use crate::service::{AnnotatorKey, ApiKeys, ConnectionLimits, Limits, ServiceSettings};
use crate::store::DatabaseSettings;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (host:port; port 0 picks a free one).
    #[arg(long, env = "VOC_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Postgres connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Most database connections in the pool.
    #[arg(long, env = "VOC_DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,
    /// How long a request waits for a database connection before answering 503.
    #[arg(long, env = "VOC_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 2000)]
    pub db_acquire_timeout_ms: u64,
    /// Model store folder (one sub-folder per version).
    #[arg(long, env = "VOC_STORE", default_value = "model_store")]
    pub store: PathBuf,
    /// Version to serve; default: the one recorded active in Postgres, else the newest.
    #[arg(long, env = "VOC_MODEL_VERSION")]
    pub model_version: Option<String>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, env = "VOC_DEVICE", default_value = "cpu")]
    pub device: String,
    /// Most texts in one model call.
    #[arg(long, env = "VOC_MAX_BATCH_SIZE", default_value_t = 32)]
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for more (milliseconds).
    #[arg(long, env = "VOC_MAX_BATCH_WAIT_MS", default_value_t = 2)]
    pub max_batch_wait_ms: u64,
    /// Most requests waiting for inference; beyond it requests get 503 with Retry-After.
    #[arg(long, env = "VOC_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,
    /// Most text bytes held by requests being classified; beyond it requests get 503 with
    /// Retry-After (at least --body-limit-bytes).
    #[arg(long, env = "VOC_QUEUE_BYTES", default_value_t = 64 << 20)]
    pub queue_bytes: usize,
    /// Model replicas, each on its own thread with its own copy of the weights (0: one per
    /// two CPUs).
    #[arg(long, env = "VOC_INFERENCE_THREADS", default_value_t = 0)]
    pub inference_threads: usize,
    /// libtorch intra-op threads of each replica.
    #[arg(long, env = "VOC_INTRA_OP_THREADS", default_value_t = 1)]
    pub intra_op_threads: usize,
    /// Largest request body accepted (bytes); larger ones get 413.
    #[arg(long, env = "VOC_BODY_LIMIT_BYTES", default_value_t = 1 << 20)]
    pub body_limit_bytes: usize,
    /// Most transcripts in one POST /classify `items` array.
    #[arg(long, env = "VOC_MAX_ITEMS_PER_REQUEST", default_value_t = 256)]
    pub max_items_per_request: usize,
    /// A request taking longer than this is answered 408 (milliseconds).
    #[arg(long, env = "VOC_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Time a client has to send a request's line and headers (milliseconds); then the
    /// connection is closed.
    #[arg(long, env = "VOC_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection idle this long is closed (milliseconds; the header-read
    /// timeout also closes one idle that long, whichever is shorter).
    #[arg(long, env = "VOC_IDLE_TIMEOUT_MS", default_value_t = 5_000)]
    pub idle_timeout_ms: u64,
    /// Most client connections open at once; more are answered 503 and closed.
    #[arg(long, env = "VOC_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Comma-separated keys allowed to classify and read models (empty with no admin keys: open).
    #[arg(
        long,
        env = "VOC_CLASSIFY_API_KEYS",
        default_value = "",
        hide_env_values = true
    )]
    pub classify_api_keys: String,
    /// Comma-separated keys allowed everything: feedback, transcripts, model activation (empty: open).
    #[arg(
        long,
        env = "VOC_ADMIN_API_KEYS",
        default_value = "",
        hide_env_values = true
    )]
    pub admin_api_keys: String,
    /// Comma-separated `name:key` pairs for annotators: each key may use the review queue
    /// and the labeling pages, and its labels are recorded under its name.
    #[arg(
        long,
        env = "VOC_ANNOTATOR_API_KEYS",
        default_value = "",
        hide_env_values = true
    )]
    pub annotator_api_keys: String,
    /// Annotators per review-queue item: 1 shows each item to one annotator; 2 or more
    /// collects that many labels per item, so agreement can be measured.
    #[arg(long, env = "VOC_REVIEW_OVERLAP", default_value_t = 1)]
    pub review_overlap: u32,
    /// How long a review-queue item stays leased to the annotator it was shown to (seconds).
    #[arg(long, env = "VOC_REVIEW_LEASE_S", default_value_t = 300)]
    pub review_lease_s: u64,
    /// Keep the review queue's ranking from classification time: do not score unlabeled
    /// items again when a new model version goes live.
    #[arg(long, env = "VOC_NO_REVIEW_RESCORE")]
    pub no_review_rescore: bool,
    /// Serve with no API keys on a non-loopback address (every route open to the network).
    #[arg(long, env = "VOC_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Let `/metrics` answer without a key when keys are configured (for a scraper that
    /// cannot send one; the figures include labels and model versions).
    #[arg(long, env = "VOC_PUBLIC_METRICS")]
    pub public_metrics: bool,
    /// Let `/docs` and `/openapi.json` answer without a key when keys are configured.
    #[arg(long, env = "VOC_PUBLIC_DOCS")]
    pub public_docs: bool,
    /// How long shutdown waits for requests in flight (seconds).
    #[arg(long, env = "VOC_SHUTDOWN_GRACE_S", default_value_t = 10)]
    pub shutdown_grace_s: u64,
    /// Never fine-tune in this process (it still follows versions others promote).
    #[arg(long, env = "VOC_NO_TRAINING")]
    pub no_training: bool,
    /// Start a fine-tuning run once this many labels arrived since the last run.
    #[arg(long, env = "VOC_RETRAIN_MIN_LABELS", default_value_t = 300)]
    pub retrain_min_labels: i64,
    /// Also start one after this many seconds if any label arrived (0: never).
    #[arg(long, env = "VOC_RETRAIN_INTERVAL_S", default_value_t = 6 * 3600)]
    pub retrain_interval_s: u64,
    /// How often the scheduler and the version follower check the database (milliseconds).
    #[arg(long, env = "VOC_LEARNING_POLL_MS", default_value_t = 5000)]
    pub learning_poll_ms: u64,
    /// Epochs of a fine-tuning run (early stopping may end it sooner).
    #[arg(long, env = "VOC_FINETUNE_EPOCHS", default_value_t = 3)]
    pub finetune_epochs: usize,
    /// Learning rate of fine-tuning runs; default: the parent version's.
    #[arg(long, env = "VOC_FINETUNE_LEARNING_RATE")]
    pub finetune_learning_rate: Option<f64>,
    /// Above this many target-task labels, fine-tuning runs leave out the association
    /// losses (they help with few labels and cost about nine times a step).
    #[arg(
        long,
        env = "VOC_FINETUNE_ASSOCIATION_MAX_LABELS",
        default_value_t = 2000
    )]
    pub finetune_association_max_labels: usize,
    /// libtorch threads of the training thread (serving keeps the other cores).
    #[arg(long, env = "VOC_TRAINING_THREADS", default_value_t = 1)]
    pub training_threads: usize,
    /// How far the training thread lowers its scheduling priority (nice, 0-19), so serving
    /// keeps the cores while a run trains.
    #[arg(long, env = "VOC_TRAINING_NICE", default_value_t = 10)]
    pub training_nice: i32,
    /// Share of labeled transcripts (chosen by a hash of their text) never trained on and
    /// used by the gate; the first server records it in Postgres and later ones use that.
    #[arg(long, env = "VOC_EVAL_SHARE", default_value_t = 0.1)]
    pub eval_share: f64,
    /// A running training run whose owner missed its heartbeats (one a second) this long is
    /// taken for dead and marked failed.
    #[arg(long, env = "VOC_LEARNING_ORPHAN_AFTER_S", default_value_t = 10)]
    pub learning_orphan_after_s: u64,
    /// Days a version the gate rejected keeps its folder in the model store (for a look, or a
    /// manual activation) before the scheduler removes it; 0 keeps them forever.
    #[arg(long, env = "VOC_REJECTED_RETENTION_DAYS", default_value_t = 30)]
    pub rejected_retention_days: u64,
    /// Most unlabeled transcripts (newest first) a run samples for the association loss.
    #[arg(long, env = "VOC_UNLABELED_SAMPLE", default_value_t = 2000)]
    pub unlabeled_sample: i64,
    /// How far (macro-F1, 0.01 = one point) the target task may fall before the gate rejects.
    #[arg(long, env = "VOC_GATE_TARGET_MARGIN", default_value_t = 0.01)]
    pub gate_target_margin: f64,
    /// How far any other task may fall before the gate rejects.
    #[arg(long, env = "VOC_GATE_OTHER_MARGIN", default_value_t = 0.02)]
    pub gate_other_margin: f64,
    /// Fewest labeled evaluation rows of the target task the gate judges on.
    #[arg(long, env = "VOC_GATE_MIN_EVAL_ROWS", default_value_t = 30)]
    pub gate_min_eval_rows: usize,
    /// Store texts and call ids as sent, personal data included (a warning is logged; rows
    /// keep redaction version 0, so `voc redact` rewrites them later).
    #[arg(long, env = "VOC_NO_REDACT")]
    pub no_redact: bool,
}

impl ServeArgs {
    pub fn settings(&self) -> anyhow::Result<ServiceSettings> {
        let device = crate::model::parse_device(&self.device).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(self.max_batch_size > 0, "--max-batch-size must be positive");
        anyhow::ensure!(self.queue_capacity > 0, "--queue-capacity must be positive");
        anyhow::ensure!(
            self.queue_bytes >= self.body_limit_bytes,
            "--queue-bytes must be at least --body-limit-bytes (else a request the body limit \
             lets in could never be classified)"
        );
        anyhow::ensure!(
            self.max_items_per_request > 0,
            "--max-items-per-request must be positive"
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.eval_share),
            "--eval-share must be at least 0 and below 1"
        );
        anyhow::ensure!(
            self.gate_target_margin >= 0.0 && self.gate_other_margin >= 0.0,
            "gate margins must not be negative"
        );
        anyhow::ensure!(
            (1..=20).contains(&self.review_overlap),
            "--review-overlap must be between 1 and 20"
        );
        anyhow::ensure!(self.review_lease_s > 0, "--review-lease-s must be positive");
        let annotators = AnnotatorKey::parse_list(&self.annotator_api_keys)
            .map_err(|e| anyhow::anyhow!("--annotator-api-keys: {e}"))?;
        Ok(ServiceSettings {
            bind: self.bind.clone(),
            database: DatabaseSettings {
                url: self.database_url.clone(),
                max_connections: self.db_max_connections.max(1),
                acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            },
            store_dir: self.store.clone(),
            model_version: self.model_version.clone(),
            pipeline: PipelineSettings {
                max_batch_size: self.max_batch_size,
                max_batch_wait: Duration::from_millis(self.max_batch_wait_ms),
                queue_capacity: self.queue_capacity,
                queue_bytes: self.queue_bytes,
                replicas: inference_replicas(self.inference_threads),
                intra_op_threads: self.intra_op_threads.max(1),
                device,
            },
            limits: Limits {
                body_limit_bytes: self.body_limit_bytes,
                max_items_per_request: self.max_items_per_request,
                request_timeout: Duration::from_millis(self.request_timeout_ms),
            },
            connections: ConnectionLimits {
                header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
                idle_timeout: Duration::from_millis(self.idle_timeout_ms),
                max_connections: self.max_connections,
            },
            keys: ApiKeys {
                public_metrics: self.public_metrics,
                public_docs: self.public_docs,
                annotators,
                ..ApiKeys::from_lists(&self.classify_api_keys, &self.admin_api_keys)
            },
            shutdown_grace: Duration::from_secs(self.shutdown_grace_s),
            learning: LearningSettings {
                enabled: !self.no_training,
                min_new_labels: self.retrain_min_labels,
                interval: (self.retrain_interval_s > 0)
                    .then(|| Duration::from_secs(self.retrain_interval_s)),
                poll: Duration::from_millis(self.learning_poll_ms.max(50)),
                eval_share: self.eval_share,
                unlabeled_sample: self.unlabeled_sample.max(0),
                orphan_after: Duration::from_secs(self.learning_orphan_after_s.max(2)),
                rejected_retention: (self.rejected_retention_days > 0)
                    .then(|| Duration::from_secs(self.rejected_retention_days * 24 * 3600)),
                fine_tune: FineTuneSettings {
                    max_epochs: self.finetune_epochs.max(1),
                    threads: self.training_threads.max(1),
                    learning_rate: self.finetune_learning_rate,
                    association_max_labels: self.finetune_association_max_labels,
                    nice: self.training_nice.clamp(0, 19),
                },
                gate: GateSettings {
                    target_margin: self.gate_target_margin,
                    other_margin: self.gate_other_margin,
                    min_eval_rows: self.gate_min_eval_rows,
                },
            },
            redaction: crate::redact::Policy::from_no_redact(self.no_redact),
            review: QueueSettings {
                overlap: self.review_overlap,
                lease_for: Duration::from_secs(self.review_lease_s),
                rescore: !self.no_review_rescore,
            },
        })
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    if settings.keys.is_open() {
        if !args.insecure_no_auth && !is_loopback(&settings.bind) {
            anyhow::bail!(
                "refusing to serve {} with no API keys: every route, feedback and transcripts \
                 included, would be open to the network. Set VOC_CLASSIFY_API_KEYS and/or \
                 VOC_ADMIN_API_KEYS (or --classify-api-keys/--admin-api-keys), bind a loopback \
                 address such as 127.0.0.1, or pass --insecure-no-auth (VOC_INSECURE_NO_AUTH=1) \
                 to serve unauthenticated anyway",
                settings.bind
            );
        }
        tracing::warn!("no API keys configured: every route is open");
    }
    if !settings.redaction.is_on() {
        tracing::warn!(
            "redaction is off (--no-redact): card numbers, phone numbers and other personal \
             data in texts and call ids are stored and fed to the model as sent"
        );
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("voc-http")
        .build()?
        .block_on(crate::service::serve(settings, crate::api::app))
}

/// Whether `bind` (`host:port`) can only be reached from this machine: a loopback IP or
/// `localhost`. Anything else, names included, counts as reachable from the network.
fn is_loopback(bind: &str) -> bool {
    let host = bind.rsplit_once(':').map_or(bind, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `--inference-threads`, with 0 read as one replica per two CPUs (at least one): the other
/// half of the cores parse requests, redact, write to Postgres and run Postgres itself. On 2
/// CPUs one replica served 1,751 / 1,633 single requests/s against 1,405 / 1,327 for two
/// (bench/load.sh S1, two rounds); two replicas win on 64-text requests (S3).
fn inference_replicas(requested: usize) -> usize {
    match requested {
        0 => (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1),
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_loopback_addresses_count_as_loopback() {
        for bind in [
            "127.0.0.1:8080",
            "127.0.0.2:0",
            "[::1]:8080",
            "localhost:8080",
        ] {
            assert!(is_loopback(bind), "{bind}");
        }
        for bind in [
            "0.0.0.0:8080",
            "[::]:8080",
            "10.0.0.5:80",
            "example.com:80",
            ":8080",
        ] {
            assert!(!is_loopback(bind), "{bind}");
        }
    }
}

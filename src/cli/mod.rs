//! Command-line parsing and the subcommands' entry points.

mod data_args;
mod eval_cmd;
mod export_cmd;
mod healthcheck_cmd;
mod import_cmd;
mod predict_cmd;
mod pretrain_cmd;
mod redact_cmd;
mod serve_cmd;
mod train_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "voc",
    version,
    about = "Call-transcript classifier: train, evaluate, predict and serve multi-task models"
)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "VOC_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a new model version from a JSONL or CSV file; prints its folder last.
    Train(Box<train_cmd::TrainArgs>),
    /// Pretrain an encoder (tokenizer and embeddings) on unlabeled text; prints its folder last.
    Pretrain(Box<pretrain_cmd::PretrainArgs>),
    /// Score a model version on a labeled file.
    Eval(eval_cmd::EvalArgs),
    /// Classify texts from stdin, one per line, one JSON object per line out.
    Predict(predict_cmd::PredictArgs),
    /// Load historical transcripts and labels into Postgres (idempotent).
    Import(import_cmd::ImportArgs),
    /// Write the stored transcripts and their current labels as JSONL for `voc train`
    /// (`--exclude-eval` leaves out the frozen evaluation set).
    Export(export_cmd::ExportArgs),
    /// Replace personal data in stored transcripts by tags (resumable), or score the
    /// redactor on a labeled file (`--eval`).
    Redact(redact_cmd::RedactArgs),
    /// Run the HTTP service: classify, store, take feedback (see docs/service.md).
    Serve(Box<serve_cmd::ServeArgs>),
    /// Ask a running `voc serve` whether it can classify (`GET /readyz`); exits non-zero
    /// unless it answers 200. For container health checks.
    Healthcheck(healthcheck_cmd::HealthcheckArgs),
}

/// Says on stderr what redaction did to the texts read from `source` (train and pretrain).
fn report_redaction(
    source: &str,
    policy: crate::redact::Policy,
    counts: &std::collections::BTreeMap<crate::redact::PiiKind, u64>,
) {
    if policy.is_on() {
        eprintln!(
            "{source}: redacted {}",
            crate::redact::describe_counts(counts)
        );
    } else {
        eprintln!("{source}: redaction is off (--no-redact): personal data kept in the texts");
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `info`).
/// A small pool on `url` with the migrations applied, for the commands that write to
/// Postgres outside `voc serve` (`import`, `redact`, `export`).
async fn migrated_pool(url: &str) -> anyhow::Result<sqlx::PgPool> {
    use anyhow::Context;
    let pool = crate::store::connect_lazy(&crate::store::DatabaseSettings {
        url: url.to_string(),
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(10),
    })?;
    crate::store::migrate(&pool)
        .await
        .context("cannot apply the database migrations (is the URL right and Postgres up?)")?;
    Ok(pool)
}

pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => train_cmd::run(*args),
        Command::Pretrain(args) => pretrain_cmd::run(*args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Predict(args) => predict_cmd::run(args),
        Command::Import(args) => import_cmd::run(args),
        Command::Redact(args) => redact_cmd::run(args),
        Command::Export(args) => export_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(*args),
        Command::Healthcheck(args) => healthcheck_cmd::run(args),
    }
}

//! `voc redact`: rewrite the transcripts already stored in Postgres with their personal data
//! replaced by tags (in batches by id, resumable), or, with `--eval FILE`, score the
//! redactor on a labeled file and print per-kind precision and recall.

use crate::redact::eval::{evaluate, read_labeled};
use crate::redact::stored::{redact_next_batch, RedactionTotals};
use crate::redact::{Redactor, REDACTION_VERSION};
use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct RedactArgs {
    /// Postgres connection URL whose stored transcripts are rewritten.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Transcripts per transaction.
    #[arg(long, default_value_t = 500)]
    pub batch: i64,
    /// Score the redactor on this labeled JSONL file instead (see scripts/make_pii_fixture.py).
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// With --eval: also list every miss and false hit.
    #[arg(long, requires = "eval")]
    pub show_errors: bool,
}

pub fn run(args: RedactArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.eval {
        let sentences = read_labeled(path)?;
        let report = evaluate(Redactor::shared(), &sentences);
        if args.show_errors {
            for e in &report.errors {
                eprintln!("{e}");
            }
        }
        print!("{}", report.table());
        return Ok(());
    }
    let url = args
        .database_url
        .as_deref()
        .context("give --database-url (or DATABASE_URL), or --eval FILE")?;
    anyhow::ensure!(args.batch > 0, "--batch must be positive");
    let totals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(redact_database(url, args.batch))?;
    for (kind, n) in &totals.counts {
        eprintln!("{:>8} {}", n, kind.tag());
    }
    println!("{}", serde_json::to_string(&totals)?);
    Ok(())
}

async fn redact_database(url: &str, batch: i64) -> anyhow::Result<RedactionTotals> {
    let pool = super::migrated_pool(url).await?;
    let left = crate::store::transcripts::count_unredacted(&pool, REDACTION_VERSION).await?;
    eprintln!("{left} transcripts to redact (redactor version {REDACTION_VERSION})");
    let mut totals = RedactionTotals::default();
    loop {
        let done = redact_next_batch(&pool, Redactor::shared(), batch).await?;
        if done.scanned == 0 {
            break;
        }
        totals.add(&done);
        eprintln!(
            "{} of {left} scanned, {} rewritten",
            totals.scanned, totals.rewritten
        );
    }
    Ok(totals)
}

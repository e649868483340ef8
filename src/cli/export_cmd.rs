//! `voc export`: the transcripts stored in Postgres with their current labels, as JSONL that
//! `voc train` reads (`id`, `text`, one key per labeled task). `--exclude-eval` leaves out
//! the frozen evaluation set, so a model trained on the export has never seen the rows the
//! service's gate scores candidates on.

use crate::learning::eval_set::in_frozen_eval;
use crate::store::{exports, learning_settings};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

/// Transcripts read per query.
const PAGE: i64 = 2_000;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Postgres connection URL to read from.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Where to write the JSONL (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Leave out the transcripts of the frozen evaluation set.
    #[arg(long)]
    pub exclude_eval: bool,
    /// With --exclude-eval, when no server has recorded a share in the database yet.
    #[arg(long, default_value_t = 0.1)]
    pub eval_share: f64,
    /// Only transcripts with at least one label.
    #[arg(long)]
    pub labeled_only: bool,
}

/// What an export wrote.
#[derive(Debug, Default, serde::Serialize)]
pub struct ExportCounts {
    pub written: u64,
    pub skipped_eval: u64,
    pub skipped_unlabeled: u64,
    pub eval_share: Option<f64>,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..1.0).contains(&args.eval_share),
        "--eval-share must be in [0, 1)"
    );
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let counts = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(export(&args, &mut out))?;
    out.flush()?;
    eprintln!("{}", serde_json::to_string(&counts)?);
    Ok(())
}

async fn export(args: &ExportArgs, out: &mut dyn Write) -> anyhow::Result<ExportCounts> {
    let pool = super::migrated_pool(&args.database_url).await?;
    let mut counts = ExportCounts::default();
    let share = if args.exclude_eval {
        let recorded = learning_settings::recorded_eval_share(&pool).await?;
        Some(recorded.unwrap_or(args.eval_share))
    } else {
        None
    };
    counts.eval_share = share;
    let mut after = None;
    loop {
        let page = exports::page(&pool, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for row in page {
            if share.is_some_and(|s| in_frozen_eval(row.eval_bucket as u32, s)) {
                counts.skipped_eval += 1;
                continue;
            }
            if args.labeled_only && row.labels.is_empty() {
                counts.skipped_unlabeled += 1;
                continue;
            }
            serde_json::to_writer(&mut *out, &row.training_row())?;
            out.write_all(b"\n")?;
            counts.written += 1;
        }
    }
    Ok(counts)
}

//! `voc import`: load historical transcripts and their labels into Postgres (source
//! `import`). Importing the same file again changes nothing. Texts and ids are redacted
//! before they are sent (`--no-redact` keeps them as they are).

use super::data_args::DataArgs;
use crate::data::detect_tasks;
use crate::redact::{describe_counts, redact_unique_id, Policy, Redactor};
use crate::store::imports::{import_rows, ImportCounts, ImportRow};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// JSONL or CSV file, read as `voc train` reads it.
    pub file: PathBuf,
    /// Postgres connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[command(flatten)]
    pub data_args: DataArgs,
    /// Rows per transaction.
    #[arg(long, default_value_t = 1000)]
    pub batch_rows: usize,
    /// Store texts and ids as they are in the file, personal data included (the rows keep
    /// redaction version 0, so `voc redact` rewrites them later).
    #[arg(long)]
    pub no_redact: bool,
}

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_rows > 0, "--batch-rows must be positive");
    let mut data = args.data_args.read(&args.file)?;
    // Only task columns become labels; other keys (dates, ids) are not labels. A file with
    // no labels at all is still worth importing: its texts feed the association loss.
    let tasks = match detect_tasks(&data, args.data_args.tasks.as_deref()) {
        Ok((tasks, notes)) => {
            for note in notes {
                eprintln!("{}: {note}", data.source);
            }
            tasks
        }
        Err(e) if args.data_args.tasks.is_none() => {
            eprintln!("{}: {e}; importing the texts without labels", data.source);
            Vec::new()
        }
        Err(e) => anyhow::bail!(e),
    };
    let names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
    data.retain_tasks(&names);
    let policy = Policy::from_no_redact(args.no_redact);
    let redacted = policy.apply_all(data.examples.iter_mut().map(|e| &mut e.text));
    // (source id, call id) per row: an id holding personal data is redacted too, the
    // source id kept unique (see `redact_unique_id`).
    let ids: Vec<(String, String)> = data
        .examples
        .iter()
        .map(|e| match policy {
            Policy::Redact => (
                redact_unique_id(&e.id, &e.text),
                Redactor::shared().redact(&e.id).text,
            ),
            Policy::Keep => (e.id.clone(), e.id.clone()),
        })
        .collect();
    let ids_redacted = ids
        .iter()
        .zip(&data.examples)
        .filter(|((s, _), e)| s != &e.id)
        .count();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let total = runtime.block_on(async {
        let pool = super::migrated_pool(&args.database_url).await?;
        let mut total = ImportCounts::default();
        for (chunk, ids) in data
            .examples
            .chunks(args.batch_rows)
            .zip(ids.chunks(args.batch_rows))
        {
            let rows: Vec<ImportRow> = chunk
                .iter()
                .zip(ids)
                .map(|(e, (source_id, call_id))| ImportRow {
                    source_id,
                    call_id,
                    ..ImportRow::from(e)
                })
                .collect();
            let c = import_rows(&pool, &rows, policy.version()).await?;
            total.transcripts_added += c.transcripts_added;
            total.transcripts_known += c.transcripts_known;
            total.labels_added += c.labels_added;
            total.labels_known += c.labels_known;
        }
        anyhow::Ok(total)
    })?;
    eprintln!(
        "{}: tasks {}; transcripts: {} added, {} already there; labels: {} added, {} already there",
        data.source,
        names.join(", "),
        total.transcripts_added,
        total.transcripts_known,
        total.labels_added,
        total.labels_known
    );
    if policy.is_on() {
        eprintln!(
            "{}: redacted {} in the texts, {ids_redacted} ids held personal data",
            data.source,
            describe_counts(&redacted)
        );
    } else {
        eprintln!(
            "{}: redaction is off (--no-redact): personal data stored as it is",
            data.source
        );
    }
    let mut out = serde_json::to_value(total)?;
    out["redacted"] = serde_json::to_value(&redacted)?;
    out["ids_redacted"] = ids_redacted.into();
    println!("{out}");
    Ok(())
}

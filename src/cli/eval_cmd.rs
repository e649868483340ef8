//! `voc eval`: score a saved version on a labeled file.

use super::data_args::DataArgs;
use crate::model::encoded::EncodedRows;
use crate::model::{parse_device, Classifier};
use crate::train::evaluate::{evaluate, evaluate_classifier};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Model version folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Labeled data (JSONL or CSV).
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub data_args: DataArgs,
    /// Score the network alone, without the version's TF-IDF companion.
    #[arg(long)]
    pub network_only: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let classifier = Classifier::load(&args.model, device)?;
    let data = args.data_args.read(&args.data)?;
    let tasks = classifier.manifest().tasks.clone();
    let examples: Vec<_> = data.examples.iter().collect();
    let rows: EncodedRows = classifier.encode_rows(&examples)?;
    for (task, &unknown) in tasks.iter().zip(&rows.unknown_labels) {
        if unknown > 0 {
            eprintln!(
                "warning: {unknown} rows label '{}' with a class the model does not know; they are not scored (known: {})",
                task.name,
                task.labels.join(", ")
            );
        }
    }
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let report = if args.network_only {
        evaluate(classifier.net(), &rows, &tasks, device)
    } else {
        evaluate_classifier(&classifier, &texts, &rows)?
    };
    if report.tasks.is_empty() {
        anyhow::bail!(
            "{} has no labels for the model's tasks ({})",
            data.source,
            tasks
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "model {} on {} ({} rows)",
        classifier.manifest().version,
        data.source,
        data.examples.len()
    );
    println!("| task | n | macro-F1 | accuracy | ECE |");
    println!("|---|---|---|---|---|");
    for (task, m) in &report.tasks {
        println!(
            "| {task} | {} | {:.2} | {:.2} | {:.3} |",
            m.n,
            m.macro_f1 * 100.0,
            m.accuracy * 100.0,
            m.ece
        );
    }
    Ok(())
}

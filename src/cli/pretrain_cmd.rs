//! `voc pretrain`: unlabeled text (files, or the transcripts stored in Postgres) in, a
//! pretrained encoder folder out (its path is the last line on stdout). Train from it with
//! `voc train --init-from DIR`.

use super::data_args::DataArgs;
use crate::config::{EncoderKind, TrainConfig};
use crate::model::parse_device;
use crate::model::vectors::write_vec_file;
use crate::store::DatabaseSettings;
use crate::train::{pretrain, PretrainRequest};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct PretrainArgs {
    /// Text to learn from: JSONL or CSV (the text column; labels are ignored) or, for a
    /// `.txt` file, one text per line. May be given several times.
    #[arg(long)]
    pub text: Vec<PathBuf>,
    /// Also learn from the transcripts stored in this Postgres database.
    #[arg(long, hide_env_values = true)]
    pub database_url: Option<String>,
    /// At most this many stored transcripts (the newest) when reading the database.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_stored_texts: i64,
    /// TOML config (`[model]` sizes and `[pretrain]`); see `voc train --print-config`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model store folder; the encoder is written under it.
    #[arg(long, env = "VOC_STORE", default_value = "model_store")]
    pub store: PathBuf,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Encoder to pretrain (`model.encoder`): with an LSTM (`lstm`, `cnn-lstm`) the BiLSTM is
    /// also trained as a language model; a CNN takes the embeddings only.
    #[arg(long, value_enum)]
    pub encoder: Option<EncoderKind>,
    /// Passes of the language model over the text (`pretrain.lm_epochs`; 0: skip-gram only).
    #[arg(long)]
    pub lm_epochs: Option<usize>,
    /// Passes over the text, at most.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// libtorch threads (0: one less than the CPUs, at least 1).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write the learned vectors in the word2vec text format to this file.
    #[arg(long)]
    pub vec_out: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Learn from the texts as they are, personal data included (by default card numbers,
    /// phone numbers, … are replaced by tags before the tokenizer or any model sees them).
    #[arg(long)]
    pub no_redact: bool,
}

pub fn run(args: PretrainArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.text.is_empty() || args.database_url.is_some(),
        "give --text FILE (one or more) and/or --database-url"
    );
    let mut config = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::default(),
    };
    if let Some(seed) = args.seed {
        config.training.seed = seed;
    }
    if let Some(encoder) = args.encoder {
        config.model.encoder = encoder;
    }
    if let Some(epochs) = args.lm_epochs {
        config.pretrain.lm_epochs = epochs;
    }
    if let Some(epochs) = args.epochs {
        config.pretrain.epochs = epochs;
    }
    if let Some(threads) = args.threads {
        config.training.threads = threads;
    }
    let device = parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let redaction = crate::redact::Policy::from_no_redact(args.no_redact);
    let mut texts = Vec::new();
    let mut sources = Vec::new();
    for path in &args.text {
        let mut read = read_texts(path, &args.data)?;
        let source = path.display().to_string();
        super::report_redaction(&source, redaction, &redaction.apply_all(read.iter_mut()));
        texts.extend(read);
        sources.push(source);
    }
    if let Some(url) = &args.database_url {
        // Stored texts are redacted already unless a server ran with --no-redact.
        let mut stored = stored_texts(url, args.max_stored_texts)?;
        eprintln!("{} transcripts read from the database", stored.len());
        let counts = redaction.apply_all(stored.iter_mut());
        super::report_redaction("database transcripts", redaction, &counts);
        texts.extend(stored);
        sources.push("database transcripts".into());
    }
    eprintln!("pretraining on {} texts", texts.len());
    let summary = pretrain(PretrainRequest {
        texts: &texts,
        source: sources.join(", "),
        config,
        device,
        store: args.store.clone(),
    })?;
    let r = &summary.skipgram;
    eprintln!(
        "skip-gram: {} tokens, {} epochs, {} pairs, final loss {:.4}, {:.1}s ({:.0} pairs/s)",
        r.tokens, r.epochs, r.pairs, r.final_loss, r.seconds, r.pairs_per_second
    );
    if let Some(lm) = &summary.language_model {
        eprintln!(
            "language model: {} epochs, {} texts, loss {:.4} -> {:.4}, {:.1}s ({:.0} texts/s)",
            lm.epochs,
            lm.sequences,
            lm.first_epoch_loss,
            lm.final_loss,
            lm.seconds,
            lm.sequences_per_second
        );
    }
    if let Some(path) = &args.vec_out {
        write_vec_file(path, &summary.tokenizer, &summary.embedding)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("vectors written to {}", path.display());
    }
    println!("{}", summary.version_dir.display());
    Ok(())
}

/// The texts of a data file; a `.txt` file is one text per line.
fn read_texts(path: &Path, data: &DataArgs) -> anyhow::Result<Vec<String>> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
    {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(text.lines().map(str::to_string).collect());
    }
    Ok(data
        .read(path)?
        .examples
        .into_iter()
        .map(|e| e.text)
        .collect())
}

fn stored_texts(url: &str, limit: i64) -> anyhow::Result<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let pool = crate::store::connect_lazy(&DatabaseSettings {
            url: url.to_string(),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(10),
        })?;
        crate::store::transcripts::newest_texts(&pool, limit)
            .await
            .context("cannot read the stored transcripts (is the URL right and Postgres up?)")
    })
}

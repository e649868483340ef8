//! `voc train`: data and config in, a new model version folder out (its path is the last
//! line on stdout).

use super::data_args::DataArgs;
use crate::config::{EncoderKind, LossWeighting, Schedule, Selection, Sharing, TrainConfig};
use crate::data::detect_tasks;
use crate::model::parse_device;
use crate::train::{train, Progress, TrainHooks, TrainRequest};
use anyhow::Context;
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Training data (JSONL or CSV). Rows without labels feed the association loss.
    #[arg(long)]
    pub train: PathBuf,
    /// Validation data; default: a share of the labeled training rows is held out.
    #[arg(long)]
    pub valid: Option<PathBuf>,
    /// TOML config with every hyperparameter; the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model store folder; the new version is written under it.
    #[arg(long, env = "VOC_STORE", default_value = "model_store")]
    pub store: PathBuf,
    /// Keep labels only on the ids listed in this file (one per line); every other
    /// training row is used as unlabeled text.
    #[arg(long)]
    pub label_ids: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, value_enum)]
    pub encoder: Option<EncoderKind>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub min_steps: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub learning_rate: Option<f64>,
    #[arg(long)]
    pub patience: Option<usize>,
    #[arg(long)]
    pub vocab_size: Option<usize>,
    #[arg(long)]
    pub max_len: Option<usize>,
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Task whose validation macro-F1 drives early stopping and whose labels the
    /// association loss uses (default: sentiment, else the first task).
    #[arg(long)]
    pub target_task: Option<String>,
    /// Train without the walker and visit losses.
    #[arg(long)]
    pub no_association: bool,
    #[arg(long)]
    pub association_start_step: Option<usize>,
    #[arg(long)]
    pub walker_weight: Option<f64>,
    #[arg(long)]
    pub visit_weight: Option<f64>,
    #[arg(long)]
    pub unlabeled_batch_size: Option<usize>,
    /// Class-balanced labeled batches once the association losses are on.
    #[arg(long)]
    pub balanced_batch: bool,
    /// Start the encoder from this version folder: a pretrained encoder (`voc pretrain`)
    /// or a classifier (its tokenizer and encoder weights; the heads start afresh).
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Start the embedding matrix from word vectors in the word2vec/fastText text format
    /// (`.vec`); the embedding size follows the file.
    #[arg(long)]
    pub pretrained_vectors: Option<PathBuf>,
    /// How tasks share the encoder: hard (one encoder), soft (one per task, L2-pulled
    /// together) or cross-stitch (one per task, mixed by learned units).
    #[arg(long, value_enum)]
    pub sharing: Option<Sharing>,
    /// How task losses add up: fixed weights or learned uncertainty (Kendall et al., 2018).
    #[arg(long, value_enum)]
    pub loss_weighting: Option<LossWeighting>,
    /// joint (one summed loss per batch) or alternate (one optimiser step per task in turn).
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Train without the wide hashed n-gram branch.
    #[arg(long)]
    pub no_ngrams: bool,
    /// Train without the TF-IDF companion (the logistic regression on TF-IDF word and
    /// character n-grams whose probabilities are averaged with the network's).
    #[arg(long)]
    pub no_tfidf: bool,
    /// Early stopping keeps the best `target` task score or the best `mean` over tasks.
    #[arg(long, value_enum)]
    pub select_on: Option<Selection>,
    /// Add character 2-to-N-grams of each vocabulary entry to the n-gram branch (N = 5
    /// when given without a value; off by default).
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "5")]
    pub char_ngrams: Option<i64>,
    /// Do not pretrain the embeddings with skip-gram on the training text first.
    #[arg(long)]
    pub no_pretrain: bool,
    /// Learning-rate multiplier for pretrained embeddings.
    #[arg(long)]
    pub embedding_lr_scale: Option<f64>,
    /// Learning-rate multiplier for an LSTM pretrained as a language model.
    #[arg(long)]
    pub lstm_lr_scale: Option<f64>,
    /// libtorch threads (0: one less than the CPUs, at least 1).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Train on the texts as they are, personal data included (by default card numbers,
    /// phone numbers, … are replaced by tags before the tokenizer or any model sees them).
    #[arg(long)]
    pub no_redact: bool,
}

impl TrainArgs {
    fn effective_config(&self) -> anyhow::Result<TrainConfig> {
        let mut c = match &self.config {
            Some(path) => TrainConfig::from_file(path)?,
            None => TrainConfig::default(),
        };
        let t = &mut c.training;
        set(&mut t.seed, self.seed);
        set(&mut t.max_epochs, self.epochs);
        set(&mut t.min_steps, self.min_steps);
        set(&mut t.batch_size, self.batch_size);
        set(&mut t.learning_rate, self.learning_rate);
        set(&mut t.patience, self.patience);
        set(&mut t.threads, self.threads);
        set(&mut t.embedding_lr_scale, self.embedding_lr_scale);
        set(&mut t.lstm_lr_scale, self.lstm_lr_scale);
        set(&mut t.loss_weighting, self.loss_weighting);
        set(&mut t.schedule, self.schedule);
        set(&mut t.select_on, self.select_on);
        if self.no_ngrams {
            c.model.ngrams.enabled = false;
        }
        set(&mut c.model.ngrams.char_max, self.char_ngrams);
        if self.no_tfidf {
            c.model.tfidf.enabled = false;
        }
        if self.no_pretrain {
            c.pretrain.enabled = false;
        }
        let m = &mut c.model;
        set(&mut m.encoder, self.encoder);
        set(&mut m.vocab_size, self.vocab_size);
        set(&mut m.max_len, self.max_len);
        set(&mut m.dropout, self.dropout);
        set(&mut m.sharing, self.sharing);
        let a = &mut c.association;
        set(&mut a.target_task, self.target_task.clone());
        set(&mut a.start_step, self.association_start_step);
        set(&mut a.walker_weight, self.walker_weight);
        set(&mut a.visit_weight, self.visit_weight);
        set(&mut a.unlabeled_batch_size, self.unlabeled_batch_size);
        if self.balanced_batch {
            a.balanced_batch = true;
        }
        if self.no_association {
            a.enabled = false;
        }
        c.validate()?;
        Ok(c)
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let config = args.effective_config()?;
    if args.print_config {
        print!("{}", toml::to_string_pretty(&config)?);
        return Ok(());
    }
    let device = parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let mut train_data = args.data.read(&args.train)?;
    let redaction = crate::redact::Policy::from_no_redact(args.no_redact);
    super::report_redaction(
        &train_data.source,
        redaction,
        &redaction.apply_all(train_data.examples.iter_mut().map(|e| &mut e.text)),
    );
    if let Some(path) = &args.label_ids {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --label-ids {}", path.display()))?;
        let keep: HashSet<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        for e in &mut train_data.examples {
            if !keep.contains(e.id.as_str()) {
                e.labels.clear();
            }
        }
    }
    let (tasks, notes) =
        detect_tasks(&train_data, args.data.tasks.as_deref()).map_err(anyhow::Error::msg)?;
    for note in notes {
        eprintln!("note: {note}");
    }
    let names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
    train_data.retain_tasks(&names);
    let valid_data = match &args.valid {
        Some(path) => {
            let mut v = args.data.read(path)?;
            v.retain_tasks(&names);
            super::report_redaction(
                &v.source,
                redaction,
                &redaction.apply_all(v.examples.iter_mut().map(|e| &mut e.text)),
            );
            Some(v)
        }
        None => None,
    };
    eprintln!(
        "training on {} rows ({}), tasks: {}",
        train_data.examples.len(),
        tasks
            .iter()
            .map(|t| format!("{} labeled {}", t.name, train_data.count_labeled(&t.name)))
            .collect::<Vec<_>>()
            .join(", "),
        tasks
            .iter()
            .map(|t| format!("{} ({} classes)", t.name, t.labels.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg}")
            .expect("progress template"),
    );
    let mut report = |p: &Progress| {
        bar.set_length(p.planned_steps as u64);
        bar.set_position(p.step as u64);
        let line = progress_line(p);
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(&line);
            bar.set_message(format!("loss {:.4} best F1 {:.4}", p.loss, p.best_score));
        }
    };
    let summary = train(
        TrainRequest {
            train: &train_data,
            valid: valid_data.as_ref(),
            tasks,
            config,
            device,
            store: args.store.clone(),
            warm_start: None,
            init_from: args.init_from.as_deref(),
            pretrained_vectors: args.pretrained_vectors.as_deref(),
        },
        TrainHooks {
            cancel: None,
            on_progress: Some(&mut report),
        },
    )?;
    bar.finish_and_clear();
    eprintln!(
        "done: {} steps, {} epochs, {:.1}s, {:.0} examples/s, stopped by {}, best step {}",
        summary.steps,
        summary.epochs,
        summary.wall_seconds,
        summary.examples_per_second,
        summary.stop_reason,
        summary.best_step
    );
    eprintln!("encoder start: {}", serde_json::to_string(&summary.init)?);
    if let Some(t) = &summary.tfidf {
        eprintln!("{}", tfidf_line(t));
    }
    for (task, m) in &summary.validation.tasks {
        eprintln!(
            "validation {task}: macro-F1 {:.4} accuracy {:.4} ECE {:.4} (n={})",
            m.macro_f1, m.accuracy, m.ece, m.n
        );
    }
    println!("{}", summary.version_dir.display());
    Ok(())
}

/// The TF-IDF companion's fit: features, seconds and per task the share it got and the
/// validation macro-F1 of the network, the companion and their average.
fn tfidf_line(t: &crate::train::tfidf_fit::TfidfReport) -> String {
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    let tasks: Vec<String> = t
        .tasks
        .iter()
        .map(|(name, r)| {
            format!(
                "{name} share {:.1} (valid macro-F1 network {} tfidf {} averaged {})",
                r.mix,
                f(r.valid_network),
                f(r.valid_tfidf),
                f(r.valid_mixed)
            )
        })
        .collect();
    let refit = t.refit.as_ref().map_or(String::new(), |r| {
        format!(
            "; refit on all {} rows (held-out ones included): {} features, {:.1}s",
            r.rows, r.features, r.seconds
        )
    });
    format!(
        "tf-idf companion: {} features, {:.1}s; {}{refit}",
        t.features,
        t.seconds,
        tasks.join("; ")
    )
}

/// One progress line; the validation score only on steps that were evaluated.
fn progress_line(p: &Progress) -> String {
    let score = match p.valid_score {
        Some(s) => format!(" valid macro-F1 {s:.4} (best {:.4})", p.best_score),
        None => String::new(),
    };
    format!(
        "epoch {} step {} loss {:.4}{score} {:.0} examples/s{}",
        p.epoch,
        p.step,
        p.loss,
        p.examples_per_second,
        if p.association_on {
            " [association on]"
        } else {
            ""
        }
    )
}

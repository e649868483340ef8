//! Every hyperparameter of a training run, read from TOML and overridable by flags.
//!
//! The effective config is saved with each model version (`model.json`), so a version
//! can always say how it was made.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which shared encoder sits under the task heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderKind {
    /// Several convolution widths over the embeddings, each max-pooled over time.
    Cnn,
    /// A bidirectional LSTM, max- and mean-pooled over the real tokens.
    Lstm,
    /// Both of the above over the same embeddings, their pooled features concatenated.
    CnnLstm,
}

impl EncoderKind {
    /// Whether the encoder has the convolution branch.
    pub fn has_cnn(self) -> bool {
        matches!(self, EncoderKind::Cnn | EncoderKind::CnnLstm)
    }

    /// Whether the encoder has the BiLSTM branch.
    pub fn has_lstm(self) -> bool {
        matches!(self, EncoderKind::Lstm | EncoderKind::CnnLstm)
    }
}

/// The wide hashed n-gram branch (see `model::ngram`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NgramConfig {
    pub enabled: bool,
    /// Rows of the hashed table.
    pub buckets: i64,
    /// Width of each row (and of the branch's feature vector).
    pub dim: i64,
    /// Longest n-gram, in tokens (1 = a bag of tokens).
    pub max_order: i64,
    /// Shortest character n-gram taken inside each vocabulary entry (a word-initial entry
    /// is read with a leading `<`, as fastText marks word starts).
    pub char_min: i64,
    /// Longest character n-gram; 0 (the default, and what versions saved before character
    /// n-grams existed read as) leaves them out. Measured on one seed they helped banking77
    /// (+0.9 macro-F1) and hurt airline sentiment (-2.2): see the README.
    pub char_max: i64,
    /// At most this many character n-grams per vocabulary entry (the shorter ones first).
    pub char_per_token: i64,
}

impl Default for NgramConfig {
    fn default() -> Self {
        NgramConfig {
            enabled: true,
            buckets: 1 << 18,
            dim: 64,
            max_order: 3,
            char_min: 2,
            char_max: 0,
            char_per_token: 32,
        }
    }
}

impl NgramConfig {
    /// Whether the branch also hashes character n-grams of each vocabulary entry.
    pub fn chars(&self) -> bool {
        self.char_max > 0
    }

    /// The branch switched off: what versions saved before it existed have.
    pub fn off() -> NgramConfig {
        NgramConfig {
            enabled: false,
            ..Default::default()
        }
    }
}

/// The TF-IDF companion beside the network (see `model::tfidf`): a logistic regression on
/// TF-IDF word and character n-grams per task, trained after the network, whose
/// probabilities are averaged with the network's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TfidfConfig {
    pub enabled: bool,
    /// Longest word n-gram (words: runs of two or more letters or digits, lower-cased).
    pub word_max: usize,
    /// Character n-grams `char_min..=char_max`, inside word boundaries (each word read
    /// with a space on either side); `char_max = 0` leaves them out.
    pub char_min: usize,
    pub char_max: usize,
    /// A feature must occur in at least this many training texts.
    pub min_df: usize,
    /// At most this many features (the most frequent ones are kept).
    pub max_features: usize,
    /// Inverse L2 strength, as scikit-learn's `C`: the loss is the class-balanced mean
    /// cross-entropy plus `|W|^2 / (2 C n)` over `n` labeled rows.
    pub c: f64,
    /// At most this many full-batch Adam steps (fewer when the validation macro-F1 stops
    /// improving), and their learning rate.
    pub iterations: usize,
    pub learning_rate: f64,
    /// The companion's share `w` in `(1 - w) * network + w * tfidf`, chosen per task on the
    /// validation rows from `mix_min..=mix_max` in steps of 0.1 (0.5 without validation labels).
    pub mix_min: f64,
    pub mix_max: f64,
    /// When the validation rows were held out of the training file (no `--valid`), fit the
    /// companion a second time on every labeled row, for the number of steps the first fit
    /// chose and with the share it chose, and keep that fit: the held-out rows are the
    /// user's labels too.
    pub refit: bool,
}

impl Default for TfidfConfig {
    fn default() -> Self {
        TfidfConfig {
            enabled: true,
            word_max: 2,
            char_min: 2,
            char_max: 5,
            min_df: 1,
            max_features: 1 << 20,
            c: 4.0,
            iterations: 200,
            learning_rate: 0.1,
            mix_min: 0.3,
            mix_max: 0.7,
            refit: true,
        }
    }
}

impl TfidfConfig {
    /// Switched off: what versions saved before the companion existed have.
    pub fn off() -> TfidfConfig {
        TfidfConfig {
            enabled: false,
            ..Default::default()
        }
    }
}

/// `training.loss_weighting` in the TOML config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossWeighting {
    /// `training.task_weights` (1 for a task not listed).
    #[default]
    Fixed,
    /// Learned per-task log-variances (Kendall et al., 2018), on top of the fixed weights.
    Uncertainty,
}

/// `model.sharing`: how the tasks share the encoder (see `model::sharing`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Sharing {
    /// One encoder for every task.
    #[default]
    Hard,
    /// One encoder per task, pulled together by an L2 penalty (Duong et al., 2015).
    Soft,
    /// One encoder per task, mixed by learned cross-stitch units (Misra et al., 2016).
    CrossStitch,
}

/// `training.schedule`: how the tasks take turns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// One summed loss over every task, one optimiser step per batch.
    #[default]
    Joint,
    /// Each task's loss with its own optimiser step, in turn, on every batch.
    Alternate,
}

/// `training.select_on`: which validation score early stopping keeps the best weights by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// The target task's macro-F1 (`association.target_task`).
    #[default]
    Target,
    /// The mean macro-F1 over every task with validation labels.
    Mean,
}

/// The model's shape: tokenizer, encoder and heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub encoder: EncoderKind,
    /// Subword vocabulary size the tokenizer learns from the training text.
    pub vocab_size: usize,
    /// Texts longer than this many tokens are truncated for the model (never rejected).
    pub max_len: usize,
    pub embedding_dim: i64,
    /// Convolution widths (in tokens) for the CNN encoder.
    pub cnn_widths: Vec<i64>,
    /// Filters per convolution width.
    pub cnn_filters: i64,
    /// Hidden size of each LSTM direction.
    pub lstm_hidden: i64,
    /// Dropout on the embeddings and on the pooled features, training only.
    pub dropout: f64,
    /// Size of the association embedding (the space the walker and visit losses shape).
    pub assoc_dim: i64,
    /// `hard`, `soft` or `cross-stitch` sharing of the encoder between tasks.
    #[serde(default)]
    pub sharing: Sharing,
    /// The wide hashed n-gram branch beside the encoder. A config file that leaves it out
    /// gets the default (on); a saved version that has no entry predates it and reads as
    /// off (`model::version_dir::read_manifest`).
    #[serde(default)]
    pub ngrams: NgramConfig,
    /// The TF-IDF logistic regression averaged with the network (a saved version without
    /// an entry reads as off, like `ngrams`).
    #[serde(default)]
    pub tfidf: TfidfConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            encoder: EncoderKind::Cnn,
            vocab_size: 20000,
            max_len: 128,
            embedding_dim: 128,
            cnn_widths: vec![2, 3, 4, 5],
            cnn_filters: 100,
            lstm_hidden: 128,
            dropout: 0.3,
            assoc_dim: 128,
            sharing: Sharing::Hard,
            ngrams: NgramConfig::default(),
            tfidf: TfidfConfig::default(),
        }
    }
}

/// The association ("learning by association") loss between labeled and unlabeled rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssociationConfig {
    /// Whether to use the walker and visit losses at all.
    pub enabled: bool,
    /// The task whose labels define "same class" for the walker (default `sentiment`).
    pub target_task: String,
    /// Weight of the walker loss once ramped up.
    pub walker_weight: f64,
    /// Weight of the visit loss.
    pub visit_weight: f64,
    /// Supervised steps before the association losses switch on.
    pub start_step: usize,
    /// Steps over which the walker weight ramps linearly from 0 to `walker_weight`.
    pub ramp_steps: usize,
    /// Unlabeled rows drawn per step.
    pub unlabeled_batch_size: usize,
    /// Once the association losses are on, draw each labeled batch class-balanced for the
    /// target task (`per_class` rows of each class) instead of in epoch order, as the
    /// original learning-by-association code does.
    pub balanced_batch: bool,
    /// Rows per class in a balanced batch.
    pub per_class: usize,
}

impl Default for AssociationConfig {
    fn default() -> Self {
        AssociationConfig {
            enabled: true,
            target_task: "sentiment".to_string(),
            walker_weight: 1.0,
            visit_weight: 0.25,
            start_step: 500,
            ramp_steps: 200,
            unlabeled_batch_size: 256,
            balanced_batch: false,
            per_class: 10,
        }
    }
}

/// The optimisation loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    pub seed: u64,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Gradients are clipped to this global L2 norm.
    pub grad_clip: f64,
    pub max_epochs: usize,
    /// At least this many optimiser steps, however small the labeled set (epochs repeat).
    pub min_steps: usize,
    /// Stop after this many evaluations without a better validation macro-F1.
    pub patience: usize,
    /// Evaluate on the validation set every this many steps (0: once per epoch, but
    /// no more often than every 100 steps when epochs are short).
    pub eval_every: usize,
    /// Weight classes by inverse frequency in the cross-entropy.
    pub class_weights: bool,
    /// Per-task loss weights; a task not listed weighs 1.
    pub task_weights: std::collections::BTreeMap<String, f64>,
    /// `fixed` (the task weights) or `uncertainty` (learned on top, Kendall et al. 2018).
    pub loss_weighting: LossWeighting,
    /// `joint` (one summed loss) or `alternate` (one optimiser step per task in turn).
    pub schedule: Schedule,
    /// Early stopping keeps the weights with the best `target` task macro-F1, or the best
    /// `mean` over every task.
    pub select_on: Selection,
    /// Strength of the L2 pull between the task encoders under `model.sharing = "soft"`.
    pub soft_sharing_weight: f64,
    /// Share of labeled rows held out for validation when no `--valid` file is given.
    pub valid_fraction: f64,
    /// Learning-rate multiplier for the embedding matrix when it starts from pretrained
    /// vectors (a small value keeps fine-tuning from wiping them).
    pub embedding_lr_scale: f64,
    /// Learning-rate multiplier for the BiLSTM when its weights come from `voc pretrain`
    /// (the language model); a randomly initialised LSTM always trains at the full rate.
    pub lstm_lr_scale: f64,
    /// libtorch intra-op threads (0: one less than the CPUs, at least 1, at most 8;
    /// oversubscribed OpenMP threads slow training tenfold on a busy machine).
    pub threads: usize,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            seed: 13,
            batch_size: 32,
            learning_rate: 1e-3,
            grad_clip: 5.0,
            max_epochs: 30,
            min_steps: 0,
            patience: 4,
            eval_every: 0,
            class_weights: true,
            task_weights: Default::default(),
            loss_weighting: LossWeighting::Fixed,
            schedule: Schedule::Joint,
            select_on: Selection::Target,
            soft_sharing_weight: 0.01,
            valid_fraction: 0.1,
            embedding_lr_scale: 0.1,
            lstm_lr_scale: 1.0,
            threads: 0,
        }
    }
}

/// Self-supervised pretraining of the embeddings: skip-gram with negative sampling
/// (Mikolov et al., 2013) over the subword tokens of unlabeled text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    /// `voc train` without `--init-from` first pretrains the embeddings on all its training
    /// text (labels unused). `voc pretrain` always does.
    pub enabled: bool,
    /// Largest distance between a center token and a context token (each center draws
    /// its window from 1 to this).
    pub window: usize,
    /// Noise tokens per true pair, drawn from the unigram distribution to the power 0.75.
    pub negatives: usize,
    /// Passes over the text, at most.
    pub epochs: usize,
    /// Fewer passes when the text is large: passes × tokens stays under this budget.
    pub token_budget: usize,
    /// Frequent tokens are dropped with probability 1 - sqrt(t / f) (word2vec's `sample`).
    pub subsample: f64,
    /// Token pairs per optimiser step.
    pub batch_size: usize,
    /// Step size for each row's gradient averaged over its uses in a batch, decayed
    /// linearly to a tenth (rows a batch did not use do not move).
    pub learning_rate: f64,
    /// Each learned vector is rescaled to the norm of a random `N(0, std²)` row before
    /// supervised training (0 keeps them as learned).
    pub embedding_std: f64,
    /// `voc pretrain` with an LSTM encoder (`lstm`, `cnn-lstm`): passes of the forward and
    /// backward language model over the text after skip-gram (0: skip-gram only).
    pub lm_epochs: usize,
    /// Noise tokens of the language model's sampled softmax, drawn once per batch.
    pub lm_samples: usize,
    /// Texts per language-model step.
    pub lm_batch_size: usize,
    /// Adam's step size for the language model (embedding, LSTMs and output layer).
    pub lm_learning_rate: f64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            enabled: true,
            window: 5,
            negatives: 10,
            epochs: 15,
            token_budget: 8_000_000,
            subsample: 1e-4,
            batch_size: 4096,
            learning_rate: 0.5,
            embedding_std: 0.1,
            lm_epochs: 4,
            lm_samples: 1024,
            lm_batch_size: 64,
            lm_learning_rate: 0.01,
        }
    }
}

/// Everything a training run needs besides its data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub training: TrainingConfig,
    pub association: AssociationConfig,
    pub pretrain: PretrainConfig,
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl TrainConfig {
    /// Reads a TOML config; every key is optional and unknown keys are refused.
    pub fn from_file(path: &Path) -> Result<TrainConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let config: TrainConfig = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })?;
        Ok(config)
    }

    /// Checks the values that would otherwise fail deep inside training.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: &str| Err(ConfigError::Invalid(msg.to_string()));
        let m = &self.model;
        if m.vocab_size < 100 {
            return bad("model.vocab_size must be at least 100");
        }
        if m.max_len == 0 {
            return bad("model.max_len must be positive");
        }
        if m.embedding_dim <= 0 || m.assoc_dim <= 0 || m.cnn_filters <= 0 || m.lstm_hidden <= 0 {
            return bad("model sizes must be positive");
        }
        if m.cnn_widths.is_empty() || m.cnn_widths.iter().any(|w| *w <= 0) {
            return bad("model.cnn_widths must list positive widths");
        }
        let n = &m.ngrams;
        if n.enabled && (n.buckets <= 0 || n.dim <= 0 || n.max_order <= 0) {
            return bad("model.ngrams buckets, dim and max_order must be positive");
        }
        if n.enabled
            && n.chars()
            && (n.char_min < 1 || n.char_min > n.char_max || n.char_per_token < 1)
        {
            return bad("model.ngrams needs 1 <= char_min <= char_max and char_per_token >= 1 (char_max = 0: no character n-grams)");
        }
        let f = &m.tfidf;
        if f.enabled {
            if f.word_max == 0 && f.char_max == 0 {
                return bad("model.tfidf needs word_max or char_max above 0");
            }
            if f.char_max > 0 && (f.char_min < 1 || f.char_min > f.char_max) {
                return bad("model.tfidf needs 1 <= char_min <= char_max (char_max = 0: no character n-grams)");
            }
            if f.max_features == 0 || f.iterations == 0 || f.c <= 0.0 || f.learning_rate <= 0.0 {
                return bad(
                    "model.tfidf max_features, iterations, c and learning_rate must be positive",
                );
            }
            if !(0.0 <= f.mix_min && f.mix_min <= f.mix_max && f.mix_max <= 1.0) {
                return bad("model.tfidf needs 0 <= mix_min <= mix_max <= 1");
            }
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return bad("model.dropout must be in [0, 1)");
        }
        let t = &self.training;
        if t.batch_size == 0 || t.learning_rate <= 0.0 || t.grad_clip <= 0.0 {
            return bad("training.batch_size, learning_rate and grad_clip must be positive");
        }
        if !(0.0..0.9).contains(&t.valid_fraction) {
            return bad("training.valid_fraction must be in [0, 0.9)");
        }
        if t.embedding_lr_scale < 0.0 {
            return bad("training.embedding_lr_scale must not be negative");
        }
        if t.lstm_lr_scale < 0.0 {
            return bad("training.lstm_lr_scale must not be negative");
        }
        let p = &self.pretrain;
        if p.window == 0 || p.negatives == 0 || p.batch_size == 0 || p.learning_rate <= 0.0 {
            return bad(
                "pretrain.window, negatives, batch_size and learning_rate must be positive",
            );
        }
        if p.embedding_std < 0.0 || p.subsample < 0.0 {
            return bad("pretrain.embedding_std and pretrain.subsample must not be negative");
        }
        if p.lm_epochs > 0
            && (p.lm_samples == 0 || p.lm_batch_size == 0 || p.lm_learning_rate <= 0.0)
        {
            return bad("pretrain.lm_samples, lm_batch_size and lm_learning_rate must be positive");
        }
        if self.association.balanced_batch && self.association.per_class == 0 {
            return bad("association.per_class must be positive");
        }
        if self.association.enabled && self.association.unlabeled_batch_size == 0 {
            return bad("association.unlabeled_batch_size must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_toml_keeps_defaults_for_missing_keys() {
        let c: TrainConfig = toml::from_str("[model]\nencoder = \"lstm\"\n").unwrap();
        assert_eq!(c.model.encoder, EncoderKind::Lstm);
        assert_eq!(c.training, TrainingConfig::default());
        // A `[model]` section that names one key leaves the n-gram branch and the TF-IDF
        // companion as they are by default (it once switched both off).
        let c: TrainConfig = toml::from_str("[model]\ndropout = 0.5\n").unwrap();
        assert_eq!(
            c.model,
            ModelConfig {
                dropout: 0.5,
                ..ModelConfig::default()
            }
        );
        assert!(c.model.ngrams.enabled && c.model.tfidf.enabled);
    }

    #[test]
    fn language_model_sizes_must_be_positive_when_it_runs() {
        let mut c = TrainConfig::default();
        c.pretrain.lm_samples = 0;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("pretrain.lm_samples"), "{err}");
        c.pretrain.lm_epochs = 0;
        assert!(
            c.validate().is_ok(),
            "no language model: its sizes do not matter"
        );
    }

    #[test]
    fn unknown_key_is_refused() {
        assert!(toml::from_str::<TrainConfig>("[model]\nencodr = \"lstm\"\n").is_err());
    }
}

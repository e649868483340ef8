//! `model.json`: what a saved model version is, how it was made and which files it holds.

use crate::config::TrainConfig;
use crate::data::TaskLabels;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped when a saved version can no longer be read by older code.
pub const MANIFEST_FORMAT: u32 = 1;

/// Where the training rows came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingData {
    pub source: String,
    /// SHA-256 of the training file (or of the rows, for data not read from a file).
    pub fingerprint: String,
    pub rows: usize,
    /// Labeled rows per task.
    pub labeled: BTreeMap<String, usize>,
    /// Rows with no label for any task.
    pub unlabeled: usize,
}

/// What a version folder holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionKind {
    /// A whole model: encoder and task heads; the service can serve it.
    #[default]
    Classifier,
    /// A pretrained encoder (tokenizer and `encoder.*` weights) for `voc train --init-from`.
    Encoder,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    pub format: u32,
    /// Classifier or pretrained encoder (older versions are classifiers).
    #[serde(default)]
    pub kind: VersionKind,
    pub version: String,
    pub created_at: String,
    /// Tasks in head order, each with its labels in output order.
    pub tasks: Vec<TaskLabels>,
    /// The task early stopping watches and the association loss serves.
    pub target_task: String,
    /// The effective training config (architecture included).
    pub config: TrainConfig,
    /// Rows of the embedding matrix (the tokenizer's vocabulary size).
    pub vocab_size: i64,
    pub training_data: TrainingData,
    /// The version this one was warm-started from, if any.
    pub parent_version: Option<String>,
    /// Git commit of the code that trained it, when known.
    pub source_commit: Option<String>,
    pub libtorch: String,
    /// SHA-256 of every other file in the folder, checked on load.
    pub files: BTreeMap<String, String>,
}

impl ModelManifest {
    pub fn task(&self, name: &str) -> Option<&TaskLabels> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

//! Labeled and unlabeled transcripts read from JSONL or CSV files.
//!
//! A row has an id, a text and one value per task; a missing or `null` value means the row
//! carries no label for that task, and a row with no labels at all is unlabeled text.

pub mod chars;
mod reader;
mod tasks;

pub use reader::{read_dataset, DataError, Format, ReadOptions};
pub use tasks::{detect_tasks, TaskLabels};

use std::collections::BTreeMap;

/// One transcript and whatever labels it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub id: String,
    pub text: String,
    /// Task name to label, only for the tasks this row is labeled for.
    pub labels: BTreeMap<String, String>,
}

impl Example {
    pub fn is_unlabeled(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A row that was skipped because the user asked to skip bad rows.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedRow {
    pub line: usize,
    pub reason: String,
}

/// The rows of one file, plus what is needed to say where they came from.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The file the rows were read from.
    pub source: String,
    /// SHA-256 of the file's bytes, saved with a model as its training-data fingerprint.
    pub fingerprint: String,
    pub examples: Vec<Example>,
    pub skipped: Vec<SkippedRow>,
}

impl Dataset {
    /// How many rows carry a label for `task`.
    pub fn count_labeled(&self, task: &str) -> usize {
        self.examples
            .iter()
            .filter(|e| e.labels.contains_key(task))
            .count()
    }

    /// Keeps only the labels of `tasks`; other keys become plain metadata and are dropped.
    pub fn retain_tasks(&mut self, tasks: &[String]) {
        for e in &mut self.examples {
            e.labels.retain(|k, _| tasks.contains(k));
        }
    }
}

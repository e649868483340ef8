//! Which tasks a dataset carries and which labels each task has.

use super::Dataset;
use std::collections::{BTreeMap, BTreeSet};

/// A key with more distinct values than this is taken for metadata, not a task.
pub const MAX_AUTO_CLASSES: usize = 200;

/// A task and its label set, in the order the model's head uses.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskLabels {
    pub name: String,
    pub labels: Vec<String>,
}

impl TaskLabels {
    /// A task named `name` with `labels` in output order.
    pub fn new(name: &str, labels: &[&str]) -> TaskLabels {
        TaskLabels {
            name: name.to_string(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    pub fn index_of(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }
}

/// Finds the tasks of `data`: the named ones if `named` is given, else every label key
/// with at least two and at most [`MAX_AUTO_CLASSES`] distinct values. Labels are sorted.
/// Returns the tasks and a note for each key that was passed over.
pub fn detect_tasks(
    data: &Dataset,
    named: Option<&[String]>,
) -> Result<(Vec<TaskLabels>, Vec<String>), String> {
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in &data.examples {
        for (task, label) in &e.labels {
            values.entry(task).or_default().insert(label);
        }
    }
    let mut notes = Vec::new();
    let mut tasks = Vec::new();
    match named {
        Some(named) => {
            for name in named {
                let labels = values
                    .get(name.as_str())
                    .ok_or_else(|| format!("task '{name}' has no labels in {}", data.source))?;
                if labels.len() < 2 {
                    return Err(format!(
                        "task '{name}' has a single label in {}; a classifier needs two",
                        data.source
                    ));
                }
                tasks.push(task_labels(name, labels));
            }
        }
        None => {
            for (name, labels) in &values {
                if labels.len() < 2 {
                    notes.push(format!("'{name}' has a single value; not used as a task"));
                } else if labels.len() > MAX_AUTO_CLASSES {
                    notes.push(format!(
                        "'{name}' has {} distinct values; taken for metadata, not a task (name it with --tasks to train it)",
                        labels.len()
                    ));
                } else {
                    tasks.push(task_labels(name, labels));
                }
            }
            if tasks.is_empty() {
                return Err(format!("{} has no task with labels", data.source));
            }
        }
    }
    Ok((tasks, notes))
}

fn task_labels(name: &str, labels: &BTreeSet<&str>) -> TaskLabels {
    TaskLabels {
        name: name.to_string(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
    }
}

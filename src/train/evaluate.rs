//! Scoring a network on labeled rows, task by task.

use super::metrics::{task_metrics, TaskMetrics};
use crate::data::TaskLabels;
use crate::model::classifier::probabilities;
use crate::model::encoded::EncodedRows;
use crate::model::losses::NO_LABEL;
use crate::model::network::MultiTaskNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `voc eval --json` shape: only tasks with labeled rows appear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub tasks: BTreeMap<String, TaskMetrics>,
}

impl EvalReport {
    /// Macro-F1 of `task`, or the mean over tasks when `task` has no labeled rows.
    pub fn selection_score(&self, task: &str) -> f64 {
        match self.tasks.get(task) {
            Some(m) => m.macro_f1,
            None if self.tasks.is_empty() => 0.0,
            None => self.tasks.values().map(|m| m.macro_f1).sum::<f64>() / self.tasks.len() as f64,
        }
    }
}

pub fn evaluate(
    net: &MultiTaskNet,
    rows: &EncodedRows,
    tasks: &[TaskLabels],
    device: tch::Device,
) -> EvalReport {
    let probs = probabilities(net, &rows.ids, device);
    let mut report = BTreeMap::new();
    for (t, task) in tasks.iter().enumerate() {
        let labeled: Vec<usize> = (0..rows.len())
            .filter(|&i| rows.targets[t][i] != NO_LABEL)
            .collect();
        if labeled.is_empty() {
            continue;
        }
        let (conf, pred) = probs[t].max_dim(1, false);
        let conf: Vec<f32> = Vec::try_from(conf).expect("confidences");
        let pred: Vec<i64> = Vec::try_from(pred).expect("predictions");
        let truth: Vec<usize> = labeled
            .iter()
            .map(|&i| rows.targets[t][i] as usize)
            .collect();
        let predicted: Vec<usize> = labeled.iter().map(|&i| pred[i] as usize).collect();
        let confidence: Vec<f32> = labeled.iter().map(|&i| conf[i]).collect();
        report.insert(
            task.name.clone(),
            task_metrics(&task.labels, &truth, &predicted, &confidence),
        );
    }
    EvalReport { tasks: report }
}

/// Scores a loaded classifier on rows encoded with [`crate::model::Classifier::encode_rows`].
pub fn evaluate_classifier(
    classifier: &crate::model::Classifier,
    rows: &EncodedRows,
) -> EvalReport {
    evaluate(
        classifier.net(),
        rows,
        &classifier.manifest().tasks,
        classifier.device(),
    )
}

//! Scoring a network on labeled rows, task by task.

use super::metrics::{task_metrics, TaskMetrics};
use crate::config::Selection;
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
    /// The score early stopping compares: macro-F1 of `task` under `Selection::Target`,
    /// the mean over tasks under `Selection::Mean` or when `task` has no labeled rows.
    pub fn selection_score(&self, selection: Selection, task: &str) -> f64 {
        match (selection, self.tasks.get(task)) {
            _ if self.tasks.is_empty() => 0.0,
            (Selection::Target, Some(m)) => m.macro_f1,
            _ => self.tasks.values().map(|m| m.macro_f1).sum::<f64>() / self.tasks.len() as f64,
        }
    }
}

/// Scores `net` alone on `rows`.
pub fn evaluate(
    net: &MultiTaskNet,
    rows: &EncodedRows,
    tasks: &[TaskLabels],
    device: tch::Device,
) -> EvalReport {
    score(&probabilities(net, &rows.ids, device), rows, tasks)
}

/// Scores per-task `[rows, classes]` probabilities against the labels of `rows`.
pub fn score(probs: &[tch::Tensor], rows: &EncodedRows, tasks: &[TaskLabels]) -> EvalReport {
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

/// Scores a loaded classifier (with its TF-IDF companion, if any) on `texts`, whose
/// labels `rows` holds (encoded with [`crate::model::Classifier::encode_rows`]).
pub fn evaluate_classifier(
    classifier: &crate::model::Classifier,
    texts: &[&str],
    rows: &EncodedRows,
) -> Result<EvalReport, crate::model::ModelError> {
    let probs = classifier.probabilities(texts)?;
    Ok(score(&probs, rows, &classifier.manifest().tasks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(scores: &[(&str, f64)]) -> EvalReport {
        let tasks = scores
            .iter()
            .map(|(name, f1)| {
                let labels = vec!["a".to_string(), "b".to_string()];
                let mut m = task_metrics(&labels, &[0], &[0], &[1.0]);
                m.macro_f1 = *f1;
                (name.to_string(), m)
            })
            .collect();
        EvalReport { tasks }
    }

    #[test]
    fn selection_scores_the_target_task_or_the_mean_over_tasks() {
        let r = report(&[("sentiment", 0.8), ("reason", 0.4)]);
        assert_eq!(r.selection_score(Selection::Target, "sentiment"), 0.8);
        assert!((r.selection_score(Selection::Mean, "sentiment") - 0.6).abs() < 1e-12);
        // A target without validation labels falls back on the mean.
        assert!((r.selection_score(Selection::Target, "topic") - 0.6).abs() < 1e-12);
        assert_eq!(report(&[]).selection_score(Selection::Mean, "x"), 0.0);
    }
}

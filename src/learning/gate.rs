//! The evaluation gate: a candidate goes live only if, on the frozen evaluation set, the
//! target task's macro-F1 is not lower than the active model's by more than a margin and no
//! other task falls by more than its own margin.
//!
//! Both models are scored over the candidate's classes (a superset of the active model's),
//! so a class added since the active model was trained counts against the active model.

use crate::data::{Example, TaskLabels};
use crate::model::{Classifier, ModelError};
use crate::train::{task_metrics, TaskMetrics};
use serde::Serialize;
use std::collections::BTreeMap;

/// How strict the gate is. Margins are macro-F1 fractions (0.01 = one point).
#[derive(Debug, Clone)]
pub struct GateSettings {
    pub target_margin: f64,
    pub other_margin: f64,
    /// Fewest labeled evaluation rows of the target task the gate will judge on.
    pub min_eval_rows: usize,
}

impl Default for GateSettings {
    fn default() -> GateSettings {
        GateSettings {
            target_margin: 0.01,
            other_margin: 0.02,
            min_eval_rows: 30,
        }
    }
}

/// One task's scores on the evaluation set.
#[derive(Debug, Clone, Serialize)]
pub struct TaskComparison {
    pub rows: usize,
    pub candidate_macro_f1: f64,
    pub active_macro_f1: f64,
    pub margin: f64,
    pub passed: bool,
}

/// What the gate decided and why.
#[derive(Debug, Clone, Serialize)]
pub struct GateDecision {
    pub promote: bool,
    pub reason: String,
    pub target_task: String,
    pub tasks: BTreeMap<String, TaskComparison>,
    pub candidate: BTreeMap<String, TaskMetrics>,
    pub active: BTreeMap<String, TaskMetrics>,
}

/// Scores `classifier` on `rows` for each task of `tasks`, counting classes by `tasks`.
pub fn score(
    classifier: &Classifier,
    rows: &[&Example],
    tasks: &[TaskLabels],
) -> Result<BTreeMap<String, TaskMetrics>, ModelError> {
    let texts: Vec<&str> = rows.iter().map(|e| e.text.as_str()).collect();
    let predictions = classifier.predict(&texts)?;
    let mut out = BTreeMap::new();
    for task in tasks {
        let (mut truth, mut predicted, mut confidence) = (Vec::new(), Vec::new(), Vec::new());
        for (row, prediction) in rows.iter().zip(&predictions) {
            let (Some(label), Some(p)) =
                (row.labels.get(&task.name), prediction.tasks.get(&task.name))
            else {
                continue;
            };
            let (Some(t), Some(guess)) = (task.index_of(label), task.index_of(&p.label)) else {
                continue;
            };
            truth.push(t);
            predicted.push(guess);
            confidence.push(p.confidence);
        }
        if !truth.is_empty() {
            out.insert(
                task.name.clone(),
                task_metrics(&task.labels, &truth, &predicted, &confidence),
            );
        }
    }
    Ok(out)
}

/// Compares the two score sets and decides.
pub fn decide(
    settings: &GateSettings,
    target_task: &str,
    candidate: BTreeMap<String, TaskMetrics>,
    active: BTreeMap<String, TaskMetrics>,
) -> GateDecision {
    let mut tasks = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, c) in &candidate {
        let a = active.get(name).map_or(0.0, |m| m.macro_f1);
        let margin = if name == target_task {
            settings.target_margin
        } else {
            settings.other_margin
        };
        let passed = c.macro_f1 >= a - margin;
        if !passed {
            failures.push(format!(
                "{name} macro-F1 {:.4} is below the active model's {a:.4} by more than {margin}",
                c.macro_f1
            ));
        }
        tasks.insert(
            name.clone(),
            TaskComparison {
                rows: c.n,
                candidate_macro_f1: c.macro_f1,
                active_macro_f1: a,
                margin,
                passed,
            },
        );
    }
    let target_rows = candidate.get(target_task).map_or(0, |m| m.n);
    let (promote, reason) = if target_rows < settings.min_eval_rows {
        (
            false,
            format!(
                "the frozen evaluation set holds {target_rows} labeled rows for {target_task}; \
                 the gate needs at least {}",
                settings.min_eval_rows
            ),
        )
    } else if !failures.is_empty() {
        (false, failures.join("; "))
    } else {
        let summary: Vec<String> = tasks
            .iter()
            .map(|(n, t)| {
                format!(
                    "{n} {:.4} vs {:.4} ({} rows)",
                    t.candidate_macro_f1, t.active_macro_f1, t.rows
                )
            })
            .collect();
        (
            true,
            format!("macro-F1 candidate vs active: {}", summary.join(", ")),
        )
    };
    GateDecision {
        promote,
        reason,
        target_task: target_task.to_string(),
        tasks,
        candidate,
        active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(f1: f64, n: usize) -> TaskMetrics {
        TaskMetrics {
            macro_f1: f1,
            accuracy: f1,
            n,
            per_class: BTreeMap::new(),
            confusion: BTreeMap::new(),
            ece: 0.0,
        }
    }

    fn scores(pairs: &[(&str, f64)]) -> BTreeMap<String, TaskMetrics> {
        pairs
            .iter()
            .map(|(n, f)| (n.to_string(), metrics(*f, 100)))
            .collect()
    }

    #[test]
    fn margins_decide_per_task() {
        let s = GateSettings::default();
        let active = scores(&[("sentiment", 0.70), ("category", 0.80)]);
        let ok = decide(
            &s,
            "sentiment",
            scores(&[("sentiment", 0.695), ("category", 0.79)]),
            active.clone(),
        );
        assert!(ok.promote, "{}", ok.reason);
        let worse_target = decide(
            &s,
            "sentiment",
            scores(&[("sentiment", 0.68), ("category", 0.9)]),
            active.clone(),
        );
        assert!(!worse_target.promote);
        assert!(
            worse_target.reason.contains("sentiment"),
            "{}",
            worse_target.reason
        );
        let worse_other = decide(
            &s,
            "sentiment",
            scores(&[("sentiment", 0.75), ("category", 0.77)]),
            active,
        );
        assert!(!worse_other.promote);
        assert!(
            worse_other.reason.contains("category"),
            "{}",
            worse_other.reason
        );
    }

    #[test]
    fn too_few_evaluation_rows_is_a_rejection_that_says_so() {
        let s = GateSettings::default();
        let mut c = scores(&[("sentiment", 0.9)]);
        c.get_mut("sentiment").unwrap().n = 5;
        let d = decide(&s, "sentiment", c, scores(&[("sentiment", 0.1)]));
        assert!(!d.promote);
        assert!(d.reason.contains("holds 5 labeled rows"), "{}", d.reason);
    }
}

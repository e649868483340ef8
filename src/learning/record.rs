//! What a run writes to Postgres besides its state, as typed records: its progress, its
//! snapshot, its evaluation, and the gate's word on the candidate version.

use super::gate::{GateDecision, TaskComparison};
use crate::data::TaskLabels;
use crate::train::{Progress, TrainSummary};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// A progress report of the training thread, stamped with the run's time so far.
#[derive(Debug, Serialize)]
pub struct ProgressRecord<'a> {
    #[serde(flatten)]
    pub progress: &'a Progress,
    pub elapsed_seconds: f64,
}

impl<'a> ProgressRecord<'a> {
    pub fn new(progress: &'a Progress, started: Instant) -> ProgressRecord<'a> {
        ProgressRecord {
            progress,
            elapsed_seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Labeled rows per task.
pub type LabelCounts = BTreeMap<String, usize>;

/// What a run trained and was judged on (`training_runs.snapshot`).
#[derive(Debug, Serialize)]
pub struct SnapshotRecord<'a> {
    pub label_watermark: i64,
    pub train_labeled: LabelCounts,
    pub eval_labeled: LabelCounts,
    pub unlabeled: usize,
    pub tasks: &'a [TaskLabels],
}

/// The gate's scores and how the candidate trained (`training_runs.evaluation`).
#[derive(Debug, Serialize)]
pub struct EvaluationRecord<'a> {
    #[serde(flatten)]
    pub decision: &'a GateDecision,
    pub training: TrainingFacts<'a>,
}

#[derive(Debug, Serialize)]
pub struct TrainingFacts<'a> {
    pub steps: usize,
    pub epochs: usize,
    pub best_step: usize,
    pub stop_reason: &'a str,
    pub wall_seconds: f64,
    pub examples_per_second: f64,
    pub validation_macro_f1: BTreeMap<&'a str, f64>,
}

impl<'a> EvaluationRecord<'a> {
    pub fn new(decision: &'a GateDecision, summary: &'a TrainSummary) -> EvaluationRecord<'a> {
        EvaluationRecord {
            decision,
            training: TrainingFacts {
                steps: summary.steps,
                epochs: summary.epochs,
                best_step: summary.best_step,
                stop_reason: &summary.stop_reason,
                wall_seconds: summary.wall_seconds,
                examples_per_second: summary.examples_per_second,
                validation_macro_f1: summary
                    .validation
                    .tasks
                    .iter()
                    .map(|(t, m)| (t.as_str(), m.macro_f1))
                    .collect(),
            },
        }
    }
}

/// The gate's word on a candidate, whatever happened to it afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Promoted,
    Rejected,
}

/// The gate's decision as `model_versions.gate` keeps it with the version.
#[derive(Debug, Serialize)]
pub struct GateRecord<'a> {
    pub decision: Verdict,
    pub reason: &'a str,
    pub run: i64,
    pub tasks: &'a BTreeMap<String, TaskComparison>,
}

impl<'a> GateRecord<'a> {
    pub fn new(decision: &'a GateDecision, run: i64) -> GateRecord<'a> {
        GateRecord {
            decision: if decision.promote {
                Verdict::Promoted
            } else {
                Verdict::Rejected
            },
            reason: &decision.reason,
            run,
            tasks: &decision.tasks,
        }
    }
}

/// A record as the store's JSON columns take it.
pub fn to_json(record: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(record).unwrap_or_default()
}

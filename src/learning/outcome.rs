//! How a run ends: from the training thread's result to the state Postgres records. A
//! candidate is recorded with the gate's word on it before anything goes live; one the
//! gate passed goes live only while the run is still this process's and its parent is
//! still the active version.

use super::gate::GateDecision;
use super::handle::{LearningHandle, Promotion};
use super::record::{to_json, EvaluationRecord, GateRecord};
use super::run::RunResult;
use crate::store::models;
use crate::store::training_runs::{self, RunEnd, RunState};
use crate::store::StoreError;
use crate::train::{TrainError, TrainSummary};

/// The end a run is given.
#[derive(Debug)]
pub struct Ending {
    pub state: RunState,
    pub reason: String,
    pub candidate: Option<String>,
    pub evaluation: Option<serde_json::Value>,
}

impl Ending {
    pub fn failed(reason: impl Into<String>) -> Ending {
        Ending {
            state: RunState::Failed,
            reason: reason.into(),
            candidate: None,
            evaluation: None,
        }
    }
}

/// Decides the end of run `run`, trained from `parent`, from what its thread returned.
pub async fn conclude(
    handle: &LearningHandle,
    run: i64,
    parent: &str,
    result: Result<RunResult, TrainError>,
) -> Ending {
    match result {
        Err(TrainError::Cancelled) => Ending {
            state: RunState::Cancelled,
            reason: "cancelled while training".into(),
            candidate: None,
            evaluation: None,
        },
        Err(e) => Ending::failed(e.to_string()),
        Ok(result) => judge(handle, run, parent, result).await,
    }
}

/// A trained candidate: recorded, then promoted or rejected as the gate decided.
async fn judge(handle: &LearningHandle, run: i64, parent: &str, result: RunResult) -> Ending {
    let RunResult { summary, decision } = result;
    let (state, reason) = match record_candidate(handle, run, &summary, &decision).await {
        Err(e) => (
            RunState::Failed,
            format!("cannot record the candidate: {e}"),
        ),
        Ok(()) if !decision.promote => (RunState::Rejected, decision.reason.clone()),
        Ok(()) => promote(handle, run, &summary.version, parent, &decision.reason).await,
    };
    Ending {
        state,
        reason,
        candidate: Some(summary.version.clone()),
        evaluation: Some(to_json(&EvaluationRecord::new(&decision, &summary))),
    }
}

/// Makes the candidate known to every replica, with the gate's word on it.
async fn record_candidate(
    handle: &LearningHandle,
    run: i64,
    summary: &TrainSummary,
    decision: &GateDecision,
) -> Result<(), StoreError> {
    handle.serving.register(&summary.version_dir).await?;
    let gate = to_json(&GateRecord::new(decision, run));
    models::set_gate(&handle.pool, &summary.version, &gate).await
}

async fn promote(
    handle: &LearningHandle,
    run: i64,
    version: &str,
    parent: &str,
    gate_reason: &str,
) -> (RunState, String) {
    // Ended elsewhere while this process was cut off: it is not ours to activate.
    if !training_runs::is_running(&handle.pool, run)
        .await
        .unwrap_or(false)
    {
        return (
            RunState::Failed,
            "the gate passed, but the run was ended elsewhere while this process was cut off; \
             nothing was activated"
                .into(),
        );
    }
    match handle.serving.promote(version, parent).await {
        Promotion::Promoted => (RunState::Promoted, gate_reason.to_string()),
        Promotion::Superseded(why) => (RunState::Superseded, format!("the gate passed, but {why}")),
        Promotion::Failed(why) => (
            RunState::Failed,
            format!("the gate passed but activation failed: {why}"),
        ),
    }
}

/// Records how a run ended, in Postgres and in the metrics. A run another process already
/// ended keeps the state it was given there; returns whether this end was recorded.
pub async fn end_run(handle: &LearningHandle, id: i64, end: &Ending) -> Result<bool, StoreError> {
    match end.state {
        RunState::Failed => tracing::error!(run = id, reason = end.reason, "training run failed"),
        state => tracing::info!(
            run = id,
            candidate = end.candidate,
            decision = state.as_str(),
            reason = end.reason,
            "training run finished"
        ),
    }
    let recorded = training_runs::finish(
        &handle.pool,
        id,
        RunEnd {
            state: end.state,
            candidate_version: end.candidate.as_deref(),
            evaluation: end.evaluation.as_ref(),
            reason: &end.reason,
        },
    )
    .await?;
    if recorded {
        handle.metrics.observe_training_run(end.state);
    } else {
        tracing::warn!(
            run = id,
            outcome = end.state.as_str(),
            "the run was already ended by another process; its recorded state stands"
        );
    }
    Ok(recorded)
}

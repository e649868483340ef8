//! Fine-tuning runs: list them, read one, ask for one, cancel one.

use crate::error::{ApiError, ApiJson};
use crate::service::AppState;
use crate::store::training_runs::{self, RunState, TrainingRun, Trigger};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Most runs to return, newest first (default 50, at most 500).
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<ApiJson<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let runs = training_runs::list(&state.pool, limit).await?;
    Ok(ApiJson(json!({ "runs": runs })))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<ApiJson<TrainingRun>, ApiError> {
    let id = parse_id(&id)?;
    training_runs::get(&state.pool, id)
        .await?
        .map(ApiJson)
        .ok_or_else(|| ApiError::NotFound(format!("no training run {id}")))
}

/// Queues a run (202); when one is already queued or running, answers it (200) instead.
pub async fn request(
    State(state): State<AppState>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let (run, created) = training_runs::request(&state.pool, Trigger::Manual).await?;
    if created {
        state.learning_wake.notify_one();
    }
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, ApiJson(json!({ "created": created, "run": run }))))
}

/// Cancels a queued run, or asks a running one to stop at its next step.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, ApiJson<TrainingRun>), ApiError> {
    let id = parse_id(&id)?;
    let run = training_runs::cancel(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no training run {id}")))?;
    match run.state {
        RunState::Running | RunState::Cancelled if run.cancel_requested => {
            Ok((StatusCode::ACCEPTED, ApiJson(run)))
        }
        state => Err(ApiError::Conflict(format!(
            "training run {id} already ended ({})",
            state.as_str()
        ))),
    }
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no training run {id}")))
}

//! Liveness, readiness and the Prometheus metrics page.

use crate::error::ApiError;
use crate::service::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

/// The process is up and every inference thread (the dispatcher and each model replica)
/// runs. A dead one is never started again, and with it the process serves on fewer cores
/// (or, with none left, not at all), so liveness fails and the orchestrator restarts the
/// process. The database is not checked here (a database
/// outage is not cured by a restart; `/ready` covers it).
pub async fn live(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    inference_alive(&state)?;
    Ok(Json(json!({"status": "ok"})))
}

fn inference_alive(state: &AppState) -> Result<(), ApiError> {
    if state.pipeline.is_alive() {
        Ok(())
    } else {
        Err(ApiError::Unavailable(
            "an inference thread has stopped; restart the process".into(),
        ))
    }
}

/// Every inference thread runs and the database answers.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    inference_alive(&state)?;
    crate::store::ping(&state.pool).await?;
    Ok(Json(json!({
        "status": "ready",
        "model_version": state.pipeline.active().version,
        "queue_depth": state.pipeline.queue_depth(),
    })))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

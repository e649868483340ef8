//! Liveness, readiness and the Prometheus metrics page.

use crate::error::ApiError;
use crate::service::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

/// The process is up.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The inference worker runs and the database answers.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.pipeline.is_alive() {
        return Err(ApiError::Unavailable(
            "the inference worker has stopped".into(),
        ));
    }
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

//! Model versions: list them, show the active one, activate another (admin).

use crate::error::{ApiError, ApiJson};
use crate::service::AppState;
use crate::store::models::{self, ModelVersionRow};
use axum::extract::{Path, State};
use serde_json::{json, Value};

pub async fn list(State(state): State<AppState>) -> Result<ApiJson<Value>, ApiError> {
    let versions = models::list(&state.pool).await?;
    Ok(ApiJson(json!({ "versions": versions })))
}

pub async fn active(State(state): State<AppState>) -> ApiJson<Value> {
    let m = state.pipeline.active();
    ApiJson(json!({
        "version": m.version,
        "tasks": m.tasks,
        "metrics": m.metrics,
    }))
}

/// Makes a stored version live here and in every process on the database (rollback, or
/// trying a rejected candidate). A version that does not load is refused; the current
/// model keeps serving.
pub async fn activate(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<ApiJson<ModelVersionRow>, ApiError> {
    Ok(ApiJson(
        crate::service::activation::activate(&state, &version).await?,
    ))
}

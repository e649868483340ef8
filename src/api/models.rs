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

/// Loads a version of the store into the inference thread, then records it active.
pub async fn activate(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<ApiJson<ModelVersionRow>, ApiError> {
    crate::service::register_store(&state.pool, &state.store_dir)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let row = models::get(&state.pool, &version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no model version '{version}' in the store")))?;
    state
        .pipeline
        .activate(row.path.clone().into())
        .await
        .map_err(|e| ApiError::Conflict(format!("cannot load version '{version}': {e}")))?;
    models::activate(&state.pool, &version).await?;
    let row = models::get(&state.pool, &version)
        .await?
        .ok_or_else(|| ApiError::Internal("activated version vanished".into()))?;
    Ok(ApiJson(row))
}

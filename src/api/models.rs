//! Model versions: list them, show the active one, activate another (admin).

use super::auth::Role;
use crate::error::{ApiError, ApiJson};
use crate::service::AppState;
use crate::store::models::{self, ModelVersionRow};
use axum::extract::{Path, State};
use axum::Extension;
use serde_json::{json, Value};

/// Every registered version; a classify key sees neither the server's folder paths nor
/// the training histories.
pub async fn list(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
) -> Result<ApiJson<Value>, ApiError> {
    let versions = models::list(&state.pool).await?;
    let versions: Vec<Value> = versions
        .into_iter()
        .map(|v| {
            let mut v = serde_json::to_value(v).unwrap_or_default();
            if role == Role::Classify {
                if let Some(o) = v.as_object_mut() {
                    o.remove("path");
                }
                summarise_metrics(&mut v["metrics"]);
            }
            v
        })
        .collect();
    Ok(ApiJson(json!({ "versions": versions })))
}

pub async fn active(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
) -> ApiJson<Value> {
    let m = state.pipeline.active();
    let mut metrics = m.metrics.clone();
    if role == Role::Classify {
        summarise_metrics(&mut metrics);
    }
    ApiJson(json!({
        "version": m.version,
        "tasks": m.tasks,
        "metrics": metrics,
    }))
}

/// Drops what only operators need from a version's `metrics.json`: the step-by-step
/// training history and where its encoder came from.
fn summarise_metrics(metrics: &mut Value) {
    if let Some(o) = metrics.as_object_mut() {
        o.remove("history");
        o.remove("init");
    }
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

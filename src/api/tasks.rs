//! Tasks and their classes: what the active model predicts plus the classes added since,
//! and POST /tasks/{task}/labels to add one (a new complaint reason, say). Feedback may use
//! an added class at once; the next training run grows that task's head to predict it.

use crate::data::chars::is_invisible_or_control;
use crate::data::TaskLabels;
use crate::error::{ApiError, ApiJson};
use crate::review::agreement::{self, Rating};
use crate::service::AppState;
use crate::store::labels;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Longest class name accepted.
const MAX_LABEL_CHARS: usize = 100;

/// Most classes that may be added to one task (each grows the task's head and the label
/// list every client is shown; a typo loop must not grow them without end).
const MAX_ADDED_CLASSES: usize = 50;

/// Every class feedback may use: the active model's, then the ones added since.
pub async fn allowed(state: &AppState) -> Result<Vec<TaskLabels>, ApiError> {
    let added = labels::added_classes(&state.pool).await?;
    Ok(crate::learning::run::tasks_with_added(
        &state.pipeline.active().tasks,
        &added,
    ))
}

/// The task named `task` with every class feedback may use, or 404 naming the tasks there are.
pub(super) async fn known_task(state: &AppState, task: &str) -> Result<TaskLabels, ApiError> {
    let mut tasks: BTreeMap<String, TaskLabels> = allowed(state)
        .await?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    tasks.remove(task).ok_or_else(|| {
        ApiError::NotFound(format!(
            "unknown task '{task}'; the active model's tasks are: {}",
            tasks.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })
}

pub async fn list(State(state): State<AppState>) -> Result<ApiJson<Value>, ApiError> {
    let active = state.pipeline.active();
    let added = labels::added_classes(&state.pool).await?;
    let tasks: Vec<Value> = active
        .tasks
        .iter()
        .map(|t| {
            let pending: Vec<&String> = added
                .get(&t.name)
                .into_iter()
                .flatten()
                .filter(|l| !t.labels.contains(l))
                .collect();
            json!({
                "task": t.name,
                "labels": t.labels,
                "added_labels_not_yet_predicted": pending,
            })
        })
        .collect();
    Ok(ApiJson(
        json!({ "model_version": active.version, "tasks": tasks }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLabel {
    label: String,
}

pub async fn add_label(
    State(state): State<AppState>,
    Path(task): Path<String>,
    ApiJson(body): ApiJson<NewLabel>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let label = body.label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS {
        return Err(ApiError::unprocessable(format!(
            "`label` must be 1 to {MAX_LABEL_CHARS} characters"
        )));
    }
    if let Some(c) = label.chars().find(|&c| is_invisible_or_control(c)) {
        return Err(ApiError::unprocessable(format!(
            "`label` must not hold control or invisible characters (found U+{:04X})",
            c as u32
        )));
    }
    let known = known_task(&state, &task).await?;
    let added = labels::added_classes(&state.pool).await?;
    let added_here = added.get(&task).map_or(0, Vec::len);
    if known.index_of(label).is_none() && added_here >= MAX_ADDED_CLASSES {
        return Err(ApiError::unprocessable(format!(
            "task '{task}' already has {added_here} added classes, the most allowed \
             ({MAX_ADDED_CLASSES}); a training run learns them, after which they count as the model's own"
        )));
    }
    let created =
        known.index_of(label).is_none() && labels::add_class(&state.pool, &task, label).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        ApiJson(json!({ "task": task, "label": label, "created": created })),
    ))
}

/// GET /tasks/{task}/agreement: Cohen's kappa per pair of annotators and Krippendorff's alpha
/// over all of them, on the transcripts two or more annotators labeled for the task.
pub async fn agreement(
    State(state): State<AppState>,
    Path(task): Path<String>,
) -> Result<ApiJson<Value>, ApiError> {
    known_task(&state, &task).await?;
    let ratings: Vec<Rating> = labels::shared_by_annotators(&state.pool, &task)
        .await?
        .into_iter()
        .map(|(item, annotator, label)| Rating {
            item: item.to_string(),
            annotator,
            label,
        })
        .collect();
    let report = agreement::report(&ratings);
    Ok(ApiJson(json!({
        "task": task,
        "annotators": report.annotators,
        "items": report.items,
        "krippendorff_alpha": report.krippendorff_alpha,
        "pairs": report.pairs,
    })))
}

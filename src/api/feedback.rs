//! POST /feedback: human labels for a transcript, found by `transcript_id`, `prediction_id`
//! or `call_id` (its latest transcript). Tasks and labels must be the active model's, or
//! classes added since with POST /tasks/{task}/labels.

use crate::data::TaskLabels;
use crate::error::{ApiError, ApiJson};
use crate::service::AppState;
use crate::store::labels::{self, LabelOutcome, NewLabel};
use crate::store::transcripts;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    #[serde(default)]
    transcript_id: Option<Uuid>,
    #[serde(default)]
    prediction_id: Option<Uuid>,
    #[serde(default)]
    call_id: Option<String>,
    /// task -> label
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotator: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LabelResult {
    task: String,
    label: String,
    outcome: LabelOutcome,
}

#[derive(Debug, Serialize)]
pub struct FeedbackResponse {
    transcript_id: Uuid,
    labels: Vec<LabelResult>,
}

pub async fn submit(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<FeedbackRequest>,
) -> Result<ApiJson<FeedbackResponse>, ApiError> {
    check_labels(&super::tasks::allowed(&state).await?, &request.labels)?;
    if request
        .annotator
        .as_deref()
        .is_some_and(|a| a.contains('\0'))
    {
        return Err(ApiError::unprocessable("`annotator` must not contain NUL"));
    }
    let transcript_id = resolve_transcript(&state.pool, &request).await?;
    let new: Vec<NewLabel> = request
        .labels
        .iter()
        .map(|(task, label)| NewLabel {
            transcript_id,
            task,
            label,
            source: "feedback",
            annotator: request.annotator.as_deref(),
        })
        .collect();
    let outcomes = labels::record(&state.pool, &new).await?;
    Ok(ApiJson(FeedbackResponse {
        transcript_id,
        labels: request
            .labels
            .into_iter()
            .zip(outcomes)
            .map(|((task, label), outcome)| LabelResult {
                task,
                label,
                outcome,
            })
            .collect(),
    }))
}

/// Refuses an empty label set, an unknown task or an unknown label, listing the allowed ones.
fn check_labels(tasks: &[TaskLabels], labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let allowed = || json!({"allowed": tasks.iter().map(|t| (t.name.clone(), json!(t.labels))).collect::<serde_json::Map<_, _>>()});
    if labels.is_empty() {
        return Err(ApiError::Unprocessable {
            message: "`labels` must name at least one task".into(),
            details: Some(allowed()),
        });
    }
    for (task, label) in labels {
        let message = match tasks.iter().find(|t| &t.name == task) {
            None => format!(
                "unknown task '{task}'; the active model's tasks are: {}",
                tasks
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(t) if t.index_of(label).is_none() => format!(
                "unknown label '{label}' for task '{task}'; allowed: {}",
                t.labels.join(", ")
            ),
            Some(_) => continue,
        };
        return Err(ApiError::Unprocessable {
            message,
            details: Some(allowed()),
        });
    }
    Ok(())
}

async fn resolve_transcript(
    pool: &sqlx::PgPool,
    request: &FeedbackRequest,
) -> Result<Uuid, ApiError> {
    if let Some(id) = request.transcript_id {
        return if transcripts::exists(pool, id).await? {
            Ok(id)
        } else {
            Err(ApiError::NotFound(format!("no transcript with id {id}")))
        };
    }
    if let Some(id) = request.prediction_id {
        return transcripts::by_prediction(pool, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no prediction with id {id}")));
    }
    if let Some(call_id) = &request.call_id {
        return transcripts::latest_for_call(pool, call_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no transcript for call_id '{call_id}'")));
    }
    Err(ApiError::unprocessable(
        "name the transcript with `transcript_id`, `prediction_id` or `call_id`",
    ))
}

//! POST /feedback: human labels for a transcript, found by `transcript_id`, `prediction_id`
//! or `call_id` (its latest transcript). Tasks and labels must be the active model's, or
//! classes added since with POST /tasks/{task}/labels.
//!
//! Issue 9 asks for redaction in front of "`/feedback` lookups". We read that as: call ids
//! are stored redacted (POST /classify, `voc import`), so the `call_id` given here is
//! redacted the same way before it is looked up ([`lookup_call_ids`]); a client finds its
//! transcript by the raw id it sent, and no phone number used as a call id reaches Postgres,
//! not even in a query. A call id that held personal data is no longer unique once redacted
//! (every phone number becomes `[PHONE]`), so when more than one transcript has it the
//! answer is 409 and the client names the transcript by `transcript_id` or `prediction_id`.

use crate::data::TaskLabels;
use crate::error::{ApiError, ApiJson};
use crate::redact::Policy;
use crate::service::redaction::lookup_call_ids;
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
    let transcript_id = resolve_transcript(&state.pool, state.redaction, &request).await?;
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
    redaction: Policy,
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
        let (ids, redacted) = lookup_call_ids(redaction, call_id);
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let found = transcripts::latest_for_call(pool, &ids, 2).await?;
        // Answers name the call id as stored (redacted): error messages may be logged.
        return match found.as_slice() {
            [] => Err(ApiError::NotFound(format!(
                "no transcript for call_id '{}'",
                ids[0]
            ))),
            [_, _, ..] if redacted => Err(ApiError::Conflict(format!(
                "call_id '{}' holds personal data, so it is stored redacted and more than one \
                 transcript has it; name the transcript by `transcript_id` or `prediction_id`",
                ids[0]
            ))),
            [newest, ..] => Ok(*newest),
        };
    }
    Err(ApiError::unprocessable(
        "name the transcript with `transcript_id`, `prediction_id` or `call_id`",
    ))
}

//! POST /classify: one transcript (`text`) or several (`items`) in; each is redacted
//! (unless the server runs with `--no-redact`), classified, stored with its prediction, and
//! answered once committed, with the kinds and numbers of personal data replaced. With an
//! `Idempotency-Key` header a retry gets the first attempt's answer instead of a second row
//! (see [`crate::service::idempotency`]).

use crate::data::chars::has_visible_text;
use crate::error::{ApiError, ApiJson};
use crate::model::TaskPrediction;
use crate::pipeline::{Classified, PipelineError, TextToClassify};
use crate::service::idempotency::{self, IdempotencyKey};
use crate::service::redaction::{redact_items, RedactionCounts};
use crate::service::AppState;
use crate::store::transcripts::StoredAnswer;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One transcript to classify.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptIn {
    pub text: String,
    #[serde(default)]
    pub call_id: Option<String>,
    /// Any JSON object, stored with the transcript.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// Either a single transcript (`text`, `call_id`, `metadata`) or a batch (`items`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    items: Option<Vec<TranscriptIn>>,
}

#[derive(Debug, Serialize)]
pub struct ClassificationOut {
    pub transcript_id: Uuid,
    pub prediction_id: Uuid,
    pub model_version: String,
    pub predictions: BTreeMap<String, TaskPrediction>,
    pub latency_ms: f32,
    /// How many of each kind of personal data were replaced by tags in the text (`{}`:
    /// none, or redaction is off); never the values.
    pub redacted: RedactionCounts,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ClassifyResponse {
    One(ClassificationOut),
    Many { results: Vec<ClassificationOut> },
}

/// Says that the answer is an earlier attempt's, replayed for an `Idempotency-Key`.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

pub async fn classify(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ClassifyRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let (items, single) = validate(request, state.limits.max_items_per_request)?;
    let (mut items, redacted) = redact_items(state.redaction, items).await;
    if let Some(key) = &key {
        idempotency::assign(key, &mut items, single);
        if let Some(earlier) = idempotency::earlier_answers(&state.pool, &items).await? {
            let out = earlier
                .into_iter()
                .zip(redacted)
                .map(|(a, r)| replayed(a, r));
            let mut response = respond(out.collect::<Result<_, _>>()?, single).into_response();
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            return Ok(response);
        }
    }
    let classified = state
        .pipeline
        .classify(items)
        .await
        .map_err(pipeline_error)?;
    let out = classified
        .into_iter()
        .zip(redacted)
        .map(|(c, r)| to_out(c, r));
    Ok(respond(out.collect(), single).into_response())
}

fn respond(mut out: Vec<ClassificationOut>, single: bool) -> ApiJson<ClassifyResponse> {
    ApiJson(if single {
        ClassifyResponse::One(out.remove(0))
    } else {
        ClassifyResponse::Many { results: out }
    })
}

/// The request's `Idempotency-Key`, scoped to the API key presented with it.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(idempotency::HEADER) else {
        return Ok(None);
    };
    let caller = super::auth::presented_key(headers).unwrap_or_default();
    Ok(Some(IdempotencyKey::parse(value.as_bytes(), caller)?))
}

/// An earlier attempt's stored answer, as it was first given.
fn replayed(a: StoredAnswer, redacted: RedactionCounts) -> Result<ClassificationOut, ApiError> {
    let predictions = serde_json::from_value(a.outputs)
        .map_err(|e| ApiError::Internal(format!("a stored prediction does not parse: {e}")))?;
    Ok(ClassificationOut {
        transcript_id: a.transcript_id,
        prediction_id: a.prediction_id,
        model_version: a.model_version,
        predictions,
        latency_ms: a.latency_ms,
        redacted,
    })
}

fn to_out(c: Classified, redacted: RedactionCounts) -> ClassificationOut {
    ClassificationOut {
        transcript_id: c.transcript_id,
        prediction_id: c.prediction_id,
        model_version: c.model_version.to_string(),
        predictions: c.prediction.tasks,
        latency_ms: c.latency_ms,
        redacted,
    }
}

pub(crate) fn pipeline_error(e: PipelineError) -> ApiError {
    match e {
        PipelineError::Overloaded => ApiError::Overloaded,
        PipelineError::DatabaseUnavailable(cause) => {
            tracing::warn!(%cause, "database unavailable");
            ApiError::Unavailable("the database is unavailable; retry shortly".into())
        }
        PipelineError::Failed(cause) => ApiError::Internal(cause),
        PipelineError::Stopped => ApiError::Unavailable("the service is shutting down".into()),
    }
}

/// Checks the request and gives every text its ids; `true` when it was a single text.
fn validate(
    request: ClassifyRequest,
    max_items: usize,
) -> Result<(Vec<TextToClassify>, bool), ApiError> {
    let (raw, single) = match (request.text, request.items) {
        (Some(text), None) => (
            vec![TranscriptIn {
                text,
                call_id: request.call_id,
                metadata: request.metadata,
            }],
            true,
        ),
        (None, Some(items)) => {
            if request.call_id.is_some() || request.metadata.is_some() {
                return Err(ApiError::unprocessable(
                    "with `items`, put `call_id` and `metadata` inside each item",
                ));
            }
            (items, false)
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "send either `text` or `items`, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::unprocessable(
                "missing `text` (or `items` for a batch)",
            ))
        }
    };
    if raw.is_empty() {
        return Err(ApiError::unprocessable("`items` must not be empty"));
    }
    if raw.len() > max_items {
        return Err(ApiError::unprocessable(format!(
            "`items` has {} transcripts; at most {max_items} per request",
            raw.len()
        )));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, t)| {
            let at = if single {
                String::new()
            } else {
                format!(" (item {i})")
            };
            if !has_visible_text(&t.text) {
                return Err(ApiError::unprocessable(format!(
                    "`text` is empty (nothing but spaces or invisible characters){at}"
                )));
            }
            if t.text.contains('\0') || t.call_id.as_deref().is_some_and(|c| c.contains('\0')) {
                return Err(ApiError::unprocessable(format!(
                    "text and call_id must not contain NUL characters{at}"
                )));
            }
            let metadata = match t.metadata {
                None | Some(serde_json::Value::Null) => serde_json::json!({}),
                Some(m @ serde_json::Value::Object(_)) => {
                    if m.to_string().contains("\\u0000") {
                        return Err(ApiError::unprocessable(format!(
                            "`metadata` must not contain NUL characters{at}"
                        )));
                    }
                    m
                }
                Some(_) => {
                    return Err(ApiError::unprocessable(format!(
                        "`metadata` must be a JSON object{at}"
                    )))
                }
            };
            Ok(TextToClassify {
                transcript_id: Uuid::new_v4(),
                prediction_id: Uuid::new_v4(),
                call_id: t.call_id,
                text: t.text,
                metadata,
                redaction_version: 0,
                request_digest: None,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|items| (items, single))
}

//! The review queue: `GET /review/next` leases the next transcript of a task to an annotator,
//! `POST /review/{lease}/label|skip|undo` ends (or takes back) the lease, and
//! `GET /review/queue` says how many items wait per task. Annotator keys act under their
//! own name; an admin key (or a keyless service) names the annotator with `?annotator=`.

use super::auth::Labeler;
use crate::data::chars::is_invisible_or_control;
use crate::error::{ApiError, ApiJson};
use crate::review::queue::Strategy;
use crate::service::AppState;
use crate::store::review::{self, Lease, LeaseError, NextItem};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// Longest annotator name accepted in `?annotator=`.
const MAX_ANNOTATOR_CHARS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    task: String,
    strategy: Option<String>,
    annotator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelBody {
    label: String,
}

impl From<LeaseError> for ApiError {
    fn from(e: LeaseError) -> ApiError {
        match e {
            LeaseError::NotFound(_) => ApiError::NotFound(e.to_string()),
            LeaseError::AlreadyFinished { .. }
            | LeaseError::NotFinished(_)
            | LeaseError::TakenSince(_) => ApiError::Conflict(e.to_string()),
            LeaseError::Store(s) => s.into(),
        }
    }
}

/// The annotator a request labels as: an annotator key's own name (a different
/// `?annotator=` is refused), or for an admin the name `?annotator=` gives.
fn annotator_name(labeler: &Labeler, asked: Option<&str>) -> Result<String, ApiError> {
    match (labeler, asked) {
        (Labeler::Named(name), None) => Ok(name.clone()),
        (Labeler::Named(name), Some(a)) if a == name => Ok(name.clone()),
        (Labeler::Named(name), Some(a)) => Err(ApiError::Forbidden(format!(
            "this key labels as `{name}`; it cannot act as `{a}`"
        ))),
        (Labeler::Admin, None) => Err(ApiError::unprocessable(
            "name the annotator with `?annotator=NAME` (an annotator key names itself)",
        )),
        (Labeler::Admin, Some(a)) => valid_annotator(a),
    }
}

/// Whether `name` (trimmed) may name an annotator: 1 to 100 characters, none of them
/// control or invisible. The pages' sign-in applies the same rule.
pub(super) fn is_annotator_name(name: &str) -> bool {
    valid_annotator(name).is_ok()
}

fn valid_annotator(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_ANNOTATOR_CHARS {
        return Err(ApiError::unprocessable(format!(
            "`annotator` must be 1 to {MAX_ANNOTATOR_CHARS} characters"
        )));
    }
    if name.chars().any(is_invisible_or_control) {
        return Err(ApiError::unprocessable(
            "`annotator` must not hold control or invisible characters",
        ));
    }
    Ok(name.to_string())
}

/// Whose leases a request may act on: an annotator key only its own; an admin any.
fn lease_owner(labeler: &Labeler) -> Option<&str> {
    match labeler {
        Labeler::Named(name) => Some(name),
        Labeler::Admin => None,
    }
}

pub(super) fn parse_strategy(name: Option<&str>) -> Result<Strategy, ApiError> {
    let Some(name) = name else {
        return Ok(Strategy::default());
    };
    Strategy::parse(name).ok_or_else(|| {
        ApiError::unprocessable(format!(
            "strategy `{name}` is not one of {}",
            Strategy::ALL.map(Strategy::as_str).join(", ")
        ))
    })
}

fn parse_lease_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound(format!("no lease {id}")))
}

fn lease_json(lease: &Lease) -> Value {
    json!({
        "lease_id": lease.id,
        "transcript_id": lease.transcript_id,
        "task": lease.task,
        "annotator": lease.annotator,
        "strategy": lease.strategy,
        "leased_at": lease.leased_at,
        "expires_at": lease.expires_at,
        "finished": lease.finished,
        "label": lease.label,
    })
}

/// GET /review/next: the annotator's next item (the one they hold, if any), or 204 when
/// the task's queue has nothing left for them.
pub async fn next(
    State(state): State<AppState>,
    Extension(labeler): Extension<Labeler>,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let annotator = annotator_name(&labeler, q.annotator.as_deref())?;
    let strategy = parse_strategy(q.strategy.as_deref())?;
    let task = super::tasks::known_task(&state, &q.task).await?;
    let ask = NextItem {
        task: &task.name,
        annotator: &annotator,
        strategy,
        settings: state.review,
        now: Utc::now(),
    };
    let Some(lease) = review::next(&state.pool, &ask).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let item = review::item(&state.pool, &lease).await?.ok_or_else(|| {
        ApiError::NotFound(format!("the transcript of lease {} is gone", lease.id))
    })?;
    let mut body = lease_json(&lease);
    body["transcript"] = json!({
        "id": lease.transcript_id,
        "text": item.text,
        "call_id": item.call_id,
        "created_at": item.created_at,
    });
    body["prediction"] = json!({
        "model_version": item.model_version,
        "guess": item.guess,
        "margin": item.margin,
        "probabilities": item.probabilities,
        "outputs": item.outputs,
    });
    body["labels"] = json!(task.labels);
    Ok(ApiJson(body).into_response())
}

/// POST /review/{lease}/label `{"label": L}`: records L under the lease's annotator and
/// closes the lease.
pub async fn label(
    State(state): State<AppState>,
    Extension(labeler): Extension<Labeler>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LabelBody>,
) -> Result<ApiJson<Value>, ApiError> {
    let id = parse_lease_id(&id)?;
    let (lease, outcome) = label_lease(&state, id, lease_owner(&labeler), &body.label).await?;
    let mut out = lease_json(&lease);
    out["outcome"] = json!(outcome);
    Ok(ApiJson(out))
}

/// Records `label` through lease `id` (held by `owner`; `None`: an admin, any lease) after
/// checking it is one of the lease's task's classes. The API and the labeling page both
/// label through here.
pub(super) async fn label_lease(
    state: &AppState,
    id: Uuid,
    owner: Option<&str>,
    label: &str,
) -> Result<(Lease, crate::store::labels::LabelOutcome), ApiError> {
    let lease = review::get(&state.pool, id, owner)
        .await?
        .ok_or(LeaseError::NotFound(id))?;
    let task = super::tasks::known_task(state, &lease.task).await?;
    if task.index_of(label).is_none() {
        return Err(ApiError::unprocessable(format!(
            "unknown label '{label}' for task '{}'; allowed: {}",
            task.name,
            task.labels.join(", ")
        )));
    }
    Ok(review::label(&state.pool, id, owner, label, Utc::now()).await?)
}

/// POST /review/{lease}/skip: gives the item back; this annotator is not shown it again.
pub async fn skip(
    State(state): State<AppState>,
    Extension(labeler): Extension<Labeler>,
    Path(id): Path<String>,
) -> Result<ApiJson<Value>, ApiError> {
    let id = parse_lease_id(&id)?;
    let lease = review::skip(&state.pool, id, lease_owner(&labeler), Utc::now()).await?;
    Ok(ApiJson(lease_json(&lease)))
}

/// POST /review/{lease}/undo: takes back a label or a skip; the item is leased to the same
/// annotator again and is what their next `GET /review/next` shows.
pub async fn undo(
    State(state): State<AppState>,
    Extension(labeler): Extension<Labeler>,
    Path(id): Path<String>,
) -> Result<ApiJson<Value>, ApiError> {
    let id = parse_lease_id(&id)?;
    let lease = review::undo(
        &state.pool,
        id,
        lease_owner(&labeler),
        state.review,
        Utc::now(),
    )
    .await?;
    Ok(ApiJson(lease_json(&lease)))
}

/// GET /review/queue: per task, how many items wait, are leased and are labeled.
pub async fn queue(State(state): State<AppState>) -> Result<ApiJson<Value>, ApiError> {
    let active = state.pipeline.active().version.clone();
    let counts = review::counts(&state.pool, state.review, &active, Utc::now()).await?;
    Ok(ApiJson(json!({
        "model_version": active,
        "overlap": state.review.overlap,
        "lease_s": state.review.lease_for.as_secs(),
        "strategies": Strategy::ALL.map(Strategy::as_str),
        "tasks": counts,
    })))
}

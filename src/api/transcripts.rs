//! GET /transcripts/{id}: a stored transcript with its predictions and labels (with history).

use crate::error::{ApiError, ApiJson};
use crate::service::AppState;
use crate::store::transcripts::{self, TranscriptDetail};
use axum::extract::{Path, State};
use uuid::Uuid;

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<ApiJson<TranscriptDetail>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no transcript with id {id}"));
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    transcripts::get_detail(&state.pool, uuid)
        .await?
        .map(ApiJson)
        .ok_or_else(not_found)
}

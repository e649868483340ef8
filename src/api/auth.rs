//! API keys: `Authorization: Bearer KEY` or `X-API-Key: KEY`. Admin keys may call every
//! route; classify keys only classification and model reads. A role with no keys configured
//! is open.

use crate::error::ApiError;
use crate::service::AppState;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

pub async fn require_classify_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let keys = &state.keys;
    let allowed = keys.is_open()
        || presented_key(req.headers())
            .is_some_and(|k| keys.classify.contains(k) || keys.admin.contains(k));
    if !allowed {
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(req).await)
}

pub async fn require_admin_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let keys = &state.keys;
    // Configuring only classify keys closes the admin routes; it must not open them.
    let allowed =
        keys.is_open() || presented_key(req.headers()).is_some_and(|k| keys.admin.contains(k));
    if !allowed {
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(req).await)
}

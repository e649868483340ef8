//! API keys: `Authorization: Bearer KEY` or `X-API-Key: KEY`. Admin keys may call every
//! route; classify keys only classification and model reads (an admin route answers them
//! 403, an unknown key 401). A role with no keys configured is open.

use crate::error::ApiError;
use crate::service::AppState;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// Whether `presented` is one of `keys`, compared so the time taken does not depend on how
/// much of a key matches: both sides are hashed to 32 bytes and every byte of every key is
/// compared (a `HashSet` lookup ends at the first differing byte).
fn is_one_of(keys: &HashSet<String>, presented: &str) -> bool {
    let want = Sha256::digest(presented.as_bytes());
    keys.iter().fold(false, |found, key| {
        let have = Sha256::digest(key.as_bytes());
        let diff = want
            .iter()
            .zip(have.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        found | (diff == 0)
    })
}

/// The API keys a request presents: `X-API-Key`, then `Authorization: Bearer`.
fn presented_keys(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    api_key.into_iter().chain(bearer).map(str::trim)
}

/// The first API key a request presents (what scopes its `Idempotency-Key`).
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    presented_keys(headers).next()
}

/// Whether any key the request presents is one of `keys` (a stray second header with a
/// wrong key does not shut out a request that also carries a right one).
fn presents_one_of(headers: &HeaderMap, keys: &HashSet<String>) -> bool {
    presented_keys(headers).fold(false, |found, k| found | is_one_of(keys, k))
}

/// Who a request was let in as, for handlers that show admins more (model paths and
/// training histories): put in the request's extensions by the key checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A classify key: classification and model reads.
    Classify,
    /// An admin key, or a server with no keys configured at all.
    Admin,
}

pub async fn require_classify_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let keys = &state.keys;
    let role = if keys.is_open() || presents_one_of(req.headers(), &keys.admin) {
        Role::Admin
    } else if presents_one_of(req.headers(), &keys.classify) {
        Role::Classify
    } else {
        return Err(ApiError::Unauthorized);
    };
    req.extensions_mut().insert(role);
    Ok(next.run(req).await)
}

pub async fn require_admin_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let keys = &state.keys;
    // Configuring only classify keys closes the admin routes; it must not open them.
    let allowed = keys.is_open() || presents_one_of(req.headers(), &keys.admin);
    if !allowed {
        // A known classify key is told what it lacks (403), an unknown one that it is
        // not known (401).
        return Err(if presents_one_of(req.headers(), &keys.classify) {
            ApiError::Forbidden
        } else {
            ApiError::Unauthorized
        });
    }
    let mut req = req;
    req.extensions_mut().insert(Role::Admin);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::is_one_of;

    #[test]
    fn a_key_matches_only_itself() {
        let keys = ["s3cret-admin".to_string(), "other".to_string()].into();
        assert!(is_one_of(&keys, "s3cret-admin"));
        assert!(is_one_of(&keys, "other"));
        for wrong in [
            "s3cret-admiN",
            "s3cret-admin ",
            "s3cret",
            "",
            "s3cret-admin-and-more",
        ] {
            assert!(!is_one_of(&keys, wrong), "{wrong:?}");
        }
        assert!(!is_one_of(&Default::default(), "anything"));
    }
}

//! API keys: `Authorization: Bearer KEY` or `X-API-Key: KEY`. Admin keys may call every
//! route; classify keys only classification and model reads; annotator keys only the
//! review queue, under their own name (a route beyond a key's role answers 403, an unknown
//! key 401). With no keys configured at all, every route is open.

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
    keys.iter()
        .fold(false, |found, key| found | same_key(key, presented))
}

/// Whether two keys are equal, compared on their SHA-256 digests byte by byte to the end.
fn same_key(key: &str, presented: &str) -> bool {
    let want = Sha256::digest(presented.as_bytes());
    let have = Sha256::digest(key.as_bytes());
    let diff = want
        .iter()
        .zip(have.iter())
        .fold(0u8, |d, (a, b)| d | (a ^ b));
    diff == 0
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
        return Err(refusal(req.headers(), keys));
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
        return Err(refusal(req.headers(), keys));
    }
    let mut req = req;
    req.extensions_mut().insert(Role::Admin);
    Ok(next.run(req).await)
}

/// Why a request is refused a route: a known key is told what its role may do (403), an
/// unknown one that it is not known (401).
fn refusal(headers: &HeaderMap, keys: &crate::service::ApiKeys) -> ApiError {
    if presents_one_of(headers, &keys.classify) {
        ApiError::Forbidden(
            "this key may classify and read models only; this route needs an admin key".into(),
        )
    } else if presented_annotator(headers, &keys.annotators).is_some() {
        ApiError::Forbidden(
            "an annotator key may use the review queue (/review/...) only; this route needs another key".into(),
        )
    } else {
        ApiError::Unauthorized
    }
}

/// Who labels through the review queue: an annotator key's name, or an admin (or a keyless
/// service) that names the annotator with `?annotator=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Labeler {
    /// An annotator key: labels are recorded under this name, whatever the request says.
    Named(String),
    /// An admin key or a keyless service.
    Admin,
}

/// The annotator key `headers` present, compared like the other keys (every key's every
/// byte, whichever matches).
fn presented_annotator(
    headers: &HeaderMap,
    keys: &[crate::service::AnnotatorKey],
) -> Option<String> {
    let mut found = None;
    for presented in presented_keys(headers) {
        for a in keys {
            if same_key(&a.key, presented) {
                found = found.or_else(|| Some(a.name.clone()));
            }
        }
    }
    found
}

/// Who one key labels as (the pages' sign-in): `None` for a classify key or an unknown one.
pub fn labeler_for_key(keys: &crate::service::ApiKeys, key: &str) -> Option<Labeler> {
    if keys.is_open() || is_one_of(&keys.admin, key) {
        return Some(Labeler::Admin);
    }
    keys.annotators
        .iter()
        .fold(None, |found, a| match (found, same_key(&a.key, key)) {
            (None, true) => Some(Labeler::Named(a.name.clone())),
            (found, _) => found,
        })
}

/// Whether `key` is one of the classify keys.
pub fn is_classify_key(keys: &crate::service::ApiKeys, key: &str) -> bool {
    is_one_of(&keys.classify, key)
}

/// Lets in annotator keys and admin keys (and everyone on a keyless service), recording
/// which as a [`Labeler`]; a classify key is told it cannot label (403).
pub async fn require_label_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let keys = &state.keys;
    let labeler = if keys.is_open() || presents_one_of(req.headers(), &keys.admin) {
        Labeler::Admin
    } else if let Some(name) = presented_annotator(req.headers(), &keys.annotators) {
        Labeler::Named(name)
    } else if presents_one_of(req.headers(), &keys.classify) {
        return Err(ApiError::Forbidden(
            "a classify key cannot label; use an annotator key or an admin key".into(),
        ));
    } else {
        return Err(ApiError::Unauthorized);
    };
    req.extensions_mut().insert(labeler);
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

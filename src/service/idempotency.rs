//! `Idempotency-Key` on POST /classify: a client that retries after a timeout (the first
//! attempt may well have been stored) sends the same key, and gets the first attempt's
//! answer back instead of a second stored transcript.
//!
//! The ids of a keyed request's transcripts and predictions are derived from the key (and
//! the calling API key, so two clients' keys never meet), so a retry names the rows the
//! first attempt stored: found, they are answered as stored; not found, the request is
//! classified and stored under those ids. Two attempts racing each other both get answered
//! with the same ids and only one set of rows is stored. A key sent again with another
//! request body is refused. The digest that tells requests apart is of the redacted request,
//! so no personal data reaches it.

use crate::pipeline::TextToClassify;
use crate::store::transcripts::{self, StoredAnswer};
use crate::store::StoreError;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The header's name (HTTP header names are case-insensitive).
pub const HEADER: &str = "idempotency-key";

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// A validated key, scoped to the API key that sent it.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    scope: [u8; 32],
}

/// Why a key is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the Idempotency-Key header must hold 1 to {MAX_KEY_BYTES} visible ASCII characters")]
    Malformed,
    #[error(
        "this Idempotency-Key was used for a different request; use a new key for a new request"
    )]
    Reused,
}

impl IdempotencyKey {
    /// Checks the header's value; `caller` is the API key presented (empty when none).
    pub fn parse(value: &[u8], caller: &str) -> Result<IdempotencyKey, KeyError> {
        let visible = |b: &u8| (0x21..=0x7e).contains(b);
        if value.is_empty() || value.len() > MAX_KEY_BYTES || !value.iter().all(visible) {
            return Err(KeyError::Malformed);
        }
        let mut h = Sha256::new();
        h.update(Sha256::digest(caller.as_bytes()));
        h.update(value);
        Ok(IdempotencyKey {
            scope: h.finalize().into(),
        })
    }

    /// The transcript and prediction ids of item `index` of the keyed request.
    pub fn ids(&self, index: usize) -> (Uuid, Uuid) {
        (self.id(index, b't'), self.id(index, b'p'))
    }

    fn id(&self, index: usize, kind: u8) -> Uuid {
        let mut h = Sha256::new();
        h.update(self.scope);
        h.update((index as u64).to_le_bytes());
        h.update([kind]);
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        // A name-based id (RFC 9562 version 8: custom), never mistaken for a random one.
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}

/// Gives every item its key-derived ids and the digest of the whole (redacted) request.
pub fn assign(key: &IdempotencyKey, items: &mut [TextToClassify], single: bool) {
    let digest = request_digest(items, single);
    for (i, item) in items.iter_mut().enumerate() {
        (item.transcript_id, item.prediction_id) = key.ids(i);
        item.request_digest = Some(digest.clone());
    }
}

/// SHA-256 of what a request asks: every item's text, call id and metadata, and whether it
/// was sent as one text or as `items`.
fn request_digest(items: &[TextToClassify], single: bool) -> Vec<u8> {
    let shape: Vec<_> = items
        .iter()
        .map(|i| (&i.text, &i.call_id, &i.metadata))
        .collect();
    let encoded = serde_json::to_vec(&(single, shape)).unwrap_or_default();
    Sha256::digest(encoded).to_vec()
}

/// The stored answers of an earlier attempt of this request, in item order; `None` when
/// there was none (or it was not committed).
pub async fn earlier_answers(
    pool: &sqlx::PgPool,
    items: &[TextToClassify],
) -> Result<Option<Vec<StoredAnswer>>, ReplayError> {
    let ids: Vec<Uuid> = items.iter().map(|i| i.transcript_id).collect();
    let found = transcripts::stored_answers(pool, &ids).await?;
    if found.is_empty() {
        return Ok(None);
    }
    let digest = items.first().and_then(|i| i.request_digest.as_deref());
    let same = found.len() == items.len()
        && found
            .iter()
            .all(|a| a.request_digest.as_deref() == digest && digest.is_some());
    if !same {
        return Err(ReplayError::Key(KeyError::Reused));
    }
    Ok(Some(found))
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse(b"retry-7f3a", "").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; MAX_KEY_BYTES], "").is_ok());
        for bad in [
            &b""[..],
            b"has space",
            b"tab\t",
            "한글".as_bytes(),
            &[b'k'; 256],
        ] {
            assert_eq!(
                IdempotencyKey::parse(bad, "").unwrap_err(),
                KeyError::Malformed,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ids_depend_on_the_key_the_caller_and_the_item() {
        let k = |key: &str, caller: &str| IdempotencyKey::parse(key.as_bytes(), caller).unwrap();
        assert_eq!(k("a", "c1").ids(0), k("a", "c1").ids(0));
        assert_ne!(k("a", "c1").ids(0), k("a", "c2").ids(0));
        assert_ne!(k("a", "c1").ids(0), k("b", "c1").ids(0));
        assert_ne!(k("a", "c1").ids(0), k("a", "c1").ids(1));
        let (t, p) = k("a", "c1").ids(0);
        assert_ne!(t, p);
        assert_eq!(t.get_version_num(), 8);
    }
}

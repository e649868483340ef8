//! Signing in to the pages: the key (and, for an admin or a keyless service, the annotator's
//! name) lives in `HttpOnly`, `SameSite=Strict` cookies, hex-encoded; every form carries a
//! CSRF token derived from them, so no server-side session table is needed and every replica
//! accepts every page's forms.

use super::super::auth::Labeler;
use crate::service::AppState;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

pub const KEY_COOKIE: &str = "voc_key";
pub const NAME_COOKIE: &str = "voc_annotator";

/// Who is signed in to the pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The name labels are recorded under.
    pub annotator: String,
    /// An admin (or a keyless service): may roll back models and act on any lease.
    pub admin: bool,
    key: String,
}

/// Why a sign-in is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No key, or one this server does not know.
    UnknownKey,
    /// A classify-only key: it may classify, not label.
    ClassifyOnly,
    /// An admin key or a keyless service, and no annotator name given.
    NameNeeded,
}

impl Refusal {
    pub fn message(&self) -> &'static str {
        match self {
            Refusal::UnknownKey => "That key is not known to this server.",
            Refusal::ClassifyOnly => {
                "That key may classify transcripts only; a classify-only key cannot label. Ask for an annotator key."
            }
            Refusal::NameNeeded => "Give your name: labels are recorded under it.",
        }
    }
}

impl Session {
    /// The session a key and a name give, as the API's key check would let them in.
    pub fn sign_in(state: &AppState, key: &str, name: &str) -> Result<Session, Refusal> {
        let key = key.trim();
        let labeler = super::super::auth::labeler_for_key(&state.keys, key);
        let name = name.trim();
        match labeler {
            Some(Labeler::Named(annotator)) => Ok(Session {
                annotator,
                admin: false,
                key: key.to_string(),
            }),
            Some(Labeler::Admin) if valid_name(name) => Ok(Session {
                annotator: name.to_string(),
                admin: true,
                key: key.to_string(),
            }),
            Some(Labeler::Admin) => Err(Refusal::NameNeeded),
            None if super::super::auth::is_classify_key(&state.keys, key) => {
                Err(Refusal::ClassifyOnly)
            }
            None => Err(Refusal::UnknownKey),
        }
    }

    /// The session the request's cookies hold, checked again against the keys (a key
    /// removed from the configuration signs its holder out).
    pub fn from_cookies(state: &AppState, headers: &HeaderMap) -> Option<Session> {
        let key = cookie(headers, KEY_COOKIE).unwrap_or_default();
        let name = cookie(headers, NAME_COOKIE).unwrap_or_default();
        Session::sign_in(state, &key, &name).ok()
    }

    /// The token every form of this session carries.
    pub fn csrf_token(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"voc-ui-csrf\0");
        h.update(self.key.as_bytes());
        h.update(b"\0");
        h.update(self.annotator.as_bytes());
        hex::encode(h.finalize())
    }

    /// Whether `token` is this session's (compared to the end, whatever matches).
    pub fn csrf_ok(&self, token: &str) -> bool {
        let want = self.csrf_token();
        want.len() == token.len()
            && want
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |d, (a, b)| d | (a ^ b))
                == 0
    }

    /// The `Set-Cookie` values that keep this session.
    pub fn cookies(&self) -> [String; 2] {
        [
            set_cookie(KEY_COOKIE, &hex::encode(&self.key), None),
            set_cookie(NAME_COOKIE, &hex::encode(&self.annotator), None),
        ]
    }
}

/// The `Set-Cookie` values that end a session.
pub fn cleared_cookies() -> [String; 2] {
    [
        set_cookie(KEY_COOKIE, "", Some(0)),
        set_cookie(NAME_COOKIE, "", Some(0)),
    ]
}

fn set_cookie(name: &str, value: &str, max_age: Option<u32>) -> String {
    let age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict{age}")
}

/// A name labels may be recorded under: the API's `?annotator=` rule.
fn valid_name(name: &str) -> bool {
    super::super::review::is_annotator_name(name)
}

/// The hex-decoded value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| hex::decode(v).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(key: &str, name: &str) -> Session {
        Session {
            annotator: name.into(),
            admin: false,
            key: key.into(),
        }
    }

    #[test]
    fn the_csrf_token_depends_on_key_and_name_and_is_checked_whole() {
        let a = session("k1", "ann");
        let token = a.csrf_token();
        assert!(a.csrf_ok(&token));
        assert!(!a.csrf_ok(&token[..10]));
        assert!(!a.csrf_ok(""));
        assert!(!session("k2", "ann").csrf_ok(&token));
        assert!(!session("k1", "bob").csrf_ok(&token));
    }

    #[test]
    fn cookies_round_trip_any_bytes_of_a_key() {
        let s = session("a key; with=odd,chars", "Ann Lee");
        let mut headers = HeaderMap::new();
        let values: Vec<String> = s
            .cookies()
            .iter()
            .map(|c| c.split(';').next().unwrap().to_string())
            .collect();
        headers.insert(
            axum::http::header::COOKIE,
            format!("other=1; {}", values.join("; ")).parse().unwrap(),
        );
        assert_eq!(
            cookie(&headers, KEY_COOKIE).as_deref(),
            Some("a key; with=odd,chars")
        );
        assert_eq!(cookie(&headers, NAME_COOKIE).as_deref(), Some("Ann Lee"));
        assert!(s.cookies()[0].contains("HttpOnly; SameSite=Strict"));
    }
}

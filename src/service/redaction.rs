//! Redaction in the request path: what POST /classify and POST /feedback call before the
//! model or Postgres sees a text or a call id.

use crate::pipeline::TextToClassify;
use crate::redact::{PiiKind, Policy, Redactor};
use std::collections::BTreeMap;

/// Tags put in one text, per kind (`{}` when nothing was found or redaction is off).
pub type RedactionCounts = BTreeMap<PiiKind, u32>;

/// Above this many bytes of text in one request, redaction runs on a blocking thread so it
/// does not hold up the other requests of a tokio worker.
const INLINE_BYTES: usize = 64 * 1024;

/// Redacts each item's text and call id (on the tokio side, before the items are queued
/// for the inference thread) and marks them with the redactor version; returns the counts
/// of each item's text. With redaction off the items are left as sent, version 0.
pub async fn redact_items(
    policy: Policy,
    items: Vec<TextToClassify>,
) -> (Vec<TextToClassify>, Vec<RedactionCounts>) {
    if !policy.is_on() {
        let n = items.len();
        return (items, vec![RedactionCounts::new(); n]);
    }
    let bytes: usize = items.iter().map(|i| i.text.len()).sum();
    if bytes <= INLINE_BYTES {
        return redact_all(items);
    }
    // The closure owns the items; if the blocking pool is gone the runtime is shutting down.
    match tokio::task::spawn_blocking(move || redact_all(items)).await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn redact_all(mut items: Vec<TextToClassify>) -> (Vec<TextToClassify>, Vec<RedactionCounts>) {
    let redactor = Redactor::shared();
    let counts = items
        .iter_mut()
        .map(|item| {
            let r = redactor.redact(&item.text);
            item.text = r.text;
            if let Some(call_id) = &mut item.call_id {
                *call_id = redactor.redact(call_id).text;
            }
            item.redaction_version = Policy::Redact.version();
            r.counts
        })
        .collect();
    (items, counts)
}

/// The call id to look a transcript up by: the one it was stored under. A call id sent to
/// POST /classify is stored redacted (a phone number used as a call id never reaches
/// Postgres), so a lookup redacts the raw id it is given the same way and finds the
/// transcript by what the client sent. With redaction off the raw id is tried too (rows may
/// have been redacted by `voc redact` since). The `bool` says whether redaction changed it:
/// such ids are no longer unique (every phone number becomes `[PHONE]`).
pub fn lookup_call_ids(policy: Policy, call_id: &str) -> (Vec<String>, bool) {
    let redacted = Redactor::shared().redact(call_id);
    let changed = redacted.changed();
    let mut ids = vec![redacted.text];
    if !policy.is_on() && changed {
        ids.push(call_id.to_string());
    }
    (ids, changed)
}

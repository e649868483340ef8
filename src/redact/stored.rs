//! `voc redact` on stored transcripts: one batch at a time, in id order, each batch
//! rewritten and marked in one transaction, so a run stopped anywhere resumes with the
//! first batch it had not committed.

use super::{add_counts, redact_unique_id, PiiKind, Redacted, Redactor, REDACTION_VERSION};
use crate::store::transcripts::{lock_unredacted, save_redacted, RedactedRow};
use crate::store::StoreError;
use std::collections::BTreeMap;

/// What one batch (or a whole run) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RedactionTotals {
    /// Transcripts read.
    pub scanned: u64,
    /// Transcripts whose text, call id or source id changed.
    pub rewritten: u64,
    /// Tags put in, per kind.
    pub counts: BTreeMap<PiiKind, u64>,
}

impl RedactionTotals {
    /// Adds another batch's numbers.
    pub fn add(&mut self, other: &RedactionTotals) {
        self.scanned += other.scanned;
        self.rewritten += other.rewritten;
        for (kind, n) in &other.counts {
            *self.counts.entry(*kind).or_insert(0) += n;
        }
    }
}

/// Redacts the next `batch` unredacted transcripts on `conn` without committing: the caller
/// owns the transaction. `scanned == 0` means nothing is left.
pub async fn redact_batch_in(
    conn: &mut sqlx::PgConnection,
    redactor: &Redactor,
    batch: i64,
) -> Result<RedactionTotals, StoreError> {
    let rows = lock_unredacted(conn, REDACTION_VERSION, batch).await?;
    let mut totals = RedactionTotals {
        scanned: rows.len() as u64,
        ..RedactionTotals::default()
    };
    let mut ids = Vec::with_capacity(rows.len());
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        let redacted = redactor.redact(&row.text);
        ids.push(row.id);
        let mut change = RedactedRow::default();
        // Ids are redacted as at storage (`voc import`, POST /classify); their hits are not
        // counted: the counts say what the texts held.
        let call_id = row.call_id.as_deref().map(|c| redactor.redact(c));
        if let Some(c) = call_id.filter(Redacted::changed) {
            change.call_id = Some(c.text);
        }
        if let Some(s) = &row.source_id {
            let new = redact_unique_id(s, &redacted.text);
            if &new != s {
                change.source_id = Some(new);
            }
        }
        if redacted.changed() {
            add_counts(&mut totals.counts, &redacted.counts);
            change.text = Some(redacted.text);
        }
        if change.text.is_some() || change.call_id.is_some() || change.source_id.is_some() {
            totals.rewritten += 1;
        }
        changes.push(change);
    }
    if !ids.is_empty() {
        save_redacted(conn, REDACTION_VERSION, &ids, &changes).await?;
    }
    Ok(totals)
}

/// Redacts and commits the next batch.
pub async fn redact_next_batch(
    pool: &sqlx::PgPool,
    redactor: &Redactor,
    batch: i64,
) -> Result<RedactionTotals, StoreError> {
    let mut tx = pool.begin().await?;
    let totals = redact_batch_in(&mut tx, redactor, batch).await?;
    tx.commit().await?;
    Ok(totals)
}

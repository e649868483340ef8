//! Bulk loading of historical transcripts and labels (`voc import`). A transcript is known
//! by the id it had in its file (`source_id`), so importing a file again changes nothing.

use super::StoreError;
use sqlx::PgPool;
use uuid::Uuid;

/// The annotator recorded on imported labels. Feedback comes from other annotators, so a
/// re-import never overrides a human correction (the newest current label wins in training).
pub const IMPORT_ANNOTATOR: &str = "import";

/// One row of a file to import.
pub struct ImportRow<'a> {
    pub source_id: &'a str,
    /// The call id stored with it: the source id, redacted as POST /classify redacts one.
    pub call_id: &'a str,
    pub text: &'a str,
    /// (task, label)
    pub labels: Vec<(&'a str, &'a str)>,
}

impl<'a> From<&'a crate::data::Example> for ImportRow<'a> {
    fn from(e: &'a crate::data::Example) -> ImportRow<'a> {
        ImportRow {
            source_id: &e.id,
            call_id: &e.id,
            text: &e.text,
            labels: e
                .labels
                .iter()
                .map(|(t, l)| (t.as_str(), l.as_str()))
                .collect(),
        }
    }
}

/// What one call to [`import_rows`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    pub transcripts_added: u64,
    pub transcripts_known: u64,
    pub labels_added: u64,
    pub labels_known: u64,
}

/// Imports `rows` in one transaction: new transcripts are inserted, known ones (same
/// `source_id`) kept as they are; a label is added unless the transcript already has a
/// current imported label for that task. New rows get `redaction_version` (0: not redacted).
pub async fn import_rows(
    pool: &PgPool,
    rows: &[ImportRow<'_>],
    redaction_version: i16,
) -> Result<ImportCounts, StoreError> {
    if rows.is_empty() {
        return Ok(ImportCounts::default());
    }
    let ids: Vec<Uuid> = rows.iter().map(|_| Uuid::new_v4()).collect();
    let source_ids: Vec<&str> = rows.iter().map(|r| r.source_id).collect();
    let call_ids: Vec<&str> = rows.iter().map(|r| r.call_id).collect();
    let texts: Vec<&str> = rows.iter().map(|r| r.text).collect();
    let mut tx = pool.begin().await?;
    let added = sqlx::query(
        "INSERT INTO transcripts (id, source_id, call_id, text, metadata, redaction_version)
         SELECT id, sid, cid, text, jsonb_build_object('source', 'import'), $5
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(id, sid, cid, text)
         ON CONFLICT (source_id) WHERE source_id IS NOT NULL DO NOTHING",
    )
    .bind(&ids)
    .bind(&source_ids)
    .bind(&call_ids)
    .bind(&texts)
    .bind(redaction_version)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let mut label_sources = Vec::new();
    let mut tasks = Vec::new();
    let mut labels = Vec::new();
    for r in rows {
        for (task, label) in &r.labels {
            label_sources.push(r.source_id);
            tasks.push(*task);
            labels.push(*label);
        }
    }
    let labels_added = sqlx::query(
        "INSERT INTO labels (transcript_id, task, label, source, annotator)
         SELECT t.id, u.task, u.label, 'import', $4
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(sid, task, label)
         JOIN transcripts t ON t.source_id = u.sid
         ON CONFLICT (transcript_id, task, (COALESCE(annotator, '')))
             WHERE superseded_at IS NULL DO NOTHING",
    )
    .bind(&label_sources)
    .bind(&tasks)
    .bind(&labels)
    .bind(IMPORT_ANNOTATOR)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(ImportCounts {
        transcripts_added: added,
        transcripts_known: rows.len() as u64 - added,
        labels_added,
        labels_known: tasks.len() as u64 - labels_added,
    })
}

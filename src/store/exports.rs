//! Reading the stored transcripts back out, with their current labels (`voc export`, and
//! `GET /labels/export` for the labeled ones).

use super::StoreError;
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// One stored transcript with its current label per task.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedTranscript {
    pub id: Uuid,
    pub text: String,
    pub labels: Map<String, Value>,
    /// Its frozen-evaluation bucket (see `learning::eval_set`).
    pub eval_bucket: i32,
}

/// What both export queries select from `transcripts t`: id, text, the current label per task
/// (the newest, where several annotators gave one) as a JSON object, the evaluation bucket.
macro_rules! exported_columns {
    () => {
        "SELECT t.id, t.text,
                COALESCE((SELECT jsonb_object_agg(c.task, c.label) FROM (
                    SELECT DISTINCT ON (l.task) l.task, l.label FROM labels l
                    WHERE l.transcript_id = t.id AND l.superseded_at IS NULL
                    ORDER BY l.task, l.created_at DESC, l.id DESC) c), '{}'::jsonb),
                t.eval_bucket"
    };
}

impl ExportedTranscript {
    /// The row as `voc train` reads it from JSONL: `id`, `text`, one key per labeled task.
    pub fn training_row(&self) -> Map<String, Value> {
        let mut object = self.labels.clone();
        object.insert("id".into(), self.id.to_string().into());
        object.insert("text".into(), self.text.clone().into());
        object
    }
}

/// Up to `limit` transcripts with ids above `after` (all when `None`), in id order: page
/// through a large table by passing the last id seen.
pub async fn page(
    pool: &PgPool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ExportedTranscript>, StoreError> {
    let rows: Vec<(Uuid, String, Value, i32)> = sqlx::query_as(concat!(
        exported_columns!(),
        " FROM transcripts t
          WHERE $1::uuid IS NULL OR t.id > $1
          ORDER BY t.id LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(exported(rows))
}

/// Up to `limit` transcripts that have at least one current label, with ids above `after`,
/// in id order. Driven by the current-label index, so a few thousand labels among a million
/// transcripts are found without reading the rest.
pub async fn labeled_page(
    pool: &PgPool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ExportedTranscript>, StoreError> {
    let rows: Vec<(Uuid, String, Value, i32)> = sqlx::query_as(concat!(
        "WITH ids AS (
             SELECT DISTINCT transcript_id AS id FROM labels
             WHERE superseded_at IS NULL AND ($1::uuid IS NULL OR transcript_id > $1)
             ORDER BY transcript_id LIMIT $2) ",
        exported_columns!(),
        " FROM ids JOIN transcripts t ON t.id = ids.id
          ORDER BY t.id"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(exported(rows))
}

/// The rows both queries select, as [`ExportedTranscript`]s.
fn exported(rows: Vec<(Uuid, String, Value, i32)>) -> Vec<ExportedTranscript> {
    rows.into_iter()
        .map(|(id, text, labels, eval_bucket)| ExportedTranscript {
            id,
            text,
            labels: match labels {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            eval_bucket,
        })
        .collect()
}

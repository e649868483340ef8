//! The `labels` table: human labels with history. A new label from the same annotator for
//! the same transcript and task supersedes the current one; the same label again changes nothing.

use super::StoreError;
use sqlx::PgPool;
use uuid::Uuid;

/// What happened to one submitted label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelOutcome {
    /// No current label existed; this one was stored.
    Created,
    /// A different current label was marked superseded and this one stored.
    Replaced,
    /// The same label was already current: nothing changed.
    Unchanged,
}

/// One label to record.
pub struct NewLabel<'a> {
    pub transcript_id: Uuid,
    pub task: &'a str,
    pub label: &'a str,
    /// `feedback` or `import`.
    pub source: &'a str,
    pub annotator: Option<&'a str>,
}

/// Records labels for one transcript in one transaction, returning each one's outcome.
pub async fn record(
    pool: &PgPool,
    labels: &[NewLabel<'_>],
) -> Result<Vec<LabelOutcome>, StoreError> {
    let mut tx = pool.begin().await?;
    let outcomes = record_in(&mut tx, labels).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// [`record`] inside a transaction the caller owns (the review queue finishes a lease in
/// the same one).
pub(super) async fn record_in(
    tx: &mut sqlx::PgConnection,
    labels: &[NewLabel<'_>],
) -> Result<Vec<LabelOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(labels.len());
    for l in labels {
        // Concurrent labels for the same (transcript, task, annotator) queue up here, so
        // the later one sees the earlier one's row: locking the current row alone does not
        // serialize two labels sent when there is no current row yet.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2 || '/' || COALESCE($3, ''), 0))")
            .bind(l.transcript_id)
            .bind(l.task)
            .bind(l.annotator)
            .execute(&mut *tx)
            .await?;
        let current: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, label FROM labels
             WHERE transcript_id = $1 AND task = $2
               AND COALESCE(annotator, '') = COALESCE($3, '') AND superseded_at IS NULL
             FOR UPDATE",
        )
        .bind(l.transcript_id)
        .bind(l.task)
        .bind(l.annotator)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match &current {
            Some((_, label)) if label == l.label => {
                outcomes.push(LabelOutcome::Unchanged);
                continue;
            }
            Some((id, _)) => {
                sqlx::query("UPDATE labels SET superseded_at = now() WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                LabelOutcome::Replaced
            }
            None => LabelOutcome::Created,
        };
        // A concurrent identical insert makes this a no-op instead of a duplicate.
        let inserted = sqlx::query(
            "INSERT INTO labels (transcript_id, task, label, source, annotator)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (transcript_id, task, (COALESCE(annotator, '')))
                 WHERE superseded_at IS NULL DO NOTHING",
        )
        .bind(l.transcript_id)
        .bind(l.task)
        .bind(l.label)
        .bind(l.source)
        .bind(l.annotator)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        outcomes.push(if inserted == 0 {
            LabelOutcome::Unchanged
        } else {
            outcome
        });
    }
    Ok(outcomes)
}

/// How many current (not superseded) labels a transcript has for a task.
pub async fn count_current(
    pool: &PgPool,
    transcript_id: Uuid,
    task: &str,
) -> Result<i64, StoreError> {
    let row: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM labels
         WHERE transcript_id = $1 AND task = $2 AND superseded_at IS NULL",
    )
    .bind(transcript_id)
    .bind(task)
    .fetch_one(pool)
    .await?;
    Ok(row.0)
}

/// The current labels people (named annotators) gave for `task` on the transcripts two or
/// more of them labeled, as (transcript, annotator, label): what agreement is computed from.
/// Imported labels and feedback without an annotator name are left out.
pub async fn shared_by_annotators(
    pool: &PgPool,
    task: &str,
) -> Result<Vec<(Uuid, String, String)>, StoreError> {
    let rows = sqlx::query_as(
        "SELECT transcript_id, annotator, label FROM labels
         WHERE task = $1 AND superseded_at IS NULL AND source = 'feedback'
           AND annotator IS NOT NULL
           AND transcript_id IN (
               SELECT transcript_id FROM labels
               WHERE task = $1 AND superseded_at IS NULL AND source = 'feedback'
                 AND annotator IS NOT NULL
               GROUP BY transcript_id HAVING count(*) >= 2)
         ORDER BY transcript_id, annotator",
    )
    .bind(task)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The newest label id, 0 when there is none: a run's snapshot takes labels up to it.
pub async fn max_id(pool: &PgPool) -> Result<i64, StoreError> {
    let (id,): (Option<i64>,) = sqlx::query_as("SELECT max(id) FROM labels")
        .fetch_one(pool)
        .await?;
    Ok(id.unwrap_or(0))
}

/// Labels recorded after `watermark` (feedback and import alike).
pub async fn count_after(pool: &PgPool, watermark: i64) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM labels WHERE id > $1")
        .bind(watermark)
        .fetch_one(pool)
        .await?;
    Ok(n)
}

/// One transcript with its current labels, as a training run reads it.
#[derive(Debug, Clone)]
pub struct LabeledTranscript {
    pub transcript_id: Uuid,
    pub text: String,
    /// Its frozen-evaluation bucket (see `learning::eval_set`).
    pub eval_bucket: i32,
    /// task -> label: the newest current label per task, whoever gave it.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// What a training run learns from, read in one repeatable-read transaction so labels and
/// texts agree: every transcript's newest current label per task among labels up to
/// `watermark`, and up to `unlabeled` of the newest transcripts with no label at all (id,
/// text and frozen-evaluation bucket).
pub async fn snapshot(
    pool: &PgPool,
    watermark: i64,
    unlabeled: i64,
) -> Result<(Vec<LabeledTranscript>, Vec<(Uuid, String, i32)>), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(Uuid, String, i32, String, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (l.transcript_id, l.task)
                l.transcript_id, t.text, t.eval_bucket, l.task, l.label
         FROM labels l JOIN transcripts t ON t.id = l.transcript_id
         WHERE l.superseded_at IS NULL AND l.id <= $1
         ORDER BY l.transcript_id, l.task, l.created_at DESC, l.id DESC",
    )
    .bind(watermark)
    .fetch_all(&mut *tx)
    .await?;
    let unlabeled: Vec<(Uuid, String, i32)> = sqlx::query_as(
        "SELECT t.id, t.text, t.eval_bucket FROM transcripts t
         WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.transcript_id = t.id)
         ORDER BY t.created_at DESC LIMIT $1",
    )
    .bind(unlabeled)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut labeled: Vec<LabeledTranscript> = Vec::new();
    for (id, text, eval_bucket, task, label) in rows {
        match labeled.last_mut() {
            Some(last) if last.transcript_id == id => {
                last.labels.insert(task, label);
            }
            _ => labeled.push(LabeledTranscript {
                transcript_id: id,
                text,
                eval_bucket,
                labels: [(task, label)].into_iter().collect(),
            }),
        }
    }
    Ok((labeled, unlabeled))
}

/// Adds a class to a task; false when it was already added.
pub async fn add_class(pool: &PgPool, task: &str, label: &str) -> Result<bool, StoreError> {
    let inserted =
        sqlx::query("INSERT INTO task_labels (task, label) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(task)
            .bind(label)
            .execute(pool)
            .await?
            .rows_affected();
    Ok(inserted == 1)
}

/// Classes added through the API, per task, in the order they were added.
pub async fn added_classes(
    pool: &PgPool,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT task, label FROM task_labels ORDER BY added_at, label")
            .fetch_all(pool)
            .await?;
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (task, label) in rows {
        out.entry(task).or_default().push(label);
    }
    Ok(out)
}

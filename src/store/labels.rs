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
    let mut outcomes = Vec::with_capacity(labels.len());
    for l in labels {
        // Lock the current row (if any) so concurrent corrections queue up behind us.
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
    tx.commit().await?;
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

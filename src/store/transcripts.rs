//! The `transcripts` and `predictions` tables: classified texts written a batch at a time,
//! and read back one transcript at a time.

use super::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// One classified text ready to be stored: its transcript row and its prediction row.
#[derive(Debug, Clone)]
pub struct ClassifiedRow {
    pub transcript_id: Uuid,
    pub prediction_id: Uuid,
    pub call_id: Option<String>,
    pub text: String,
    pub metadata: serde_json::Value,
    /// Which redactor rewrote `text` and `call_id` (0: stored as given).
    pub redaction_version: i16,
    /// The digest of the `Idempotency-Key` request this row answers, if it had one.
    pub request_digest: Option<Vec<u8>>,
    pub model_version: String,
    /// `{task: {label, confidence, probabilities}}` as JSON text (stored exactly as answered).
    pub outputs: String,
    pub latency_ms: f32,
    /// Per task, the model's guess and its top-two margin: the transcript's review-queue rows.
    pub review: Vec<ReviewGuess>,
}

/// One task's entry in the review queue for a newly classified transcript.
#[derive(Debug, Clone)]
pub struct ReviewGuess {
    pub task: String,
    pub guess: String,
    /// The top probability less the second: how sure the model was.
    pub margin: f32,
    /// `{label: p}` as JSON text.
    pub probabilities: String,
}

/// Writes every transcript, its prediction and its review-queue rows in one statement (so
/// one transaction):
/// either all rows of the batch are committed or none. A transcript whose id is already
/// stored (two attempts of one `Idempotency-Key` request racing, in one batch or in two)
/// is skipped with its prediction; the rows stored first stay.
pub async fn insert_classified(pool: &PgPool, rows: &[ClassifiedRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let mut transcript_ids = Vec::with_capacity(n);
    let mut prediction_ids = Vec::with_capacity(n);
    let mut call_ids = Vec::with_capacity(n);
    let mut texts = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    let mut redaction_versions = Vec::with_capacity(n);
    let mut digests = Vec::with_capacity(n);
    for r in rows {
        transcript_ids.push(r.transcript_id);
        prediction_ids.push(r.prediction_id);
        call_ids.push(r.call_id.as_deref());
        texts.push(r.text.as_str());
        metadata.push(&r.metadata);
        versions.push(r.model_version.as_str());
        outputs.push(r.outputs.as_str());
        latencies.push(r.latency_ms);
        redaction_versions.push(r.redaction_version);
        digests.push(r.request_digest.as_deref());
    }
    let (mut review_ids, mut review_tasks, mut review_guesses, mut review_margins) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut review_probabilities = Vec::new();
    for r in rows {
        for g in &r.review {
            review_ids.push(r.transcript_id);
            review_tasks.push(g.task.as_str());
            review_guesses.push(g.guess.as_str());
            review_margins.push(g.margin);
            review_probabilities.push(g.probabilities.as_str());
        }
    }
    sqlx::query(
        "WITH t AS (
             INSERT INTO transcripts (id, call_id, text, metadata, redaction_version, request_digest)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $9::smallint[], $10::bytea[])
             ON CONFLICT (id) DO NOTHING
             RETURNING id
         ), r AS (
             INSERT INTO review_items (transcript_id, task, model_version, guess, margin, probabilities)
             SELECT DISTINCT ON (u.t, u.task) u.t, u.task, v.v, u.g, u.m, u.p::jsonb
             FROM UNNEST($11::uuid[], $12::text[], $13::text[], $14::real[], $15::text[]) AS u(t, task, g, m, p)
             JOIN t ON t.id = u.t
             JOIN UNNEST($1::uuid[], $6::text[]) AS v(t, v) ON v.t = u.t
             ORDER BY u.t, u.task
             ON CONFLICT DO NOTHING
         )
         INSERT INTO predictions (id, transcript_id, model_version, outputs, latency_ms)
         SELECT DISTINCT ON (u.t) p, u.t, v, o::jsonb, l
         FROM UNNEST($5::uuid[], $1::uuid[], $6::text[], $7::text[], $8::real[]) AS u(p, t, v, o, l)
         JOIN t ON t.id = u.t
         ORDER BY u.t",
    )
    .bind(&transcript_ids)
    .bind(&call_ids)
    .bind(&texts)
    .bind(&metadata)
    .bind(&prediction_ids)
    .bind(&versions)
    .bind(&outputs)
    .bind(&latencies)
    .bind(&redaction_versions)
    .bind(&digests)
    .bind(&review_ids)
    .bind(&review_tasks)
    .bind(&review_guesses)
    .bind(&review_margins)
    .bind(&review_probabilities)
    .execute(pool)
    .await?;
    Ok(())
}

/// A stored transcript's first prediction, as POST /classify answered it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredAnswer {
    pub transcript_id: Uuid,
    pub prediction_id: Uuid,
    pub model_version: String,
    pub outputs: serde_json::Value,
    pub latency_ms: f32,
    pub request_digest: Option<Vec<u8>>,
}

/// The stored answers of the transcripts `ids`, in the order of `ids`; ids not stored are
/// left out.
pub async fn stored_answers(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<StoredAnswer>, StoreError> {
    let rows = sqlx::query_as(
        "SELECT DISTINCT ON (w.ord) t.id AS transcript_id, p.id AS prediction_id,
                p.model_version, p.outputs, p.latency_ms, t.request_digest
         FROM UNNEST($1::uuid[]) WITH ORDINALITY AS w(id, ord)
         JOIN transcripts t ON t.id = w.id
         JOIN predictions p ON p.transcript_id = t.id
         ORDER BY w.ord, p.created_at",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct TranscriptRow {
    pub id: Uuid,
    pub call_id: Option<String>,
    pub text: String,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct PredictionRow {
    pub id: Uuid,
    pub model_version: String,
    pub outputs: serde_json::Value,
    pub latency_ms: f32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct LabelRow {
    pub id: i64,
    pub task: String,
    pub label: String,
    pub source: String,
    pub annotator: Option<String>,
    pub created_at: DateTime<Utc>,
    pub superseded_at: Option<DateTime<Utc>>,
}

/// A transcript with every prediction and label (current and superseded) it has.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TranscriptDetail {
    #[serde(flatten)]
    pub transcript: TranscriptRow,
    pub predictions: Vec<PredictionRow>,
    pub labels: Vec<LabelRow>,
}

pub async fn get_detail(pool: &PgPool, id: Uuid) -> Result<Option<TranscriptDetail>, StoreError> {
    let transcript: Option<TranscriptRow> = sqlx::query_as(
        "SELECT id, call_id, text, metadata, created_at FROM transcripts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(transcript) = transcript else {
        return Ok(None);
    };
    let predictions = sqlx::query_as(
        "SELECT id, model_version, outputs, latency_ms, created_at FROM predictions
         WHERE transcript_id = $1 ORDER BY created_at, id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let labels = sqlx::query_as(
        "SELECT id, task, label, source, annotator, created_at, superseded_at FROM labels
         WHERE transcript_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(Some(TranscriptDetail {
        transcript,
        predictions,
        labels,
    }))
}

/// Whether a transcript with this id exists.
pub async fn exists(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    let row: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM transcripts WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// The transcript a prediction was made for.
pub async fn by_prediction(pool: &PgPool, prediction_id: Uuid) -> Result<Option<Uuid>, StoreError> {
    let row: Option<(Uuid,)> =
        sqlx::query_as("SELECT transcript_id FROM predictions WHERE id = $1")
            .bind(prediction_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|r| r.0))
}

/// The most recent `limit` transcripts whose call id is one of `call_ids`, newest first.
pub async fn latest_for_call(
    pool: &PgPool,
    call_ids: &[&str],
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM transcripts WHERE call_id = ANY($1)
         ORDER BY created_at DESC, id LIMIT $2",
    )
    .bind(call_ids)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// How many predictions are stored (for the load benchmark's check and tests).
pub async fn count_predictions(pool: &PgPool) -> Result<i64, StoreError> {
    let row: (i64,) = sqlx::query_as("SELECT count(*) FROM predictions")
        .fetch_one(pool)
        .await?;
    Ok(row.0)
}

/// The newest `limit` stored transcript texts (for pretraining on what the service saw).
pub async fn newest_texts(pool: &PgPool, limit: i64) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT text FROM transcripts ORDER BY created_at DESC LIMIT $1")
            .bind(limit)
            .fetch_all(pool)
            .await?,
    )
}

/// A stored transcript's text and ids, read for redaction.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredText {
    pub id: Uuid,
    pub text: String,
    pub call_id: Option<String>,
    pub source_id: Option<String>,
}

/// A transcript's redacted text and ids (`None`: keep what is stored).
#[derive(Debug, Clone, Default)]
pub struct RedactedRow {
    pub text: Option<String>,
    pub call_id: Option<String>,
    pub source_id: Option<String>,
}

/// Locks and returns the next `limit` transcripts (by id) that redactor `version` has not
/// rewritten yet; rows another `voc redact` holds are skipped.
pub async fn lock_unredacted(
    conn: &mut sqlx::PgConnection,
    version: i16,
    limit: i64,
) -> Result<Vec<StoredText>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, text, call_id, source_id FROM transcripts WHERE redaction_version < $1
         ORDER BY redaction_version, id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(version)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// Marks `ids` as rewritten by redactor `version`, replacing the text, call id and source
/// id of those given new ones (`None` keeps what is stored).
pub async fn save_redacted(
    conn: &mut sqlx::PgConnection,
    version: i16,
    ids: &[Uuid],
    rows: &[RedactedRow],
) -> Result<(), StoreError> {
    let texts: Vec<Option<&str>> = rows.iter().map(|r| r.text.as_deref()).collect();
    let call_ids: Vec<Option<&str>> = rows.iter().map(|r| r.call_id.as_deref()).collect();
    let source_ids: Vec<Option<&str>> = rows.iter().map(|r| r.source_id.as_deref()).collect();
    sqlx::query(
        "UPDATE transcripts t SET text = COALESCE(u.text, t.text),
             call_id = COALESCE(u.call_id, t.call_id),
             source_id = COALESCE(u.source_id, t.source_id),
             redaction_version = $5
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(id, text, call_id, source_id)
         WHERE t.id = u.id",
    )
    .bind(ids)
    .bind(&texts)
    .bind(&call_ids)
    .bind(&source_ids)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How many transcripts redactor `version` has not rewritten yet.
pub async fn count_unredacted(pool: &PgPool, version: i16) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM transcripts WHERE redaction_version < $1")
            .bind(version)
            .fetch_one(pool)
            .await?,
    )
}

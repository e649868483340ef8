//! The review queue's tables: `review_items` (one row per classified transcript and task,
//! written with the prediction) and `review_leases` (who was shown what, until when, and how
//! it ended). Every call takes `now` from its caller, so lease expiry is tested by passing a
//! later time rather than by waiting.
//!
//! Choosing and leasing happen in one transaction under a per-task advisory lock, so two
//! annotators asking at the same moment are served one after the other and never get the
//! same item beyond the overlap.

use super::labels::{record_in, LabelOutcome, NewLabel};
use super::StoreError;
use crate::review::queue::{Finished, QueueSettings, Strategy};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An item shown to one annotator.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Lease {
    pub id: Uuid,
    pub transcript_id: Uuid,
    pub task: String,
    pub annotator: String,
    pub strategy: String,
    pub leased_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub finished: Option<String>,
    pub label: Option<String>,
}

impl Lease {
    pub fn strategy(&self) -> Strategy {
        Strategy::parse(&self.strategy).unwrap_or_default()
    }

    pub fn finished(&self) -> Option<Finished> {
        self.finished.as_deref().and_then(Finished::parse)
    }

    /// Whether the item is still held for its annotator at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.finished.is_none() && self.expires_at > now
    }
}

/// Who asks for which task's next item, how, and when.
#[derive(Debug, Clone)]
pub struct NextItem<'a> {
    pub task: &'a str,
    pub annotator: &'a str,
    pub strategy: Strategy,
    pub settings: QueueSettings,
    pub now: DateTime<Utc>,
}

const LEASE_COLUMNS: &str =
    "id, transcript_id, task, annotator, strategy, leased_at, expires_at, finished, label";

/// The annotator's open lease for the task if they hold one (a reload shows the same item),
/// else a new lease on the best item `strategy` finds; `None` when nothing waits.
pub async fn next(pool: &PgPool, ask: &NextItem<'_>) -> Result<Option<Lease>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('review/' || $1, 0))")
        .bind(ask.task)
        .execute(&mut *tx)
        .await?;
    if let Some(held) = held_lease(&mut tx, ask).await? {
        tx.commit().await?;
        return Ok(Some(held));
    }
    let Some(transcript_id) = choose(&mut tx, ask).await? else {
        tx.commit().await?;
        return Ok(None);
    };
    let expires_at = ask.now + lease_length(ask.settings);
    let lease: Lease = sqlx::query_as(&format!(
        "INSERT INTO review_leases (id, transcript_id, task, annotator, strategy, leased_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {LEASE_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(transcript_id)
    .bind(ask.task)
    .bind(ask.annotator)
    .bind(ask.strategy.as_str())
    .bind(ask.now)
    .bind(expires_at)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(lease))
}

fn lease_length(settings: QueueSettings) -> chrono::Duration {
    chrono::Duration::from_std(settings.lease_for).unwrap_or(chrono::Duration::minutes(5))
}

async fn held_lease(
    tx: &mut PgConnection,
    ask: &NextItem<'_>,
) -> Result<Option<Lease>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {LEASE_COLUMNS} FROM review_leases
         WHERE annotator = $1 AND task = $2 AND finished IS NULL AND expires_at > $3
         ORDER BY leased_at DESC LIMIT 1"
    ))
    .bind(ask.annotator)
    .bind(ask.task)
    .bind(ask.now)
    .fetch_optional(&mut *tx)
    .await?)
}

/// Conditions every candidate item `r` meets: this annotator has not labeled or skipped it,
/// and the annotators holding it now plus those who labeled it stay under the overlap
/// (`$2` annotator, `$3` now, `$4` overlap).
const AVAILABLE: &str = "
    NOT EXISTS (SELECT 1 FROM review_leases x
                WHERE x.transcript_id = r.transcript_id AND x.task = r.task
                  AND x.annotator = $2 AND x.finished IS NOT NULL)
    AND r.labeled + (SELECT count(*) FROM review_leases x
                     WHERE x.transcript_id = r.transcript_id AND x.task = r.task
                       AND x.finished IS NULL AND x.expires_at > $3) < $4";

/// Not labeled by this annotator through any path (`POST /feedback` included).
const NOT_MINE: &str = "
    NOT EXISTS (SELECT 1 FROM labels l
                WHERE l.transcript_id = r.transcript_id AND l.task = r.task
                  AND l.annotator = $2 AND l.superseded_at IS NULL)";

/// The query that finds the next item for `strategy` among items nobody has labeled yet
/// (`started` false) or items some annotators labeled and the overlap wants more of
/// (`$1` task, `$2` annotator, `$3` now, `$4` the overlap, or for `disagreement` the most
/// annotators a disagreement is put to).
/// The fresh queries read the partial indexes of migration 0010 in their order and stop at
/// the first available row.
pub fn candidate_query(strategy: Strategy, started: bool) -> String {
    let order = match strategy {
        Strategy::Uncertain => "r.margin, r.transcript_id",
        Strategy::Random => "r.sample_key, r.transcript_id",
        Strategy::Recent | Strategy::Disagreement => "r.created_at DESC, r.transcript_id",
    };
    if strategy == Strategy::Disagreement {
        return format!(
            "SELECT r.transcript_id FROM review_items r
             WHERE r.task = $1 AND r.labeled > 0 AND r.labeled < $4
               AND {NOT_MINE}
               AND NOT EXISTS (SELECT 1 FROM review_leases x
                               WHERE x.transcript_id = r.transcript_id AND x.task = r.task
                                 AND ((x.annotator = $2 AND x.finished IS NOT NULL)
                                      OR (x.finished IS NULL AND x.expires_at > $3)))
               AND EXISTS (SELECT 1 FROM labels l
                           WHERE l.transcript_id = r.transcript_id AND l.task = r.task
                             AND l.superseded_at IS NULL AND l.label <> r.guess)
             ORDER BY (SELECT count(DISTINCT l.label) FROM labels l
                       WHERE l.transcript_id = r.transcript_id AND l.task = r.task
                         AND l.superseded_at IS NULL) DESC, {order}
             LIMIT 1"
        );
    }
    let which = if started {
        format!("r.labeled > 0 AND {NOT_MINE}")
    } else {
        "r.labeled = 0".to_string()
    };
    format!(
        "SELECT r.transcript_id FROM review_items r
         WHERE r.task = $1 AND {which} AND {AVAILABLE}
         ORDER BY {order}
         LIMIT 1"
    )
}

/// Most annotators a disagreement is put to (enough for a majority of three).
pub const DISAGREEMENT_MAX_LABELS: i64 = 3;

/// With an overlap above one, items some annotators already labeled come first, so that
/// items reach their overlap (and agreement can be measured) before new ones are opened.
async fn choose(tx: &mut PgConnection, ask: &NextItem<'_>) -> Result<Option<Uuid>, StoreError> {
    let passes: &[bool] = match (ask.strategy, ask.settings.overlap) {
        (Strategy::Disagreement, _) => &[true],
        (_, 0 | 1) => &[false],
        _ => &[true, false],
    };
    for &started in passes {
        let most = match ask.strategy {
            Strategy::Disagreement => DISAGREEMENT_MAX_LABELS,
            _ => i64::from(ask.settings.overlap.max(1)),
        };
        let found: Option<(Uuid,)> = sqlx::query_as(&candidate_query(ask.strategy, started))
            .bind(ask.task)
            .bind(ask.annotator)
            .bind(ask.now)
            .bind(most)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some((id,)) = found {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Why a lease could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("no lease {0} for this annotator")]
    NotFound(Uuid),
    #[error("lease {id} is already {how}; undo it first")]
    AlreadyFinished { id: Uuid, how: &'static str },
    #[error("lease {0} has nothing to undo: it is still open")]
    NotFinished(Uuid),
    #[error("the item of lease {0} was skipped and has since been given to another annotator")]
    TakenSince(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LeaseError {
    fn from(e: sqlx::Error) -> LeaseError {
        LeaseError::Store(e.into())
    }
}

/// The lease `id`, locked, when `annotator` holds it (`None` for an admin acting on any).
async fn lock_lease(
    tx: &mut PgConnection,
    id: Uuid,
    annotator: Option<&str>,
) -> Result<Lease, LeaseError> {
    let lease: Option<Lease> = sqlx::query_as(&format!(
        "SELECT {LEASE_COLUMNS} FROM review_leases WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    match lease {
        Some(l) if annotator.is_none_or(|a| a == l.annotator) => Ok(l),
        _ => Err(LeaseError::NotFound(id)),
    }
}

/// The lease `id` when `annotator` holds it (`None`: an admin, who may see any).
pub async fn get(
    pool: &PgPool,
    id: Uuid,
    annotator: Option<&str>,
) -> Result<Option<Lease>, StoreError> {
    let lease: Option<Lease> = sqlx::query_as(&format!(
        "SELECT {LEASE_COLUMNS} FROM review_leases WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(lease.filter(|l| annotator.is_none_or(|a| a == l.annotator)))
}

fn refuse_finished(lease: &Lease) -> Result<(), LeaseError> {
    match lease.finished() {
        Some(f) => Err(LeaseError::AlreadyFinished {
            id: lease.id,
            how: f.as_str(),
        }),
        None => Ok(()),
    }
}

/// Records the annotator's label for the leased item and closes the lease, in one
/// transaction. A label sent after the lease expired is still kept: it is a person's work.
pub async fn label(
    pool: &PgPool,
    id: Uuid,
    annotator: Option<&str>,
    label: &str,
    now: DateTime<Utc>,
) -> Result<(Lease, LabelOutcome), LeaseError> {
    let mut tx = pool.begin().await?;
    let lease = lock_lease(&mut tx, id, annotator).await?;
    refuse_finished(&lease)?;
    let outcome = record_in(
        &mut tx,
        &[NewLabel {
            transcript_id: lease.transcript_id,
            task: &lease.task,
            label,
            source: "feedback",
            annotator: Some(&lease.annotator),
        }],
    )
    .await?[0];
    let lease = finish(&mut tx, id, Some(Finished::Labeled), Some(label), now, None).await?;
    tx.commit().await?;
    Ok((lease, outcome))
}

/// Gives the leased item back unlabeled; it will not be shown to this annotator again.
pub async fn skip(
    pool: &PgPool,
    id: Uuid,
    annotator: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Lease, LeaseError> {
    let mut tx = pool.begin().await?;
    let lease = lock_lease(&mut tx, id, annotator).await?;
    refuse_finished(&lease)?;
    let lease = finish(&mut tx, id, Some(Finished::Skipped), None, now, None).await?;
    tx.commit().await?;
    Ok(lease)
}

/// Takes back how a lease ended: a label given through it is withdrawn (marked superseded,
/// so it is history and no longer trains or counts), and the lease is open again for
/// `settings.lease_for` from `now`, so the annotator sees the item again.
pub async fn undo(
    pool: &PgPool,
    id: Uuid,
    annotator: Option<&str>,
    settings: QueueSettings,
    now: DateTime<Utc>,
) -> Result<Lease, LeaseError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('review/' || task, 0)) FROM review_leases WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let lease = lock_lease(&mut tx, id, annotator).await?;
    match lease.finished() {
        None => return Err(LeaseError::NotFinished(id)),
        Some(Finished::Labeled) => withdraw_label(&mut tx, &lease, now).await?,
        Some(Finished::Skipped) => {
            if taken_by_others(&mut tx, &lease, now).await? {
                return Err(LeaseError::TakenSince(id));
            }
        }
    }
    release_others(&mut tx, &lease, now).await?;
    let until = now + lease_length(settings);
    let lease = finish(&mut tx, id, None, None, now, Some(until)).await?;
    tx.commit().await?;
    Ok(lease)
}

/// Gives back the other items the annotator holds open for the task (the next one they were
/// shown after the one being undone), so the undone item is what they see next.
async fn release_others(
    tx: &mut PgConnection,
    lease: &Lease,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM review_leases
         WHERE annotator = $1 AND task = $2 AND id <> $3 AND finished IS NULL AND expires_at > $4",
    )
    .bind(&lease.annotator)
    .bind(&lease.task)
    .bind(lease.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn withdraw_label(
    tx: &mut PgConnection,
    lease: &Lease,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE labels SET superseded_at = $5
         WHERE transcript_id = $1 AND task = $2 AND annotator = $3 AND label = $4
           AND superseded_at IS NULL",
    )
    .bind(lease.transcript_id)
    .bind(&lease.task)
    .bind(&lease.annotator)
    .bind(&lease.label)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn taken_by_others(
    tx: &mut PgConnection,
    lease: &Lease,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM review_leases
         WHERE transcript_id = $1 AND task = $2 AND annotator <> $3
           AND (finished = 'labeled' OR (finished IS NULL AND expires_at > $4))",
    )
    .bind(lease.transcript_id)
    .bind(&lease.task)
    .bind(&lease.annotator)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    Ok(n > 0)
}

/// Sets how the lease ended (`None` reopens it until `reopen_until`).
async fn finish(
    tx: &mut PgConnection,
    id: Uuid,
    how: Option<Finished>,
    label: Option<&str>,
    now: DateTime<Utc>,
    reopen_until: Option<DateTime<Utc>>,
) -> Result<Lease, StoreError> {
    Ok(sqlx::query_as(&format!(
        "UPDATE review_leases
         SET finished = $2, label = $3, finished_at = CASE WHEN $2 IS NULL THEN NULL ELSE $4 END,
             expires_at = COALESCE($5, expires_at)
         WHERE id = $1 RETURNING {LEASE_COLUMNS}"
    ))
    .bind(id)
    .bind(how.map(Finished::as_str))
    .bind(label)
    .bind(now)
    .bind(reopen_until)
    .fetch_one(&mut *tx)
    .await?)
}

/// How many items wait in one task's queue.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct QueueCounts {
    pub task: String,
    /// Classified and labeled by nobody: what `uncertain`, `random` and `recent` draw from.
    pub unlabeled: i64,
    /// Labeled by some annotators, fewer than the overlap asks for.
    pub wanting_more: i64,
    /// Labeled, and some label differs from the model's guess or from another's: what
    /// `disagreement` draws from (below its three-annotator cap).
    pub disagreements: i64,
    /// Leased to an annotator right now.
    pub leased: i64,
    /// Labeled by at least one annotator.
    pub labeled: i64,
    /// Unlabeled items not yet scored by the active version (the rescoring thread's backlog).
    pub rescore_pending: i64,
}

/// Per task, how many items wait, are leased and are done.
pub async fn counts(
    pool: &PgPool,
    settings: QueueSettings,
    active_version: &str,
    now: DateTime<Utc>,
) -> Result<Vec<QueueCounts>, StoreError> {
    let rows: Vec<(String, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT r.task,
                count(*) FILTER (WHERE r.labeled = 0),
                count(*) FILTER (WHERE r.labeled > 0 AND r.labeled < $1),
                count(*) FILTER (WHERE r.labeled > 0 AND r.labeled < $3 AND EXISTS (
                    SELECT 1 FROM labels l
                    WHERE l.transcript_id = r.transcript_id AND l.task = r.task
                      AND l.superseded_at IS NULL AND l.label <> r.guess)),
                (SELECT count(*) FROM review_leases x
                 WHERE x.task = r.task AND x.finished IS NULL AND x.expires_at > $2),
                count(*) FILTER (WHERE r.labeled > 0),
                count(*) FILTER (WHERE r.labeled = 0 AND r.model_version <> $4)
         FROM review_items r GROUP BY r.task ORDER BY r.task",
    )
    .bind(i64::from(settings.overlap.max(1)))
    .bind(now)
    .bind(DISAGREEMENT_MAX_LABELS)
    .bind(active_version)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(task, unlabeled, wanting_more, disagreements, leased, labeled, rescore_pending)| {
                QueueCounts {
                    task,
                    unlabeled,
                    wanting_more,
                    disagreements,
                    leased,
                    labeled,
                    rescore_pending,
                }
            },
        )
        .collect())
}

/// What a leased item shows: the transcript and the prediction it was queued with.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeasedItem {
    pub text: String,
    pub call_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub model_version: String,
    pub guess: String,
    pub margin: f32,
    /// `{label: p}` for the task under `model_version`.
    pub probabilities: serde_json::Value,
    /// `{task: {label, confidence, probabilities}}` of the transcript's first prediction
    /// (when it was classified).
    pub outputs: serde_json::Value,
}

pub async fn item(pool: &PgPool, lease: &Lease) -> Result<Option<LeasedItem>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.text, t.call_id, t.created_at, r.model_version, r.guess, r.margin, r.probabilities,
                COALESCE((SELECT p.outputs FROM predictions p WHERE p.transcript_id = t.id
                          ORDER BY p.created_at LIMIT 1), '{}'::jsonb) AS outputs
         FROM review_items r JOIN transcripts t ON t.id = r.transcript_id
         WHERE r.transcript_id = $1 AND r.task = $2",
    )
    .bind(lease.transcript_id)
    .bind(&lease.task)
    .fetch_optional(pool)
    .await?)
}

/// Up to `limit` transcripts (id, text) with an unlabeled item scored by a version other
/// than `version`, oldest first (`<` or `>` rather than `<>`, so the partial index on the
/// unlabeled items' versions answers it with two range scans).
pub async fn stale(
    pool: &PgPool,
    version: &str,
    limit: i64,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.text FROM transcripts t
         WHERE t.id IN (SELECT DISTINCT r.transcript_id FROM review_items r
                        WHERE r.labeled = 0
                          AND (r.model_version < $1 OR r.model_version > $1)
                        LIMIT $2)
         ORDER BY t.created_at, t.id",
    )
    .bind(version)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Stores `version`'s guesses for the given transcripts' unlabeled items (labeled items keep
/// the guess they were labeled against); a task the older version did not have joins the
/// queue.
pub async fn rescore(
    pool: &PgPool,
    version: &str,
    rows: &[(Uuid, Vec<super::transcripts::ReviewGuess>)],
) -> Result<(), StoreError> {
    let (mut ids, mut tasks, mut guesses, mut margins, mut probabilities) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, row) in rows {
        for g in row {
            ids.push(*id);
            tasks.push(g.task.as_str());
            guesses.push(g.guess.as_str());
            margins.push(g.margin);
            probabilities.push(g.probabilities.as_str());
        }
    }
    sqlx::query(
        "INSERT INTO review_items (transcript_id, task, model_version, guess, margin, probabilities, labeled)
         SELECT u.t, u.task, $6, u.g, u.m, u.p::jsonb,
                (SELECT count(*) FROM labels l WHERE l.transcript_id = u.t AND l.task = u.task
                   AND l.superseded_at IS NULL)
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::real[], $5::text[]) AS u(t, task, g, m, p)
         ON CONFLICT (transcript_id, task) DO UPDATE
         SET model_version = EXCLUDED.model_version, guess = EXCLUDED.guess,
             margin = EXCLUDED.margin, probabilities = EXCLUDED.probabilities
         WHERE review_items.labeled = 0",
    )
    .bind(&ids)
    .bind(&tasks)
    .bind(&guesses)
    .bind(&margins)
    .bind(&probabilities)
    .bind(version)
    .execute(pool)
    .await?;
    Ok(())
}

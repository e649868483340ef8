//! The `training_runs` table: fine-tuning runs from request to decision, and the advisory
//! lock that lets one process at a time (across every replica on the database) run one.

use super::StoreError;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// The advisory-lock key of the training slot ("voc-tr" in ASCII).
const TRAINING_LOCK_KEY: i64 = 0x766f_632d_7472;

/// Where a run is in its life: `queued` and `running` are open, the rest are ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Asked for by hand, not started yet.
    Queued,
    Running,
    /// The gate passed and the candidate went live.
    Promoted,
    /// The gate kept the parent.
    Rejected,
    /// The gate passed, but another version was activated while the run trained.
    Superseded,
    Failed,
    Cancelled,
}

impl RunState {
    /// Every state, in the order the API documents them.
    pub const ALL: [RunState; 7] = [
        RunState::Queued,
        RunState::Running,
        RunState::Promoted,
        RunState::Rejected,
        RunState::Superseded,
        RunState::Failed,
        RunState::Cancelled,
    ];

    /// The states a run can end in.
    pub const ENDS: [RunState; 5] = [
        RunState::Promoted,
        RunState::Rejected,
        RunState::Superseded,
        RunState::Failed,
        RunState::Cancelled,
    ];

    /// The name stored in Postgres and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Promoted => "promoted",
            RunState::Rejected => "rejected",
            RunState::Superseded => "superseded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Whether the run has not ended yet.
    pub fn is_open(self) -> bool {
        matches!(self, RunState::Queued | RunState::Running)
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Enough labels arrived since the last run.
    Labels,
    /// The interval passed since the last run and some label arrived.
    Interval,
    /// Asked for with `POST /training-runs`.
    Manual,
}

impl Trigger {
    pub const ALL: [Trigger; 3] = [Trigger::Labels, Trigger::Interval, Trigger::Manual];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Labels => "labels",
            Trigger::Interval => "interval",
            Trigger::Manual => "manual",
        }
    }
}

/// A state or trigger name in `training_runs` that this version does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown training run {what} '{value}' in the database")]
pub struct UnknownName {
    what: &'static str,
    value: String,
}

impl TryFrom<String> for RunState {
    type Error = UnknownName;
    fn try_from(value: String) -> Result<RunState, UnknownName> {
        RunState::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or(UnknownName {
                what: "state",
                value,
            })
    }
}

impl TryFrom<String> for Trigger {
    type Error = UnknownName;
    fn try_from(value: String) -> Result<Trigger, UnknownName> {
        Trigger::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
            .ok_or(UnknownName {
                what: "trigger",
                value,
            })
    }
}

/// A run as stored, and as `GET /training-runs` shows it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct TrainingRun {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub state: RunState,
    #[sqlx(try_from = "String")]
    pub trigger: Trigger,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub owner: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub label_watermark: Option<i64>,
    pub parent_version: Option<String>,
    pub candidate_version: Option<String>,
    pub snapshot: serde_json::Value,
    pub progress: serde_json::Value,
    pub evaluation: Option<serde_json::Value>,
    pub reason: Option<String>,
    pub cancel_requested: bool,
}

const COLUMNS: &str = "id, state, trigger, requested_at, started_at, finished_at, owner, \
     heartbeat_at, label_watermark, parent_version, candidate_version, snapshot, progress, \
     evaluation, reason, cancel_requested";

/// Takes the training slot on `conn` without waiting; false when another session holds it.
/// The lock lives as long as the connection (a killed process releases it).
pub async fn try_lock(conn: &mut PgConnection) -> Result<bool, StoreError> {
    let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
        .bind(TRAINING_LOCK_KEY)
        .fetch_one(conn)
        .await?;
    Ok(locked)
}

pub async fn unlock(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TRAINING_LOCK_KEY)
        .execute(conn)
        .await?;
    Ok(())
}

/// The server process id of the session holding the training lock in this database, if
/// any (an advisory lock on one bigint key shows in `pg_locks` as its high and low 32 bits).
pub async fn lock_holder(pool: &PgPool) -> Result<Option<i32>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT pid FROM pg_locks
         WHERE locktype = 'advisory' AND granted AND objsubid = 1
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND classid::bigint = $1 AND objid::bigint = $2",
    )
    .bind(TRAINING_LOCK_KEY >> 32)
    .bind(TRAINING_LOCK_KEY & 0xffff_ffff)
    .fetch_optional(pool)
    .await?)
}

/// Whether the session on `conn` is still there (a lock held on a closed or terminated
/// connection is gone).
pub async fn connection_alive(conn: &mut PgConnection) -> bool {
    sqlx::query("SELECT 1").execute(conn).await.is_ok()
}

/// Marks runs left `running` by a process that died as failed: those whose last heartbeat
/// is older than `stale_after`. Call only while holding the training lock. Holding the lock
/// is not proof that nobody trains: a live owner whose lock connection was cut (a Postgres
/// restart, an idle timeout) keeps training and beating, and its run is left alone.
pub async fn fail_orphans(
    conn: &mut PgConnection,
    stale_after: std::time::Duration,
) -> Result<Vec<i64>, StoreError> {
    let ids: Vec<(i64,)> = sqlx::query_as(
        "UPDATE training_runs
         SET state = 'failed', finished_at = now(),
             reason = 'the process running it stopped before it finished (owner ' || COALESCE(owner, '?') || ')'
         WHERE state = 'running'
           AND (heartbeat_at IS NULL OR heartbeat_at < now() - make_interval(secs => $1))
         RETURNING id",
    )
    .bind(stale_after.as_secs_f64())
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(|r| r.0).collect())
}

/// Marks the runs `owner` is running as failed with `reason` (a process stopping cleanly).
pub async fn fail_owned(pool: &PgPool, owner: &str, reason: &str) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE training_runs SET state = 'failed', finished_at = now(), reason = $2
         WHERE state = 'running' AND owner = $1",
    )
    .bind(owner)
    .bind(reason)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Queues a run asked for by hand. When a run is already queued or running, returns that
/// one and `false` instead.
pub async fn request(pool: &PgPool, trigger: Trigger) -> Result<(TrainingRun, bool), StoreError> {
    let inserted: Option<TrainingRun> = sqlx::query_as(&format!(
        "INSERT INTO training_runs (trigger) VALUES ($1)
         ON CONFLICT ((true)) WHERE state IN ('queued', 'running') DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(trigger.as_str())
    .fetch_optional(pool)
    .await?;
    if let Some(run) = inserted {
        return Ok((run, true));
    }
    match open(pool).await? {
        Some(run) => Ok((run, false)),
        // The open run ended between the two statements: ask again.
        None => Box::pin(request(pool, trigger)).await,
    }
}

/// The queued or running run, if any.
pub async fn open(pool: &PgPool) -> Result<Option<TrainingRun>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM training_runs WHERE state IN ('queued', 'running')"
    ))
    .fetch_optional(pool)
    .await?)
}

/// What a run starts from.
pub struct RunStart<'a> {
    /// Used when no run is queued (a queued run keeps its own trigger).
    pub trigger: Trigger,
    pub owner: &'a str,
    pub label_watermark: i64,
    pub parent_version: &'a str,
}

/// Starts the queued run, or a new one when none is queued. Call while holding the lock.
pub async fn start(conn: &mut PgConnection, s: RunStart<'_>) -> Result<TrainingRun, StoreError> {
    let queued: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM training_runs WHERE state = 'queued'")
            .fetch_optional(&mut *conn)
            .await?;
    // A queued run keeps its own trigger (COALESCE with a NOT NULL column).
    let sql = match queued {
        Some(_) => format!(
            "UPDATE training_runs SET state = 'running', started_at = now(), heartbeat_at = now(),
                 owner = $1, label_watermark = $2, parent_version = $3,
                 trigger = COALESCE(trigger, $4)
             WHERE state = 'queued' RETURNING {COLUMNS}"
        ),
        None => format!(
            "INSERT INTO training_runs (state, trigger, started_at, heartbeat_at, owner,
                 label_watermark, parent_version)
             VALUES ('running', $4, now(), now(), $1, $2, $3) RETURNING {COLUMNS}"
        ),
    };
    Ok(sqlx::query_as(&sql)
        .bind(s.owner)
        .bind(s.label_watermark)
        .bind(s.parent_version)
        .bind(s.trigger.as_str())
        .fetch_one(conn)
        .await?)
}

pub async fn set_snapshot(
    pool: &PgPool,
    id: i64,
    snapshot: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE training_runs SET snapshot = $2 WHERE id = $1")
        .bind(id)
        .bind(snapshot)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records progress (when given) and a heartbeat; returns whether a cancel was asked for.
pub async fn heartbeat(
    pool: &PgPool,
    id: i64,
    progress: Option<&serde_json::Value>,
) -> Result<bool, StoreError> {
    let (cancel,): (bool,) = sqlx::query_as(
        "UPDATE training_runs SET heartbeat_at = now(), progress = COALESCE($2, progress)
         WHERE id = $1 RETURNING cancel_requested",
    )
    .bind(id)
    .bind(progress)
    .fetch_one(pool)
    .await?;
    Ok(cancel)
}

/// How a run ended.
pub struct RunEnd<'a> {
    /// One of [`RunState::ENDS`].
    pub state: RunState,
    pub candidate_version: Option<&'a str>,
    pub evaluation: Option<&'a serde_json::Value>,
    pub reason: &'a str,
}

/// Ends run `id` as `end` says, only if it is still `running`: a run another process
/// already ended (marked failed while this one was cut off) stays as it is. Returns whether
/// it was ended here.
pub async fn finish(pool: &PgPool, id: i64, end: RunEnd<'_>) -> Result<bool, StoreError> {
    debug_assert!(!end.state.is_open(), "a run cannot end as {:?}", end.state);
    let updated = sqlx::query(
        "UPDATE training_runs
         SET state = $2, candidate_version = COALESCE($3, candidate_version),
             evaluation = COALESCE($4, evaluation), reason = $5, finished_at = now()
         WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(end.state.as_str())
    .bind(end.candidate_version)
    .bind(end.evaluation)
    .bind(end.reason)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Whether run `id` is still `running`.
pub async fn is_running(pool: &PgPool, id: i64) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM training_runs WHERE id = $1 AND state = 'running')",
    )
    .bind(id)
    .fetch_one(pool)
    .await?)
}

/// Cancels a queued run at once, or asks a running one to stop. `None` when there is no
/// such run; a run that already ended is returned unchanged.
pub async fn cancel(pool: &PgPool, id: i64) -> Result<Option<TrainingRun>, StoreError> {
    sqlx::query(
        "UPDATE training_runs
         SET state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
             finished_at = CASE WHEN state = 'queued' THEN now() ELSE finished_at END,
             reason = CASE WHEN state = 'queued' THEN 'cancelled before it started' ELSE reason END,
             cancel_requested = CASE WHEN state IN ('queued', 'running') THEN true ELSE cancel_requested END
         WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await?;
    get(pool, id).await
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<TrainingRun>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM training_runs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The newest runs first.
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<TrainingRun>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM training_runs ORDER BY id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The label watermark and end time of the newest run that started, if any: labels after
/// the watermark are "new" for the scheduler.
pub async fn last_started(
    pool: &PgPool,
) -> Result<Option<(i64, Option<DateTime<Utc>>)>, StoreError> {
    let row: Option<(Option<i64>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT label_watermark, COALESCE(finished_at, started_at) FROM training_runs
         WHERE label_watermark IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(w, t)| (w.unwrap_or(0), t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_trigger_names_round_trip_and_an_unknown_one_is_named_in_the_error() {
        for state in RunState::ALL {
            assert_eq!(
                RunState::try_from(state.as_str().to_string()).unwrap(),
                state
            );
        }
        for trigger in Trigger::ALL {
            assert_eq!(
                Trigger::try_from(trigger.as_str().to_string()).unwrap(),
                trigger
            );
        }
        let e = RunState::try_from("paused".to_string()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown training run state 'paused' in the database"
        );
        assert!(RunState::ENDS.iter().all(|s| !s.is_open()));
    }
}

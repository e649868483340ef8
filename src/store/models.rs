//! The `model_versions` table: which versions exist and which one is active.

use super::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A model version as recorded in Postgres.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ModelVersionRow {
    pub version: String,
    /// The version's folder relative to the model store: each replica resolves it against
    /// its own `--store` (see [`folder_in`]).
    pub path: String,
    pub tasks: serde_json::Value,
    pub metrics: serde_json::Value,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    /// The gate's decision, for versions made by a training run.
    pub gate: Option<serde_json::Value>,
    /// When the retention sweep removed the folder of this rejected version.
    pub files_removed_at: Option<DateTime<Utc>>,
}

/// Where `row`'s folder is in the model store at `store`; `None` when the recorded path is
/// not a plain folder name (absolute, or climbing out with `..`).
pub fn folder_in(store: &std::path::Path, row: &ModelVersionRow) -> Option<std::path::PathBuf> {
    let relative = std::path::Path::new(&row.path);
    let mut parts = relative.components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(name)), None) => Some(store.join(name)),
        _ => None,
    }
}

/// What is known about a version folder when it is registered.
pub struct NewModelVersion<'a> {
    pub version: &'a str,
    pub path: &'a str,
    pub tasks: serde_json::Value,
    pub metrics: serde_json::Value,
}

/// Records a version (or refreshes its path, tasks and metrics).
pub async fn register(pool: &PgPool, v: NewModelVersion<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO model_versions (version, path, tasks, metrics) VALUES ($1, $2, $3, $4)
         ON CONFLICT (version) DO UPDATE
         SET path = EXCLUDED.path, tasks = EXCLUDED.tasks, metrics = EXCLUDED.metrics",
    )
    .bind(v.version)
    .bind(v.path)
    .bind(v.tasks)
    .bind(v.metrics)
    .execute(pool)
    .await?;
    Ok(())
}

/// Makes `version` the only active one; false when it is not registered.
pub async fn activate(pool: &PgPool, version: &str) -> Result<bool, StoreError> {
    Ok(matches!(
        activate_if(pool, version, None).await?,
        Activation::Activated
    ))
}

/// What [`activate_if`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    Activated,
    /// No such version is recorded.
    Missing,
    /// Another version became active since the caller looked (`now`: the active one).
    ActiveChanged {
        now: Option<String>,
    },
}

/// Records `version` as the active one, provided `expected` (when given) is still active:
/// a training run promotes its candidate only over the parent it was trained from, so a
/// rollback made while it trained stays. Activations are serialized by a transaction-scoped
/// advisory lock, so two at once never collide on the one-active index.
pub async fn activate_if(
    pool: &PgPool,
    version: &str,
    expected: Option<&str>,
) -> Result<Activation, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ACTIVATION_LOCK)
        .execute(&mut *tx)
        .await?;
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT version FROM model_versions WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Ok(Activation::Missing);
    }
    if let Some(expected) = expected {
        let now: Option<(String,)> =
            sqlx::query_as("SELECT version FROM model_versions WHERE active")
                .fetch_optional(&mut *tx)
                .await?;
        let now = now.map(|r| r.0);
        if now.as_deref() != Some(expected) {
            return Ok(Activation::ActiveChanged { now });
        }
    }
    sqlx::query("UPDATE model_versions SET active = false WHERE active AND version <> $1")
        .bind(version)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE model_versions SET active = true, activated_at = now()
         WHERE version = $1 AND NOT active",
    )
    .bind(version)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Activation::Activated)
}

/// Records `version` active only when no version is: the first start of a new database.
/// Returns whether it did.
pub async fn activate_if_none(pool: &PgPool, version: &str) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ACTIVATION_LOCK)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query(
        "UPDATE model_versions SET active = true, activated_at = now()
         WHERE version = $1 AND NOT EXISTS (SELECT 1 FROM model_versions WHERE active)",
    )
    .bind(version)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(done)
}

/// The advisory lock key that orders activations across processes ("vocactiv").
const ACTIVATION_LOCK: i64 = 0x766f_6361_6374_6976;

/// The version recorded active, if any.
pub async fn active_version(pool: &PgPool) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT version FROM model_versions WHERE active")
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| r.0))
}

/// Every recorded version, newest first.
pub async fn list(pool: &PgPool) -> Result<Vec<ModelVersionRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT version, path, tasks, metrics, active, created_at, activated_at, gate, files_removed_at
         FROM model_versions ORDER BY version DESC",
    )
    .fetch_all(pool)
    .await?)
}

/// One recorded version.
pub async fn get(pool: &PgPool, version: &str) -> Result<Option<ModelVersionRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT version, path, tasks, metrics, active, created_at, activated_at, gate, files_removed_at
         FROM model_versions WHERE version = $1",
    )
    .bind(version)
    .fetch_optional(pool)
    .await?)
}

/// The channel on which a process announces the version it made active.
pub const ACTIVATED_CHANNEL: &str = "voc_model_activated";

/// Tells every process listening on [`ACTIVATED_CHANNEL`] that `version` is now active.
pub async fn notify_activated(pool: &PgPool, version: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(ACTIVATED_CHANNEL)
        .bind(version)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records the gate's decision on a version a training run produced.
pub async fn set_gate(
    pool: &PgPool,
    version: &str,
    gate: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE model_versions SET gate = $2 WHERE version = $1")
        .bind(version)
        .bind(gate)
        .execute(pool)
        .await?;
    Ok(())
}

/// Versions the gate rejected (kept on disk, never served unless activated by hand).
pub async fn rejected(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT version FROM model_versions WHERE gate->>'decision' = 'rejected'")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// A LISTEN for activations on a connection of its own, made with the pool's settings but outside it: a
/// listener holds its connection for as long as it lives, and taking it from the pool would
/// leave requests one connection short for the life of the process.
pub async fn listen_activations(pool: &PgPool) -> Result<sqlx::postgres::PgListener, StoreError> {
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(pool.connect_options().as_ref().clone())
        .await?;
    let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
    listener.listen(ACTIVATED_CHANNEL).await?;
    Ok(listener)
}

/// Versions the gate rejected more than `age` ago that were never made active: the ones
/// whose folders the retention sweep removes.
pub async fn rejected_before(
    pool: &PgPool,
    age: std::time::Duration,
) -> Result<Vec<ModelVersionRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT version, path, tasks, metrics, active, created_at, activated_at, gate, files_removed_at
         FROM model_versions
         WHERE gate->>'decision' = 'rejected' AND NOT active AND activated_at IS NULL
           AND created_at < now() - make_interval(secs => $1)
         ORDER BY version",
    )
    .bind(age.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// Records that the folder of `version` was removed (the first sweep's time stays).
pub async fn mark_files_removed(pool: &PgPool, version: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE model_versions SET files_removed_at = now()
         WHERE version = $1 AND files_removed_at IS NULL",
    )
    .bind(version)
    .execute(pool)
    .await?;
    Ok(())
}

//! The `model_versions` table: which versions exist and which one is active.

use super::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A model version as recorded in Postgres.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ModelVersionRow {
    pub version: String,
    pub path: String,
    pub tasks: serde_json::Value,
    pub metrics: serde_json::Value,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
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
    let mut tx = pool.begin().await?;
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT version FROM model_versions WHERE version = $1 FOR UPDATE")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Ok(false);
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
    Ok(true)
}

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
        "SELECT version, path, tasks, metrics, active, created_at, activated_at
         FROM model_versions ORDER BY version DESC",
    )
    .fetch_all(pool)
    .await?)
}

/// One recorded version.
pub async fn get(pool: &PgPool, version: &str) -> Result<Option<ModelVersionRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT version, path, tasks, metrics, active, created_at, activated_at
         FROM model_versions WHERE version = $1",
    )
    .bind(version)
    .fetch_optional(pool)
    .await?)
}

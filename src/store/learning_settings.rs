//! Settings of the learning loop recorded once in Postgres, so that every process uses the
//! same value for the life of the database.

use super::StoreError;
use sqlx::PgPool;

const EVAL_SHARE: &str = "eval_share";

/// Records `wanted` as the frozen evaluation share unless one is recorded already, and
/// returns the recorded value (the first process's choice wins).
pub async fn record_eval_share(pool: &PgPool, wanted: f64) -> Result<f64, StoreError> {
    sqlx::query(
        "INSERT INTO learning_settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(EVAL_SHARE)
    .bind(wanted)
    .execute(pool)
    .await?;
    Ok(recorded_eval_share(pool).await?.unwrap_or(wanted))
}

/// The recorded frozen evaluation share, if a server recorded one.
pub async fn recorded_eval_share(pool: &PgPool) -> Result<Option<f64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT value FROM learning_settings WHERE name = $1")
            .bind(EVAL_SHARE)
            .fetch_optional(pool)
            .await?,
    )
}

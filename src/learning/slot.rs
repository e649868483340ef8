//! The training slot: a Postgres advisory lock, so that one run at a time trains across
//! every process on the database. The lock lives on a connection of its own, taken out of
//! the pool for the run's duration.

use crate::store::training_runs;
use crate::store::StoreError;
use sqlx::PgConnection;

pub struct TrainingSlot {
    conn: PgConnection,
}

impl TrainingSlot {
    /// Takes the slot without waiting; `None` when another session holds it.
    pub async fn try_take(pool: &sqlx::PgPool) -> Result<Option<TrainingSlot>, StoreError> {
        let mut conn = pool.acquire().await?.detach();
        if training_runs::try_lock(&mut conn).await? {
            Ok(Some(TrainingSlot { conn }))
        } else {
            let _ = sqlx::Connection::close(conn).await;
            Ok(None)
        }
    }

    /// The lock's connection: statements that must run under the lock go through it.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// When the lock's session is gone (Postgres restarted, the connection was cut), takes
    /// the lock again on a fresh connection so that the run keeps its single-writer
    /// guarantee. The run goes on either way: its heartbeat tells the others it is alive,
    /// and its end is recorded only if nobody ended it meanwhile.
    pub async fn keep(&mut self, pool: &sqlx::PgPool, run: i64) {
        if training_runs::connection_alive(&mut self.conn).await {
            return;
        }
        match TrainingSlot::try_take(pool).await {
            Ok(Some(fresh)) => {
                self.conn = fresh.conn;
                tracing::warn!(
                    run,
                    "the training lock's connection was lost; lock taken again"
                );
            }
            Ok(None) => tracing::warn!(
                run,
                "the training lock's connection was lost and another session holds the lock"
            ),
            Err(e) => {
                tracing::warn!(run, error = %e, "the training lock's connection was lost; cannot take it again yet")
            }
        }
    }

    /// Gives the slot back and closes its connection.
    pub async fn release(mut self) {
        let _ = training_runs::unlock(&mut self.conn).await;
        let _ = sqlx::Connection::close(self.conn).await;
        tracing::debug!("training slot released");
    }
}

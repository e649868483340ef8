//! Cleaning the model store: folders of versions whose writing was interrupted, and the
//! folders of versions the gate rejected once their retention period is over. Runs while
//! holding the training slot (only its holder writes versions).

use crate::store::{models, StoreError};
use std::path::Path;
use std::time::Duration;

/// Hidden `.tmp-*` folders are versions whose writing was interrupted: never loadable.
pub fn remove_partial_versions(store: &Path) {
    for entry in std::fs::read_dir(store).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") && entry.path().is_dir() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => tracing::warn!(folder = name, "removed a half-written model version"),
                Err(e) => {
                    tracing::warn!(folder = name, error = %e, "cannot remove a half-written model version")
                }
            }
        }
    }
}

/// Removes from `store` the folders of versions rejected more than `retention` ago and
/// never activated (an operator who tried one keeps it), and records each removal in
/// Postgres. Returns the versions whose folders this call removed.
pub async fn remove_expired_rejected(
    pool: &sqlx::PgPool,
    store: &Path,
    retention: Duration,
) -> Result<Vec<String>, StoreError> {
    let mut removed = Vec::new();
    for row in models::rejected_before(pool, retention).await? {
        let Some(dir) = models::folder_in(store, &row) else {
            continue;
        };
        if dir.is_dir() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(version = row.version, error = %e, "cannot remove a rejected version past its retention");
                continue;
            }
            tracing::info!(
                version = row.version,
                "removed a rejected version past its retention"
            );
            removed.push(row.version.clone());
        }
        models::mark_files_removed(pool, &row.version).await?;
    }
    Ok(removed)
}

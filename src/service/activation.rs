//! Making a model version live, in this process and in every other one on the database.
//!
//! [`activate`] loads the version off the inference thread, records it active in Postgres,
//! swaps it in between two batches and announces it with NOTIFY. [`spawn_follower`] is the
//! other side: it hears announcements (and, as a safety net, polls the active version) and
//! swaps the same version in. One mutex per process orders activations.

use super::AppState;
use crate::pipeline::LoadedModel;
use crate::store::models::{self, Activation, ModelVersionRow};
use crate::store::StoreError;
use sqlx::postgres::PgListener;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("no model version '{0}' in the store")]
    NotFound(String),
    #[error("cannot load version '{version}': {reason}")]
    Load { version: String, reason: String },
    #[error(
        "version '{version}' was not activated: it was trained from '{parent}', but '{}' is \
         active now (activated while it trained)", now.as_deref().unwrap_or("no version")
    )]
    Superseded {
        version: String,
        parent: String,
        now: Option<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes `version` (a folder of the store) the one every process serves.
pub async fn activate(state: &AppState, version: &str) -> Result<ModelVersionRow, ActivationError> {
    activate_over(state, version, None).await
}

/// [`activate`], but only while `parent` (when given) is still the active version: a
/// training run's candidate never replaces a version activated while it trained.
pub async fn activate_over(
    state: &AppState,
    version: &str,
    parent: Option<&str>,
) -> Result<ModelVersionRow, ActivationError> {
    let _order = state.activation.lock().await;
    // A folder copied into the store by hand becomes known here.
    super::register_store(&state.pool, &state.store_dir).await?;
    let row = models::get(&state.pool, version)
        .await?
        .ok_or_else(|| ActivationError::NotFound(version.to_string()))?;
    let model = load(state, &row).await.inspect_err(|e| {
        tracing::error!(version, error = %e, "refusing to activate a version that does not load; the current model keeps serving");
    })?;
    match models::activate_if(&state.pool, version, parent).await? {
        Activation::Activated => {}
        Activation::Missing => return Err(ActivationError::NotFound(version.to_string())),
        Activation::ActiveChanged { now } => {
            return Err(ActivationError::Superseded {
                version: version.to_string(),
                parent: parent.unwrap_or_default().to_string(),
                now,
            })
        }
    }
    swap(state, version, model).await?;
    if let Err(e) = models::notify_activated(&state.pool, version).await {
        tracing::warn!(error = %e, "could not announce the activation; other processes will notice on their next poll");
    }
    Ok(models::get(&state.pool, version).await?.unwrap_or(row))
}

/// Serves the version Postgres records active, if this process serves another. Returns
/// whether it swapped.
pub async fn follow_database(state: &AppState) -> Result<bool, ActivationError> {
    let _order = state.activation.lock().await;
    let Some(version) = models::active_version(&state.pool).await? else {
        return Ok(false);
    };
    if state.pipeline.active().version == version {
        return Ok(false);
    }
    let row = models::get(&state.pool, &version)
        .await?
        .ok_or_else(|| ActivationError::NotFound(version.clone()))?;
    let model = load(state, &row).await?;
    swap(state, &version, model).await?;
    tracing::info!(version, "following the version another process activated");
    Ok(true)
}

async fn load(state: &AppState, row: &ModelVersionRow) -> Result<LoadedModel, ActivationError> {
    let dir = models::folder_in(&state.store_dir, row).ok_or_else(|| ActivationError::Load {
        version: row.version.clone(),
        reason: format!(
            "its recorded path {:?} is not a folder name inside the store",
            row.path
        ),
    })?;
    state
        .pipeline
        .load(dir)
        .await
        .map_err(|e| ActivationError::Load {
            version: row.version.clone(),
            reason: e.to_string(),
        })
}

async fn swap(state: &AppState, version: &str, model: LoadedModel) -> Result<(), ActivationError> {
    state
        .pipeline
        .swap(model)
        .await
        .map(|_| ())
        .map_err(|e| ActivationError::Load {
            version: version.to_string(),
            reason: e.to_string(),
        })
}

/// Keeps this process on the active version: swaps on every NOTIFY from another process
/// and checks the database every `poll` in case a notification was missed. A process
/// pinned to a version (`--model-version`, `follow` false) keeps serving it.
pub fn spawn_follower(
    state: AppState,
    poll: Duration,
    follow: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !follow {
            tracing::info!("pinned to a model version: not following activations");
            return;
        }
        let mut listener: Option<PgListener> = None;
        let mut last_error: Option<String> = None;
        loop {
            if listener.is_none() {
                match models::listen_activations(&state.pool).await {
                    Ok(l) => listener = Some(l),
                    Err(e) => tracing::debug!(error = %e, "cannot LISTEN yet"),
                }
            }
            let heard = match listener.as_mut() {
                Some(l) => tokio::select! {
                    n = l.recv() => match n {
                        Ok(_) => true,
                        Err(e) => {
                            tracing::debug!(error = %e, "LISTEN connection lost");
                            listener = None;
                            false
                        }
                    },
                    _ = tokio::time::sleep(poll) => false,
                },
                None => {
                    tokio::time::sleep(poll).await;
                    false
                }
            };
            match follow_database(&state).await {
                Ok(_) => last_error = None,
                Err(e) => {
                    let message = e.to_string();
                    if last_error.as_deref() != Some(message.as_str()) {
                        tracing::error!(error = %message, heard, "cannot serve the active version; the current model keeps serving");
                    }
                    last_error = Some(message);
                }
            }
        }
    })
}

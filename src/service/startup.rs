//! Start-up: pick the model version to serve, record the store's versions in Postgres,
//! load the model and start the pipeline.

use super::{AppState, ServiceSettings};
use crate::metrics::Metrics;
use crate::model::{list_versions, read_manifest, Classifier};
use crate::pipeline::Pipeline;
use crate::store::{self, models::NewModelVersion};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "no model version in {store}: train one with `voc train --train FILE --store {store}` \
         (or run `bash scripts/run.sh`, which trains the demo model first)"
    )]
    NoModel { store: String },
    #[error("model version {version} is not in {store} (versions there: {available})")]
    UnknownVersion {
        version: String,
        store: String,
        available: String,
    },
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot start the inference thread: {0}")]
    Thread(#[from] std::io::Error),
}

fn version_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The folder to serve: `requested`, else `active_in_db` if it is in the store, else the newest.
pub fn choose_version(
    store_dir: &Path,
    requested: Option<&str>,
    active_in_db: Option<&str>,
) -> Result<PathBuf, StartError> {
    let versions = list_versions(store_dir);
    let find = |name: &str| versions.iter().find(|d| version_name(d) == name).cloned();
    if let Some(name) = requested {
        return find(name).ok_or_else(|| StartError::UnknownVersion {
            version: name.to_string(),
            store: store_dir.display().to_string(),
            available: versions
                .iter()
                .map(|d| version_name(d))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if let Some(name) = active_in_db {
        match find(name) {
            Some(dir) => return Ok(dir),
            None => tracing::warn!(
                version = name,
                "the version active in Postgres is not in the store; serving the newest"
            ),
        }
    }
    versions.last().cloned().ok_or_else(|| StartError::NoModel {
        store: store_dir.display().to_string(),
    })
}

/// Records every version folder of the store in `model_versions`.
pub async fn register_store(
    pool: &sqlx::PgPool,
    store_dir: &Path,
) -> Result<(), store::StoreError> {
    for dir in list_versions(store_dir) {
        register_version(pool, &dir).await?;
    }
    Ok(())
}

/// Records one version folder in `model_versions`; an unreadable one is skipped with a warning.
/// The path recorded is the folder's name inside the store, which every replica resolves
/// against its own `--store`: an absolute path would name this machine's folder only.
pub async fn register_version(pool: &sqlx::PgPool, dir: &Path) -> Result<(), store::StoreError> {
    let manifest = match read_manifest(dir) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "skipping an unreadable model version");
            return Ok(());
        }
    };
    let metrics = std::fs::read(dir.join(crate::model::version_dir::METRICS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    store::models::register(
        pool,
        NewModelVersion {
            version: &manifest.version,
            path: &version_name(dir),
            tasks: serde_json::to_value(&manifest.tasks).unwrap_or_default(),
            metrics,
        },
    )
    .await
}

/// Chooses and loads the model, records it active and starts the pipeline. Must run inside
/// a tokio runtime (the pipeline commits on it). The migrations must have been applied.
pub async fn prepare(
    settings: &ServiceSettings,
    pool: sqlx::PgPool,
) -> Result<(AppState, std::thread::JoinHandle<()>), StartError> {
    let active_in_db = store::models::active_version(&pool).await?;
    let dir = choose_version(
        &settings.store_dir,
        settings.model_version.as_deref(),
        active_in_db.as_deref(),
    )?;
    let device = settings.pipeline.device;
    let classifier = load_first_good(&pool, &settings.store_dir, dir, device).await?;
    register_store(&pool, &settings.store_dir).await?;
    record_first_active(&pool, &classifier, active_in_db.as_deref()).await?;
    tracing::info!(version = %classifier.manifest().version, dir = %classifier.dir().display(), "serving model version");
    let metrics = Arc::new(Metrics::default());
    let (pipeline, thread) = Pipeline::start(
        classifier,
        settings.pipeline.clone(),
        pool.clone(),
        metrics.clone(),
    )?;
    let state = AppState {
        pool,
        pipeline,
        metrics,
        keys: Arc::new(settings.keys.clone()),
        limits: settings.limits.clone(),
        store_dir: Arc::new(settings.store_dir.clone()),
        device,
        activation: Arc::new(tokio::sync::Mutex::new(())),
        learning_wake: Arc::new(tokio::sync::Notify::new()),
        redaction: settings.redaction,
        review: settings.review,
    };
    Ok((state, thread))
}

/// A replica's start never changes what the others serve: the version it serves is recorded
/// active only on a database that has no active version yet (the very first start). A pinned
/// `--model-version`, a missing active folder or a load failure serve another version here
/// and say so, leaving Postgres as it was.
async fn record_first_active(
    pool: &sqlx::PgPool,
    classifier: &Classifier,
    active_in_db: Option<&str>,
) -> Result<(), StartError> {
    let serving = classifier.manifest().version.as_str();
    match active_in_db {
        None => {
            store::models::activate_if_none(pool, serving).await?;
        }
        Some(active) if active != serving => tracing::warn!(
            serving,
            active,
            "this process serves another version than the one active in Postgres; the active version is left as it is"
        ),
        Some(_) => {}
    }
    Ok(())
}

/// Loads `chosen`; when it does not load (a corrupted or half-copied folder), says why and
/// falls back to the newest version that does, never to one the gate rejected.
async fn load_first_good(
    pool: &sqlx::PgPool,
    store_dir: &Path,
    chosen: PathBuf,
    device: tch::Device,
) -> Result<Classifier, StartError> {
    let load = |dir: PathBuf| async move {
        tokio::task::spawn_blocking(move || Classifier::load(&dir, device))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    let first_error = match load(chosen.clone()).await? {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    tracing::error!(dir = %chosen.display(), error = %first_error, "cannot load the chosen model version; trying the newest version that loads");
    let rejected = store::models::rejected(pool).await.unwrap_or_default();
    for dir in list_versions(store_dir).into_iter().rev() {
        if dir == chosen || rejected.contains(&version_name(&dir)) {
            continue;
        }
        match load(dir.clone()).await? {
            Ok(c) => {
                tracing::warn!(version = %c.manifest().version, "serving the newest loadable version instead");
                return Ok(c);
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot load this version either")
            }
        }
    }
    Err(first_error.into())
}

/// Starts the background tasks of `voc serve`: following activations made by other
/// processes, the training scheduler, and re-scoring the review queue under a new version.
pub fn start_background(
    state: &AppState,
    settings: &ServiceSettings,
) -> Vec<tokio::task::JoinHandle<()>> {
    if settings.review.rescore {
        let device = settings.pipeline.device;
        if let Err(e) = crate::pipeline::rescore::spawn(&state.pipeline, state.pool.clone(), device)
        {
            tracing::warn!(error = %e, "cannot start the review queue's rescoring thread");
        }
    }
    vec![
        super::activation::spawn_follower(
            state.clone(),
            settings.learning.poll,
            settings.model_version.is_none(),
        ),
        crate::learning::scheduler::spawn(state.learning_handle(), settings.learning.clone()),
    ]
}

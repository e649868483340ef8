//! Keeping the review queue ranked under the active model: after a new version goes live,
//! the unlabeled items scored by an older one are scored again, a page at a time, on a
//! thread of their own with a lowered priority and a copy of the model it owns, so serving
//! keeps the CPU. `uncertain` then ranks by what the model serving now is unsure about.

use super::writer::review_guesses;
use super::ActiveModel;
use crate::model::Classifier;
use crate::store::review;
use crate::store::StoreError;
use sqlx::PgPool;
use std::sync::{RwLock, Weak};
use std::time::Duration;

/// Transcripts scored per step.
pub const PAGE: i64 = 128;

/// How long the thread rests when nothing is stale, or after an error.
const IDLE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RescoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the model could not score the queue: {0}")]
    Model(String),
}

/// One step: scores under `classifier` the next `limit` transcripts with unlabeled items
/// that another version scored, and stores the new guesses and margins. Returns how many
/// transcripts it scored (0: the queue is current).
pub async fn rescore_page(
    pool: &PgPool,
    classifier: &Classifier,
    limit: i64,
) -> Result<usize, RescoreError> {
    let version = classifier.manifest().version.clone();
    let stale = review::stale(pool, &version, limit).await?;
    if stale.is_empty() {
        return Ok(0);
    }
    let texts: Vec<&str> = stale.iter().map(|(_, text)| text.as_str()).collect();
    let predictions = classifier
        .predict(&texts)
        .map_err(|e| RescoreError::Model(e.to_string()))?;
    let rows: Vec<_> = stale
        .iter()
        .zip(&predictions)
        .map(|((id, _), p)| (*id, review_guesses(p)))
        .collect();
    review::rescore(pool, &version, &rows).await?;
    Ok(rows.len())
}

/// Starts the rescoring thread for `pipeline`'s active model. It ends when the pipeline or
/// the pool is gone.
pub fn spawn(
    pipeline: &super::Pipeline,
    pool: PgPool,
    device: tch::Device,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let active = std::sync::Arc::downgrade(&pipeline.active);
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("voc-rescore".into())
        .spawn(move || {
            if let Err(e) = crate::thread_priority::lower_current_thread(10) {
                tracing::warn!(error = %e, "the rescoring thread could not lower its priority");
            }
            run(&active, &pool, device, &runtime);
        })
}

/// The active model now, or `None` once the pipeline is gone.
fn current(
    active: &Weak<RwLock<std::sync::Arc<ActiveModel>>>,
) -> Option<std::sync::Arc<ActiveModel>> {
    let lock = active.upgrade()?;
    let now = lock.read().ok()?.clone();
    Some(now)
}

fn run(
    active: &Weak<RwLock<std::sync::Arc<ActiveModel>>>,
    pool: &PgPool,
    device: tch::Device,
    runtime: &tokio::runtime::Handle,
) {
    let mut loaded: Option<Classifier> = None;
    while !pool.is_closed() {
        let Some(now) = current(active) else {
            return;
        };
        if loaded.as_ref().map(|c| c.manifest().version.as_str()) != Some(now.version.as_str()) {
            // A copy of the model is loaded only once there is something to score.
            match runtime.block_on(review::stale(pool, &now.version, 1)) {
                Ok(stale) if stale.is_empty() => {
                    std::thread::sleep(IDLE);
                    continue;
                }
                Ok(_) => {}
                Err(_) => {
                    std::thread::sleep(IDLE);
                    continue;
                }
            }
            match Classifier::load(&now.dir, device) {
                Ok(c) => loaded = Some(c),
                Err(e) => {
                    tracing::warn!(version = %now.version, error = %e, "rescoring: cannot load the active version");
                    std::thread::sleep(IDLE);
                    continue;
                }
            }
        }
        let Some(classifier) = loaded.as_ref() else {
            continue;
        };
        match runtime.block_on(rescore_page(pool, classifier, PAGE)) {
            Ok(0) => std::thread::sleep(IDLE),
            Ok(n) => {
                tracing::debug!(transcripts = n, version = %now.version, "review queue rescored")
            }
            Err(e) => {
                if !pool.is_closed() {
                    tracing::warn!(error = %e, "rescoring the review queue failed; retrying");
                }
                std::thread::sleep(IDLE);
            }
        }
    }
}

//! The service's side of the learning handle: what the training scheduler may ask of the
//! serving process (which version serves, record a new version, put one live).

use super::activation::{activate_over, ActivationError};
use super::AppState;
use crate::learning::handle::{BoxFuture, LearningHandle, Promotion, Served, Serving};
use crate::store::StoreError;
use std::path::Path;
use std::sync::Arc;

struct ServiceServing(AppState);

impl Serving for ServiceServing {
    fn served(&self) -> Served {
        let active = self.0.pipeline.active();
        Served {
            version: active.version.clone(),
            dir: active.dir.clone(),
        }
    }

    fn register<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(super::register_version(&self.0.pool, dir))
    }

    fn promote<'a>(&'a self, version: &'a str, parent: &'a str) -> BoxFuture<'a, Promotion> {
        Box::pin(async move {
            match activate_over(&self.0, version, Some(parent)).await {
                Ok(_) => Promotion::Promoted,
                Err(e @ ActivationError::Superseded { .. }) => Promotion::Superseded(e.to_string()),
                Err(e) => Promotion::Failed(e.to_string()),
            }
        })
    }
}

impl AppState {
    /// The handle the training scheduler runs with.
    pub fn learning_handle(&self) -> LearningHandle {
        LearningHandle {
            pool: self.pool.clone(),
            store_dir: self.store_dir.clone(),
            device: self.device,
            metrics: self.metrics.clone(),
            wake: self.learning_wake.clone(),
            serving: Arc::new(ServiceServing(self.clone())),
        }
    }
}

//! What the scheduler may reach of the service it runs in: a narrow handle rather than the
//! service's whole state, so that `learning` never imports `service` (the service builds
//! the handle and implements [`Serving`]).

use crate::metrics::Metrics;
use crate::store::StoreError;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

/// A future the [`Serving`] methods return (boxed, so the trait can be used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The version a process serves, and its folder in the store.
#[derive(Debug, Clone)]
pub struct Served {
    pub version: String,
    pub dir: PathBuf,
}

/// How putting a candidate live ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promotion {
    /// It is the active version now, in every process.
    Promoted,
    /// Another version was activated while the run trained; the text says which.
    Superseded(String),
    /// It could not be loaded or recorded; the text says why.
    Failed(String),
}

/// The serving side of the process, as the scheduler sees it.
pub trait Serving: Send + Sync {
    /// The version serving now: a run trains from it.
    fn served(&self) -> Served;
    /// Records a version folder a run wrote in Postgres (so every replica knows it).
    fn register<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Makes `version` live in every process, only while `parent` is still the active one.
    fn promote<'a>(&'a self, version: &'a str, parent: &'a str) -> BoxFuture<'a, Promotion>;
}

/// Everything the scheduler and its runs use.
#[derive(Clone)]
pub struct LearningHandle {
    pub pool: sqlx::PgPool,
    pub store_dir: Arc<PathBuf>,
    pub device: tch::Device,
    pub metrics: Arc<Metrics>,
    /// Notified when a run is asked for by hand.
    pub wake: Arc<tokio::sync::Notify>,
    pub serving: Arc<dyn Serving>,
}

//! Learning from feedback: the scheduler that fine-tunes new versions in the background,
//! the frozen evaluation set, and the gate that decides whether a candidate goes live.
//!
//! The scheduler reaches the service only through [`LearningHandle`] and the [`Serving`]
//! trait the service implements, so imports run one way: service → learning.

pub mod eval_set;
pub mod gate;
pub mod handle;
mod outcome;
pub mod record;
pub mod retention;
pub mod run;
pub mod scheduler;
mod settings;
mod slot;
mod snapshot;
mod supervise;

pub use gate::{GateDecision, GateSettings};
pub use handle::{LearningHandle, Promotion, Served, Serving};
pub use run::FineTuneSettings;
pub use scheduler::{Scheduler, Tick};
pub use settings::LearningSettings;

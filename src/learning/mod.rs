//! Learning from feedback: the scheduler that fine-tunes new versions in the background,
//! the frozen evaluation set, and the gate that decides whether a candidate goes live.

pub mod eval_set;
pub mod gate;
pub mod retention;
pub mod run;
pub mod scheduler;

pub use gate::{GateDecision, GateSettings};
pub use run::FineTuneSettings;
pub use scheduler::LearningSettings;

//! Training: datasets to a saved model version, and the metrics that judge it.

pub mod encoded;
pub mod evaluate;
pub mod metrics;
mod trainer;
pub mod warm_start;

pub use evaluate::{evaluate, EvalReport};
pub use metrics::{task_metrics, TaskMetrics};
pub use trainer::{train, Progress, TrainError, TrainHooks, TrainRequest, TrainSummary};

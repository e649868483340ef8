//! Training: datasets to a saved model version, and the metrics that judge it.

pub mod early_stopping;
pub mod evaluate;
pub mod init;
pub mod lm;
pub mod metrics;
pub mod pretrain;
mod setup;
pub mod skipgram;
pub mod sparse_adam;
pub mod step;
pub mod tfidf_fit;
mod trainer;
pub mod warm_start;
pub mod weighting;

pub use evaluate::{evaluate, EvalReport};
pub use metrics::{task_metrics, TaskMetrics};
pub use pretrain::{pretrain, PretrainRequest, PretrainSummary};
pub use trainer::{
    train, training_threads, Progress, TrainError, TrainHooks, TrainRequest, TrainSummary,
};

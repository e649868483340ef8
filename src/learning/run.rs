//! One fine-tuning run, the part that runs on its own thread: warm-start training on the
//! snapshot, then the gate, which scores candidate and active model on the frozen
//! evaluation set. Nothing here touches Postgres or the serving model.

use super::gate::{decide, score, GateDecision, GateSettings};
use crate::config::TrainConfig;
use crate::data::{Dataset, Example, TaskLabels};
use crate::model::Classifier;
use crate::train::{train, Progress, TrainError, TrainHooks, TrainRequest, TrainSummary};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// How runs fine-tune.
#[derive(Debug, Clone)]
pub struct FineTuneSettings {
    pub max_epochs: usize,
    /// libtorch threads of the training thread (keep below the cores: serving needs some).
    pub threads: usize,
    /// Learning rate; `None` keeps the parent's.
    pub learning_rate: Option<f64>,
    /// Above this many target-task labels a run trains without the association losses:
    /// they help when labels are few, and their unlabeled batches make a step about nine
    /// times dearer.
    pub association_max_labels: usize,
    /// How much the training thread lowers its own scheduling priority (nice 0–19), so that
    /// serving keeps the cores when both want them.
    pub nice: i32,
}

impl Default for FineTuneSettings {
    fn default() -> FineTuneSettings {
        FineTuneSettings {
            max_epochs: 3,
            threads: 1,
            learning_rate: None,
            association_max_labels: 2000,
            nice: 10,
        }
    }
}

/// Everything a run needs, read from Postgres and the store before the thread starts.
pub struct RunInput {
    pub run_id: i64,
    pub parent_dir: PathBuf,
    pub store: PathBuf,
    pub device: tch::Device,
    /// The parent's tasks with the classes added since appended.
    pub tasks: Vec<TaskLabels>,
    pub config: TrainConfig,
    pub train: Dataset,
    /// The frozen evaluation rows (never in `train`).
    pub eval: Vec<Example>,
    pub gate: GateSettings,
    /// See [`FineTuneSettings::nice`].
    pub nice: i32,
}

/// What a finished run produced: the saved candidate and the gate's decision on it.
pub struct RunResult {
    pub summary: TrainSummary,
    pub decision: GateDecision,
}

/// The parent's tasks, each followed by the classes added to it since.
pub fn tasks_with_added(
    parent: &[TaskLabels],
    added: &BTreeMap<String, Vec<String>>,
) -> Vec<TaskLabels> {
    parent
        .iter()
        .map(|t| {
            let mut labels = t.labels.clone();
            for extra in added.get(&t.name).into_iter().flatten() {
                if !labels.contains(extra) {
                    labels.push(extra.clone());
                }
            }
            TaskLabels {
                name: t.name.clone(),
                labels,
            }
        })
        .collect()
}

/// The parent's training config with the fine-tuning settings applied: same architecture,
/// a few epochs, association losses from the first step (the warm-up happened in the parent)
/// while the run has at most `association_max_labels` labels for the target task.
pub fn fine_tune_config(
    parent: &TrainConfig,
    s: &FineTuneSettings,
    seed: u64,
    target_labels: usize,
) -> TrainConfig {
    let mut c = parent.clone();
    c.training.max_epochs = s.max_epochs.max(1);
    c.training.min_steps = 0;
    c.training.threads = s.threads.max(1);
    c.training.seed = seed;
    if let Some(lr) = s.learning_rate {
        c.training.learning_rate = lr;
    }
    c.association.start_step = 0;
    if target_labels > s.association_max_labels {
        c.association.enabled = false;
    }
    c
}

/// Rows of a snapshot as a dataset named after the run, fingerprinted by content.
pub fn snapshot_dataset(run_id: i64, examples: Vec<Example>) -> Dataset {
    let mut hash = Sha256::new();
    for e in &examples {
        hash.update(e.id.as_bytes());
        for (t, l) in &e.labels {
            hash.update(t.as_bytes());
            hash.update(l.as_bytes());
        }
    }
    Dataset {
        source: format!("postgres snapshot of training run {run_id}"),
        fingerprint: hex::encode(hash.finalize()),
        examples,
        skipped: Vec::new(),
    }
}

/// Trains the candidate and runs the gate. Blocking: call on a dedicated thread.
pub fn execute(
    input: RunInput,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<RunResult, TrainError> {
    let summary = train(
        TrainRequest {
            train: &input.train,
            valid: None,
            tasks: input.tasks.clone(),
            config: input.config.clone(),
            device: input.device,
            store: input.store.clone(),
            warm_start: Some(&input.parent_dir),
            init_from: None,
            pretrained_vectors: None,
        },
        TrainHooks {
            cancel: Some(cancel),
            on_progress: Some(on_progress),
        },
    )?;
    let candidate = Classifier::load(&summary.version_dir, input.device)?;
    let active = Classifier::load(&input.parent_dir, input.device)?;
    let rows: Vec<&Example> = input.eval.iter().collect();
    let decision = decide(
        &input.gate,
        &candidate.manifest().target_task,
        score(&candidate, &rows, &input.tasks)?,
        score(&active, &rows, &input.tasks)?,
    );
    Ok(RunResult { summary, decision })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fine_tuning_drops_the_association_losses_once_labels_are_plentiful() {
        let parent = TrainConfig::default();
        let settings = FineTuneSettings::default();
        let few = fine_tune_config(&parent, &settings, 1, 300);
        assert!(few.association.enabled);
        assert_eq!(few.association.start_step, 0);
        let many = fine_tune_config(&parent, &settings, 1, 10_000);
        assert!(!many.association.enabled);
        assert_eq!(many.model, parent.model, "the architecture never changes");
    }
}

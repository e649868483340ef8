//! The training loop: a tokenizer learned from all training text (or taken from the
//! version the run starts from), skip-gram pretraining of the embeddings, masked per-task
//! cross-entropy on labeled rows, the association losses on unlabeled rows once the
//! supervised warm-up is over, Adam with gradient clipping, and early stopping on the
//! validation macro-F1 of the target task. The best weights are saved as a new version.
//!
//! [`super::setup`] prepares a run, [`super::step`] computes one step's loss, this module
//! loops and saves.

use super::early_stopping::EarlyStopping;
use super::evaluate::{evaluate, score, EvalReport};
use super::init::InitReport;
use super::setup::{prepare, Prepared};
use super::step::{step_loss, AssociationInput, StepInput};
use super::tfidf_fit::{fit_tfidf, refit_tfidf, LabeledTexts, TfidfReport};
use crate::config::{Schedule, TrainConfig};
use crate::data::{Dataset, TaskLabels};
use crate::model::classifier::probabilities;
use crate::model::manifest::{ModelManifest, TrainingData, VersionKind, MANIFEST_FORMAT};
use crate::model::tfidf::TfidfModel;
use crate::model::version_dir::{new_version_name, save_version, ModelError, NewVersion};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::Device;

/// What to train on and where to put the result.
pub struct TrainRequest<'a> {
    pub train: &'a Dataset,
    /// Validation rows; without them a seeded share of the labeled training rows is held out.
    pub valid: Option<&'a Dataset>,
    pub tasks: Vec<TaskLabels>,
    pub config: TrainConfig,
    pub device: Device,
    pub store: PathBuf,
    /// Fine-tune this saved version instead of starting afresh: its tokenizer and weights
    /// are reused (`config.model` must be its architecture, `tasks` its tasks, where a task
    /// may have new classes at the end).
    pub warm_start: Option<&'a Path>,
    /// Start the encoder (tokenizer and `encoder.*` weights) from this version: a
    /// pretrained encoder (`voc pretrain`) or a classifier; the heads start afresh.
    pub init_from: Option<&'a Path>,
    /// Start the embedding matrix from word vectors in this `.vec` file.
    pub pretrained_vectors: Option<&'a Path>,
}

/// A snapshot of the run, given to [`TrainHooks::on_progress`].
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub epoch: usize,
    pub step: usize,
    /// Steps the run would take without early stopping.
    pub planned_steps: usize,
    /// Mean training loss since the previous report.
    pub loss: f64,
    /// Target-task validation macro-F1, on evaluation steps.
    pub valid_score: Option<f64>,
    /// Every task's validation macro-F1, on evaluation steps (empty otherwise).
    pub valid_macro_f1: BTreeMap<String, f64>,
    pub best_score: f64,
    /// Training rows (labeled and unlabeled) forwarded per second so far.
    pub examples_per_second: f64,
    /// Whether the association losses were on at this step.
    pub association_on: bool,
}

/// Ways to watch and stop a run from outside.
#[derive(Default)]
pub struct TrainHooks<'a> {
    pub cancel: Option<&'a AtomicBool>,
    pub on_progress: Option<&'a mut dyn FnMut(&Progress)>,
}

/// What a finished run produced.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub version: String,
    pub version_dir: PathBuf,
    pub validation: EvalReport,
    pub steps: usize,
    pub epochs: usize,
    pub best_step: usize,
    pub best_score: f64,
    pub wall_seconds: f64,
    pub examples_per_second: f64,
    pub stop_reason: String,
    /// What the encoder started from.
    pub init: InitReport,
    /// The TF-IDF companion's fit, when there is one.
    pub tfidf: Option<TfidfReport>,
    pub history: Vec<Progress>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid training config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("training data: {0}")]
    Data(String),
    #[error("training was cancelled")]
    Cancelled,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] crate::model::tokenizer::TokenizerError),
    #[error("pretraining: {0}")]
    Pretrain(#[from] super::skipgram::SkipGramError),
}

/// Trains a model version on `request` and saves it; see the module docs.
pub fn train(request: TrainRequest, hooks: TrainHooks) -> Result<TrainSummary, TrainError> {
    tch::set_num_threads(training_threads(request.config.training.threads) as i32);
    let started = Instant::now();
    let mut run = prepare(&request)?;
    let outcome = run_steps(&mut run, &request.tasks, hooks, started)?;
    finish(&request, run, outcome, started)
}

/// How the step loop ended.
struct LoopOutcome {
    steps: usize,
    epochs: usize,
    forwarded: usize,
    stop_reason: String,
    stopping: EarlyStopping,
    history: Vec<Progress>,
    association_used: bool,
}

/// The running mean loss between two progress reports, and where reports go.
struct Reporter<'h, 'a> {
    on_progress: Option<&'h mut (dyn FnMut(&Progress) + 'a)>,
    loss_sum: f64,
    loss_count: usize,
}

impl Reporter<'_, '_> {
    fn add_loss(&mut self, loss: f64) {
        self.loss_sum += loss;
        self.loss_count += 1;
    }

    fn mean_loss(&self) -> f64 {
        self.loss_sum / self.loss_count.max(1) as f64
    }

    fn report(&mut self, p: Progress) -> Progress {
        self.loss_sum = 0.0;
        self.loss_count = 0;
        if let Some(cb) = self.on_progress.as_mut() {
            cb(&p);
        }
        p
    }
}

/// The supervised steps, epoch after epoch, with evaluation and early stopping.
fn run_steps(
    run: &mut Prepared,
    tasks: &[TaskLabels],
    hooks: TrainHooks,
    started: Instant,
) -> Result<LoopOutcome, TrainError> {
    let TrainHooks {
        cancel,
        on_progress,
    } = hooks;
    let tc = run.config.training.clone();
    let assoc = run.config.association.clone();
    let use_association = assoc.enabled && !run.unlabeled.is_empty();
    let mut rng = StdRng::seed_from_u64(tc.seed);
    let steps_per_epoch = run.supervised.len().div_ceil(tc.batch_size);
    let epochs_needed = tc.max_epochs.max(tc.min_steps.div_ceil(steps_per_epoch));
    let planned_steps = steps_per_epoch * epochs_needed;
    // Small labeled sets make tiny epochs: then evaluate every 100 steps at most.
    let eval_every = match tc.eval_every {
        0 => steps_per_epoch.max(100.min(steps_per_epoch * 10)),
        n => n,
    };
    let mut reporter = Reporter {
        on_progress,
        loss_sum: 0.0,
        loss_count: 0,
    };
    let mut stopping = EarlyStopping::new(&run.vs, tc.patience);
    let (mut step, mut epoch, mut forwarded) = (0usize, 0usize, 0usize);
    let mut history = Vec::new();
    let mut stop_reason = "max_epochs".to_string();
    let mut association_used = false;
    let mut order = run.supervised.clone();
    let progress = |epoch, step, loss, stopping: &EarlyStopping, forwarded: usize| Progress {
        epoch,
        step,
        planned_steps,
        loss,
        valid_score: None,
        valid_macro_f1: BTreeMap::new(),
        best_score: stopping.best_score(),
        examples_per_second: forwarded as f64 / started.elapsed().as_secs_f64(),
        association_on: use_association && step > assoc.start_step,
    };
    'epochs: while epoch < epochs_needed {
        epoch += 1;
        order.shuffle(&mut rng);
        for epoch_chunk in order.chunks(tc.batch_size) {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(TrainError::Cancelled);
            }
            step += 1;
            // Once the association losses are on, a class-balanced labeled batch (when
            // configured) gives the walker every class to walk back to.
            let balanced = (use_association
                && assoc.balanced_batch
                && step > assoc.start_step
                && !run.target_classes.is_empty())
            .then(|| balanced_batch(&run.target_classes, assoc.per_class, &mut rng));
            let chunk = balanced.as_deref().unwrap_or(epoch_chunk);
            let unlabeled = (use_association && step > assoc.start_step).then(|| {
                let n = assoc.unlabeled_batch_size.min(run.unlabeled.len());
                let picks: Vec<usize> = (0..n)
                    .map(|_| run.unlabeled[rng.gen_range(0..run.unlabeled.len())])
                    .collect();
                run.train_device.batch(&picks)
            });
            let ramp = (step.saturating_sub(assoc.start_step) as f64
                / assoc.ramp_steps.max(1) as f64)
                .min(1.0);
            let (batch, targets) = run.labeled_batch(chunk);
            // `joint`: one summed loss; `alternate`: one step per task in turn.
            let turns: Vec<Option<usize>> = match tc.schedule {
                Schedule::Joint => vec![None],
                Schedule::Alternate => (0..tasks.len()).map(Some).collect(),
            };
            for only_task in turns {
                let loss = step_loss(
                    &run.net,
                    &run.objective,
                    &run.weighting,
                    StepInput {
                        batch: &batch,
                        targets: &targets,
                        association: unlabeled.as_ref().map(|u| AssociationInput {
                            unlabeled: u,
                            walker_weight: ramp * assoc.walker_weight,
                            visit_weight: ramp * assoc.visit_weight,
                        }),
                        only_task,
                        soft_sharing_penalty: run.net.soft_sharing_penalty(&run.vs),
                    },
                );
                if loss.is_empty() {
                    run.step_ngrams(false);
                    continue;
                }
                association_used |= loss.association_used;
                run.optimizer.zero_grad();
                run.weighting.zero_grad();
                loss.total.backward();
                run.optimizer.clip_grad_norm(tc.grad_clip);
                run.optimizer.step();
                run.weighting.step();
                run.step_ngrams(true);
                reporter.add_loss(loss.total.double_value(&[]));
            }
            forwarded += chunk.len() + unlabeled.as_ref().map_or(0, |u| u.ids.size()[0] as usize);

            if step.is_multiple_of(eval_every) {
                let report = evaluate(&run.net, &run.valid_enc, tasks, run.vs.device());
                let score = report.selection_score(run.config.training.select_on, &run.target_task);
                stopping.observe(score, step, &run.vs);
                let mut p = progress(epoch, step, reporter.mean_loss(), &stopping, forwarded);
                p.valid_score = Some(score);
                p.valid_macro_f1 = report
                    .tasks
                    .iter()
                    .map(|(task, m)| (task.clone(), m.macro_f1))
                    .collect();
                history.push(reporter.report(p));
                if stopping.out_of_patience() && step >= tc.min_steps {
                    stop_reason = "early_stopping".into();
                    break 'epochs;
                }
            }
        }
        // Watchers hear at least once an epoch, even when no evaluation fell in it.
        if !step.is_multiple_of(eval_every) {
            reporter.report(progress(
                epoch,
                step,
                reporter.mean_loss(),
                &stopping,
                forwarded,
            ));
        }
    }
    if !step.is_multiple_of(eval_every) || !stopping.has_score() {
        // The last steps were not evaluated yet.
        let score = evaluate(&run.net, &run.valid_enc, tasks, run.vs.device())
            .selection_score(run.config.training.select_on, &run.target_task);
        stopping.observe(score, step, &run.vs);
    }
    Ok(LoopOutcome {
        steps: step,
        epochs: epoch,
        forwarded,
        stop_reason,
        stopping,
        history,
        association_used,
    })
}

/// `per_class` rows drawn (with replacement) from each class's rows.
fn balanced_batch(classes: &[Vec<usize>], per_class: usize, rng: &mut StdRng) -> Vec<usize> {
    classes
        .iter()
        .flat_map(|rows| {
            (0..per_class)
                .map(|_| rows[rng.gen_range(0..rows.len())])
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Puts the best weights back, scores them and saves the version.
fn finish(
    request: &TrainRequest,
    run: Prepared,
    outcome: LoopOutcome,
    started: Instant,
) -> Result<TrainSummary, TrainError> {
    let tasks = &request.tasks;
    outcome.stopping.restore_best(&run.vs);
    let (companion, validation) = fit_companion(&run, tasks)?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let examples_per_second = outcome.forwarded as f64 / wall_seconds.max(1e-9);
    let (tfidf, extra_tensors) = match companion {
        Some((model, report)) => (Some(report), model.tensors(tasks)),
        None => (None, Vec::new()),
    };
    let version = new_version_name();
    let summary_json = serde_json::json!({
        "version": version,
        "target_task": run.target_task,
        "validation": validation,
        "validation_rows": run.valid_rows.len(),
        "init": run.init,
        "training": {
            "steps": outcome.steps,
            "epochs": outcome.epochs,
            "best_step": outcome.stopping.best_step(),
            "wall_seconds": wall_seconds,
            "examples_per_second": examples_per_second,
            "stop_reason": outcome.stop_reason,
            "association_used": outcome.association_used,
            "learned_task_weights": run.weighting.learned_weights(),
            "device": format!("{:?}", run.vs.device()),
        },
        "tfidf": tfidf,
        "history": outcome.history,
    });
    let manifest = ModelManifest {
        format: MANIFEST_FORMAT,
        kind: VersionKind::Classifier,
        version: version.clone(),
        created_at: chrono::Utc::now().to_rfc3339(),
        tasks: tasks.clone(),
        target_task: run.target_task.clone(),
        config: run.config.clone(),
        vocab_size: run.tokenizer.vocab_size() as i64,
        training_data: training_data(request.train, tasks),
        parent_version: run.parent_version.clone(),
        source_commit: option_env!("VOC_SOURCE_COMMIT").map(str::to_string),
        libtorch: "2.11.0".into(),
        files: BTreeMap::new(),
    };
    let version_dir = save_version(
        &request.store,
        NewVersion {
            manifest,
            vs: &run.vs,
            tokenizer: &run.tokenizer,
            metrics: &summary_json,
            extra_tensors,
        },
    )?;
    Ok(TrainSummary {
        version,
        version_dir,
        validation,
        steps: outcome.steps,
        epochs: outcome.epochs,
        best_step: outcome.stopping.best_step(),
        best_score: outcome.stopping.best_score(),
        wall_seconds,
        examples_per_second,
        stop_reason: outcome.stop_reason,
        init: run.init,
        tfidf,
        history: outcome.history,
    })
}

/// Fits the TF-IDF companion when the config asks for it; the validation report of the
/// network, averaged with the companion when there is one.
fn fit_companion(
    run: &Prepared,
    tasks: &[TaskLabels],
) -> Result<(Option<(TfidfModel, TfidfReport)>, EvalReport), TrainError> {
    let network = probabilities(&run.net, &run.valid_enc.ids, run.vs.device());
    let config = &run.config.model.tfidf;
    if !config.enabled {
        return Ok((None, score(&network, &run.valid_enc, tasks)));
    }
    let train = LabeledTexts {
        texts: run.train_rows.iter().map(|e| e.text.as_str()).collect(),
        targets: &run.train_labels,
    };
    let valid = LabeledTexts {
        texts: run.valid_rows.iter().map(|e| e.text.as_str()).collect(),
        targets: &run.valid_enc.targets,
    };
    let (model, mut report) = fit_tfidf(config, tasks, &train, &valid, &network);
    // Scored before any refit: a refit has seen the validation rows.
    let mixed = model.mix(network, &valid.texts);
    let validation = score(&mixed, &run.valid_enc, tasks);
    let model = if config.refit && run.valid_held_out {
        let all = run.train_labels.iter().zip(&run.valid_enc.targets);
        let targets: Vec<Vec<i64>> = all.map(|(t, v)| [t.as_slice(), v].concat()).collect();
        let everything = LabeledTexts {
            texts: train.texts.iter().chain(&valid.texts).copied().collect(),
            targets: &targets,
        };
        refit_tfidf(config, tasks, &everything, &model, &mut report)
    } else {
        model
    };
    Ok((Some((model, report)), validation))
}

/// `requested`, or for 0 one less than the CPUs (at least 1, at most 8).
pub fn training_threads(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.saturating_sub(1).clamp(1, 8)
}

fn training_data(data: &Dataset, tasks: &[TaskLabels]) -> TrainingData {
    let labeled = tasks
        .iter()
        .map(|t| (t.name.clone(), data.count_labeled(&t.name)))
        .collect();
    let unlabeled = data
        .examples
        .iter()
        .filter(|e| tasks.iter().all(|t| !e.labels.contains_key(&t.name)))
        .count();
    TrainingData {
        source: data.source.clone(),
        fingerprint: data.fingerprint.clone(),
        rows: data.examples.len(),
        labeled,
        unlabeled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_balanced_batch_draws_per_class_rows_from_every_class() {
        let classes = vec![vec![0, 1, 2, 3, 4, 5, 6, 7], vec![8], vec![9, 10]];
        let mut rng = StdRng::seed_from_u64(1);
        let batch = balanced_batch(&classes, 4, &mut rng);
        assert_eq!(batch.len(), 12);
        for (c, rows) in classes.iter().enumerate() {
            let drawn = &batch[c * 4..(c + 1) * 4];
            assert!(
                drawn.iter().all(|r| rows.contains(r)),
                "class {c}: {drawn:?}"
            );
        }
    }
}

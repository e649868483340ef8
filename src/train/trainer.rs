//! The training loop: a tokenizer learned from all training text, masked per-task
//! cross-entropy on labeled rows, the association losses on unlabeled rows once the
//! supervised warm-up is over, Adam with gradient clipping, and early stopping on the
//! validation macro-F1 of the target task. The best weights are saved as a new version.

use super::encoded::EncodedRows;
use super::evaluate::{evaluate, EvalReport};
use super::warm_start;
use crate::config::TrainConfig;
use crate::data::{Dataset, Example, TaskLabels};
use crate::model::encoder::TokenBatch;
use crate::model::losses::{association_losses, masked_cross_entropy, NO_LABEL};
use crate::model::manifest::{ModelManifest, TrainingData, MANIFEST_FORMAT};
use crate::model::network::MultiTaskNet;
use crate::model::tokenizer::TextTokenizer;
use crate::model::version_dir::{
    load_version, new_version_name, save_version, ModelError, NewVersion,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

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
    pub warm_start: Option<&'a std::path::Path>,
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
}

/// Trains a model version on `request` and saves it; see the module docs.
pub fn train(request: TrainRequest, hooks: TrainHooks) -> Result<TrainSummary, TrainError> {
    let TrainHooks {
        cancel,
        mut on_progress,
    } = hooks;
    let config = &request.config;
    config.validate()?;
    let tc = &config.training;
    tch::set_num_threads(training_threads(tc.threads) as i32);
    tch::manual_seed(tc.seed as i64);
    let mut rng = StdRng::seed_from_u64(tc.seed);
    let tasks = &request.tasks;
    if tasks.is_empty() {
        return Err(TrainError::Data("no task to train".into()));
    }
    let target_task = if tasks
        .iter()
        .any(|t| t.name == config.association.target_task)
    {
        config.association.target_task.clone()
    } else {
        tasks[0].name.clone()
    };
    let target_index = tasks
        .iter()
        .position(|t| t.name == target_task)
        .unwrap_or(0);

    let (train_rows, valid_rows) = split_rows(&request, tc.valid_fraction, tc.seed)?;
    let parent = match request.warm_start {
        Some(dir) => {
            let parent = load_version(dir, Device::Cpu)?;
            warm_start::check_tasks(&parent.manifest.tasks, tasks).map_err(TrainError::Data)?;
            if parent.manifest.config.model != config.model {
                return Err(TrainError::Data(format!(
                    "a fine-tuning run must keep the architecture of {}",
                    parent.manifest.version
                )));
            }
            Some(parent)
        }
        None => None,
    };
    let tokenizer = match &parent {
        Some(p) => p.tokenizer.clone(),
        None => {
            let all_texts = train_rows.iter().map(|e| e.text.as_str());
            TextTokenizer::train(all_texts, config.model.vocab_size, config.model.max_len)?
        }
    };
    let train_enc = EncodedRows::encode(&train_rows, &tokenizer, tasks)?;
    let valid_enc = EncodedRows::encode(&valid_rows, &tokenizer, tasks)?;

    let supervised: Vec<usize> = (0..train_enc.len())
        .filter(|&i| train_enc.is_labeled(i))
        .collect();
    if supervised.is_empty() {
        return Err(TrainError::Data("no labeled rows to train on".into()));
    }
    let unlabeled: Vec<usize> = (0..train_enc.len())
        .filter(|&i| train_enc.targets[target_index][i] == NO_LABEL)
        .collect();
    let use_association = config.association.enabled && !unlabeled.is_empty();

    let device = request.device;
    let vs = nn::VarStore::new(device);
    let vocab_size = tokenizer.vocab_size() as i64;
    let net = MultiTaskNet::new(&vs.root(), &config.model, vocab_size, tasks, &target_task);
    if let Some(p) = &parent {
        warm_start::copy_weights(&p.vs, &vs).map_err(TrainError::Data)?;
    }
    let mut opt = nn::Adam::default()
        .build(&vs, tc.learning_rate)
        .map_err(ModelError::from)?;
    let class_weights: Vec<Option<Tensor>> = tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            tc.class_weights
                .then(|| inverse_frequency(&train_enc.targets[t], task.labels.len(), device))
        })
        .collect();
    let task_weights: Vec<f64> = tasks
        .iter()
        .map(|t| *tc.task_weights.get(&t.name).unwrap_or(&1.0))
        .collect();

    let steps_per_epoch = supervised.len().div_ceil(tc.batch_size);
    let epochs_needed = tc.max_epochs.max(tc.min_steps.div_ceil(steps_per_epoch));
    let planned_steps = steps_per_epoch * epochs_needed;
    // Small labeled sets make tiny epochs: then evaluate every 100 steps at most.
    let eval_every = match tc.eval_every {
        0 => steps_per_epoch.max(100.min(steps_per_epoch * 10)),
        n => n,
    };

    let started = Instant::now();
    let mut forwarded = 0usize;
    let mut step = 0usize;
    let mut epoch = 0usize;
    let mut best_score = f64::NEG_INFINITY;
    let mut best_step = 0usize;
    let mut best_weights = snapshot(&vs);
    let mut evals_without_gain = 0usize;
    let mut loss_sum = 0.0;
    let mut loss_count = 0usize;
    let mut history = Vec::new();
    let mut stop_reason = "max_epochs".to_string();
    let mut order = supervised.clone();

    'epochs: while epoch < epochs_needed {
        epoch += 1;
        order.shuffle(&mut rng);
        for chunk in order.chunks(tc.batch_size) {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(TrainError::Cancelled);
            }
            step += 1;
            let rows: Vec<&[i64]> = chunk.iter().map(|&i| train_enc.ids[i].as_slice()).collect();
            let batch = TokenBatch::new(&rows, device);
            let out = net.forward_t(&batch, true);
            forwarded += chunk.len();
            let mut loss = Tensor::zeros([], (Kind::Float, device));
            for (t, logits) in out.logits.iter().enumerate() {
                let targets: Vec<i64> = chunk.iter().map(|&i| train_enc.targets[t][i]).collect();
                let targets = Tensor::from_slice(&targets).to_device(device);
                loss += masked_cross_entropy(logits, &targets, class_weights[t].as_ref())
                    * task_weights[t];
            }
            let association_on = use_association && step > config.association.start_step;
            if association_on {
                let ramp = ((step - config.association.start_step) as f64
                    / config.association.ramp_steps.max(1) as f64)
                    .min(1.0);
                let labeled_pos: Vec<i64> = chunk
                    .iter()
                    .enumerate()
                    .filter(|(_, &i)| train_enc.targets[target_index][i] != NO_LABEL)
                    .map(|(p, _)| p as i64)
                    .collect();
                if labeled_pos.len() >= 2 {
                    let labels: Vec<i64> = chunk
                        .iter()
                        .map(|&i| train_enc.targets[target_index][i])
                        .filter(|&l| l != NO_LABEL)
                        .collect();
                    let n_b = config.association.unlabeled_batch_size.min(unlabeled.len());
                    let sample: Vec<&[i64]> = (0..n_b)
                        .map(|_| {
                            train_enc.ids[unlabeled[rng.gen_range(0..unlabeled.len())]].as_slice()
                        })
                        .collect();
                    forwarded += n_b;
                    let unlabeled_out = net.forward_t(&TokenBatch::new(&sample, device), true);
                    let a = out
                        .embedding
                        .index_select(0, &Tensor::from_slice(&labeled_pos).to_device(device));
                    let labels = Tensor::from_slice(&labels).to_device(device);
                    let assoc = association_losses(&a, &labels, &unlabeled_out.embedding);
                    loss += assoc.walker * (ramp * config.association.walker_weight)
                        + assoc.visit * (ramp * config.association.visit_weight);
                }
            }
            opt.zero_grad();
            loss.backward();
            opt.clip_grad_norm(tc.grad_clip);
            opt.step();
            loss_sum += loss.double_value(&[]);
            loss_count += 1;

            if step.is_multiple_of(eval_every) {
                let report = evaluate(&net, &valid_enc, tasks, device);
                let score = report.selection_score(&target_task);
                if score > best_score {
                    best_score = score;
                    best_step = step;
                    best_weights = snapshot(&vs);
                    evals_without_gain = 0;
                } else {
                    evals_without_gain += 1;
                }
                let progress = Progress {
                    epoch,
                    step,
                    planned_steps,
                    loss: loss_sum / loss_count.max(1) as f64,
                    valid_score: Some(score),
                    valid_macro_f1: report
                        .tasks
                        .iter()
                        .map(|(task, m)| (task.clone(), m.macro_f1))
                        .collect(),
                    best_score,
                    examples_per_second: forwarded as f64 / started.elapsed().as_secs_f64(),
                    association_on,
                };
                loss_sum = 0.0;
                loss_count = 0;
                if let Some(cb) = on_progress.as_mut() {
                    cb(&progress);
                }
                history.push(progress);
                if evals_without_gain >= tc.patience && step >= tc.min_steps {
                    stop_reason = "early_stopping".into();
                    break 'epochs;
                }
            }
        }
        // Watchers hear at least once an epoch, even when no evaluation fell in it.
        if !step.is_multiple_of(eval_every) {
            if let Some(cb) = on_progress.as_mut() {
                cb(&Progress {
                    epoch,
                    step,
                    planned_steps,
                    loss: loss_sum / loss_count.max(1) as f64,
                    valid_score: None,
                    valid_macro_f1: BTreeMap::new(),
                    best_score,
                    examples_per_second: forwarded as f64 / started.elapsed().as_secs_f64(),
                    association_on: use_association && step > config.association.start_step,
                });
            }
        }
    }
    if !step.is_multiple_of(eval_every) || best_score == f64::NEG_INFINITY {
        // The last steps were not evaluated yet.
        let score = evaluate(&net, &valid_enc, tasks, device).selection_score(&target_task);
        if score > best_score {
            best_score = score;
            best_step = step;
            best_weights = snapshot(&vs);
        }
    }
    restore(&vs, &best_weights);
    let wall_seconds = started.elapsed().as_secs_f64();
    let examples_per_second = forwarded as f64 / wall_seconds.max(1e-9);
    let validation = evaluate(&net, &valid_enc, tasks, device);

    let version = new_version_name();
    let summary_json = serde_json::json!({
        "version": version,
        "target_task": target_task,
        "validation": validation,
        "validation_rows": valid_rows.len(),
        "training": {
            "steps": step,
            "epochs": epoch,
            "best_step": best_step,
            "wall_seconds": wall_seconds,
            "examples_per_second": examples_per_second,
            "stop_reason": stop_reason,
            "association_used": use_association,
            "device": format!("{device:?}"),
        },
        "history": history,
    });
    let manifest = ModelManifest {
        format: MANIFEST_FORMAT,
        version: version.clone(),
        created_at: chrono::Utc::now().to_rfc3339(),
        tasks: tasks.clone(),
        target_task: target_task.clone(),
        config: config.clone(),
        vocab_size,
        training_data: training_data(request.train, tasks),
        parent_version: parent.as_ref().map(|p| p.manifest.version.clone()),
        source_commit: option_env!("VOC_SOURCE_COMMIT").map(str::to_string),
        libtorch: "2.11.0".into(),
        files: BTreeMap::new(),
    };
    let version_dir = save_version(
        &request.store,
        NewVersion {
            manifest,
            vs: &vs,
            tokenizer: &tokenizer,
            metrics: &summary_json,
        },
    )?;
    Ok(TrainSummary {
        version,
        version_dir,
        validation,
        steps: step,
        epochs: epoch,
        best_step,
        best_score,
        wall_seconds,
        examples_per_second,
        stop_reason,
        history,
    })
}

/// Training and validation rows: the given validation file, or a seeded share of the
/// labeled training rows (unlabeled rows always stay in training).
fn split_rows<'a>(
    request: &TrainRequest<'a>,
    fraction: f64,
    seed: u64,
) -> Result<(Vec<&'a Example>, Vec<&'a Example>), TrainError> {
    let tasks: Vec<&str> = request.tasks.iter().map(|t| t.name.as_str()).collect();
    let has_task_label = |e: &Example| tasks.iter().any(|t| e.labels.contains_key(*t));
    if let Some(valid) = request.valid {
        let valid_rows: Vec<&Example> = valid
            .examples
            .iter()
            .filter(|e| has_task_label(e))
            .collect();
        if valid_rows.is_empty() {
            return Err(TrainError::Data(format!(
                "{} has no labels for the tasks being trained",
                valid.source
            )));
        }
        return Ok((request.train.examples.iter().collect(), valid_rows));
    }
    let mut labeled: Vec<&Example> = request
        .train
        .examples
        .iter()
        .filter(|e| has_task_label(e))
        .collect();
    let unlabeled = request.train.examples.iter().filter(|e| !has_task_label(e));
    let mut rng = StdRng::seed_from_u64(seed ^ 0x05ee_d0f5_a11d);
    labeled.shuffle(&mut rng);
    let n_valid = ((labeled.len() as f64) * fraction).round() as usize;
    if n_valid == 0 || n_valid >= labeled.len() {
        return Err(TrainError::Data(format!(
            "{} labeled rows are too few to hold out {:.0}% for validation; pass --valid",
            labeled.len(),
            fraction * 100.0
        )));
    }
    let valid_rows = labeled.split_off(labeled.len() - n_valid);
    labeled.extend(unlabeled);
    Ok((labeled, valid_rows))
}

/// `requested`, or for 0 one less than the CPUs (at least 1, at most 8).
pub fn training_threads(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.saturating_sub(1).clamp(1, 8)
}

fn inverse_frequency(targets: &[i64], classes: usize, device: Device) -> Tensor {
    let mut counts = vec![0f64; classes];
    for &t in targets {
        if t != NO_LABEL {
            counts[t as usize] += 1.0;
        }
    }
    let total: f64 = counts.iter().sum();
    let weights: Vec<f32> = counts
        .iter()
        .map(|&c| (total / (classes as f64 * c.max(1.0))) as f32)
        .collect();
    Tensor::from_slice(&weights).to_device(device)
}

fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    tch::no_grad(|| {
        vs.variables()
            .into_iter()
            .map(|(name, t)| (name, t.detach().copy()))
            .collect()
    })
}

fn restore(vs: &nn::VarStore, weights: &[(String, Tensor)]) {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (name, saved) in weights {
            if let Some(var) = vars.get(name) {
                var.shallow_clone().copy_(saved);
            }
        }
    });
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

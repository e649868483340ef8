//! Everything a training run needs before its first step: the split into training and
//! validation rows, the tokenizer, the encoded rows on the device, the network and where
//! its weights start, and the optimiser.

use super::init::{self, InitReport};
use super::sparse_adam::SparseAdam;
use super::step::Objective;
use super::weighting::TaskWeighting;
use super::TrainError;
use super::TrainRequest;
use crate::config::TrainConfig;
use crate::data::{Example, TaskLabels};
use crate::model::encoded::{DeviceRows, EncodedRows};
use crate::model::encoder::{TokenBatch, EMBEDDING_GROUP, LSTM_GROUP};
use crate::model::losses::NO_LABEL;
use crate::model::network::MultiTaskNet;
use crate::model::tokenizer::TextTokenizer;
use crate::model::vectors::read_vec_file;
use crate::model::version_dir::{load_starting_weights, load_version, ModelError};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Tensor};

/// A run ready to take its first step.
pub struct Prepared<'a> {
    /// The effective config (model sizes adjusted to a pretrained start).
    pub config: TrainConfig,
    pub target_task: String,
    pub tokenizer: TextTokenizer,
    /// The rows trained on (the validation rows held out), and their class ids per task.
    pub train_rows: Vec<&'a Example>,
    pub train_labels: Vec<Vec<i64>>,
    pub valid_rows: Vec<&'a Example>,
    /// Whether the validation rows were held out of the training file (no `--valid`).
    pub valid_held_out: bool,
    pub valid_enc: EncodedRows,
    /// The training rows' token ids on the device.
    pub train_device: DeviceRows,
    /// Per task, every training row's class id on the device (`NO_LABEL` where none).
    pub train_targets: Vec<Tensor>,
    /// Training rows with a label for any task.
    pub supervised: Vec<usize>,
    /// Training rows without a label for the target task (the association's unlabeled side).
    pub unlabeled: Vec<usize>,
    /// Per class of the target task, the training rows labeled with it (classes without
    /// rows left out).
    pub target_classes: Vec<Vec<usize>>,
    pub vs: nn::VarStore,
    pub net: MultiTaskNet,
    pub optimizer: nn::Optimizer,
    pub objective: Objective,
    pub weighting: TaskWeighting,
    /// Trains each n-gram branch's table (one per encoder that has one).
    pub ngram_adam: Vec<SparseAdam>,
    pub init: InitReport,
    pub parent_version: Option<String>,
}

impl Prepared<'_> {
    /// Updates the n-gram rows the last forward passes used (after their backward pass);
    /// without `learn`, forgets them.
    pub fn step_ngrams(&mut self, learn: bool) {
        let lr = self.config.training.learning_rate;
        for (bag, adam) in self.net.ngram_bags().iter().zip(&mut self.ngram_adam) {
            let used = bag.take_used_rows();
            if learn {
                adam.step(&bag.table(), used, lr);
            }
        }
    }

    /// Training rows `rows` as a batch, and per task their class ids, on the device (one
    /// index tensor serves both).
    pub fn labeled_batch(&self, rows: &[usize]) -> (TokenBatch, Vec<Tensor>) {
        let index = self.train_device.index(rows);
        let targets = self
            .train_targets
            .iter()
            .map(|t| t.index_select(0, &index))
            .collect();
        (self.train_device.batch_at(rows, &index), targets)
    }
}

/// Where the run's tokenizer and weights come from, before the network exists.
enum Start {
    Fresh,
    Parent(Box<crate::model::version_dir::LoadedVersion>),
    Version(Box<crate::model::version_dir::StartingWeights>),
}

pub fn prepare<'a>(request: &TrainRequest<'a>) -> Result<Prepared<'a>, TrainError> {
    let mut config = request.config.clone();
    config.validate()?;
    tch::manual_seed(config.training.seed as i64);
    let tasks = &request.tasks;
    if tasks.is_empty() {
        return Err(TrainError::Data("no task to train".into()));
    }
    let target_task = target_task(&config, tasks);
    let target_index = tasks
        .iter()
        .position(|t| t.name == target_task)
        .unwrap_or(0);
    let (train_rows, valid_rows) = split_rows(
        request,
        config.training.valid_fraction,
        config.training.seed,
    )?;

    let start = choose_start(request, &config)?;
    let tokenizer = match &start {
        Start::Parent(p) => p.tokenizer.clone(),
        Start::Version(v) => {
            adopt_encoder_sizes(&mut config, v)?;
            v.tokenizer.clone().with_max_len(config.model.max_len)
        }
        Start::Fresh => TextTokenizer::train(
            train_rows.iter().map(|e| e.text.as_str()),
            config.model.vocab_size,
            config.model.max_len,
        )?,
    };
    let vectors = match request.pretrained_vectors {
        Some(path) => {
            let v = read_vec_file(path, &tokenizer).map_err(|e| TrainError::Data(e.to_string()))?;
            config.model.embedding_dim = v.dim;
            Some(v)
        }
        None => None,
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

    let target_classes = rows_by_class(
        &train_enc.targets[target_index],
        tasks[target_index].labels.len(),
    );

    let device = request.device;
    let vs = nn::VarStore::new(device);
    let vocab_size = tokenizer.vocab_size() as i64;
    let net = MultiTaskNet::new(&vs.root(), &config.model, vocab_size, tasks, &target_task);
    net.set_vocabulary(&tokenizer);
    let init = initialise(
        &vs,
        &start,
        vectors
            .as_ref()
            .map(|v| (v, request.pretrained_vectors.unwrap_or(Path::new("")))),
        &train_enc.ids,
        &tokenizer,
        &config,
    )?;
    // Seeded after pretraining, so the supervised part starts the same way either way.
    tch::manual_seed(config.training.seed as i64);
    let mut optimizer = nn::Adam::default()
        .build(&vs, config.training.learning_rate)
        .map_err(ModelError::from)?;
    if init.pretrained_embedding() && !matches!(init, InitReport::Parent { .. }) {
        optimizer.set_lr_group(
            EMBEDDING_GROUP,
            config.training.learning_rate * config.training.embedding_lr_scale,
        );
    }
    if init.pretrained_lstm() {
        optimizer.set_lr_group(
            LSTM_GROUP,
            config.training.learning_rate * config.training.lstm_lr_scale,
        );
    }
    let objective = objective(&config, tasks, &train_enc, target_index, device);
    let weighting = TaskWeighting::new(
        config.training.loss_weighting,
        tasks.len(),
        config.training.learning_rate,
        device,
    )
    .map_err(ModelError::from)?;
    let ngram_adam = net
        .ngram_bags()
        .iter()
        .map(|bag| SparseAdam::new(&bag.table()))
        .collect();
    let train_device = DeviceRows::upload(&train_enc.ids, device);
    let train_targets = train_enc
        .targets
        .iter()
        .map(|t| Tensor::from_slice(t).to_device(device))
        .collect();
    let parent_version = match &start {
        Start::Parent(p) => Some(p.manifest.version.clone()),
        _ => None,
    };
    Ok(Prepared {
        config,
        target_task,
        tokenizer,
        train_labels: train_enc.targets,
        train_rows,
        valid_rows,
        valid_held_out: request.valid.is_none(),
        valid_enc,
        train_device,
        train_targets,
        supervised,
        unlabeled,
        target_classes,
        vs,
        net,
        optimizer,
        objective,
        weighting,
        ngram_adam,
        init,
        parent_version,
    })
}

/// Starts the network's weights as `start` (and the vectors file, if any) says: the parent's
/// weights, a version's encoder, word vectors, skip-gram on `rows`, or random.
fn initialise(
    vs: &nn::VarStore,
    start: &Start,
    vectors: Option<(&crate::model::vectors::MappedVectors, &Path)>,
    rows: &[Vec<i64>],
    tokenizer: &TextTokenizer,
    config: &TrainConfig,
) -> Result<InitReport, TrainError> {
    Ok(match (start, vectors) {
        (Start::Parent(p), _) => {
            super::warm_start::copy_weights(&p.vs, vs).map_err(TrainError::Data)?;
            InitReport::Parent {
                version: p.manifest.version.clone(),
            }
        }
        (Start::Version(v), _) => InitReport::Version {
            version: v.manifest.version.clone(),
            tensors: init::copy_encoder(&v.tensors, vs).map_err(TrainError::Data)?,
            lstm: v.tensors.keys().any(|k| k.contains(".lstm_")),
        },
        (Start::Fresh, Some((v, file))) => {
            init::set_embedding_from_vectors(vs, v, config.pretrain.embedding_std);
            InitReport::Vectors {
                file: file.display().to_string(),
                exact: v.exact,
                averaged: v.averaged,
                missing: v.missing,
            }
        }
        (Start::Fresh, None) if config.pretrain.enabled => {
            InitReport::Skipgram(init::pretrain_embedding(
                vs,
                rows,
                tokenizer,
                &config.pretrain,
                config.training.seed,
                vs.device(),
            )?)
        }
        (Start::Fresh, None) => InitReport::Random,
    })
}

/// The per-task weights of the loss: class weights from the training rows, task weights
/// from the config.
fn objective(
    config: &TrainConfig,
    tasks: &[TaskLabels],
    train: &EncodedRows,
    target_index: usize,
    device: Device,
) -> Objective {
    Objective {
        class_weights: tasks
            .iter()
            .enumerate()
            .map(|(t, task)| {
                config
                    .training
                    .class_weights
                    .then(|| inverse_frequency(&train.targets[t], task.labels.len(), device))
            })
            .collect(),
        task_weights: tasks
            .iter()
            .map(|t| *config.training.task_weights.get(&t.name).unwrap_or(&1.0))
            .collect(),
        target_index,
        soft_sharing_weight: config.training.soft_sharing_weight,
    }
}

/// Per class, the rows labeled with it (classes without rows left out).
fn rows_by_class(targets: &[i64], classes: usize) -> Vec<Vec<usize>> {
    let mut by_class = vec![Vec::new(); classes];
    for (row, &class) in targets.iter().enumerate() {
        if class != NO_LABEL {
            by_class[class as usize].push(row);
        }
    }
    by_class.retain(|rows| !rows.is_empty());
    by_class
}

/// The configured target task when it is one of `tasks`, else the first task.
fn target_task(config: &TrainConfig, tasks: &[TaskLabels]) -> String {
    let wanted = &config.association.target_task;
    if tasks.iter().any(|t| &t.name == wanted) {
        wanted.clone()
    } else {
        tasks[0].name.clone()
    }
}

fn choose_start(request: &TrainRequest, config: &TrainConfig) -> Result<Start, TrainError> {
    match (request.warm_start, request.init_from) {
        (Some(_), Some(_)) => Err(TrainError::Data(
            "a run starts from its parent version or from --init-from, not both".into(),
        )),
        (Some(dir), None) => {
            let parent = load_version(dir, Device::Cpu)?;
            super::warm_start::check_tasks(&parent.manifest.tasks, &request.tasks)
                .map_err(TrainError::Data)?;
            if parent.manifest.config.model != config.model {
                return Err(TrainError::Data(format!(
                    "a fine-tuning run must keep the architecture of {}",
                    parent.manifest.version
                )));
            }
            Ok(Start::Parent(Box::new(parent)))
        }
        (None, Some(dir)) => {
            if request.pretrained_vectors.is_some() {
                return Err(TrainError::Data(
                    "--init-from and --pretrained-vectors both set the embedding: give one".into(),
                ));
            }
            Ok(Start::Version(Box::new(load_starting_weights(dir)?)))
        }
        (None, None) => Ok(Start::Fresh),
    }
}

/// A pretrained start fixes the embedding size (and, for the LSTM, its hidden size).
fn adopt_encoder_sizes(
    config: &mut TrainConfig,
    start: &crate::model::version_dir::StartingWeights,
) -> Result<(), TrainError> {
    let embedding = start.tensors.get(init::EMBEDDING).ok_or_else(|| {
        TrainError::Data(format!(
            "{} has no '{}' to start from",
            start.manifest.version,
            init::EMBEDDING
        ))
    })?;
    let dim = embedding.size()[1];
    if dim != config.model.embedding_dim {
        tracing::info!(
            dim,
            "embedding_dim follows the pretrained encoder {}",
            start.manifest.version
        );
        config.model.embedding_dim = dim;
    }
    Ok(())
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

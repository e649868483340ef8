//! Helpers for the model tests: fixture paths, small configs, one trained model per binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use voc::config::{EncoderKind, TrainConfig};
use voc::data::{detect_tasks, read_dataset, Dataset, ReadOptions};
use voc::train::{train, TrainHooks, TrainRequest, TrainSummary};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn read(name: &str) -> Dataset {
    read_dataset(&fixture(name), &ReadOptions::default()).expect("fixture reads")
}

/// A small, fast configuration for tests.
pub fn small_config(encoder: EncoderKind, epochs: usize) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.model.encoder = encoder;
    c.model.vocab_size = 3000;
    c.model.embedding_dim = 64;
    c.model.cnn_filters = 48;
    c.model.lstm_hidden = 48;
    c.model.assoc_dim = 64;
    c.training.max_epochs = epochs;
    c.training.patience = epochs;
    c.training.threads = 1;
    c.association.start_step = 20;
    c.association.unlabeled_batch_size = 64;
    // A smaller n-gram table keeps the many small test models light on disk.
    c.model.ngrams.buckets = 1 << 16;
    c
}

/// Trains on fixture `train` (validating on `valid`) into `store`.
pub fn train_fixture(
    train_file: &str,
    valid_file: &str,
    config: TrainConfig,
    store: &Path,
) -> TrainSummary {
    let train_data = read(train_file);
    let valid = read(valid_file);
    let (tasks, _) = detect_tasks(&train_data, None).expect("tasks");
    train(
        TrainRequest {
            train: &train_data,
            valid: Some(&valid),
            tasks,
            config,
            device: tch::Device::Cpu,
            store: store.to_path_buf(),
            warm_start: None,
            init_from: None,
            pretrained_vectors: None,
        },
        TrainHooks::default(),
    )
    .expect("training succeeds")
}

/// The path of the built `voc` binary.
pub fn voc_bin() -> &'static str {
    env!("CARGO_BIN_EXE_voc")
}

/// Runs `voc train` on the demo fixture in its own process with `extra` flags, storing into
/// `store`; returns the version folder (the last stdout line).
pub fn voc_train_demo(extra: &[&std::ffi::OsStr], store: &Path) -> PathBuf {
    let out = std::process::Command::new(voc_bin())
        .arg("train")
        .arg("--train")
        .arg(fixture("demo_train.jsonl"))
        .arg("--valid")
        .arg(fixture("demo_test.jsonl"))
        .arg("--store")
        .arg(store)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "voc train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
}

//! Saved model versions: what a folder holds, atomic writes, and clear refusals of
//! missing, corrupted or incompatible files.

mod model_support;

use model_support::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use voc::config::EncoderKind;
use voc::model::{list_versions, read_manifest, Classifier, ModelError};

/// One trained version per test binary; each test copies it before breaking it.
fn trained() -> &'static (tempfile::TempDir, PathBuf) {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let store = tempfile::tempdir().unwrap();
        let summary = train_fixture(
            "demo_train.jsonl",
            "demo_test.jsonl",
            small_config(EncoderKind::Cnn, 1),
            store.path(),
        );
        (store, summary.version_dir)
    })
}

fn copy_version() -> (tempfile::TempDir, PathBuf) {
    let src = &trained().1;
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join(src.file_name().unwrap());
    std::fs::create_dir(&dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    (dir, dst)
}

fn load_err(dir: &Path) -> ModelError {
    match Classifier::load(dir, tch::Device::Cpu) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn a_version_folder_holds_weights_tokenizer_manifest_and_metrics_and_no_temp_folder() {
    let (store, dir) = trained();
    for file in [
        "weights.safetensors",
        "tokenizer.json",
        "model.json",
        "metrics.json",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let leftovers: Vec<_> = std::fs::read_dir(store.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    let manifest = read_manifest(dir).unwrap();
    let names: Vec<&str> = manifest.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["category", "sentiment"]);
    assert_eq!(
        manifest.task("sentiment").unwrap().labels,
        vec!["negative", "positive"]
    );
    assert_eq!(manifest.training_data.fingerprint.len(), 64);
    assert_eq!(manifest.training_data.rows, 2800);
    assert_eq!(manifest.training_data.labeled["category"], 800);
    assert_eq!(manifest.files.len(), 3);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["validation"]["tasks"]["sentiment"]["macro_f1"].is_number());
}

#[test]
fn the_weights_are_plain_safetensors_with_stable_names() {
    let (_, dir) = trained();
    let tensors = tch::Tensor::read_safetensors(dir.join("weights.safetensors")).unwrap();
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"encoder.embedding.weight"), "{names:?}");
    assert!(names.contains(&"heads.sentiment.weight"), "{names:?}");
    assert!(names.contains(&"association.weight"), "{names:?}");
}

#[test]
fn a_replica_shares_the_loaded_weights_and_companion_and_answers_the_same() {
    let (_, dir) = trained();
    let first = Classifier::load(dir, tch::Device::Cpu).unwrap();
    let copy = first.replicate();
    let (a, b) = (first.weights(), copy.weights());
    assert_eq!(a.len(), b.len());
    assert!(a.contains_key("encoder.ngrams.table"), "{:?}", a.keys());
    for (name, tensor) in &a {
        assert_eq!(
            tensor.data_ptr(),
            b[name].data_ptr(),
            "{name} is a second copy"
        );
    }
    let companion = |c: &Classifier| c.tfidf().map(|t| t as *const _);
    assert!(companion(&first).is_some());
    assert_eq!(companion(&first), companion(&copy));
    let texts = [
        "my card was declined twice",
        "thank you so much, great service",
    ];
    assert_eq!(
        first.predict(&texts).unwrap(),
        copy.predict(&texts).unwrap()
    );
}

#[test]
fn texts_prepared_on_another_thread_score_as_the_texts_do_and_another_versions_are_refused() {
    let (_, dir) = trained();
    let classifier = Classifier::load(dir, tch::Device::Cpu).unwrap();
    // A long text too: the preparer reads the same first bytes the model always read.
    let long = "my card was declined twice and nobody called me back. ".repeat(400);
    let texts = [
        "my card was declined twice",
        "thank you so much, great service",
        long.as_str(),
    ];
    let preparer = classifier.preparer().clone();
    let owned: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    let prepared = std::thread::spawn(move || {
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        preparer.prepare(&refs).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(prepared.version(), classifier.manifest().version);
    let max_len = classifier.manifest().config.model.max_len;
    assert_eq!(prepared.tokens(2).len(), max_len);
    let scored = classifier.prepared_scores(&prepared).unwrap();
    assert_eq!(
        scored.into_predictions(),
        classifier.predict(&texts).unwrap()
    );

    let tokenizer =
        voc::model::tokenizer::TextTokenizer::load(&dir.join("tokenizer.json"), max_len).unwrap();
    let other = voc::model::TextPreparer::new("v-other", tokenizer, None);
    let err = classifier
        .prepared_scores(&other.prepare(&texts).unwrap())
        .err()
        .expect("another version's prepared texts are refused");
    let message = err.to_string();
    assert!(message.contains("v-other"), "{message}");
    assert!(
        message.contains(&classifier.manifest().version),
        "{message}"
    );
}

#[test]
fn list_versions_skips_temporary_and_foreign_folders() {
    let (store, dir) = trained();
    let scratch = tempfile::tempdir().unwrap();
    std::fs::create_dir(scratch.path().join(".tmp-v1")).unwrap();
    std::fs::create_dir(scratch.path().join("notes")).unwrap();
    assert!(list_versions(scratch.path()).is_empty());
    assert_eq!(list_versions(store.path()), vec![dir.clone()]);
}

#[test]
fn corrupted_weights_are_refused_with_the_file_named() {
    let (_tmp, dir) = copy_version();
    let path = dir.join("weights.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = load_err(&dir);
    assert!(matches!(err, ModelError::Corrupted { .. }), "{err}");
    assert!(err.to_string().contains("weights.safetensors"));
}

#[test]
fn a_missing_tokenizer_is_refused() {
    let (_tmp, dir) = copy_version();
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let err = load_err(&dir);
    assert!(matches!(err, ModelError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json is missing"));
}

#[test]
fn a_manifest_from_a_newer_format_is_refused_as_incompatible() {
    let (_tmp, dir) = copy_version();
    let path = dir.join("model.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["format"] = 99.into();
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let err = load_err(&dir);
    assert!(matches!(err, ModelError::Incompatible { .. }), "{err}");
}

#[test]
fn weights_that_do_not_fit_the_declared_architecture_are_refused() {
    let (_tmp, dir) = copy_version();
    let path = dir.join("model.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["config"]["model"]["encoder"] = "lstm".into();
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let err = load_err(&dir);
    assert!(matches!(err, ModelError::Incompatible { .. }), "{err}");
    assert!(err.to_string().contains("has no tensor"), "{err}");
}

#[test]
fn a_truncated_manifest_is_refused_as_corrupted() {
    let (_tmp, dir) = copy_version();
    std::fs::write(dir.join("model.json"), b"{\"format\": 1, \"vers").unwrap();
    let err = load_err(&dir);
    assert!(matches!(err, ModelError::Corrupted { .. }), "{err}");
}

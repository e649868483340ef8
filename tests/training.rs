//! Real training on small real samples: quality above chance, save/load fidelity,
//! batch-versus-single equality, Korean text, and reproducibility.

mod model_support;

use model_support::*;
use voc::config::EncoderKind;
use voc::model::Classifier;
use voc::train::evaluate::evaluate_classifier;

#[test]
fn english_intents_train_well_above_chance_and_reload_with_identical_scores() {
    let store = tempfile::tempdir().unwrap();
    let summary = train_fixture(
        "banking77_train.jsonl",
        "banking77_test.jsonl",
        small_config(EncoderKind::Cnn, 8),
        store.path(),
    );
    let intent = &summary.validation.tasks["intent"];
    // 10 classes: chance is 0.10.
    assert!(intent.macro_f1 > 0.6, "intent macro-F1 {}", intent.macro_f1);

    let loaded = Classifier::load(&summary.version_dir, tch::Device::Cpu).unwrap();
    let test = read("banking77_test.jsonl");
    let examples: Vec<_> = test.examples.iter().collect();
    let rows = loaded.encode_rows(&examples).unwrap();
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let reloaded = evaluate_classifier(&loaded, &texts, &rows).unwrap();
    assert_eq!(
        reloaded, summary.validation,
        "a reloaded model must score exactly as trained"
    );
}

fn assert_batch_matches_single(encoder: EncoderKind) {
    let store = tempfile::tempdir().unwrap();
    let summary = train_fixture(
        "demo_train.jsonl",
        "demo_test.jsonl",
        small_config(encoder, 1),
        store.path(),
    );
    let classifier = Classifier::load(&summary.version_dir, tch::Device::Cpu).unwrap();
    let test = read("demo_test.jsonl");
    // Texts of very different lengths, so the batch is heavily padded.
    let mut texts: Vec<&str> = test
        .examples
        .iter()
        .map(|e| e.text.as_str())
        .take(40)
        .collect();
    texts.push("a");
    texts.push("환불");
    let batch = classifier.predict(&texts).unwrap();
    for (text, in_batch) in texts.iter().zip(&batch) {
        let alone = &classifier.predict(&[text]).unwrap()[0];
        for (task, p) in &in_batch.tasks {
            let q = &alone.tasks[task];
            assert_eq!(
                p.label, q.label,
                "{encoder:?} {task} label differs for {text:?}"
            );
            for (label, prob) in &p.probabilities {
                let diff = (prob - q.probabilities[label]).abs();
                assert!(
                    diff < 1e-5,
                    "{encoder:?} {task}/{label} differs by {diff} for {text:?}"
                );
            }
        }
    }
}

#[test]
fn cnn_batch_predictions_equal_one_text_at_a_time() {
    assert_batch_matches_single(EncoderKind::Cnn);
}

#[test]
fn bilstm_batch_predictions_equal_one_text_at_a_time() {
    assert_batch_matches_single(EncoderKind::Lstm);
}

#[test]
fn korean_sentiment_trains_above_chance_and_tokenizes_without_unknowns() {
    let store = tempfile::tempdir().unwrap();
    let summary = train_fixture(
        "nsmc_train.jsonl",
        "nsmc_test.jsonl",
        small_config(EncoderKind::CnnLstm, 8),
        store.path(),
    );
    let sentiment = &summary.validation.tasks["sentiment"];
    assert!(
        sentiment.accuracy > 0.62,
        "NSMC accuracy {}",
        sentiment.accuracy
    );

    let tokenizer = voc::model::tokenizer::TextTokenizer::load(
        &summary.version_dir.join("tokenizer.json"),
        128,
    )
    .unwrap();
    let tokens = tokenizer.tokens("정말 재밌었어요 최고의 영화").unwrap();
    assert!(
        tokens.len() >= 4,
        "Hangul must split into subwords: {tokens:?}"
    );
    assert!(
        !tokens.iter().any(|t| t == "[UNK]"),
        "common Korean words are in the vocabulary: {tokens:?}"
    );

    let classifier = Classifier::load(&summary.version_dir, tch::Device::Cpu).unwrap();
    let p = &classifier
        .predict(&["정말 재밌었어요 최고의 영화"])
        .unwrap()[0];
    let s = &p.tasks["sentiment"];
    assert!(["negative", "positive"].contains(&s.label.as_str()));
    let total: f32 = s.probabilities.values().sum();
    assert!((total - 1.0).abs() < 1e-5);
}

/// Trains through the CLI in its own process (libtorch's RNG is process-global, so two
/// trainings in one test process would share it) and returns the version folder.
fn train_in_process(store: &std::path::Path) -> std::path::PathBuf {
    let flags = ["--epochs", "2", "--vocab-size", "2000", "--threads", "1"];
    let flags: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_ref()).collect();
    voc_train_demo(&flags, store)
}

#[test]
fn training_is_reproducible_for_a_seed_on_cpu() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let first = train_in_process(a.path());
    let second = train_in_process(b.path());
    let validation = |dir: &std::path::Path| {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
        m["validation"].clone()
    };
    assert_eq!(validation(&first), validation(&second));
    let w1 = std::fs::read(first.join("weights.safetensors")).unwrap();
    let w2 = std::fs::read(second.join("weights.safetensors")).unwrap();
    assert!(w1 == w2, "same seed, same data: identical weights");
    let t1 = std::fs::read(first.join("tokenizer.json")).unwrap();
    let t2 = std::fs::read(second.join("tokenizer.json")).unwrap();
    assert!(t1 == t2, "same data: identical tokenizer");
}

#[test]
fn long_texts_are_truncated_not_rejected() {
    let store = tempfile::tempdir().unwrap();
    let summary = train_fixture(
        "banking77_train.jsonl",
        "banking77_test.jsonl",
        small_config(EncoderKind::Cnn, 1),
        store.path(),
    );
    let classifier = Classifier::load(&summary.version_dir, tch::Device::Cpu).unwrap();
    let long = "my card has not arrived yet ".repeat(80_000); // about 2 MB
    let ids = classifier.encode(&[long.as_str()]).unwrap();
    assert_eq!(ids[0].len(), 128);
    let p = classifier.predict(&[long.as_str()]).unwrap();
    assert!(p[0].tasks["intent"].confidence > 0.0);
}

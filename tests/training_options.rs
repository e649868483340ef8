//! The multi-task options of the config (sharing, loss weighting, schedule) each train a
//! real model on the demo sample (banking77 intents and NSMC sentiment, labeled on
//! different rows) well above chance, save, and load back with identical scores.

mod model_support;

use model_support::*;
use voc::config::{EncoderKind, LossWeighting, Schedule, Sharing, TrainConfig};
use voc::model::Classifier;
use voc::train::evaluate::evaluate_classifier;

fn trains_above_chance_and_reloads_identically(config: TrainConfig) -> serde_json::Value {
    let store = tempfile::tempdir().unwrap();
    let summary = train_fixture("demo_train.jsonl", "demo_test.jsonl", config, store.path());
    let category = summary.validation.tasks["category"].macro_f1;
    let sentiment = summary.validation.tasks["sentiment"].macro_f1;
    // 10 intents (chance 0.10) and 2 sentiments (chance about 0.5).
    assert!(category > 0.5, "category macro-F1 {category}");
    assert!(sentiment > 0.6, "sentiment macro-F1 {sentiment}");
    let loaded = Classifier::load(&summary.version_dir, tch::Device::Cpu).unwrap();
    let test = read("demo_test.jsonl");
    let examples: Vec<_> = test.examples.iter().collect();
    let rows = loaded.encode_rows(&examples).unwrap();
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        evaluate_classifier(&loaded, &texts, &rows).unwrap(),
        summary.validation
    );
    serde_json::from_slice(&std::fs::read(summary.version_dir.join("metrics.json")).unwrap())
        .unwrap()
}

fn weights(version: &std::path::Path) -> std::collections::BTreeMap<String, tch::Tensor> {
    tch::Tensor::read_safetensors(version.join("weights.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn tensor_names(version: &std::path::Path) -> Vec<String> {
    tch::Tensor::read_safetensors(version.join("weights.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

fn config() -> TrainConfig {
    let mut c = small_config(EncoderKind::Cnn, 4);
    c.association.enabled = false;
    c
}

#[test]
fn soft_sharing_trains_one_encoder_per_task() {
    let mut c = config();
    c.model.sharing = Sharing::Soft;
    trains_above_chance_and_reloads_identically(c);
}

#[test]
fn cross_stitch_sharing_trains_and_learns_its_mixing_units() {
    let mut c = config();
    c.model.sharing = Sharing::CrossStitch;
    let store = tempfile::tempdir().unwrap();
    trains_above_chance_and_reloads_identically(c.clone());
    let summary = train_fixture("demo_train.jsonl", "demo_test.jsonl", c, store.path());
    let weights = weights(&summary.version_dir);
    let unit = &weights["cross_stitch.features"];
    let start = tch::Tensor::from_slice(&[0.9f32, 0.1, 0.1, 0.9]).view([2, 2]);
    let moved = (unit - start).abs().max().double_value(&[]);
    assert!(
        moved > 1e-4,
        "the cross-stitch unit did not learn ({moved})"
    );
    assert!(weights.contains_key("encoder_category.embedding.weight"));
    assert!(weights.contains_key("encoder_sentiment.embedding.weight"));
}

#[test]
fn uncertainty_weighting_trains_and_reports_the_learned_weights() {
    let mut c = config();
    c.training.loss_weighting = LossWeighting::Uncertainty;
    let metrics = trains_above_chance_and_reloads_identically(c);
    let learned: Vec<f64> =
        serde_json::from_value(metrics["training"]["learned_task_weights"].clone()).unwrap();
    assert_eq!(learned.len(), 2);
    assert!(
        learned.iter().any(|w| (w - 1.0).abs() > 0.01),
        "the task weights never moved: {learned:?}"
    );
}

#[test]
fn the_alternate_schedule_trains_each_task_in_turn() {
    let mut c = config();
    c.training.schedule = Schedule::Alternate;
    trains_above_chance_and_reloads_identically(c);
}

#[test]
fn without_the_ngram_branch_the_model_has_no_ngram_table() {
    let mut c = config();
    c.model.ngrams.enabled = false;
    let store = tempfile::tempdir().unwrap();
    let summary = train_fixture("demo_train.jsonl", "demo_test.jsonl", c, store.path());
    let names = tensor_names(&summary.version_dir);
    assert!(!names.iter().any(|n| n.contains("ngrams")), "{names:?}");
    let with = train_fixture(
        "demo_train.jsonl",
        "demo_test.jsonl",
        config(),
        store.path(),
    );
    let names = tensor_names(&with.version_dir);
    assert!(
        names.contains(&"encoder.ngrams.table".to_string()),
        "{names:?}"
    );
}

#[test]
fn character_ngrams_train_and_their_buckets_are_saved_with_the_weights() {
    let mut c = config();
    c.model.ngrams.char_max = 4;
    trains_above_chance_and_reloads_identically(c.clone());
    let store = tempfile::tempdir().unwrap();
    let summary = train_fixture("demo_train.jsonl", "demo_test.jsonl", c, store.path());
    let weights = weights(&summary.version_dir);
    // One row of bucket ids per vocabulary entry, filled from the tokenizer.
    let buckets = &weights["encoder.ngrams.char_buckets"];
    let embedding = &weights["encoder.embedding.weight"];
    assert_eq!(buckets.size()[0], embedding.size()[0]);
    assert_eq!(buckets.kind(), tch::Kind::Int64);
    let filled = buckets.ge(0).sum(tch::Kind::Int64).int64_value(&[]);
    assert!(filled > buckets.size()[0], "only {filled} buckets filled");
}

#[test]
fn the_tfidf_companion_is_saved_and_averaged_into_every_answer() {
    let store = tempfile::tempdir().unwrap();
    let summary = train_fixture(
        "demo_train.jsonl",
        "demo_test.jsonl",
        config(),
        store.path(),
    );
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary.version_dir.join("metrics.json")).unwrap())
            .unwrap();
    let report = &metrics["tfidf"];
    assert!(report["features"].as_u64().unwrap() > 1000, "{report}");
    // Validated on a file of its own: nothing was held out, so nothing is refitted.
    assert!(report["refit"].is_null(), "{report}");
    for task in ["category", "sentiment"] {
        let mix = report["tasks"][task]["mix"].as_f64().unwrap();
        assert!((0.3..=0.7).contains(&mix), "{task}: share {mix}");
        assert!(report["tasks"][task]["valid_tfidf"].as_f64().unwrap() > 0.5);
    }
    let names = tensor_names(&summary.version_dir);
    for name in [
        "tfidf.features",
        "tfidf.idf",
        "tfidf.category.weight",
        "tfidf.sentiment.mix",
    ] {
        assert!(
            names.contains(&name.to_string()),
            "{name} missing: {names:?}"
        );
    }
    // The answer is exactly (1 - share) * network + share * companion, task by task.
    let loaded = Classifier::load(&summary.version_dir, tch::Device::Cpu).unwrap();
    let texts = [
        "my card was declined at the shop",
        "영화 정말 재밌어요 최고",
    ];
    let answered = loaded.probabilities(&texts).unwrap();
    let rows = loaded.encode(&texts).unwrap();
    let network = voc::model::classifier::probabilities(loaded.net(), &rows, tch::Device::Cpu);
    let companion = loaded.tfidf().expect("a companion").probabilities(&texts);
    for (t, head) in loaded.tfidf().unwrap().heads().iter().enumerate() {
        let expected = &network[t] * (1.0 - head.mix) + &companion[t] * head.mix;
        assert!(
            answered[t].allclose(&expected, 1e-6, 1e-7, false),
            "task {t}"
        );
        assert!(
            !answered[t].allclose(&network[t], 1e-4, 1e-4, false),
            "task {t}: companion unused"
        );
    }
}

#[test]
fn without_a_validation_file_the_companion_is_refitted_on_the_held_out_rows_too() {
    let store = tempfile::tempdir().unwrap();
    let data = read("demo_train.jsonl");
    let (tasks, _) = voc::data::detect_tasks(&data, None).unwrap();
    let summary = voc::train::train(
        voc::train::TrainRequest {
            train: &data,
            valid: None,
            tasks,
            config: config(),
            device: tch::Device::Cpu,
            store: store.path().to_path_buf(),
            warm_start: None,
            init_from: None,
            pretrained_vectors: None,
        },
        voc::train::TrainHooks::default(),
    )
    .unwrap();
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary.version_dir.join("metrics.json")).unwrap())
            .unwrap();
    let report = &metrics["tfidf"];
    let refit = &report["refit"];
    assert_eq!(
        refit["rows"].as_u64(),
        Some(data.examples.len() as u64),
        "{report}"
    );
    // The saved companion is the refit: its vocabulary holds the held-out rows' features.
    let features = refit["features"].as_i64().unwrap();
    assert!(features > report["features"].as_i64().unwrap(), "{report}");
    let saved = &weights(&summary.version_dir)["tfidf.features"];
    assert_eq!(saved.size(), [features]);
}

#[test]
fn without_the_tfidf_companion_the_network_answers_alone() {
    let mut c = config();
    c.model.tfidf.enabled = false;
    let store = tempfile::tempdir().unwrap();
    let summary = train_fixture("demo_train.jsonl", "demo_test.jsonl", c, store.path());
    let names = tensor_names(&summary.version_dir);
    assert!(!names.iter().any(|n| n.starts_with("tfidf.")), "{names:?}");
    let loaded = Classifier::load(&summary.version_dir, tch::Device::Cpu).unwrap();
    assert!(loaded.tfidf().is_none());
}

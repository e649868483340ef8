//! The command-line contract that later work and outside scripts depend on.

mod model_support;

use model_support::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const SMALL_CONFIG: &str = r#"
[model]
vocab_size = 2000
embedding_dim = 48
cnn_filters = 32
assoc_dim = 32
[training]
max_epochs = 3
threads = 1
"#;

/// Trains once per test binary through the real CLI; returns (store, version folder).
fn trained() -> &'static (tempfile::TempDir, PathBuf) {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let store = tempfile::tempdir().unwrap();
        let config = store.path().join("small.toml");
        std::fs::write(&config, SMALL_CONFIG).unwrap();
        let dir = voc_train_demo(
            &[
                "--config".as_ref(),
                config.as_os_str(),
                "--seed".as_ref(),
                "7".as_ref(),
            ],
            store.path(),
        );
        (store, dir)
    })
}

#[test]
fn train_prints_the_new_version_folder_as_its_last_stdout_line() {
    let (store, dir) = trained();
    assert!(dir.starts_with(store.path()));
    assert!(dir.join("model.json").is_file());
    let manifest = voc::model::read_manifest(dir).unwrap();
    assert_eq!(
        manifest.config.training.seed, 7,
        "flags override the config file"
    );
    assert_eq!(
        manifest.config.model.vocab_size, 2000,
        "the config file is applied"
    );
}

#[test]
fn eval_json_reports_only_labeled_tasks_with_fractions() {
    let (_, dir) = trained();
    let out = Command::new(voc_bin())
        .args(["eval", "--json", "--model"])
        .arg(dir)
        .arg("--data")
        .arg(fixture("nsmc_test.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tasks = report["tasks"].as_object().unwrap();
    assert_eq!(
        tasks.keys().collect::<Vec<_>>(),
        vec!["sentiment"],
        "nsmc carries sentiment only"
    );
    let s = &tasks["sentiment"];
    for key in ["macro_f1", "accuracy", "ece"] {
        let v = s[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    assert_eq!(s["n"], 400);
    assert!(s["per_class"]["positive"]["recall"].is_number());
    assert!(s["confusion"].is_object());
}

#[test]
fn predict_answers_one_json_object_per_input_line() {
    let (_, dir) = trained();
    let mut child = Command::new(voc_bin())
        .args(["predict", "--model"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("my card has not arrived\n\n정말 최고의 영화\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["error"], "empty text");
    let category = &lines[0]["tasks"]["category"];
    assert!(category["label"].is_string());
    assert_eq!(category["probabilities"].as_object().unwrap().len(), 10);
    let sentiment = &lines[2]["tasks"]["sentiment"];
    let confidence = sentiment["confidence"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&confidence));
}

fn voc_fails(args: &[&str]) -> String {
    let out = Command::new(voc_bin()).args(args).output().unwrap();
    assert!(!out.status.success(), "voc {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn train_on_a_file_with_a_bad_row_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, "{\"text\": \"a\", \"s\": \"x\"}\n{\"text\": 5}\n").unwrap();
    let err = voc_fails(&[
        "train",
        "--train",
        path.to_str().unwrap(),
        "--store",
        dir.path().to_str().unwrap(),
    ]);
    assert!(err.contains("bad.jsonl:2: text is not a string"), "{err}");
}

#[test]
fn an_unknown_config_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[training]\nlearning_rat = 0.1\n").unwrap();
    let train = fixture("demo_train.jsonl");
    let err = voc_fails(&[
        "train",
        "--train",
        train.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(err.contains("learning_rat"), "{err}");
}

#[test]
fn eval_of_a_missing_model_folder_says_so() {
    let data = fixture("demo_test.jsonl");
    let err = voc_fails(&[
        "eval",
        "--model",
        "/nonexistent/v1",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(err.contains("no such model version folder"), "{err}");
}

#[test]
fn an_unknown_device_is_refused() {
    let (_, dir) = trained();
    let err = voc_fails(&[
        "predict",
        "--model",
        dir.to_str().unwrap(),
        "--device",
        "tpu",
    ]);
    assert!(err.contains("unknown device 'tpu'"), "{err}");
}

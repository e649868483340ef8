//! Pretraining and pretrained starts, through the real `voc` binary on the fixtures:
//! `voc pretrain` writes an encoder version (and a `.vec` file), `voc train --init-from`
//! starts from exactly its weights, `--pretrained-vectors` maps a `.vec` file onto the
//! vocabulary, and `voc train` pretrains on its own text by default.

mod model_support;

use model_support::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use voc::model::read_manifest;

fn voc(args: &[&OsStr]) -> (bool, String, String) {
    let out = Command::new(voc_bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn last_line(stdout: &str) -> PathBuf {
    PathBuf::from(stdout.lines().last().expect("a last stdout line"))
}

fn weights(dir: &Path) -> std::collections::BTreeMap<String, tch::Tensor> {
    tch::Tensor::read_safetensors(dir.join("weights.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

/// What `metrics.json` of a trained version says the encoder started from.
fn init_report(model: &Path) -> serde_json::Value {
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("metrics.json")).unwrap()).unwrap();
    metrics["init"].clone()
}

/// `voc pretrain` on the demo training text into `store`, on one thread, with `extra`
/// flags; returns its success, stdout and stderr.
fn voc_pretrain_demo(store: &Path, extra: &[&OsStr]) -> (bool, String, String) {
    let text = fixture("demo_train.jsonl");
    let mut args: Vec<&OsStr> = vec![
        "pretrain".as_ref(),
        "--text".as_ref(),
        text.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
        "--threads".as_ref(),
        "1".as_ref(),
    ];
    args.extend_from_slice(extra);
    voc(&args)
}

/// Pretrains an encoder on the demo training text; returns its folder and the `.vec` path.
fn pretrain_demo(store: &Path) -> (PathBuf, PathBuf) {
    let vec = store.join("demo.vec");
    let (ok, stdout, stderr) = voc_pretrain_demo(
        store,
        &[
            "--vec-out".as_ref(),
            vec.as_os_str(),
            "--epochs".as_ref(),
            "3".as_ref(),
        ],
    );
    assert!(ok, "voc pretrain failed: {stderr}");
    (last_line(&stdout), vec)
}

#[test]
fn pretrain_writes_an_encoder_version_that_train_starts_from_exactly() {
    let store = tempfile::tempdir().unwrap();
    let (encoder, vec) = pretrain_demo(store.path());
    let manifest = read_manifest(&encoder).unwrap();
    assert_eq!(
        serde_json::to_value(manifest.kind).unwrap(),
        serde_json::json!("encoder")
    );
    assert!(manifest.tasks.is_empty());
    let encoder_weights = weights(&encoder);
    assert_eq!(
        encoder_weights.keys().collect::<Vec<_>>(),
        vec!["encoder.embedding.weight"]
    );
    // The service never lists an encoder as a servable version.
    assert!(voc::model::list_versions(store.path()).is_empty());
    // The vectors file has a header and one line per non-special token.
    let text = std::fs::read_to_string(&vec).unwrap();
    let header: Vec<usize> = text
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(header[0] + 2, manifest.vocab_size as usize);
    assert_eq!(header[1], 128);

    // Fine-tuning with the embedding's learning rate at 0 keeps it exactly as pretrained.
    let model = voc_train_demo(
        &[
            "--init-from".as_ref(),
            encoder.as_os_str(),
            "--embedding-lr-scale".as_ref(),
            "0".as_ref(),
            "--epochs".as_ref(),
            "1".as_ref(),
            "--threads".as_ref(),
            "1".as_ref(),
        ],
        store.path(),
    );
    let trained = weights(&model);
    let start = &encoder_weights["encoder.embedding.weight"];
    assert!(trained["encoder.embedding.weight"].equal(start));
    assert_eq!(
        std::fs::read(model.join("tokenizer.json")).unwrap(),
        std::fs::read(encoder.join("tokenizer.json")).unwrap(),
        "the classifier keeps the encoder's tokenizer"
    );
    assert_eq!(init_report(&model)["from"], "version");
    // An encoder is not something the service can load.
    let err = voc::model::Classifier::load(&encoder, tch::Device::Cpu)
        .err()
        .unwrap();
    assert!(err.to_string().contains("--init-from"), "{err}");
}

#[test]
fn a_vec_file_round_trips_into_the_embedding_matrix() {
    let store = tempfile::tempdir().unwrap();
    let (encoder, vec) = pretrain_demo(store.path());
    // The same text and vocabulary size give the same vocabulary, so every token of the
    // file maps exactly; with rescaling off and a frozen embedding the rows come back.
    let config = store.path().join("raw.toml");
    std::fs::write(&config, "[pretrain]\nembedding_std = 0.0\n").unwrap();
    let model = voc_train_demo(
        &[
            "--pretrained-vectors".as_ref(),
            vec.as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
            "--embedding-lr-scale".as_ref(),
            "0".as_ref(),
            "--epochs".as_ref(),
            "1".as_ref(),
            "--threads".as_ref(),
            "1".as_ref(),
        ],
        store.path(),
    );
    let init = init_report(&model);
    assert_eq!(init["from"], "vectors");
    let vocab = |dir: &Path| -> std::collections::BTreeMap<String, i64> {
        let t: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("tokenizer.json")).unwrap()).unwrap();
        serde_json::from_value(t["model"]["vocab"].clone()).unwrap()
    };
    let (model_vocab, encoder_vocab) = (vocab(&model), vocab(&encoder));
    let trained = &weights(&model)["encoder.embedding.weight"];
    let pretrained = &weights(&encoder)["encoder.embedding.weight"];
    // Every token the two vocabularies share comes back exactly as written to the file.
    let mut shared = 0;
    for (token, &id) in &model_vocab {
        let Some(&source) = encoder_vocab.get(token) else {
            continue;
        };
        if id < 2 {
            continue; // [PAD] and [UNK] have no vector
        }
        let diff = (trained.get(id) - pretrained.get(source))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-6, "token {token}: largest difference {diff}");
        shared += 1;
    }
    assert!(
        shared as f64 > 0.95 * model_vocab.len() as f64,
        "{shared} of {} tokens shared",
        model_vocab.len()
    );
    assert_eq!(init["exact"], shared);
}

#[test]
fn a_word_missing_from_the_vocabulary_gives_its_vector_to_its_pieces() {
    let store = tempfile::tempdir().unwrap();
    let vec = store.path().join("tiny.vec");
    // "refundable" is not a whole token of the demo vocabulary: its pieces get its vector.
    std::fs::write(&vec, "2 3\nrefund 1 0 0\nrefundable 0 2 0\n").unwrap();
    let model = voc_train_demo(
        &[
            "--pretrained-vectors".as_ref(),
            vec.as_os_str(),
            "--epochs".as_ref(),
            "1".as_ref(),
            "--threads".as_ref(),
            "1".as_ref(),
        ],
        store.path(),
    );
    let init = init_report(&model);
    assert_eq!(init["exact"], 1, "{init}");
    assert!(init["averaged"].as_u64().unwrap() >= 1);
    let manifest = read_manifest(&model).unwrap();
    assert_eq!(
        manifest.config.model.embedding_dim, 3,
        "the embedding size follows the file"
    );

    // A malformed file is refused with its line.
    std::fs::write(&vec, "2 3\nrefund 1 0 0\nbroken 1 x 0\n").unwrap();
    let (ok, _, stderr) = voc(&[
        "train".as_ref(),
        "--train".as_ref(),
        fixture("demo_train.jsonl").as_os_str(),
        "--store".as_ref(),
        store.path().as_os_str(),
        "--pretrained-vectors".as_ref(),
        vec.as_os_str(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("tiny.vec:3"), "{stderr}");
}

#[test]
fn train_pretrains_on_its_own_text_by_default_and_not_with_no_pretrain() {
    let store = tempfile::tempdir().unwrap();
    let args = [
        "--epochs".as_ref(),
        "1".as_ref(),
        "--threads".as_ref(),
        "1".as_ref(),
    ];
    let pretrained = voc_train_demo(&args, store.path());
    let report = init_report(&pretrained);
    assert_eq!(report["from"], "skipgram");
    assert!(report["pairs"].as_u64().unwrap() > 10_000, "{report}");
    let mut plain_args = args.to_vec();
    plain_args.push("--no-pretrain".as_ref());
    let plain = voc_train_demo(&plain_args, store.path());
    assert_eq!(init_report(&plain)["from"], "random");
}

#[test]
fn an_lstm_encoder_is_pretrained_as_a_language_model_and_train_starts_from_its_lstms() {
    let store = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = voc_pretrain_demo(
        store.path(),
        &[
            "--encoder".as_ref(),
            "lstm".as_ref(),
            "--lm-epochs".as_ref(),
            "3".as_ref(),
            "--epochs".as_ref(),
            "2".as_ref(),
        ],
    );
    assert!(ok, "voc pretrain failed: {stderr}");
    assert!(stderr.contains("language model: 3 epochs"), "{stderr}");
    let encoder = last_line(&stdout);
    let encoder_weights = weights(&encoder);
    let mut names: Vec<&str> = encoder_weights.keys().map(String::as_str).collect();
    names.retain(|n| n.contains("lstm"));
    assert_eq!(
        names.len(),
        8,
        "both LSTMs' weights and biases are saved: {names:?}"
    );
    assert!(!encoder_weights.keys().any(|k| !k.starts_with("encoder.")));
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(encoder.join("metrics.json")).unwrap()).unwrap();
    let lm = &metrics["language_model"];
    let (first, last) = (
        lm["first_epoch_loss"].as_f64().unwrap(),
        lm["final_loss"].as_f64().unwrap(),
    );
    // ln(vocabulary size) is what a model that knows nothing scores.
    let know_nothing = (read_manifest(&encoder).unwrap().vocab_size as f64).ln();
    assert!(
        last < first - 0.5 && last < know_nothing - 1.0,
        "the language model learned ({know_nothing:.2} knows nothing): {lm}"
    );

    let model = voc_train_demo(
        &[
            "--init-from".as_ref(),
            encoder.as_os_str(),
            "--encoder".as_ref(),
            "lstm".as_ref(),
            "--epochs".as_ref(),
            "1".as_ref(),
            "--threads".as_ref(),
            "1".as_ref(),
        ],
        store.path(),
    );
    let report = init_report(&model);
    assert_eq!(report["from"], "version");
    assert_eq!(
        report["tensors"], 9,
        "the embedding and the eight LSTM tensors were copied: {report}"
    );
    assert_eq!(report["lstm"], true, "{report}");
    // The pretrained LSTM fine-tunes at lstm_lr_scale times the rate: at 0 it keeps exactly
    // the language model's weights, at the default it moves.
    let frozen = voc_train_demo(
        &[
            "--init-from".as_ref(),
            encoder.as_os_str(),
            "--encoder".as_ref(),
            "lstm".as_ref(),
            "--epochs".as_ref(),
            "1".as_ref(),
            "--threads".as_ref(),
            "1".as_ref(),
            "--lstm-lr-scale".as_ref(),
            "0".as_ref(),
        ],
        store.path(),
    );
    let (moved, kept) = (weights(&model), weights(&frozen));
    for name in names.iter().filter(|n| n.contains("weight_ih")) {
        let pretrained = &encoder_weights[*name];
        assert!(kept[*name].equal(pretrained), "{name} kept at scale 0");
        assert!(
            !moved[*name].equal(pretrained),
            "{name} fine-tuned at scale 1"
        );
    }
    // A CNN encoder takes the embeddings only: no language model, no LSTM weights.
    let (ok, stdout, stderr) =
        voc_pretrain_demo(store.path(), &["--epochs".as_ref(), "1".as_ref()]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("language model"), "{stderr}");
    assert_eq!(weights(&last_line(&stdout)).len(), 1);
}

#[test]
fn pretrain_without_any_text_says_what_to_give() {
    let (ok, _, stderr) = voc(&["pretrain".as_ref()]);
    assert!(!ok);
    assert!(stderr.contains("--text"), "{stderr}");
    let empty = tempfile::NamedTempFile::with_suffix(".txt").unwrap();
    std::fs::write(empty.path(), "\n  \n").unwrap();
    let (ok, _, stderr) = voc(&[
        "pretrain".as_ref(),
        "--text".as_ref(),
        empty.path().as_os_str(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("no text to pretrain on"), "{stderr}");
}

#[test]
fn skipgram_on_real_airline_text_puts_related_words_closer_than_unrelated_ones() {
    // Read from ../shared/data (non-commercial data: used in place, never copied here).
    // Five passes: after three, rarer words still sit close to everything.
    let text = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/airline/train.jsonl");
    let store = tempfile::tempdir().unwrap();
    let vec = store.path().join("airline.vec");
    let (ok, _, stderr) = voc(&[
        "pretrain".as_ref(),
        "--text".as_ref(),
        text.as_os_str(),
        "--store".as_ref(),
        store.path().as_os_str(),
        "--vec-out".as_ref(),
        vec.as_os_str(),
        "--epochs".as_ref(),
        "5".as_ref(),
        "--threads".as_ref(),
        "1".as_ref(),
    ]);
    assert!(ok, "voc pretrain failed: {stderr}");
    let vectors: std::collections::HashMap<String, Vec<f64>> = std::fs::read_to_string(&vec)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(' ');
            let token = f.next().unwrap().to_string();
            (token, f.map(|v| v.parse().unwrap()).collect())
        })
        .collect();
    let cos = |a: &str, b: &str| {
        let (x, y) = (&vectors[a], &vectors[b]);
        let dot: f64 = x.iter().zip(y).map(|(p, q)| p * q).sum();
        let norm = |v: &Vec<f64>| v.iter().map(|p| p * p).sum::<f64>().sqrt();
        dot / (norm(x) * norm(y))
    };
    // Each related pair beats its unrelated pair, and by a clear margin on average (the
    // tokenizer's vocabulary, and so the vectors, vary a little from run to run).
    let triples = [
        ("delayed", "late", "thanks"),
        ("great", "thanks", "delayed"),
        ("bag", "luggage", "thanks"),
        ("cancelled", "delayed", "love"),
    ];
    let (mut near_sum, mut far_sum) = (0.0, 0.0);
    for (word, related, unrelated) in triples {
        let (near, far) = (cos(word, related), cos(word, unrelated));
        assert!(
            near > far,
            "{word}: {related} {near:.3}, {unrelated} {far:.3}"
        );
        near_sum += near;
        far_sum += far;
    }
    let (near, far) = (near_sum / 4.0, far_sum / 4.0);
    assert!(
        near > far + 0.2,
        "related {near:.3}, unrelated {far:.3} on average"
    );
}

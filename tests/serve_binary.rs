//! End to end: the real `voc serve` binary on a free port with a small trained model and a
//! fresh database, driven over HTTP.

mod common;

use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `voc serve` and returns it with its base URL (read from its "listening on" line).
fn spawn_server(database_url: &str, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_voc"))
        .args(["serve", "--bind", "127.0.0.1:0", "--store"])
        .arg(common::model_store())
        .args(["--database-url", database_url])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn voc serve");
    let url = common::listening_url(child.stdout.take().unwrap(), Duration::from_secs(60))
        .expect("voc serve did not start listening");
    (child, url)
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("voc serve did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[sqlx::test]
async fn classify_then_feedback_then_read_the_transcript_and_metrics_over_http(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (mut server, base) = spawn_server(
        &common::database_url(&connect),
        &[
            "--classify-api-keys",
            "ck",
            "--admin-api-keys",
            "ak",
            "--body-limit-bytes",
            "4096",
        ],
    );
    let http = reqwest::Client::new();
    let classified: Value = http
        .post(format!("{base}/classify"))
        .bearer_auth("ck")
        .json(&json!({"text": "I still have not received my new card", "call_id": "e2e-1"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let transcript_id = classified["transcript_id"].as_str().unwrap().to_string();
    let predicted = classified["predictions"]["sentiment"]["label"]
        .as_str()
        .unwrap()
        .to_string();

    let refused = http
        .post(format!("{base}/feedback"))
        .bearer_auth("ck")
        .json(&json!({"transcript_id": transcript_id, "labels": {"sentiment": "negative"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let feedback = http
        .post(format!("{base}/feedback"))
        .header("x-api-key", "ak")
        .json(&json!({"call_id": "e2e-1", "labels": {"sentiment": "negative", "category": "card_arrival"}, "annotator": "qa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(feedback.status(), 200);
    let feedback: Value = feedback.json().await.unwrap();
    assert_eq!(feedback["transcript_id"], transcript_id.as_str());

    let transcript: Value = http
        .get(format!("{base}/transcripts/{transcript_id}"))
        .bearer_auth("ak")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(transcript["text"], "I still have not received my new card");
    assert_eq!(
        transcript["predictions"][0]["outputs"]["sentiment"]["label"],
        predicted.as_str()
    );
    let labels: Vec<(String, String)> = transcript["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["task"].as_str().unwrap().into(),
                l["label"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        vec![
            ("category".into(), "card_arrival".into()),
            ("sentiment".into(), "negative".into())
        ]
    );

    let too_big = http
        .post(format!("{base}/classify"))
        .bearer_auth("ck")
        .json(&json!({"text": "x".repeat(10_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    let body: Value = too_big.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "voc_http_requests_total{method=\"POST\",route=\"/classify\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "voc_http_requests_total{method=\"POST\",route=\"/feedback\",status=\"401\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "voc_predictions_total{{task=\"sentiment\",label=\"{predicted}\"}} 1"
        )),
        "{metrics}"
    );

    let status = terminate(&mut server);
    assert!(
        status.success(),
        "voc serve exited with {status} on SIGTERM"
    );
}

#[sqlx::test]
async fn serve_with_an_empty_model_store_exits_non_zero_and_says_how_to_train_one(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let empty = tempfile::tempdir().unwrap();
    let url = common::database_url(&connect);
    let out = Command::new(env!("CARGO_BIN_EXE_voc"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--store",
        ])
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no model version in"), "{stderr}");
    assert!(
        stderr.contains("voc train") && stderr.contains("scripts/run.sh"),
        "{stderr}"
    );
}

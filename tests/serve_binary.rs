//! End to end: the real `voc serve` binary on a free port with a small trained model and a
//! fresh database, driven over HTTP.

mod common;

use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[sqlx::test]
async fn classify_then_feedback_then_read_the_transcript_and_metrics_over_http(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (mut server, base) = common::spawn_server(
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
    assert_eq!(refused.status(), 403, "a classify key may not label");
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

    let keyless = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(
        keyless.status(),
        401,
        "keys are configured: /metrics needs one"
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .header("x-api-key", "ck")
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
            "voc_http_requests_total{method=\"POST\",route=\"/feedback\",status=\"403\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "voc_predictions_total{{task=\"sentiment\",label=\"{predicted}\"}} 1"
        )),
        "{metrics}"
    );

    let status = common::terminate(&mut server);
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

/// The `host:port` part of a `http://host:port` base URL.
fn address(base: &str) -> &str {
    base.strip_prefix("http://").expect("an http:// URL")
}

/// Reads until the server closes the socket; `Err` if it has not within `guard` (a hang
/// guard, not a measurement).
fn read_until_closed(stream: &mut TcpStream, guard: Duration) -> std::io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(guard))?;
    let mut received = Vec::new();
    stream.read_to_end(&mut received)?;
    Ok(received)
}

/// Sends `GET /health` on `stream` and reads one whole answer (status line, headers and the
/// `Content-Length` body), leaving the connection open; what came before an error or the
/// close if there was one.
fn get_health(stream: &mut TcpStream) -> String {
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: voc\r\n\r\n")
        .is_err()
    {
        return String::new();
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return text,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

#[sqlx::test]
async fn a_socket_that_sends_half_a_request_line_is_closed_after_the_header_read_timeout(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (mut server, base) = common::spawn_server(
        &common::database_url(&connect),
        &["--header-read-timeout-ms", "200"],
    );
    let mut slow = TcpStream::connect(address(&base)).unwrap();
    slow.write_all(b"GET /hea").unwrap();
    let received = read_until_closed(&mut slow, Duration::from_secs(20));
    let received = received.expect("the server kept a half-sent request open");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    let mut fine = TcpStream::connect(address(&base)).unwrap();
    assert!(get_health(&mut fine).starts_with("HTTP/1.1 200"));
    assert!(common::terminate(&mut server).success());
}

#[sqlx::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (mut server, base) = common::spawn_server(
        &common::database_url(&connect),
        &[
            "--idle-timeout-ms",
            "200",
            "--header-read-timeout-ms",
            "600000",
        ],
    );
    let mut idle = TcpStream::connect(address(&base)).unwrap();
    let answer = get_health(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let rest = read_until_closed(&mut idle, Duration::from_secs(20))
        .expect("the server kept an idle connection open");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(common::terminate(&mut server).success());
}

#[sqlx::test]
async fn with_a_connection_limit_of_two_a_third_connection_is_refused_until_one_closes(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (mut server, base) =
        common::spawn_server(&common::database_url(&connect), &["--max-connections", "2"]);
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(address(&base)).unwrap())
        .collect();
    for stream in &mut held {
        let answer = get_health(stream);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let mut third = TcpStream::connect(address(&base)).unwrap();
    let refused = String::from_utf8_lossy(
        &read_until_closed(&mut third, Duration::from_secs(20))
            .expect("the server neither served nor refused the third connection"),
    )
    .into_owned();
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    drop(held.pop());
    // The server frees the slot once it has seen the close: retry until it has.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut next = TcpStream::connect(address(&base)).unwrap();
        let answer = get_health(&mut next);
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = get_health(&mut held[0]);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a held connection still works: {answer}"
    );
    assert!(common::terminate(&mut server).success());
}

/// Runs `voc serve` on `bind` with no API keys in its environment; `Ok(url)` if it started
/// listening, else `Err((exit status, stderr))`.
fn serve_without_keys(
    database_url: &str,
    bind: &str,
    extra: &[&str],
) -> Result<(Child, String), (std::process::ExitStatus, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_voc"))
        .args(["serve", "--bind", bind, "--store"])
        .arg(common::model_store())
        .args(["--database-url", database_url])
        .args(extra)
        .env_remove("VOC_CLASSIFY_API_KEYS")
        .env_remove("VOC_ADMIN_API_KEYS")
        .env_remove("VOC_INSECURE_NO_AUTH")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn voc serve");
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    match common::listening_url(child.stdout.take().unwrap(), Duration::from_secs(60)) {
        Some(url) => Ok((child, url)),
        None => {
            let status = child.wait().unwrap();
            Err((status, stderr.join().unwrap()))
        }
    }
}

#[sqlx::test]
async fn serve_on_a_public_address_without_keys_refuses_to_start_unless_told_insecure(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = common::database_url(&connect);
    match serve_without_keys(&url, "0.0.0.0:0", &[]) {
        Ok((mut child, listening)) => {
            let _ = child.kill();
            panic!("voc serve listened on {listening} with no API keys");
        }
        Err((status, stderr)) => {
            assert!(!status.success());
            for needed in [
                "VOC_CLASSIFY_API_KEYS",
                "VOC_ADMIN_API_KEYS",
                "--insecure-no-auth",
            ] {
                assert!(stderr.contains(needed), "no {needed} in: {stderr}");
            }
        }
    }
    let (mut insecure, _) = serve_without_keys(&url, "0.0.0.0:0", &["--insecure-no-auth"])
        .expect("--insecure-no-auth starts on a public address");
    assert!(common::terminate(&mut insecure).success());
    let (mut local, base) =
        serve_without_keys(&url, "127.0.0.1:0", &[]).expect("a loopback bind starts without keys");
    let mut stream = TcpStream::connect(address(&base)).unwrap();
    assert!(get_health(&mut stream).starts_with("HTTP/1.1 200"));
    assert!(common::terminate(&mut local).success());
}

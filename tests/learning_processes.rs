//! Learning from feedback across real processes: `voc import` run twice, two `voc serve`
//! replicas on one database, a replica killed with SIGKILL in the middle of a run, and a
//! corrupted version folder.

mod common;

use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn voc_import(url: &str, file: &str) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voc"))
        .args(["import", "--database-url", url, file])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut report: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    // The redaction counts are tests/redaction.rs's business.
    if let Some(fields) = report.as_object_mut() {
        fields.remove("redacted");
        fields.remove("ids_redacted");
    }
    (
        out.status.success(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `voc serve` with its base URL and everything it logged.
struct Server {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(url: &str, store: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_voc"))
            .args(["serve", "--bind", "127.0.0.1:0", "--store"])
            .arg(store)
            .args(["--database-url", url, "--learning-poll-ms", "200"])
            .args(["--retrain-interval-s", "0", "--eval-share", "0.2"])
            .args(["--gate-min-eval-rows", "20"])
            .args(if extra.contains(&"--finetune-epochs") {
                &[][..]
            } else {
                &["--finetune-epochs", "2"][..]
            })
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn voc serve");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let url = common::listening_url(child.stdout.take().unwrap(), Duration::from_secs(60))
            .unwrap_or_else(|| panic!("voc serve did not start: {}", log.lock().unwrap()));
        Server { child, url, log }
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn active_version(&self) -> String {
        self.get("/models/active").await["version"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Imports the demo test rows, starts a replica that trains only when asked, asks for a run
/// long enough never to finish, and returns once it reports progress.
async fn replica_in_a_long_run(url: &str, store: &Path) -> (Server, i64) {
    let (ok, _, log) = voc_import(url, &fixture("demo_test.jsonl"));
    assert!(ok, "{log}");
    let a = Server::start(
        url,
        store,
        &[QUIET[0], QUIET[1], "--finetune-epochs", "10000"],
    );
    let (status, queued) = a.post("/training-runs", json!({})).await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["run"]["id"].as_i64().unwrap();
    wait_until(
        "the run to make progress",
        Duration::from_secs(120),
        || async { a.get(&format!("/training-runs/{id}")).await["progress"]["step"].is_u64() },
    )
    .await;
    (a, id)
}

/// Flags of a replica that never starts a run by itself.
const QUIET: [&str; 2] = ["--retrain-min-labels", "1000000"];

#[sqlx::test]
async fn importing_the_same_file_twice_changes_nothing(
    pool_options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = common::database_url(&connect);
    let (ok, first, log) = voc_import(&url, &fixture("demo_test.jsonl"));
    assert!(ok, "{log}");
    assert_eq!(
        first,
        json!({"transcripts_added": 600, "transcripts_known": 0, "labels_added": 600, "labels_known": 0})
    );
    let (ok, second, log) = voc_import(&url, &fixture("demo_test.jsonl"));
    assert!(ok, "{log}");
    assert_eq!(
        second,
        json!({"transcripts_added": 0, "transcripts_known": 600, "labels_added": 0, "labels_known": 600})
    );
    let pool = pool_options.connect_with(connect).await.unwrap();
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM transcripts), (SELECT count(*) FROM labels WHERE source = 'import')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counts, (600, 600));

    // A file with texts and no labels is imported for the association loss, and says so.
    let texts = tempfile::NamedTempFile::with_suffix(".jsonl").unwrap();
    std::fs::write(
        texts.path(),
        "{\"id\": \"u1\", \"text\": \"no label here\"}\n{\"id\": \"u2\", \"text\": \"nor here\"}\n",
    )
    .unwrap();
    let (ok, counts, log) = voc_import(&url, texts.path().to_str().unwrap());
    assert!(ok, "{log}");
    assert!(log.contains("importing the texts without labels"), "{log}");
    assert_eq!(counts["transcripts_added"], 2);
    assert_eq!(counts["labels_added"], 0);

    // A bad file is refused with its line number and stores nothing.
    let bad = tempfile::NamedTempFile::with_suffix(".jsonl").unwrap();
    std::fs::write(
        bad.path(),
        "{\"id\": \"x1\", \"text\": \"fine\", \"sentiment\": \"positive\"}\n{not json\n",
    )
    .unwrap();
    let (ok, _, log) = voc_import(&url, bad.path().to_str().unwrap());
    assert!(!ok);
    assert!(log.contains(":2:"), "{log}");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM transcripts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 602);
}

#[sqlx::test]
async fn two_replicas_on_one_database_train_once_and_both_serve_the_new_version(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = common::database_url(&connect);
    let (store, base) = common::private_store();
    // Both replicas become due together: 600 imported labels reach the threshold.
    let flags = [
        "--retrain-min-labels",
        "600",
        "--gate-target-margin",
        "0.2",
        "--gate-other-margin",
        "0.2",
    ];
    let a = Server::start(&url, store.path(), &flags);
    let b = Server::start(&url, store.path(), &flags);
    assert_eq!(a.active_version().await, base);
    let (ok, _, log) = voc_import(&url, &fixture("demo_test.jsonl"));
    assert!(ok, "{log}");

    let started = Instant::now();
    let run = loop {
        let run = a.get("/training-runs").await["runs"][0].clone();
        if matches!(
            run["state"].as_str(),
            Some("promoted" | "rejected" | "failed" | "cancelled")
        ) {
            break run;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the run did not end: {run}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        run["state"],
        "promoted",
        "{run}\nA: {}\nB: {}",
        a.log(),
        b.log()
    );
    let candidate = run["candidate_version"].as_str().unwrap().to_string();
    let owner = run["owner"].as_str().unwrap();
    let pids = [a.child.id(), b.child.id()];
    assert!(
        pids.iter().any(|p| owner.ends_with(&format!(":{p}"))),
        "owner {owner} is neither replica {pids:?}"
    );
    for server in [&a, &b] {
        wait_until(
            "both replicas to serve the new version",
            Duration::from_secs(10),
            || async { server.active_version().await == candidate },
        )
        .await;
        let (status, answer) = server
            .post("/classify", json!({"text": "카드가 안 와요"}))
            .await;
        assert_eq!(status, 200);
        assert_eq!(answer["model_version"], candidate.as_str());
    }
    // Exactly one run, by exactly one replica, even after both kept polling a while.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let runs = a.get("/training-runs").await["runs"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(runs.len(), 1, "{runs:?}");
}

#[sqlx::test]
async fn a_replica_killed_mid_run_restarts_on_the_last_good_version_and_the_run_is_failed(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = common::database_url(&connect);
    let (store, base) = common::private_store();
    let (mut a, id) = replica_in_a_long_run(&url, store.path()).await;
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();

    // Leftovers a crash could leave: a half-written version folder, and a newer version
    // whose weights were corrupted, recorded active.
    std::fs::create_dir_all(store.path().join(".tmp-v29990101-000000-dead")).unwrap();
    let corrupt = "v29990101-000000-beef";
    let corrupt_dir = store.path().join(corrupt);
    std::fs::create_dir_all(&corrupt_dir).unwrap();
    for entry in std::fs::read_dir(store.path().join(&base)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), corrupt_dir.join(entry.file_name())).unwrap();
    }
    let manifest_path = corrupt_dir.join("model.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(&manifest_path, manifest.replace(&base, corrupt)).unwrap();
    let weights = corrupt_dir.join("weights.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    let pool = _opts.connect_with(connect.clone()).await.unwrap();
    voc::service::register_store(&pool, store.path())
        .await
        .unwrap();
    voc::store::models::activate(&pool, corrupt).await.unwrap();

    let b = Server::start(&url, store.path(), &QUIET);
    assert_eq!(b.active_version().await, base, "{}", b.log());
    assert!(
        b.log().contains("weights.safetensors is corrupted"),
        "no clear log line about the corrupted version: {}",
        b.log()
    );
    wait_until(
        "the orphaned run to be marked failed (after its heartbeat went stale)",
        Duration::from_secs(60),
        || async { b.get(&format!("/training-runs/{id}")).await["state"] == "failed" },
    )
    .await;
    let run = b.get(&format!("/training-runs/{id}")).await;
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("stopped before it finished"),
        "{run}"
    );
    assert!(!store.path().join(".tmp-v29990101-000000-dead").exists());
    // Activating the corrupted version by hand is refused; the current model keeps serving.
    let (status, answer) = b
        .post(&format!("/models/{corrupt}/activate"), json!({}))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("corrupted"),
        "{answer}"
    );
    let (status, answer) = b.post("/classify", json!({"text": "잘 모르겠어요"})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["model_version"], base.as_str());
}

#[sqlx::test]
async fn a_clean_shutdown_during_a_run_marks_it_failed_at_once(
    pool_options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = common::database_url(&connect);
    let (store, _base) = common::private_store();
    let (mut a, id) = replica_in_a_long_run(&url, store.path()).await;
    let _ = Command::new("kill")
        .args(["-TERM", &a.child.id().to_string()])
        .status();
    let started = Instant::now();
    while a.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "voc serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pool = pool_options.connect_with(connect).await.unwrap();
    let (state, reason): (String, String) =
        sqlx::query_as("SELECT state, reason FROM training_runs WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, "failed");
    assert!(
        reason.contains("stopped during the run"),
        "{reason}\n{}",
        a.log()
    );
    assert_eq!(voc::model::list_versions(store.path()).len(), 1);
}

#[sqlx::test]
async fn pretrain_reads_the_transcripts_stored_in_postgres(
    _pool_options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = common::database_url(&connect);
    let (ok, _, log) = voc_import(&url, &fixture("demo_train.jsonl"));
    assert!(ok, "{log}");
    let store = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voc"))
        .args([
            "pretrain",
            "--database-url",
            &url,
            "--epochs",
            "1",
            "--threads",
            "1",
        ])
        .arg("--store")
        .arg(store.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("2800 transcripts read from the database"),
        "{stderr}"
    );
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    let manifest = voc::model::read_manifest(Path::new(&dir)).unwrap();
    assert_eq!(manifest.training_data.rows, 2800);
    assert_eq!(manifest.training_data.source, "database transcripts");
}

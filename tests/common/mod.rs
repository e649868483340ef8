//! Shared test helpers: a small model trained once per test binary, the app built on a
//! `#[sqlx::test]` database, and a one-call request helper.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tower::ServiceExt;
use voc::pipeline::PipelineSettings;
use voc::service::{ApiKeys, AppState, Limits, ServiceSettings};
use voc::store::DatabaseSettings;

/// A model store holding one version trained on the demo fixtures (tasks `category` and
/// `sentiment`), trained once per test binary with the real `voc train`.
pub fn model_store() -> &'static Path {
    static STORE: OnceLock<PathBuf> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let root = env!("CARGO_MANIFEST_DIR");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_voc"))
            .args(["train", "--epochs", "2", "--store"])
            .arg(&dir)
            .arg("--train")
            .arg(format!("{root}/tests/fixtures/demo_train.jsonl"))
            .arg("--valid")
            .arg(format!("{root}/tests/fixtures/demo_test.jsonl"))
            .output()
            .expect("run voc train");
        assert!(
            out.status.success(),
            "voc train failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// The name of the version in [`model_store`].
pub fn model_version() -> String {
    voc::model::list_versions(model_store())
        .pop()
        .expect("a trained test model")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A store of its own holding a copy of the shared test model (runs write new versions).
pub fn private_store() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let base = voc::model::list_versions(model_store())
        .pop()
        .expect("a trained test model");
    let name = base.file_name().unwrap().to_string_lossy().into_owned();
    let target = dir.path().join(&name);
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(&base).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
    }
    (dir, name)
}

/// Copies version `base` of `store` to a new folder `name` whose manifest names it `name`.
pub fn copy_version_as(store: &Path, base: &str, name: &str) {
    let target = store.join(name);
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(store.join(base)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
    }
    let manifest_path = target.join(voc::model::version_dir::MANIFEST_FILE);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["version"] = serde_json::json!(name);
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

/// The URL of the database `#[sqlx::test]` made for a test, for a `voc` process to use.
pub fn database_url(connect: &sqlx::postgres::PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        connect.get_username(),
        connect.get_host(),
        connect.get_port(),
        connect.get_database().expect("sqlx::test names a database")
    )
}

/// Waits for `voc serve` to print `listening on URL` on `stdout` and returns the URL
/// (`None` if it did not within `limit`). Later output is read and dropped.
pub fn listening_url(stdout: std::process::ChildStdout, limit: Duration) -> Option<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    rx.recv_timeout(limit).ok()
}

/// Settings for tests: small limits so they are easy to cross, no API keys.
pub fn settings() -> ServiceSettings {
    ServiceSettings {
        bind: "127.0.0.1:0".into(),
        database: DatabaseSettings {
            url: String::new(),
            max_connections: 4,
            acquire_timeout: Duration::from_millis(500),
        },
        store_dir: model_store().to_path_buf(),
        model_version: None,
        pipeline: PipelineSettings {
            max_batch_size: 64,
            max_batch_wait: Duration::from_millis(1),
            queue_capacity: 64,
            queue_bytes: 1 << 20,
            replicas: 1,
            intra_op_threads: 1,
            device: tch::Device::Cpu,
        },
        limits: Limits {
            body_limit_bytes: 16 * 1024,
            max_items_per_request: 8,
            request_timeout: Duration::from_secs(30),
        },
        connections: Default::default(),
        keys: ApiKeys::default(),
        shutdown_grace: Duration::from_secs(1),
        learning: voc::learning::LearningSettings::default(),
        redaction: voc::redact::Policy::Redact,
        review: Default::default(),
    }
}

/// The app exactly as `voc serve` builds it, on `pool`.
pub async fn app_with(settings: ServiceSettings, pool: sqlx::PgPool) -> (Router, AppState) {
    let (state, _worker) = voc::service::prepare(&settings, pool)
        .await
        .expect("prepare the service");
    (voc::app(state.clone()), state)
}

pub async fn app(pool: sqlx::PgPool) -> (Router, AppState) {
    app_with(settings(), pool).await
}

/// One answered request: status, headers and the body parsed as JSON (`Null` when not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

/// Sends `body` (raw) with the given content type and extra headers.
pub async fn send_raw(
    app: &Router,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = app
        .clone()
        .oneshot(req.body(body.into()).unwrap())
        .await
        .expect("the router never fails");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer {
        status,
        headers,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    }
}

pub async fn post_json(app: &Router, uri: &str, body: &Value) -> Answer {
    send_raw(
        app,
        "POST",
        uri,
        Some("application/json"),
        body.to_string(),
        &[],
    )
    .await
}

pub async fn get(app: &Router, uri: &str) -> Answer {
    send_raw(app, "GET", uri, None, Body::empty(), &[]).await
}

/// Starts `voc serve` and returns it with its base URL (read from its "listening on" line).
pub fn spawn_server(database_url: &str, extra: &[&str]) -> (std::process::Child, String) {
    spawn_server_in(model_store(), database_url, extra)
}

/// [`spawn_server`] on the model store at `store`.
pub fn spawn_server_in(
    store: &Path,
    database_url: &str,
    extra: &[&str],
) -> (std::process::Child, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_voc"))
        .args(["serve", "--bind", "127.0.0.1:0", "--store"])
        .arg(store)
        .args(["--database-url", database_url])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn voc serve");
    let url = listening_url(child.stdout.take().unwrap(), Duration::from_secs(60))
        .expect("voc serve did not start listening");
    (child, url)
}

pub fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("voc serve did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks `condition` every 20 ms until it holds; panics naming `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !condition().await {
        assert!(started.elapsed() < limit, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The test tools `scripts/tools.sh` installs (schemathesis, and kubernetes-validate next to
/// it): the schemathesis executable, `$VOC_SCHEMATHESIS` when set.
pub fn schemathesis() -> PathBuf {
    if let Ok(path) = std::env::var("VOC_SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tools.sh"))
        .output()
        .expect("run scripts/tools.sh");
    assert!(
        out.status.success(),
        "scripts/tools.sh could not provide schemathesis: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}

//! The OpenAPI document must stay true to the server: schemathesis (from PyPI, installed by
//! `scripts/tools.sh`, which `scripts/test.sh` runs) generates requests from `/openapi.json`
//! of the real `voc serve` with keys configured, and checks every answer against the
//! document (status codes, schemas, content types, headers, auth, valid data accepted and
//! invalid data refused). Any mismatch fails this test with schemathesis's report.

mod common;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::process::Command;

#[sqlx::test]
async fn schemathesis_finds_no_difference_between_the_document_and_the_server(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let st = common::schemathesis();
    let (mut server, base) = common::spawn_server(
        &common::database_url(&connect),
        &["--classify-api-keys", "ck", "--admin-api-keys", "ak"],
    );
    let report = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .args(["run", &format!("{base}/openapi.json")])
            .args(["--header", "Authorization: Bearer ak"])
            .args(["--checks", "all", "--max-examples", "15", "--seed", "1"])
            .args(["--generation-deterministic", "--workers", "1", "--no-color"])
            .current_dir(report.path())
            .arg("--report-dir")
            .arg(report.path())
            .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
            .env(
                "PYTHONPATH",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"),
            )
            .output()
            .expect("run schemathesis")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    common::terminate(&mut server);
    assert!(
        out.status.success(),
        "schemathesis found differences ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Selected: 26/26") && stdout.contains("Tested: 26"),
        "every route is tested:\n{stdout}"
    );
}

//! The Kubernetes manifests in `deploy/kubernetes/` are valid against the Kubernetes API
//! schemas (kubernetes-validate from PyPI, strict: unknown fields are errors), and say what
//! `voc serve` actually answers on.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");

/// kubernetes-validate, next to the schemathesis that `scripts/tools.sh` installs.
fn kubernetes_validate() -> PathBuf {
    common::schemathesis().with_file_name("kubernetes-validate")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_manifest_passes_strict_schema_validation() {
    let files = manifests();
    assert!(files.len() >= 4, "{files:?}");
    let out = Command::new(kubernetes_validate())
        .arg("--strict")
        .args(&files)
        .output()
        .expect("run kubernetes-validate");
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    for kind in [
        "deployment/voc",
        "service/voc",
        "horizontalpodautoscaler/voc",
        "poddisruptionbudget/voc",
        "persistentvolumeclaim/voc-models",
    ] {
        assert!(
            report.contains(&format!("passed for resource {kind}")),
            "{kind} not validated:\n{report}"
        );
    }
}

#[test]
fn a_manifest_with_an_unknown_field_fails_validation() {
    // The checker itself must be able to fail: a Deployment with a misspelt field.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(Path::new(DIR).join("deployment.yaml")).unwrap();
    let broken = text.replacen("readinessProbe:", "readynessProbe:", 1);
    assert_ne!(text, broken);
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let out = Command::new(kubernetes_validate())
        .arg("--strict")
        .arg(&file)
        .output()
        .expect("run kubernetes-validate");
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_probes_name_routes_voc_serves() {
    let text = std::fs::read_to_string(Path::new(DIR).join("deployment.yaml")).unwrap();
    let api =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/mod.rs")).unwrap();
    for route in ["/healthz", "/readyz"] {
        assert!(
            text.contains(&format!("path: {route}")),
            "{route} not probed"
        );
        assert!(
            api.contains(&format!(".route(\"{route}\"")),
            "voc does not serve {route}"
        );
    }
    assert!(text.contains("containerPort: 8080") && text.contains("value: 0.0.0.0:8080"));
}

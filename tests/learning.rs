//! Learning from feedback, in process against the real Postgres and real training: runs
//! started by feedback and by hand, the gate, the swap under load, rollback, cancelling, and
//! a class added to a live task.

mod common;

use common::{get, post_json};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use voc::data::{read_dataset, Example, ReadOptions};
use voc::learning::eval_set::in_frozen_eval;
use voc::learning::LearningSettings;
use voc::store::imports::{import_rows, ImportRow};

const EVAL_SHARE: f64 = 0.2;

fn fixture_rows(name: &str) -> Vec<Example> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    read_dataset(&path, &ReadOptions::default())
        .expect("fixture reads")
        .examples
}

/// Imports a fixture (labels included) and returns how many labels were added.
async fn import(pool: &sqlx::PgPool, name: &str) -> i64 {
    let rows = fixture_rows(name);
    let rows: Vec<ImportRow> = rows.iter().map(ImportRow::from).collect();
    import_rows(pool, &rows, 0)
        .await
        .expect("import")
        .labels_added as i64
}

/// The app as `voc serve` runs it, with its background tasks, on a store of its own (runs
/// write new versions) holding the shared test model, version `base`.
struct LearningApp {
    app: axum::Router,
    store: tempfile::TempDir,
    base: String,
}

async fn learning_app(pool: &sqlx::PgPool, learning: LearningSettings) -> LearningApp {
    let (store, base) = common::private_store();
    let mut settings = common::settings();
    settings.store_dir = store.path().to_path_buf();
    settings.learning = learning;
    let (app, state) = common::app_with(settings.clone(), pool.clone()).await;
    // Dropping the handles detaches the tasks; they stop with the test's runtime.
    voc::service::start_background(&state, &settings);
    LearningApp { app, store, base }
}

/// Fast polling, a small evaluation set, short runs, no automatic trigger.
fn test_learning() -> LearningSettings {
    let mut l = LearningSettings {
        min_new_labels: i64::MAX,
        interval: None,
        poll: Duration::from_millis(100),
        eval_share: EVAL_SHARE,
        ..Default::default()
    };
    l.fine_tune.max_epochs = 2;
    l.gate.min_eval_rows = 20;
    l
}

/// Waits until run `id` (or the newest run, for `None`) has ended; returns it.
async fn wait_for_run_end(app: &axum::Router, id: Option<i64>, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let run = match id {
            Some(id) => get(app, &format!("/training-runs/{id}")).await.json,
            None => get(app, "/training-runs").await.json["runs"][0].clone(),
        };
        let state = run["state"].as_str().unwrap_or("");
        if !state.is_empty() && state != "queued" && state != "running" {
            return run;
        }
        assert!(
            started.elapsed() < limit,
            "run did not end within {limit:?}: {run}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The classes added to `task` that the serving model does not predict yet (GET /tasks).
async fn pending_classes(app: &axum::Router, task: &str) -> Value {
    let tasks = get(app, "/tasks").await.json;
    tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == task)
        .unwrap()["added_labels_not_yet_predicted"]
        .clone()
}

async fn classify_version(app: &axum::Router, text: &str) -> String {
    let a = post_json(app, "/classify", &json!({ "text": text })).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json["model_version"].as_str().unwrap().to_string()
}

fn sentiment_rows() -> Vec<Example> {
    fixture_rows("demo_test.jsonl")
        .into_iter()
        .filter(|e| e.labels.contains_key("sentiment"))
        .collect()
}

/// The uuid Postgres gave an imported row.
/// Whether the stored transcript `id` is in the frozen evaluation set (by its recorded bucket).
async fn is_frozen(pool: &sqlx::PgPool, id: uuid::Uuid) -> bool {
    let bucket: i32 = sqlx::query_scalar("SELECT eval_bucket FROM transcripts WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    in_frozen_eval(bucket as u32, EVAL_SHARE)
}

async fn transcript_id(pool: &sqlx::PgPool, source_id: &str) -> uuid::Uuid {
    let (id,): (uuid::Uuid,) = sqlx::query_as("SELECT id FROM transcripts WHERE source_id = $1")
        .bind(source_id)
        .fetch_one(pool)
        .await
        .unwrap();
    id
}

#[sqlx::test]
async fn feedback_starts_a_run_whose_version_is_swapped_in_under_load_then_rolled_back(
    pool: sqlx::PgPool,
) {
    let imported = import(&pool, "demo_test.jsonl").await;
    assert_eq!(imported, 600);
    let mut learning = test_learning();
    const FEEDBACK: i64 = 30;
    learning.min_new_labels = imported + FEEDBACK;
    // This test is about the mechanism; the gate's strictness has its own test.
    learning.gate.target_margin = 0.2;
    learning.gate.other_margin = 0.2;
    let LearningApp { app, store, base } = learning_app(&pool, learning).await;

    // Concurrent /classify load for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let texts: Vec<String> = sentiment_rows().iter().map(|e| e.text.clone()).collect();
    let mut load = Vec::new();
    for worker in 0..4 {
        let (app, stop, texts) = (app.clone(), stop.clone(), texts.clone());
        load.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let a =
                    post_json(&app, "/classify", &json!({"text": texts[i % texts.len()]})).await;
                seen.push((
                    a.status.as_u16(),
                    a.json["model_version"].as_str().unwrap_or("").to_string(),
                ));
                i += 4;
            }
            seen
        }));
    }

    // Fewer labels than the threshold: no run.
    let rows = sentiment_rows();
    for e in &rows[..FEEDBACK as usize - 1] {
        let a = post_json(
            &app,
            "/feedback",
            &json!({"call_id": e.id, "labels": {"sentiment": e.labels["sentiment"]}, "annotator": "qa-1"}),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get(&app, "/training-runs").await.json["runs"], json!([]));
    // The threshold-th label starts one.
    let last = &rows[FEEDBACK as usize - 1];
    post_json(
        &app,
        "/feedback",
        &json!({"call_id": last.id, "labels": {"sentiment": last.labels["sentiment"]}, "annotator": "qa-1"}),
    )
    .await;
    let run = wait_for_run_end(&app, None, Duration::from_secs(300)).await;
    assert_eq!(run["state"], "promoted", "{run}");
    assert_eq!(run["trigger"], "labels");
    assert_eq!(run["parent_version"], base.as_str());
    let candidate = run["candidate_version"].as_str().unwrap().to_string();
    assert!(
        run["progress"]["examples_per_second"].as_f64().unwrap() > 0.0,
        "{run}"
    );
    assert!(
        run["snapshot"]["eval_labeled"]["sentiment"]
            .as_u64()
            .unwrap()
            >= 20,
        "{run}"
    );
    assert!(
        run["evaluation"]["candidate"]["sentiment"]["macro_f1"].is_number(),
        "{run}"
    );
    assert!(
        run["evaluation"]["active"]["sentiment"]["macro_f1"].is_number(),
        "{run}"
    );
    assert!(
        run["evaluation"]["training"]["validation_macro_f1"]["sentiment"].is_number(),
        "{run}"
    );

    // Keep the load going until answers name the new version, then a little longer.
    let started = Instant::now();
    while classify_version(&app, &texts[0]).await != candidate {
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = 0;
    for task in load {
        let seen = task.await.unwrap();
        let mut swapped = false;
        for (status, version) in seen {
            answers += 1;
            assert_eq!(status, 200, "a request failed during the swap");
            assert!(
                version == base || version == candidate,
                "unexpected version {version}"
            );
            // Within one client, once the new version answers, the old one never does again.
            swapped |= version == candidate;
            assert!(
                !(swapped && version == base),
                "the old version answered after the new one"
            );
        }
    }
    assert!(answers > 20, "only {answers} answers under load");

    // The version is recorded on predictions, on the version row, and in its manifest.
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM predictions WHERE model_version = $1")
        .bind(&candidate)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(n > 0);
    let models = get(&app, "/models").await.json;
    let row = models["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == candidate.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["active"], true);
    assert_eq!(row["gate"]["decision"], "promoted");
    let manifest = voc::model::read_manifest(&store.path().join(&candidate)).unwrap();
    assert_eq!(manifest.parent_version.as_deref(), Some(base.as_str()));

    // Rollback: one call, and the old version answers again.
    let a = common::post_json(&app, &format!("/models/{base}/activate"), &json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(classify_version(&app, &texts[1]).await, base);
    assert_eq!(
        voc::store::models::active_version(&pool)
            .await
            .unwrap()
            .as_deref(),
        Some(base.as_str())
    );
    // The on-call engineer sees both in the metrics: one promoted run, two swaps.
    let metrics = get(&app, "/metrics").await.text;
    assert!(
        metrics.contains("voc_training_runs_total{state=\"promoted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("voc_training_runs_total{state=\"failed\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("voc_model_swaps_total 2"), "{metrics}");
}

#[sqlx::test]
async fn a_candidate_trained_on_flipped_labels_is_rejected_and_kept_on_disk(pool: sqlx::PgPool) {
    import(&pool, "demo_test.jsonl").await;
    let mut learning = test_learning();
    // Enough steps for the flipped labels to be learned, not just nudged.
    learning.fine_tune.max_epochs = 10;
    assert!(learning.gate.target_margin <= 0.01);
    let LearningApp { app, store, base } = learning_app(&pool, learning).await;

    // A careless annotator flips every sentiment label outside the evaluation set.
    let mut flipped = 0;
    for e in sentiment_rows() {
        let id = transcript_id(&pool, &e.id).await;
        if is_frozen(&pool, id).await {
            continue;
        }
        let wrong = if e.labels["sentiment"] == "positive" {
            "negative"
        } else {
            "positive"
        };
        let a = post_json(
            &app,
            "/feedback",
            &json!({"transcript_id": id, "labels": {"sentiment": wrong}, "annotator": "careless"}),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
        flipped += 1;
    }
    assert!(flipped > 250);
    let a = post_json(&app, "/training-runs", &json!({})).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let id = a.json["run"]["id"].as_i64().unwrap();
    // Asking again while it is open answers the same run.
    let again = post_json(&app, "/training-runs", &json!({})).await;
    assert_eq!(again.json["run"]["id"].as_i64(), Some(id), "{}", again.text);
    assert_eq!(again.json["created"], false);

    let run = wait_for_run_end(&app, Some(id), Duration::from_secs(300)).await;
    assert_eq!(run["state"], "rejected", "{run}");
    assert_eq!(run["trigger"], "manual");
    let reason = run["reason"].as_str().unwrap();
    assert!(reason.contains("sentiment macro-F1"), "{reason}");
    let gate = &run["evaluation"]["tasks"]["sentiment"];
    assert!(
        gate["candidate_macro_f1"].as_f64().unwrap()
            < gate["active_macro_f1"].as_f64().unwrap() - 0.01,
        "{run}"
    );
    let candidate = run["candidate_version"].as_str().unwrap();
    assert!(store.path().join(candidate).join("model.json").is_file());
    let models = get(&app, "/models").await.json;
    let row = models["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == candidate)
        .unwrap()
        .clone();
    assert_eq!(row["gate"]["decision"], "rejected");
    assert_eq!(row["active"], false);
    assert_eq!(classify_version(&app, "환불해 주세요").await, base);
}

#[sqlx::test]
async fn a_running_run_can_be_cancelled_and_leaves_no_version(pool: sqlx::PgPool) {
    import(&pool, "demo_test.jsonl").await;
    let mut learning = test_learning();
    learning.fine_tune.max_epochs = 10_000;
    let LearningApp { app, store, .. } = learning_app(&pool, learning).await;

    let id = post_json(&app, "/training-runs", &json!({})).await.json["run"]["id"]
        .as_i64()
        .unwrap();
    let started = Instant::now();
    loop {
        let run = get(&app, &format!("/training-runs/{id}")).await.json;
        if run["state"] == "running" && run["progress"]["step"].as_u64().is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = post_json(&app, &format!("/training-runs/{id}/cancel"), &json!({})).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let run = wait_for_run_end(&app, Some(id), Duration::from_secs(30)).await;
    assert_eq!(run["state"], "cancelled", "{run}");
    assert_eq!(voc::model::list_versions(store.path()).len(), 1);
    // Cancelling again changes nothing; an unknown run is 404.
    assert_eq!(
        post_json(&app, &format!("/training-runs/{id}/cancel"), &json!({}))
            .await
            .status,
        202
    );
    assert_eq!(
        post_json(&app, "/training-runs/999999/cancel", &json!({}))
            .await
            .status,
        404
    );
}

#[sqlx::test]
async fn a_class_added_to_a_live_task_is_predicted_after_the_next_run(pool: sqlx::PgPool) {
    import(&pool, "demo_test.jsonl").await;
    let mut learning = test_learning();
    learning.fine_tune.max_epochs = 6;
    learning.gate.target_margin = 0.2;
    learning.gate.other_margin = 0.2;
    let LearningApp { app, store, .. } = learning_app(&pool, learning).await;
    const NEW: &str = "apple_pay_or_google_pay";

    // Transcripts of an intent the model has never seen arrive through /classify.
    let mut ids = Vec::new();
    for e in fixture_rows("new_intent.jsonl") {
        let a = post_json(&app, "/classify", &json!({"text": e.text})).await;
        assert_ne!(a.json["predictions"]["category"]["label"], NEW);
        ids.push((
            a.json["transcript_id"].as_str().unwrap().to_string(),
            e.text,
        ));
    }
    let feedback =
        |id: &str| json!({"transcript_id": id, "labels": {"category": NEW}, "annotator": "qa-2"});
    let refused = post_json(&app, "/feedback", &feedback(&ids[0].0)).await;
    assert_eq!(refused.status, 422, "{}", refused.text);

    let a = post_json(&app, "/tasks/category/labels", &json!({"label": NEW})).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        post_json(&app, "/tasks/category/labels", &json!({"label": NEW}))
            .await
            .status,
        200
    );
    assert_eq!(
        post_json(&app, "/tasks/nope/labels", &json!({"label": NEW}))
            .await
            .status,
        404
    );
    assert_eq!(
        post_json(&app, "/tasks/category/labels", &json!({"label": " "}))
            .await
            .status,
        422
    );
    assert_eq!(pending_classes(&app, "category").await, json!([NEW]));

    // Feedback may use the class at once.
    for (id, _) in &ids {
        let a = post_json(&app, "/feedback", &feedback(id)).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let id = post_json(&app, "/training-runs", &json!({})).await.json["run"]["id"]
        .as_i64()
        .unwrap();
    let run = wait_for_run_end(&app, Some(id), Duration::from_secs(300)).await;
    assert_eq!(run["state"], "promoted", "{run}");
    let candidate = run["candidate_version"].as_str().unwrap();
    let manifest = voc::model::read_manifest(&store.path().join(candidate)).unwrap();
    let labels = &manifest.task("category").unwrap().labels;
    assert_eq!(labels.last().map(String::as_str), Some(NEW));
    assert_eq!(labels.len(), 11);

    // The transcripts it learned from are now mostly predicted as the new class.
    let mut hits = 0;
    let mut trained: Vec<&(String, String)> = Vec::new();
    for pair in &ids {
        if !is_frozen(&pool, pair.0.parse().unwrap()).await {
            trained.push(pair);
        }
    }
    for (_, text) in &trained {
        let a = post_json(&app, "/classify", &json!({"text": text})).await;
        assert_eq!(a.json["model_version"], candidate);
        hits += usize::from(a.json["predictions"]["category"]["label"] == NEW);
    }
    assert!(
        hits * 2 > trained.len(),
        "{hits} of {} predicted {NEW}",
        trained.len()
    );
    assert_eq!(pending_classes(&app, "category").await, json!([]));
}

/// Waits until a session of this database waits for a lock on table `table`.
async fn wait_for_lock_wait(pool: &sqlx::PgPool, table: &str) {
    let what = format!("nobody waits for {table}");
    common::wait_until(Duration::from_secs(60), &what, || async {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted",
        )
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap();
        waiting > 0
    })
    .await;
}

#[sqlx::test]
async fn a_run_that_ends_after_a_manual_rollback_does_not_undo_it(pool: sqlx::PgPool) {
    import(&pool, "demo_test.jsonl").await;
    let (store, base) = common::private_store();
    // Sorts before `base`, so `base` (the newest) is what the service starts on.
    let older = "v00000000-000000-0000";
    common::copy_version_as(store.path(), &base, older);
    let mut learning = test_learning();
    // Any candidate passes the gate: only the rollback may keep it from going live.
    learning.gate.target_margin = 1.0;
    learning.gate.other_margin = 1.0;
    let mut settings = common::settings();
    settings.store_dir = store.path().to_path_buf();
    settings.learning = learning;
    let (app, state) = common::app_with(settings.clone(), pool.clone()).await;
    voc::service::start_background(&state, &settings);
    assert_eq!(classify_version(&app, "환불해 주세요").await, base);

    // Step by step: the run takes its parent (`base`), then reads the labels, which this
    // transaction holds locked; the rollback happens while it waits.
    let mut hold = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE labels IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let id = post_json(&app, "/training-runs", &json!({})).await.json["run"]["id"]
        .as_i64()
        .unwrap();
    wait_for_lock_wait(&pool, "labels").await;
    let a = post_json(&app, &format!("/models/{older}/activate"), &json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    hold.commit().await.unwrap();

    let run = wait_for_run_end(&app, Some(id), Duration::from_secs(300)).await;
    assert_eq!(run["state"], "superseded", "{run}");
    assert_eq!(run["parent_version"], base.as_str(), "{run}");
    assert!(run["reason"].as_str().unwrap().contains(older), "{run}");
    assert_eq!(
        voc::store::models::active_version(&pool)
            .await
            .unwrap()
            .as_deref(),
        Some(older)
    );
    assert_eq!(classify_version(&app, "환불해 주세요").await, older);
    // The candidate stays on disk, not active.
    let candidate = run["candidate_version"].as_str().unwrap();
    assert!(store.path().join(candidate).is_dir());
}

#[sqlx::test]
async fn starting_a_replica_never_changes_the_version_the_others_serve(pool: sqlx::PgPool) {
    let (store, base) = common::private_store();
    let older = "v00000000-000000-0000";
    common::copy_version_as(store.path(), &base, older);
    let mut settings = common::settings();
    settings.store_dir = store.path().to_path_buf();
    settings.learning = test_learning();
    // The first process on a new database records what it serves: the newest.
    let (_first, _) = common::app_with(settings.clone(), pool.clone()).await;
    let active = || async { voc::store::models::active_version(&pool).await.unwrap() };
    assert_eq!(active().await.as_deref(), Some(base.as_str()));

    // A replica pinned to another version serves it, and leaves the active one alone.
    let mut pinned = settings.clone();
    pinned.model_version = Some(older.to_string());
    let (replica, _) = common::app_with(pinned, pool.clone()).await;
    assert_eq!(classify_version(&replica, "환불해 주세요").await, older);
    assert_eq!(active().await.as_deref(), Some(base.as_str()));

    // So does a replica whose copy of the active version does not load.
    let weights = store.path().join(&base).join("weights.safetensors");
    std::fs::write(&weights, b"half a file").unwrap();
    let (broken, _) = common::app_with(settings.clone(), pool.clone()).await;
    assert_eq!(classify_version(&broken, "환불해 주세요").await, older);
    assert_eq!(active().await.as_deref(), Some(base.as_str()));
}

#[sqlx::test]
async fn concurrent_activations_of_different_versions_all_succeed_and_leave_one_active(
    pool: sqlx::PgPool,
) {
    use voc::store::models::{activate, register, NewModelVersion};
    let versions = ["v-a", "v-b", "v-c", "v-d"];
    for v in versions {
        let new = NewModelVersion {
            version: v,
            path: v,
            tasks: json!([]),
            metrics: json!({}),
        };
        register(&pool, new).await.unwrap();
    }
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { activate(&pool, versions[i % versions.len()]).await })
        })
        .collect();
    for t in tasks {
        assert!(
            t.await.unwrap().unwrap(),
            "an activation failed or found no version"
        );
    }
    let (active,): (i64,) = sqlx::query_as("SELECT count(*) FROM model_versions WHERE active")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(active, 1);
}

#[sqlx::test]
async fn a_run_whose_lock_connection_is_terminated_retakes_the_lock_and_ends_once(
    pool: sqlx::PgPool,
) {
    import(&pool, "demo_test.jsonl").await;
    let mut learning = test_learning();
    learning.fine_tune.max_epochs = 10; // long enough to cut the lock mid-run
    learning.gate.target_margin = 0.2;
    learning.gate.other_margin = 0.2;
    let LearningApp {
        app, store: _store, ..
    } = learning_app(&pool, learning).await;
    let id = post_json(&app, "/training-runs", &json!({})).await.json["run"]["id"]
        .as_i64()
        .unwrap();
    let lock_of_the_run = || async {
        let run = get(&app, &format!("/training-runs/{id}")).await.json;
        let holder = voc::store::training_runs::lock_holder(&pool).await.unwrap();
        (run["state"].as_str().unwrap_or("").to_string(), holder)
    };
    // Wait for the run to hold the lock, then cut that session.
    let first = loop {
        match lock_of_the_run().await {
            (state, Some(pid)) if state == "running" => break pid,
            (state, _) if state != "queued" && state != "running" => {
                let run = get(&app, &format!("/training-runs/{id}")).await.json;
                panic!("the run ended ({state}) before the test could cut its lock: {run}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(first)
        .execute(&pool)
        .await
        .unwrap();
    // The owner notices at its next heartbeat and takes the lock again on a new session.
    let retaken = loop {
        match lock_of_the_run().await {
            (state, Some(pid)) if state == "running" && pid != first => break true,
            (state, _) if state != "running" => break false,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert!(retaken, "the run ended without taking the lock again");
    let run = wait_for_run_end(&app, Some(id), Duration::from_secs(300)).await;
    assert!(
        run["state"] == "promoted" || run["state"] == "rejected",
        "the run must end by its own gate decision: {run}"
    );
    let runs = get(&app, "/training-runs").await.json["runs"].clone();
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "a second run started: {runs}"
    );
}

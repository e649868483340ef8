//! Several model replicas behind one queue: they answer as one replica does, a swap reaches
//! every one of them, a dead one turns readiness off while the others keep serving, and the
//! queue stays bounded.

mod common;

use common::{copy_version_as, get, post_json, private_store};
use serde_json::{json, Value};
use voc::service::AppState;

const TEXTS: [&str; 8] = [
    "my card has not arrived yet and it has been two weeks",
    "the top up is stuck in pending for hours",
    "why was I charged twice for one coffee",
    "thank you, the refund came through quickly",
    "배송이 너무 늦어요. 환불해 주세요",
    "I cannot log in to the app since the update",
    "great service, the agent solved it in a minute",
    "where can I see my exchange rate?",
];

async fn app_with_replicas(
    pool: sqlx::PgPool,
    replicas: usize,
    store: Option<&std::path::Path>,
) -> (axum::Router, AppState) {
    let mut settings = common::settings();
    settings.pipeline.replicas = replicas;
    if let Some(store) = store {
        settings.store_dir = store.to_path_buf();
    }
    common::app_with(settings, pool).await
}

/// Each text's labels and probabilities as the API answers them.
fn tasks(answer: &Value) -> Value {
    answer["predictions"].clone()
}

#[sqlx::test]
async fn two_replicas_answer_every_text_as_one_replica_does(pool: sqlx::PgPool) {
    let (one, _) = app_with_replicas(pool.clone(), 1, None).await;
    let (two, state) = app_with_replicas(pool, 2, None).await;
    assert_eq!(state.pipeline.replicas(), 2);
    let mut expected = Vec::new();
    for text in TEXTS {
        let a = post_json(&one, "/classify", &json!({ "text": text })).await;
        assert_eq!(a.status, 200, "{}", a.text);
        expected.push(tasks(&a.json));
    }
    // Concurrent requests, so batches of different make-up land on both replicas.
    for _round in 0..4 {
        let answers: Vec<_> = TEXTS
            .iter()
            .map(|text| {
                let app = two.clone();
                let body = json!({ "text": text });
                tokio::spawn(async move { post_json(&app, "/classify", &body).await })
            })
            .collect();
        for (i, answer) in answers.into_iter().enumerate() {
            let a = answer.await.unwrap();
            assert_eq!(a.status, 200, "{}", a.text);
            let got = tasks(&a.json);
            for (task, want) in expected[i].as_object().unwrap() {
                assert_eq!(got[task]["label"], want["label"], "{}: {task}", TEXTS[i]);
                let (g, w) = (&got[task]["confidence"], &want["confidence"]);
                let close = (g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-4;
                assert!(close, "{}: {task} confidence {g} vs {w}", TEXTS[i]);
            }
        }
    }
}

/// Serves `new` on a 2-replica app over `store`, ends replica `dead`, and checks the other
/// one answers with `new` while readiness is off.
async fn swap_then_lose_replica(pool: sqlx::PgPool, store: &std::path::Path, dead: usize) {
    let (app, state) = app_with_replicas(pool, 2, Some(store)).await;
    let base = state.pipeline.active().version.clone();
    let new = format!("{base}-swapped");
    copy_version_as(store, &base, &new);
    let a = post_json(&app, &format!("/models/{new}/activate"), &json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(state.pipeline.active().version, new);
    assert!(state.pipeline.is_alive());
    state.pipeline.stop_replica(dead).await;
    assert!(!state.pipeline.is_alive(), "replica {dead} is gone");
    assert_eq!(get(&app, "/ready").await.status, 503);
    for text in TEXTS {
        let a = post_json(&app, "/classify", &json!({ "text": text })).await;
        assert_eq!(a.status, 200, "the live replica serves: {}", a.text);
        assert_eq!(
            a.json["model_version"],
            new,
            "replica {} answered from the old version",
            1 - dead
        );
    }
}

#[sqlx::test]
async fn a_swap_reaches_both_replicas_and_a_dead_one_turns_readiness_off(pool: sqlx::PgPool) {
    let (store, _) = private_store();
    // Ending replica 0 leaves replica 1 to answer, and the other way round.
    swap_then_lose_replica(pool.clone(), store.path(), 0).await;
    let (store, _) = private_store();
    swap_then_lose_replica(pool, store.path(), 1).await;
}

#[sqlx::test]
async fn with_every_replica_dead_requests_get_503(pool: sqlx::PgPool) {
    let (app, state) = app_with_replicas(pool, 2, None).await;
    state.pipeline.stop_replica(0).await;
    state.pipeline.stop_replica(1).await;
    let a = post_json(&app, "/classify", &json!({ "text": "anyone there?" })).await;
    assert_eq!(a.status, 503, "{}", a.text);
}

#[sqlx::test]
async fn the_queue_stays_bounded_with_two_idle_replicas(pool: sqlx::PgPool) {
    let mut settings = common::settings();
    settings.pipeline.replicas = 2;
    settings.pipeline.queue_capacity = 1;
    // The first request waits this long for company, holding the queue's one place, while
    // both replicas are free: a free replica must not make room in the queue.
    settings.pipeline.max_batch_wait = std::time::Duration::from_millis(1500);
    let (app, state) = common::app_with(settings, pool.clone()).await;
    let first_app = app.clone();
    let first = tokio::spawn(async move {
        post_json(&first_app, "/classify", &json!({"text": "first in line"})).await
    });
    common::wait_until(
        std::time::Duration::from_secs(5),
        "the first request queued",
        || {
            let depth = state.pipeline.queue_depth();
            async move { depth >= 1 }
        },
    )
    .await;
    let second = post_json(&app, "/classify", &json!({"text": "no room for me"})).await;
    assert_eq!(second.status, 503, "{}", second.text);
    assert_eq!(second.json["error"]["code"], "overloaded");
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text);
    let stored: Vec<String> = sqlx::query_scalar("SELECT text FROM transcripts")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored, vec!["first in line".to_string()]);
}

/// The metrics page's count of texts prepared `by` (`request` or `replica`).
async fn prepared(app: &axum::Router, by: &str) -> u64 {
    let page = get(app, "/metrics").await.text;
    let line = format!("voc_texts_prepared_total{{by=\"{by}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .unwrap_or_else(|| panic!("no {line} in /metrics"))
        .parse()
        .unwrap()
}

#[sqlx::test]
async fn a_request_of_several_texts_is_prepared_before_queueing_and_answers_as_single_texts_do(
    pool: sqlx::PgPool,
) {
    let (app, _) = app_with_replicas(pool, 1, None).await;
    let mut single = Vec::new();
    for text in TEXTS {
        let a = post_json(&app, "/classify", &json!({ "text": text })).await;
        assert_eq!(a.status, 200, "{}", a.text);
        single.push(tasks(&a.json));
    }
    assert_eq!(prepared(&app, "request").await, 0, "single texts");
    assert_eq!(prepared(&app, "replica").await, TEXTS.len() as u64);

    let items: Vec<Value> = TEXTS.iter().map(|t| json!({ "text": t })).collect();
    let a = post_json(&app, "/classify", &json!({ "items": items })).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(prepared(&app, "request").await, TEXTS.len() as u64);
    assert_eq!(prepared(&app, "replica").await, TEXTS.len() as u64);
    let results = a.json["results"].as_array().expect("results");
    assert_eq!(results.len(), TEXTS.len());
    for (i, result) in results.iter().enumerate() {
        let got = tasks(result);
        for (task, want) in single[i].as_object().unwrap() {
            assert_eq!(got[task]["label"], want["label"], "{}: {task}", TEXTS[i]);
            let (g, w) = (&got[task]["confidence"], &want["confidence"]);
            let close = (g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-4;
            assert!(close, "{}: {task} confidence {g} vs {w}", TEXTS[i]);
        }
    }
}

//! POST /classify and the routes around it, against `voc::app` on a fresh database.

mod common;

use axum::body::Body;
use common::{get, post_json, send_raw};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn labels_of(state: &voc::service::AppState, task: &str) -> Vec<String> {
    state
        .pipeline
        .active()
        .tasks
        .iter()
        .find(|t| t.name == task)
        .unwrap()
        .labels
        .clone()
}

#[sqlx::test]
async fn classifying_one_text_answers_every_task_and_stores_transcript_and_prediction(
    pool: sqlx::PgPool,
) {
    let (app, state) = common::app(pool.clone()).await;
    let a = post_json(
        &app,
        "/classify",
        &json!({"text": "I was charged twice for one coffee", "call_id": "call-1", "metadata": {"agent": 7}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let predictions = &a.json["predictions"];
    for task in ["category", "sentiment"] {
        let label = predictions[task]["label"].as_str().unwrap();
        assert!(labels_of(&state, task).contains(&label.to_string()));
        let probs = predictions[task]["probabilities"].as_object().unwrap();
        assert_eq!(probs.len(), labels_of(&state, task).len());
        let sum: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-3, "probabilities sum to {sum}");
        assert_eq!(
            predictions[task]["confidence"].as_f64().unwrap(),
            probs[label].as_f64().unwrap()
        );
    }
    let id: uuid::Uuid = a.json["transcript_id"].as_str().unwrap().parse().unwrap();
    let (text, call_id, metadata): (String, Option<String>, Value) =
        sqlx::query_as("SELECT text, call_id, metadata FROM transcripts WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(text, "I was charged twice for one coffee");
    assert_eq!(call_id.as_deref(), Some("call-1"));
    assert_eq!(metadata, json!({"agent": 7}));
    let (outputs, version): (Value, String) =
        sqlx::query_as("SELECT outputs, model_version FROM predictions WHERE transcript_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(&outputs, predictions);
    assert_eq!(version, a.json["model_version"].as_str().unwrap());
}

#[sqlx::test]
async fn a_batch_gets_one_result_per_item_in_request_order(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    let texts = [
        "my card has not arrived",
        "please close my account",
        "thanks, all good",
    ];
    let items: Vec<Value> = texts.iter().map(|t| json!({"text": t})).collect();
    let a = post_json(&app, "/classify", &json!({ "items": items })).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let results = a.json["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (result, text) in results.iter().zip(texts) {
        let t = get(
            &app,
            &format!("/transcripts/{}", result["transcript_id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(t.json["text"], text);
        assert_eq!(t.json["predictions"][0]["id"], result["prediction_id"]);
    }
}

#[sqlx::test]
async fn bad_input_gets_a_json_error_with_the_right_status_and_no_internals(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    let json_ct = Some("application/json");
    let too_many: Vec<Value> = (0..9)
        .map(|i| json!({"text": format!("text {i}")}))
        .collect();
    let huge = json!({"text": "a".repeat(20 * 1024)}).to_string();
    // (what, method, uri, content type, body, expected status, expected error code)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        String,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        ("invalid JSON", "POST", "/classify", json_ct, "{\"text\": ".into(), 400, "bad_request"),
        ("not JSON content type", "POST", "/classify", Some("text/plain"), "{\"text\": \"hi\"}".into(), 415, "unsupported_media_type"),
        ("text of the wrong type", "POST", "/classify", json_ct, json!({"text": 5}).to_string(), 422, "invalid_input"),
        ("missing text", "POST", "/classify", json_ct, json!({"call_id": "x"}).to_string(), 422, "invalid_input"),
        ("empty text", "POST", "/classify", json_ct, json!({"text": " \n\t "}).to_string(), 422, "invalid_input"),
        ("text and items", "POST", "/classify", json_ct, json!({"text": "a", "items": [{"text": "b"}]}).to_string(), 422, "invalid_input"),
        ("empty items", "POST", "/classify", json_ct, json!({"items": []}).to_string(), 422, "invalid_input"),
        ("an empty item", "POST", "/classify", json_ct, json!({"items": [{"text": "ok"}, {"text": ""}]}).to_string(), 422, "invalid_input"),
        ("only invisible characters", "POST", "/classify", json_ct, json!({"text": " \u{200B}\u{200D}\u{FEFF} \u{2060}\u{7} "}).to_string(), 422, "invalid_input"),
        ("batch over the limit", "POST", "/classify", json_ct, json!({"items": too_many}).to_string(), 422, "invalid_input"),
        ("unknown field", "POST", "/classify", json_ct, json!({"text": "a", "txet": "b"}).to_string(), 422, "invalid_input"),
        ("metadata not an object", "POST", "/classify", json_ct, json!({"text": "a", "metadata": [1]}).to_string(), 422, "invalid_input"),
        ("NUL in text", "POST", "/classify", json_ct, json!({"text": "a\u{0}b"}).to_string(), 422, "invalid_input"),
        ("body over the limit", "POST", "/classify", json_ct, huge, 413, "payload_too_large"),
        ("transcript id not a uuid", "GET", "/transcripts/not-a-uuid", None, String::new(), 404, "not_found"),
        ("unknown transcript", "GET", "/transcripts/6f1c1f9e-8a52-4a43-9d4a-2a2b7c1b0a11", None, String::new(), 404, "not_found"),
        ("unknown route", "GET", "/nope", None, String::new(), 404, "not_found"),
        ("wrong method", "DELETE", "/classify", None, String::new(), 405, "method_not_allowed"),
        ("feedback for an unknown prediction", "POST", "/feedback", json_ct, json!({"prediction_id": "6f1c1f9e-8a52-4a43-9d4a-2a2b7c1b0a11", "labels": {"sentiment": "negative"}}).to_string(), 404, "not_found"),
    ];
    for (name, method, uri, ct, body, status, code) in cases {
        let a = send_raw(&app, method, uri, ct, body, &[]).await;
        assert_eq!(a.status.as_u16(), status, "{name}: {}", a.text);
        assert_eq!(a.json["error"]["code"], code, "{name}: {}", a.text);
        let message = a.json["error"]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{name}: no message");
        for leak in ["sqlx", "panicked", "src/", ".rs:", "postgres", "libtorch"] {
            assert!(!a.text.contains(leak), "{name} leaks '{leak}': {}", a.text);
        }
    }
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM transcripts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "no bad request stores anything");
}

#[sqlx::test]
async fn a_compressed_body_is_refused_with_415_and_stores_nothing(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    let body = json!({"text": "my card was charged twice"}).to_string();
    let json_ct = Some("application/json");
    for encoding in ["gzip", "br", "deflate, gzip", "x-unknown"] {
        let a = send_raw(
            &app,
            "POST",
            "/classify",
            json_ct,
            body.clone(),
            &[("content-encoding", encoding)],
        )
        .await;
        assert_eq!(a.status, 415, "{encoding}: {}", a.text);
        assert_eq!(
            a.json["error"]["code"], "unsupported_media_type",
            "{encoding}"
        );
        let message = a.json["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("Content-Encoding"),
            "{encoding}: {message}"
        );
    }
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM transcripts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "a refused encoding stores nothing");
    let identity = send_raw(
        &app,
        "POST",
        "/classify",
        json_ct,
        body,
        &[("content-encoding", "Identity")],
    )
    .await;
    assert_eq!(identity.status, 200, "{}", identity.text);
}

#[sqlx::test]
async fn control_characters_and_odd_unicode_are_accepted_and_round_tripped(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool).await;
    let texts = [
        "tab\there\r\nnew line and a bell \u{7} and escape \u{1b}[0m",
        "emoji 😀👍🏽 right-to-left \u{202E}abc\u{202C} zero\u{200B}width",
        "배송이 너무 늦어요. 환불해 주세요",
        "combining e\u{301} and BOM \u{FEFF} and a lone \u{FFFD}",
        "\"quotes\" and \\backslashes\\ and </script>",
    ];
    for text in texts {
        let a = post_json(&app, "/classify", &json!({"text": text, "call_id": text})).await;
        assert_eq!(a.status, 200, "{text:?}: {}", a.text);
        let t = get(
            &app,
            &format!("/transcripts/{}", a.json["transcript_id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(t.json["text"].as_str().unwrap(), text);
        assert_eq!(t.json["call_id"].as_str().unwrap(), text);
    }
}

#[sqlx::test]
async fn a_full_queue_answers_503_with_retry_after_at_once_and_the_queued_request_still_succeeds(
    pool: sqlx::PgPool,
) {
    let mut settings = common::settings();
    settings.pipeline.queue_capacity = 1;
    // A slow batch: the first request waits this long for company before it is scored.
    settings.pipeline.max_batch_wait = Duration::from_millis(1500);
    let (app, state) = common::app_with(settings, pool).await;
    let first_app = app.clone();
    let first = tokio::spawn(async move {
        post_json(&first_app, "/classify", &json!({"text": "first in line"})).await
    });
    let waited = Instant::now();
    while state.pipeline.queue_depth() < 1 {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "first request never queued"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let second = post_json(&app, "/classify", &json!({"text": "no room for me"})).await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refusal took {:?}",
        started.elapsed()
    );
    assert_eq!(second.status, 503);
    assert_eq!(second.json["error"]["code"], "overloaded");
    assert_eq!(second.headers["retry-after"], "1");
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text);
}

#[sqlx::test]
async fn a_900_kb_text_gets_the_prediction_of_its_first_max_len_times_64_bytes(pool: sqlx::PgPool) {
    let mut settings = common::settings();
    settings.limits.body_limit_bytes = 1 << 20;
    let (app, state) = common::app_with(settings, pool).await;
    let max_len = voc::model::read_manifest(&state.pipeline.active().dir)
        .unwrap()
        .config
        .model
        .max_len;
    let sentences = [
        "my card has not arrived yet and it has been two weeks",
        "배송이 너무 늦어요. 환불해 주세요",
        "the top up is stuck in pending for hours",
        "why was I charged twice for one coffee",
    ];
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 900_000 {
        text.push_str(sentences[i % sentences.len()]);
        text.push_str(if i % 7 == 0 { ".\n" } else { ", " });
        i += 1;
    }
    let mut cut = max_len * 64;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let whole = post_json(&app, "/classify", &json!({ "text": text })).await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    let head = post_json(&app, "/classify", &json!({ "text": &text[..cut] })).await;
    assert_eq!(head.status, 200, "{}", head.text);
    for task in ["category", "sentiment"] {
        let (w, h) = (
            &whole.json["predictions"][task],
            &head.json["predictions"][task],
        );
        assert_eq!(w["label"], h["label"], "{task}");
        for (label, p) in w["probabilities"].as_object().unwrap() {
            let q = h["probabilities"][label].as_f64().unwrap();
            assert!(
                (p.as_f64().unwrap() - q).abs() < 1e-5,
                "{task}/{label}: {p} vs {q}"
            );
        }
    }
    let id = whole.json["transcript_id"].as_str().unwrap();
    let stored = get(&app, &format!("/transcripts/{id}")).await;
    assert_eq!(
        stored.json["text"].as_str().unwrap().len(),
        text.len(),
        "the whole text is stored"
    );
}

#[sqlx::test]
async fn a_request_over_the_queued_bytes_budget_gets_503_and_a_small_one_still_200(
    pool: sqlx::PgPool,
) {
    let mut settings = common::settings();
    settings.pipeline.queue_bytes = 4000;
    // A slow batch: the first request waits this long for company before it is scored.
    settings.pipeline.max_batch_wait = Duration::from_millis(1500);
    let (app, state) = common::app_with(settings, pool).await;
    let alone = post_json(&app, "/classify", &json!({"text": "refund ".repeat(700)})).await;
    assert_eq!(alone.status, 503, "{}", alone.text);
    assert_eq!(alone.json["error"]["code"], "overloaded");
    assert_eq!(alone.headers["retry-after"], "1");

    let first_app = app.clone();
    let first = tokio::spawn(async move {
        post_json(
            &first_app,
            "/classify",
            &json!({"text": "card ".repeat(500)}),
        )
        .await
    });
    let waited = Instant::now();
    while state.pipeline.queue_depth() < 1 {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "first request never queued"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let items: Vec<Value> = (0..3)
        .map(|_| json!({"text": "charged ".repeat(100)}))
        .collect();
    let second = post_json(&app, "/classify", &json!({ "items": items })).await;
    assert_eq!(second.status, 503, "{}", second.text);
    assert_eq!(second.json["error"]["code"], "overloaded");
    let small = post_json(&app, "/classify", &json!({"text": "where is my refund"})).await;
    assert_eq!(small.status, 200, "{}", small.text);
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text);
}

#[sqlx::test]
async fn admin_routes_stay_closed_when_only_classify_keys_are_configured(pool: sqlx::PgPool) {
    let mut settings = common::settings();
    settings.keys = voc::service::ApiKeys::from_lists("classify-key", "");
    let (app, _) = common::app_with(settings, pool).await;
    let feedback = json!({"call_id": "none", "labels": {"sentiment": "negative"}}).to_string();
    for key in [None, Some("Bearer classify-key")] {
        let headers: Vec<(&str, &str)> = key.iter().map(|k| ("authorization", *k)).collect();
        let status = send_raw(
            &app,
            "POST",
            "/feedback",
            Some("application/json"),
            feedback.clone(),
            &headers,
        )
        .await
        .status;
        let want = if key.is_some() { 403 } else { 401 };
        assert_eq!(status, want, "feedback with {key:?}");
    }
}

#[sqlx::test]
async fn routes_require_the_right_api_key_when_keys_are_configured(pool: sqlx::PgPool) {
    let mut settings = common::settings();
    settings.keys = voc::service::ApiKeys::from_lists("classify-key", " admin-key ,");
    let (app, _) = common::app_with(settings, pool).await;
    let body = json!({"text": "hello"}).to_string();
    let ct = Some("application/json");
    let call = |uri: &'static str, key: Option<&'static str>, body: String| {
        let app = app.clone();
        async move {
            let auth = key.map(|k| format!("Bearer {k}"));
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("authorization", a.as_str())).collect();
            send_raw(&app, "POST", uri, ct, body, &headers)
                .await
                .status
                .as_u16()
        }
    };
    assert_eq!(call("/classify", None, body.clone()).await, 401);
    assert_eq!(call("/classify", Some("wrong"), body.clone()).await, 401);
    assert_eq!(
        call("/classify", Some("classify-key"), body.clone()).await,
        200
    );
    assert_eq!(
        call("/classify", Some("admin-key"), body.clone()).await,
        200
    );
    let feedback = json!({"call_id": "none", "labels": {"sentiment": "negative"}}).to_string();
    assert_eq!(
        call("/feedback", Some("classify-key"), feedback.clone()).await,
        403,
        "a classify key is known but may not label"
    );
    assert_eq!(
        call("/feedback", Some("wrong"), feedback.clone()).await,
        401
    );
    assert_eq!(call("/feedback", Some("admin-key"), feedback).await, 404);
    let a = send_raw(
        &app,
        "GET",
        "/models/active",
        None,
        Body::empty(),
        &[("x-api-key", "classify-key")],
    )
    .await;
    assert_eq!(a.status, 200);
    // Metrics and docs need a key too; health and readiness never do.
    for path in ["/metrics", "/docs", "/openapi.json"] {
        assert_eq!(get(&app, path).await.status, 401, "{path} without a key");
        let with_key = send_raw(
            &app,
            "GET",
            path,
            None,
            Body::empty(),
            &[("x-api-key", "classify-key")],
        )
        .await;
        assert_eq!(with_key.status, 200, "{path} with the classify key");
    }
    assert_eq!(get(&app, "/health").await.status, 200);
    assert_eq!(
        get(&app, "/healthz").await.status,
        200,
        "the Kubernetes-style alias answers too"
    );
}

#[sqlx::test]
async fn metrics_count_requests_by_route_and_status_and_predictions_by_label(pool: sqlx::PgPool) {
    let (app, state) = common::app(pool).await;
    let a = post_json(&app, "/classify", &json!({"text": "where is my refund"})).await;
    assert_eq!(a.status, 200);
    let bad = post_json(&app, "/classify", &json!({"text": ""})).await;
    assert_eq!(bad.status, 422);
    let m = get(&app, "/metrics").await.text;
    assert!(
        m.contains("voc_http_requests_total{method=\"POST\",route=\"/classify\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("voc_http_requests_total{method=\"POST\",route=\"/classify\",status=\"422\"} 1"),
        "{m}"
    );
    let label = a.json["predictions"]["sentiment"]["label"]
        .as_str()
        .unwrap();
    assert!(
        m.contains(&format!(
            "voc_predictions_total{{task=\"sentiment\",label=\"{label}\"}} 1"
        )),
        "{m}"
    );
    assert!(m.contains(&format!(
        "voc_model_info{{version=\"{}\"}} 1",
        state.pipeline.active().version
    )));
    assert!(m.contains("voc_batch_size_count 1"), "{m}");
    assert!(m.contains("voc_queue_depth 0"), "{m}");
}

#[sqlx::test]
async fn made_up_methods_and_paths_do_not_grow_the_metrics_page(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool).await;
    for i in 0..200 {
        let method = format!("AAAA{i}");
        let a = send_raw(&app, &method, "/health", None, Body::empty(), &[]).await;
        assert_eq!(a.status, 405, "{method}: {}", a.text);
        let a = send_raw(
            &app,
            &method,
            &format!("/nope/{i}"),
            None,
            Body::empty(),
            &[],
        )
        .await;
        assert_eq!(a.status, 404, "{method}: {}", a.text);
    }
    let m = get(&app, "/metrics").await.text;
    let series: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("voc_http_requests_total{"))
        .collect();
    assert!(
        series.len() <= 2,
        "{} series after 400 requests with made-up methods",
        series.len()
    );
    assert_eq!(
        series,
        vec![
            "voc_http_requests_total{method=\"other\",route=\"/health\",status=\"405\"} 200",
            "voc_http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"} 200",
        ],
        "{m}"
    );
}

#[sqlx::test]
async fn the_openapi_document_describes_every_route_and_docs_link_to_it(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool).await;
    let doc = get(&app, "/openapi.json").await.json;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/classify",
        "/feedback",
        "/transcripts/{id}",
        "/models",
        "/models/active",
        "/models/{version}/activate",
        "/tasks",
        "/tasks/{task}/labels",
        "/training-runs",
        "/training-runs/{id}",
        "/training-runs/{id}/cancel",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    let page = get(&app, "/docs").await;
    assert!(page.text.contains("/openapi.json") && page.text.contains("POST /classify"));
}

/// Every `src="…"` and `href="…"` of a page.
fn page_links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attr) {
            let rest = &html[at + attr.len()..];
            links.push(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    links
}

#[sqlx::test]
async fn the_docs_page_loads_swagger_ui_from_this_server_only(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool).await;
    let page = get(&app, "/docs").await;
    assert_eq!(page.status, 200);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !page.text.contains("<script>"),
        "no inline script: {}",
        page.text
    );
    let links = page_links(&page.text);
    assert!(
        links.iter().any(|l| l.ends_with("swagger-ui-bundle.js")),
        "{links:?}"
    );
    for link in &links {
        assert!(link.starts_with('/'), "{link} is not on this server");
        let a = get(&app, link).await;
        assert_eq!(a.status, 200, "{link}");
    }
    let js = get(&app, "/docs/swagger-ui-bundle.js").await;
    assert!(js.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(js.text.contains("SwaggerUIBundle") && js.text.len() > 1_000_000);
    let css = get(&app, "/docs/swagger-ui.css").await;
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let init = get(&app, "/docs/swagger-ui-init.js").await;
    assert!(
        init.text.contains("url: \"/openapi.json\""),
        "{}",
        init.text
    );
}

#[sqlx::test]
async fn health_answers_503_once_the_inference_thread_is_dead(pool: sqlx::PgPool) {
    let (app, state) = common::app(pool).await;
    assert_eq!(get(&app, "/health").await.status, 200);
    state.pipeline.stop_replica(0).await;
    assert!(!state.pipeline.is_alive());
    for route in ["/health", "/healthz", "/ready", "/readyz"] {
        let a = get(&app, route).await;
        assert_eq!(a.status, 503, "{route}: {}", a.text);
        assert_eq!(
            a.json["error"]["code"], "unavailable",
            "{route}: {}",
            a.text
        );
        let message = a.json["error"]["message"].as_str().unwrap();
        assert!(message.contains("inference thread"), "{route}: {message}");
    }
    let classify = post_json(&app, "/classify", &json!({"text": "hello"})).await;
    assert_eq!(classify.status, 503, "{}", classify.text);
}

#[sqlx::test]
async fn the_active_model_version_is_recorded_in_postgres(pool: sqlx::PgPool) {
    let (app, state) = common::app(pool.clone()).await;
    let active = voc::store::models::active_version(&pool).await.unwrap();
    assert_eq!(
        active.as_deref(),
        Some(state.pipeline.active().version.as_str())
    );
    let listed = get(&app, "/models").await.json;
    assert_eq!(listed["versions"][0]["active"], true);
    let again = send_raw(
        &app,
        "POST",
        &format!("/models/{}/activate", state.pipeline.active().version),
        None,
        Body::empty(),
        &[],
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["active"], true);
    let missing = send_raw(
        &app,
        "POST",
        "/models/v-nope/activate",
        None,
        Body::empty(),
        &[],
    )
    .await;
    assert_eq!(missing.status, 404);
}

#[sqlx::test]
async fn a_request_over_the_time_limit_gets_408_with_a_json_error(pool: sqlx::PgPool) {
    let mut settings = common::settings();
    settings.limits.request_timeout = Duration::from_millis(200);
    settings.pipeline.max_batch_wait = Duration::from_millis(1500);
    let (app, _) = common::app_with(settings, pool).await;
    let started = Instant::now();
    let a = post_json(&app, "/classify", &json!({"text": "slow batch"})).await;
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(a.status, 408);
    assert_eq!(a.json["error"]["code"], "timeout");
}

#[sqlx::test]
async fn a_request_larger_than_the_batch_size_is_scored_alone_and_answered_whole(
    pool: sqlx::PgPool,
) {
    let mut settings = common::settings();
    settings.pipeline.max_batch_size = 3;
    let (app, _) = common::app_with(settings, pool.clone()).await;
    let items: Vec<Value> = (0..8)
        .map(|i| json!({"text": format!("transcript number {i}")}))
        .collect();
    let (small_body, big_body) = (json!({"text": "a small one"}), json!({ "items": items }));
    let (small, big) = tokio::join!(
        post_json(&app, "/classify", &small_body),
        post_json(&app, "/classify", &big_body),
    );
    assert_eq!(small.status, 200, "{}", small.text);
    assert_eq!(big.status, 200, "{}", big.text);
    assert_eq!(big.json["results"].as_array().unwrap().len(), 8);
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM predictions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 9);
}

#[sqlx::test]
async fn added_classes_refuse_invisible_characters_and_stop_at_the_limit(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    let stored = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM task_labels")
            .fetch_one(&pool)
            .await
            .unwrap();
        n
    };
    // Looks like "Refund delay" but is another string; a control character likewise.
    for label in [
        "Refund\u{200B} delay",
        "Refund\u{202E}delay",
        "Refund\u{7}delay",
    ] {
        let a = post_json(&app, "/tasks/category/labels", &json!({ "label": label })).await;
        assert_eq!(a.status, 422, "{label:?}: {}", a.text);
        assert!(a.text.contains("invisible"), "{}", a.text);
    }
    assert_eq!(stored().await, 0);

    // At most 50 classes may be added to a task (`MAX_ADDED_CLASSES`).
    for i in 0..50 {
        let a = post_json(
            &app,
            "/tasks/category/labels",
            &json!({ "label": format!("reason {i}") }),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let over = post_json(
        &app,
        "/tasks/category/labels",
        &json!({"label": "one too many"}),
    )
    .await;
    assert_eq!(over.status, 422, "{}", over.text);
    assert_eq!(stored().await, 50);
    // A class already added is still answered as known.
    let known = post_json(
        &app,
        "/tasks/category/labels",
        &json!({"label": "reason 0"}),
    )
    .await;
    assert_eq!(known.status, 200, "{}", known.text);
}

#[sqlx::test]
async fn public_metrics_and_docs_answer_without_a_key_when_asked(pool: sqlx::PgPool) {
    let mut settings = common::settings();
    settings.keys = voc::service::ApiKeys {
        public_metrics: true,
        public_docs: true,
        ..voc::service::ApiKeys::from_lists("classify-key", "admin-key")
    };
    let (app, _) = common::app_with(settings, pool).await;
    for path in ["/metrics", "/docs", "/openapi.json"] {
        assert_eq!(get(&app, path).await.status, 200, "{path}");
    }
    assert_eq!(get(&app, "/models").await.status, 401);
}

#[sqlx::test]
async fn a_classify_key_sees_no_folder_paths_or_training_histories(pool: sqlx::PgPool) {
    let mut settings = common::settings();
    settings.keys = voc::service::ApiKeys::from_lists("classify-key", "admin-key");
    let (app, _) = common::app_with(settings, pool).await;
    let read = |path: &'static str, key: &'static str| {
        let app = app.clone();
        async move {
            let a = send_raw(
                &app,
                "GET",
                path,
                None,
                Body::empty(),
                &[("x-api-key", key)],
            )
            .await;
            assert_eq!(a.status, 200, "{path}: {}", a.text);
            a.json
        }
    };
    let admin = read("/models", "admin-key").await;
    let first = &admin["versions"][0];
    assert!(first["path"].is_string(), "{admin}");
    assert!(first["metrics"]["history"].is_array(), "{admin}");
    let classify = read("/models", "classify-key").await;
    let first = &classify["versions"][0];
    assert!(first.get("path").is_none(), "{classify}");
    assert!(first["metrics"].get("history").is_none(), "{classify}");
    assert!(first["metrics"]["validation"].is_object(), "{classify}");
    let active = read("/models/active", "classify-key").await;
    assert!(active["metrics"].get("history").is_none(), "{active}");
    assert!(read("/models/active", "admin-key").await["metrics"]["history"].is_array());
}

async fn stored_rows(pool: &sqlx::PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT count(*) FROM transcripts), (SELECT count(*) FROM predictions)")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn classify_keyed(app: &axum::Router, key: &str, body: &Value) -> common::Answer {
    send_raw(
        app,
        "POST",
        "/classify",
        Some("application/json"),
        body.to_string(),
        &[("idempotency-key", key)],
    )
    .await
}

#[sqlx::test]
async fn a_retry_with_the_same_idempotency_key_gets_the_first_answer_and_stores_nothing_more(
    pool: sqlx::PgPool,
) {
    let (app, _) = common::app(pool.clone()).await;
    let body = json!({"text": "카드 4539 1488 0343 6467 결제가 두 번 됐어요 환불해 주세요", "call_id": "c-77"});
    let first = classify_keyed(&app, "retry-0001", &body).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(stored_rows(&pool).await, (1, 1));

    let again = classify_keyed(&app, "retry-0001", &body).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(
        again.json, first.json,
        "the retry is answered exactly as the first attempt"
    );
    assert_eq!(stored_rows(&pool).await, (1, 1));

    // Without the key, or with another one, the same text is a new transcript.
    let other = classify_keyed(&app, "retry-0002", &body).await;
    assert_ne!(other.json["transcript_id"], first.json["transcript_id"]);
    let plain = post_json(&app, "/classify", &body).await;
    assert_ne!(plain.json["transcript_id"], first.json["transcript_id"]);
    assert_eq!(stored_rows(&pool).await, (3, 3));
}

#[sqlx::test]
async fn an_idempotency_key_reused_for_another_request_or_malformed_is_refused(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    let batch = json!({"items": [{"text": "환불해 주세요"}, {"text": "배송이 늦어요"}]});
    let first = classify_keyed(&app, "k-batch", &batch).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let again = classify_keyed(&app, "k-batch", &batch).await;
    assert_eq!(again.json, first.json, "a batch is replayed in item order");
    assert_eq!(stored_rows(&pool).await, (2, 2));

    for other in [
        json!({"items": [{"text": "환불해 주세요"}, {"text": "배송이 빨라요"}]}),
        json!({"items": [{"text": "환불해 주세요"}]}),
        json!({"text": "환불해 주세요"}),
        json!({"items": [{"text": "환불해 주세요"}, {"text": "배송이 늦어요"}, {"text": "고마워요"}]}),
    ] {
        let a = classify_keyed(&app, "k-batch", &other).await;
        assert_eq!(a.status, 422, "{other}: {}", a.text);
        assert!(a.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("different request"));
    }
    for bad in ["has space", &"k".repeat(256)] {
        let a = classify_keyed(&app, bad, &json!({"text": "환불해 주세요"})).await;
        assert_eq!(a.status, 400, "{bad:?}: {}", a.text);
    }
    assert_eq!(
        stored_rows(&pool).await,
        (2, 2),
        "nothing stored for refused requests"
    );
}

#[sqlx::test]
async fn twenty_attempts_of_one_keyed_request_at_once_store_one_transcript(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    let body = json!({"text": "상담원 연결이 너무 오래 걸려요"});
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            let body = body.clone();
            tokio::spawn(async move { classify_keyed(&app, "burst-1", &body).await })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for a in attempts {
        let a = a.await.unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        ids.insert(a.json["transcript_id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        ids.len(),
        1,
        "every attempt names the one stored transcript: {ids:?}"
    );
    assert_eq!(stored_rows(&pool).await, (1, 1));
}

#[sqlx::test]
async fn a_wrong_key_in_one_header_does_not_shut_out_a_right_key_in_the_other(pool: sqlx::PgPool) {
    let mut settings = common::settings();
    settings.keys = voc::service::ApiKeys::from_lists("classify-key", "admin-key");
    let (app, _) = common::app_with(settings, pool).await;
    let body = json!({"text": "환불해 주세요"}).to_string();
    let both = [
        ("x-api-key", "wrong"),
        ("authorization", "Bearer classify-key"),
    ];
    let a = send_raw(
        &app,
        "POST",
        "/classify",
        Some("application/json"),
        body.clone(),
        &both,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let admin = [
        ("x-api-key", "wrong"),
        ("authorization", "Bearer admin-key"),
    ];
    let a = send_raw(&app, "POST", "/training-runs", None, Body::empty(), &admin).await;
    assert_ne!(a.status, 401, "{}", a.text);
    let neither = [
        ("x-api-key", "wrong"),
        ("authorization", "Bearer also-wrong"),
    ];
    let a = send_raw(
        &app,
        "POST",
        "/classify",
        Some("application/json"),
        body,
        &neither,
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.text);
}

//! POST /feedback: validation against the active model, one current label per annotator,
//! history kept on corrections; and the service's behaviour through a database outage.

mod common;

use common::{get, post_json};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn classify(app: &axum::Router, text: &str, call_id: &str) -> Value {
    let a = post_json(app, "/classify", &json!({"text": text, "call_id": call_id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json
}

async fn label_rows(pool: &sqlx::PgPool) -> Vec<(String, String, Option<String>, bool)> {
    sqlx::query_as(
        "SELECT task, label, annotator, superseded_at IS NOT NULL FROM labels ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn an_unknown_task_or_label_is_refused_with_422_listing_the_allowed_ones(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    let c = classify(&app, "card declined at the shop", "call-a").await;
    let id = c["transcript_id"].clone();
    let bad_label = post_json(
        &app,
        "/feedback",
        &json!({"transcript_id": id, "labels": {"sentiment": "furious"}}),
    )
    .await;
    assert_eq!(bad_label.status, 422);
    assert!(bad_label.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("negative, positive"));
    assert_eq!(
        bad_label.json["error"]["details"]["allowed"]["sentiment"],
        json!(["negative", "positive"])
    );
    let bad_task = post_json(
        &app,
        "/feedback",
        &json!({"transcript_id": id, "labels": {"mood": "negative"}}),
    )
    .await;
    assert_eq!(bad_task.status, 422);
    assert!(bad_task.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("category, sentiment"));
    let none = post_json(
        &app,
        "/feedback",
        &json!({"transcript_id": id, "labels": {}}),
    )
    .await;
    assert_eq!(none.status, 422);
    let no_target = post_json(
        &app,
        "/feedback",
        &json!({"labels": {"sentiment": "negative"}}),
    )
    .await;
    assert_eq!(no_target.status, 422);
    assert!(label_rows(&pool).await.is_empty());
}

#[sqlx::test]
async fn the_same_label_sent_twice_is_stored_exactly_once(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    let c = classify(&app, "thanks for the quick refund", "call-b").await;
    let body = json!({"transcript_id": c["transcript_id"], "labels": {"sentiment": "positive"}, "annotator": "qa-1"});
    let first = post_json(&app, "/feedback", &body).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json["labels"][0]["outcome"], "created");
    let second = post_json(&app, "/feedback", &body).await;
    assert_eq!(second.json["labels"][0]["outcome"], "unchanged");
    assert_eq!(
        label_rows(&pool).await,
        vec![(
            "sentiment".into(),
            "positive".into(),
            Some("qa-1".into()),
            false
        )]
    );
}

#[sqlx::test]
async fn identical_feedback_sent_concurrently_is_stored_exactly_once(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    let c = classify(&app, "lost my card yesterday", "call-c").await;
    let body = json!({"transcript_id": c["transcript_id"], "labels": {"category": "lost_or_stolen_card", "sentiment": "negative"}});
    let answers = futures_join(&app, &body, 8).await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    assert_eq!(label_rows(&pool).await.len(), 2);
}

async fn futures_join(app: &axum::Router, body: &Value, n: usize) -> Vec<u16> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (app, body) = (app.clone(), body.clone());
            tokio::spawn(async move { post_json(&app, "/feedback", &body).await.status.as_u16() })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[sqlx::test]
async fn a_correction_by_the_same_annotator_supersedes_the_earlier_label_and_keeps_history(
    pool: sqlx::PgPool,
) {
    let (app, _) = common::app(pool.clone()).await;
    let c = classify(&app, "the transfer never arrived", "call-d").await;
    let id = c["transcript_id"].clone();
    let send = |label: &'static str, annotator: &'static str| {
        let (app, id) = (app.clone(), id.clone());
        async move {
            post_json(&app, "/feedback", &json!({"transcript_id": id, "labels": {"sentiment": label}, "annotator": annotator})).await
        }
    };
    assert_eq!(
        send("positive", "ann").await.json["labels"][0]["outcome"],
        "created"
    );
    assert_eq!(
        send("negative", "ann").await.json["labels"][0]["outcome"],
        "replaced"
    );
    assert_eq!(
        send("positive", "other").await.json["labels"][0]["outcome"],
        "created"
    );
    assert_eq!(
        label_rows(&pool).await,
        vec![
            (
                "sentiment".into(),
                "positive".into(),
                Some("ann".into()),
                true
            ),
            (
                "sentiment".into(),
                "negative".into(),
                Some("ann".into()),
                false
            ),
            (
                "sentiment".into(),
                "positive".into(),
                Some("other".into()),
                false
            ),
        ]
    );
    let t = get(&app, &format!("/transcripts/{}", id.as_str().unwrap())).await;
    let labels = t.json["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 3);
    assert!(labels[0]["superseded_at"].is_string());
    assert!(labels[1]["superseded_at"].is_null());
    assert_eq!(labels[1]["source"], "feedback");
}

#[sqlx::test]
async fn feedback_finds_its_transcript_by_prediction_id_or_by_the_latest_of_a_call(
    pool: sqlx::PgPool,
) {
    let (app, _) = common::app(pool.clone()).await;
    let older = classify(&app, "first part of the call", "call-e").await;
    let newer = classify(&app, "second part of the call", "call-e").await;
    let by_call = post_json(
        &app,
        "/feedback",
        &json!({"call_id": "call-e", "labels": {"sentiment": "negative"}}),
    )
    .await;
    assert_eq!(by_call.json["transcript_id"], newer["transcript_id"]);
    let by_prediction = post_json(
        &app,
        "/feedback",
        &json!({"prediction_id": older["prediction_id"], "labels": {"sentiment": "positive"}}),
    )
    .await;
    assert_eq!(by_prediction.json["transcript_id"], older["transcript_id"]);
    let unknown_call = post_json(
        &app,
        "/feedback",
        &json!({"call_id": "no-such-call", "labels": {"sentiment": "positive"}}),
    )
    .await;
    assert_eq!(unknown_call.status, 404);
}

/// A TCP proxy in front of the real Postgres that can cut every connection and refuse new ones.
struct FlakyProxy {
    port: u16,
    down: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl FlakyProxy {
    async fn start(upstream: (String, u16)) -> FlakyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (d, l) = (down.clone(), links.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let up = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(up).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                l.lock().unwrap().push(task.abort_handle());
            }
        });
        FlakyProxy { port, down, links }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

#[sqlx::test]
async fn a_database_outage_answers_503_and_the_service_recovers_without_restart(
    _opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let proxy = FlakyProxy::start((connect.get_host().to_string(), connect.get_port())).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_millis(500))
        .test_before_acquire(true)
        .connect_lazy_with(connect.clone().host("127.0.0.1").port(proxy.port));
    let (app, _) = common::app(pool).await;
    let before = post_json(&app, "/classify", &json!({"text": "before the outage"})).await;
    assert_eq!(before.status, 200, "{}", before.text);

    proxy.cut();
    let during = post_json(&app, "/classify", &json!({"text": "during the outage"})).await;
    assert_eq!(during.status, 503, "{}", during.text);
    assert_eq!(during.json["error"]["code"], "unavailable");
    assert_eq!(during.headers["retry-after"], "1");
    assert!(!during.text.contains("sqlx") && !during.text.contains("127.0.0.1"));
    let feedback = post_json(&app, "/feedback", &json!({"transcript_id": before.json["transcript_id"], "labels": {"sentiment": "negative"}})).await;
    assert_eq!(feedback.status, 503);
    assert_eq!(get(&app, "/ready").await.status, 503);

    proxy.restore();
    let after = post_json(&app, "/classify", &json!({"text": "after the outage"})).await;
    assert_eq!(after.status, 200, "{}", after.text);
    let stored = get(
        &app,
        &format!(
            "/transcripts/{}",
            after.json["transcript_id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(stored.json["text"], "after the outage");
}

#[sqlx::test]
async fn two_different_corrections_sent_at_once_are_both_stored_truthfully(pool: sqlx::PgPool) {
    use voc::store::labels::{record, LabelOutcome, NewLabel};
    let ids: Vec<uuid::Uuid> = (0..50).map(|_| uuid::Uuid::new_v4()).collect();
    for id in &ids {
        sqlx::query("INSERT INTO transcripts (id, text) VALUES ($1, 'a call')")
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
    let send = |id: uuid::Uuid, label: &'static str| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let new = NewLabel {
                transcript_id: id,
                task: "sentiment",
                label,
                source: "feedback",
                annotator: Some("qa-anna"),
            };
            record(&pool, &[new]).await.unwrap()[0]
        })
    };
    let pairs: Vec<_> = ids
        .iter()
        .map(|&id| (id, send(id, "negative"), send(id, "positive")))
        .collect();
    for (id, a, b) in pairs {
        let outcomes = [a.await.unwrap(), b.await.unwrap()];
        // Each label differs from the other, so neither may claim "unchanged": one was
        // stored first, the other replaced it.
        assert!(
            !outcomes.contains(&LabelOutcome::Unchanged),
            "{id}: {outcomes:?}"
        );
        assert!(
            outcomes.contains(&LabelOutcome::Created),
            "{id}: {outcomes:?}"
        );
        assert!(
            outcomes.contains(&LabelOutcome::Replaced),
            "{id}: {outcomes:?}"
        );
        let rows: Vec<(String, bool)> = sqlx::query_as(
            "SELECT label, superseded_at IS NULL FROM labels WHERE transcript_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            rows.len(),
            2,
            "{id}: both labels are in the history: {rows:?}"
        );
        let replaced = if outcomes[0] == LabelOutcome::Replaced {
            "negative"
        } else {
            "positive"
        };
        assert_eq!(
            rows[1],
            (replaced.to_string(), true),
            "{id}: the replacing label is current"
        );
    }
}

#[sqlx::test]
async fn agreement_counts_each_annotators_current_label_on_shared_transcripts(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    let empty = get(&app, "/tasks/sentiment/agreement").await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.json["items"], 0);
    assert_eq!(empty.json["krippendorff_alpha"], Value::Null);
    assert_eq!(empty.json["pairs"], json!([]));

    let mut ids = Vec::new();
    for (n, text) in [
        "the card was declined again",
        "thanks, sorted",
        "great help",
    ]
    .iter()
    .enumerate()
    {
        ids.push(classify(&app, text, &format!("agree-{n}")).await["transcript_id"].clone());
    }
    let label = |id: &Value, who: Option<&str>, label: &str| {
        let mut body = json!({"transcript_id": id, "labels": {"sentiment": label}});
        if let Some(who) = who {
            body["annotator"] = json!(who);
        }
        body
    };
    for body in [
        label(&ids[0], Some("ann"), "negative"),
        label(&ids[0], Some("bob"), "negative"),
        label(&ids[1], Some("ann"), "positive"),
        label(&ids[1], Some("bob"), "negative"),
        label(&ids[2], Some("ann"), "positive"),
        // Bob's first answer on the third transcript, corrected below: only the current counts.
        label(&ids[2], Some("bob"), "negative"),
        label(&ids[2], Some("bob"), "positive"),
        // No annotator name: not a labeler agreement speaks of.
        label(&ids[0], None, "positive"),
    ] {
        let a = post_json(&app, "/feedback", &body).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let a = get(&app, "/tasks/sentiment/agreement").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["annotators"], json!(["ann", "bob"]));
    assert_eq!(a.json["items"], 3);
    // ann: neg, pos, pos; bob: neg, neg, pos. p_o = 2/3; p_e = 1/3 * 2/3 + 2/3 * 1/3 = 4/9;
    // kappa = (2/3 - 4/9) / (5/9) = 0.4. Units {n,n} {p,n} {p,p}: alpha = 1 - 2 / 3.6 = 4/9.
    let pair = &a.json["pairs"][0];
    assert_eq!(pair["items"], 3);
    assert!(
        (pair["cohen_kappa"].as_f64().unwrap() - 0.4).abs() < 1e-9,
        "{pair}"
    );
    assert!((pair["observed_agreement"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    let alpha = a.json["krippendorff_alpha"].as_f64().unwrap();
    assert!((alpha - 4.0 / 9.0).abs() < 1e-9, "{alpha}");

    let unknown = get(&app, "/tasks/mood/agreement").await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.text.contains("category, sentiment"),
        "{}",
        unknown.text
    );
}

#[sqlx::test]
async fn the_labels_export_is_what_voc_train_reads_in_both_formats(pool: sqlx::PgPool) {
    use voc::data::{read_dataset, ReadOptions};
    let (app, _) = common::app(pool.clone()).await;
    let a = classify(
        &app,
        "my card was declined, \"again\", at the shop",
        "exp-1",
    )
    .await;
    let b = classify(&app, "thanks for the refund", "exp-2").await;
    classify(&app, "never labeled", "exp-3").await;
    for body in [
        json!({"transcript_id": a["transcript_id"], "labels": {"sentiment": "negative", "category": "declined_card_payment"}, "annotator": "ann"}),
        json!({"transcript_id": b["transcript_id"], "labels": {"sentiment": "negative"}, "annotator": "ann"}),
        // A correction: the export carries the current label only.
        json!({"transcript_id": b["transcript_id"], "labels": {"sentiment": "positive"}, "annotator": "ann"}),
    ] {
        let r = post_json(&app, "/feedback", &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let dir = tempfile::tempdir().unwrap();
    for (format, file) in [("jsonl", "labels.jsonl"), ("csv", "labels.csv")] {
        let r = get(&app, &format!("/labels/export?format={format}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(file));
        let path = dir.path().join(file);
        std::fs::write(&path, &r.text).unwrap();
        let data = read_dataset(&path, &ReadOptions::default()).unwrap();
        let mut got: Vec<(String, Vec<(String, String)>)> = data
            .examples
            .iter()
            .map(|e| (e.text.clone(), e.labels.clone().into_iter().collect()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (
                    "my card was declined, \"again\", at the shop".to_string(),
                    vec![
                        ("category".to_string(), "declined_card_payment".to_string()),
                        ("sentiment".to_string(), "negative".to_string()),
                    ]
                ),
                (
                    "thanks for the refund".to_string(),
                    vec![("sentiment".to_string(), "positive".to_string())]
                ),
            ],
            "{format}: {}",
            r.text
        );
        let ids: Vec<&str> = data.examples.iter().map(|e| e.id.as_str()).collect();
        assert!(
            ids.contains(&a["transcript_id"].as_str().unwrap()),
            "{ids:?}"
        );
    }
    let bad = get(&app, "/labels/export?format=xml").await;
    assert_eq!(bad.status, 422, "{}", bad.text);
}

#[sqlx::test]
async fn the_labels_export_leaves_the_frozen_evaluation_set_out_when_asked(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    for n in 0..40 {
        let c = classify(
            &app,
            &format!("call number {n} about a card"),
            &format!("ev-{n}"),
        )
        .await;
        let r = post_json(
            &app,
            "/feedback",
            &json!({"transcript_id": c["transcript_id"], "labels": {"sentiment": "negative"}}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let share = voc::store::learning_settings::recorded_eval_share(&pool)
        .await
        .unwrap()
        .unwrap_or(0.1);
    let buckets: Vec<(uuid::Uuid, i32)> = sqlx::query_as("SELECT id, eval_bucket FROM transcripts")
        .fetch_all(&pool)
        .await
        .unwrap();
    let outside: Vec<String> = buckets
        .iter()
        .filter(|(_, b)| !voc::learning::eval_set::in_frozen_eval(*b as u32, share))
        .map(|(id, _)| id.to_string())
        .collect();
    assert!(
        outside.len() < 40,
        "with 40 rows some fall in the evaluation set"
    );
    let all = get(&app, "/labels/export").await;
    assert_eq!(all.text.lines().count(), 40);
    let kept = get(&app, "/labels/export?exclude_eval=true").await;
    assert_eq!(kept.status, 200, "{}", kept.text);
    let mut ids: Vec<String> = kept
        .text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    let mut want = outside;
    want.sort();
    assert_eq!(ids, want);
}

#[sqlx::test]
async fn the_labels_export_streams_every_page_once(pool: sqlx::PgPool) {
    use voc::store::imports::{import_rows, ImportRow};
    let (app, _) = common::app(pool.clone()).await;
    // More rows than one page of the export (1,000), imported with a label each.
    let ids: Vec<String> = (0..2_345).map(|n| format!("page-{n}")).collect();
    let texts: Vec<String> = (0..2_345).map(|n| format!("imported call {n}")).collect();
    let rows: Vec<ImportRow> = ids
        .iter()
        .zip(&texts)
        .map(|(id, text)| ImportRow {
            source_id: id,
            call_id: id,
            text,
            labels: vec![("sentiment", "positive")],
        })
        .collect();
    import_rows(&pool, &rows, 0).await.unwrap();
    let r = get(&app, "/labels/export?format=csv").await;
    assert_eq!(r.status, 200);
    let mut reader = csv::Reader::from_reader(r.text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["id", "text", "category", "sentiment"]
    );
    let mut seen = std::collections::BTreeSet::new();
    for record in reader.records() {
        let record = record.unwrap();
        assert_eq!(&record[3], "positive");
        assert!(seen.insert(record[1].to_string()), "{} twice", &record[1]);
    }
    assert_eq!(seen.len(), 2_345);
}

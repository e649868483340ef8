//! The review queue (issue 11) on a real Postgres: rankings, leases and their expiry,
//! overlap, skip and undo, driven through the store with explicit times (no waiting), and
//! the HTTP routes with annotator, classify and admin keys.

mod common;

use chrono::{Duration, SubsecRound, Utc};
use common::{get, post_json, send_raw};
use serde_json::{json, Value};
use std::time::Duration as StdDuration;
use uuid::Uuid;
use voc::review::queue::{QueueSettings, Strategy};
use voc::store::review::{self, LeaseError, NextItem};

const TEXTS: [&str; 5] = [
    "my card was declined at the shop again",
    "thanks, the refund arrived, great help",
    "where is my new card, it has been two weeks",
    "the app will not let me log in",
    "I was charged twice for one coffee",
];

async fn classify_all(app: &axum::Router) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for (n, text) in TEXTS.iter().enumerate() {
        let a = post_json(
            app,
            "/classify",
            &json!({"text": text, "call_id": format!("q-{n}")}),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
        ids.push(a.json["transcript_id"].as_str().unwrap().parse().unwrap());
    }
    ids
}

/// The queue's items for `task` in the order a ranking column gives.
async fn ranked(pool: &sqlx::PgPool, task: &str, column: &str) -> Vec<Uuid> {
    sqlx::query_scalar(&format!(
        "SELECT transcript_id FROM review_items WHERE task = $1 ORDER BY {column}, transcript_id"
    ))
    .bind(task)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn ask<'a>(annotator: &'a str, strategy: Strategy, settings: QueueSettings) -> NextItem<'a> {
    NextItem {
        task: "sentiment",
        annotator,
        strategy,
        settings,
        now: Utc::now(),
    }
}

/// The lease `ask` gets; panics when nothing waits.
async fn lease(pool: &sqlx::PgPool, ask: &NextItem<'_>) -> review::Lease {
    review::next(pool, ask)
        .await
        .unwrap()
        .expect("an item waits")
}

/// How many current labels the sentiment item of `transcript` has (the trigger's count).
async fn labeled_count(pool: &sqlx::PgPool, transcript: Uuid) -> i32 {
    sqlx::query_scalar(
        "SELECT labeled FROM review_items WHERE transcript_id = $1 AND task = 'sentiment'",
    )
    .bind(transcript)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A task output's probabilities, largest first.
fn sorted_probabilities(output: &Value) -> Vec<f64> {
    let mut p: Vec<f64> = output["probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .collect();
    p.sort_by(|a, b| b.partial_cmp(a).unwrap());
    p
}

async fn next_id(pool: &sqlx::PgPool, ask: &NextItem<'_>) -> Option<Uuid> {
    review::next(pool, ask)
        .await
        .unwrap()
        .map(|l| l.transcript_id)
}

#[sqlx::test]
async fn classifying_queues_every_task_with_the_margin_of_its_two_top_probabilities(
    pool: sqlx::PgPool,
) {
    let (app, _) = common::app(pool.clone()).await;
    let ids = classify_all(&app).await;
    let rows: Vec<(Uuid, String, String, f32, Value)> = sqlx::query_as(
        "SELECT r.transcript_id, r.task, r.guess, r.margin, p.outputs
         FROM review_items r JOIN predictions p ON p.transcript_id = r.transcript_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows.len(),
        ids.len() * 2,
        "one item per transcript and task"
    );
    for (id, task, guess, margin, outputs) in rows {
        let out = &outputs[&task];
        assert_eq!(out["label"], json!(guess), "{id}");
        let p = sorted_probabilities(out);
        assert!(
            (f64::from(margin) - (p[0] - p[1])).abs() < 1e-4,
            "{task}: margin {margin} vs {p:?}"
        );
    }
}

#[sqlx::test]
async fn uncertain_leases_the_smallest_margins_first_and_never_one_item_to_two_annotators(
    pool: sqlx::PgPool,
) {
    let (app, _) = common::app(pool.clone()).await;
    classify_all(&app).await;
    let by_margin = ranked(&pool, "sentiment", "margin").await;
    let settings = QueueSettings::default();
    let ann = next_id(&pool, &ask("ann", Strategy::Uncertain, settings)).await;
    let bob = next_id(&pool, &ask("bob", Strategy::Uncertain, settings)).await;
    assert_eq!(ann, Some(by_margin[0]));
    assert_eq!(bob, Some(by_margin[1]), "the held item goes to nobody else");
    // Asking again (a reload) shows the item already held.
    let again = next_id(&pool, &ask("ann", Strategy::Uncertain, settings)).await;
    assert_eq!(again, ann);
}

#[sqlx::test]
async fn concurrent_requests_never_lease_one_item_twice(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    classify_all(&app).await;
    let names: Vec<String> = (0..TEXTS.len()).map(|n| format!("ann-{n}")).collect();
    let asks = names.iter().map(|name| {
        let pool = pool.clone();
        let name = name.clone();
        tokio::spawn(async move {
            next_id(
                &pool,
                &ask(&name, Strategy::Uncertain, QueueSettings::default()),
            )
            .await
        })
    });
    let mut got: Vec<Uuid> = Vec::new();
    for handle in asks.collect::<Vec<_>>() {
        got.push(handle.await.unwrap().expect("an item for each"));
    }
    got.sort();
    got.dedup();
    assert_eq!(
        got.len(),
        TEXTS.len(),
        "each annotator got a different item"
    );
}

#[sqlx::test]
async fn an_expired_lease_frees_its_item_for_the_next_annotator(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    classify_all(&app).await;
    let settings = QueueSettings {
        lease_for: StdDuration::from_secs(300),
        ..QueueSettings::default()
    };
    // Postgres keeps microseconds.
    let t0 = Utc::now().trunc_subsecs(6);
    let at = |annotator, seconds| NextItem {
        now: t0 + Duration::seconds(seconds),
        ..ask(annotator, Strategy::Uncertain, settings)
    };
    let first = lease(&pool, &at("ann", 0)).await;
    assert_eq!(first.expires_at, t0 + Duration::seconds(300));
    let before = next_id(&pool, &at("bob", 299)).await;
    assert_ne!(before, Some(first.transcript_id), "still ann's at 299 s");
    let after = next_id(&pool, &at("cy", 300)).await;
    assert_eq!(after, Some(first.transcript_id), "free again at 300 s");
    // Ann's late label is kept: it is a person's work.
    let (lease, _) = review::label(
        &pool,
        first.id,
        Some("ann"),
        "negative",
        t0 + Duration::seconds(400),
    )
    .await
    .unwrap();
    assert_eq!(lease.label.as_deref(), Some("negative"));
}

#[sqlx::test]
async fn with_overlap_two_an_item_goes_to_a_second_annotator_before_new_items_open(
    pool: sqlx::PgPool,
) {
    let (app, _) = common::app(pool.clone()).await;
    classify_all(&app).await;
    let settings = QueueSettings {
        overlap: 2,
        ..QueueSettings::default()
    };
    let first = lease(&pool, &ask("ann", Strategy::Uncertain, settings)).await;
    // Bob is given another item while ann holds the first (two may hold one item with
    // overlap 2, but started items come first, and this one is not labeled yet).
    review::label(&pool, first.id, None, "negative", Utc::now())
        .await
        .unwrap();
    let bob = lease(&pool, &ask("bob", Strategy::Uncertain, settings)).await;
    assert_eq!(
        bob.transcript_id, first.transcript_id,
        "the second label first"
    );
    review::label(&pool, bob.id, Some("bob"), "positive", Utc::now())
        .await
        .unwrap();
    let cy = next_id(&pool, &ask("cy", Strategy::Uncertain, settings)).await;
    assert_ne!(cy, Some(first.transcript_id), "two labels are the overlap");
    let labeled = labeled_count(&pool, first.transcript_id).await;
    assert_eq!(labeled, 2);
    // The two disagree: `disagreement` offers the item to a third annotator.
    let dis = next_id(&pool, &ask("dee", Strategy::Disagreement, settings)).await;
    assert_eq!(dis, Some(first.transcript_id));
}

#[sqlx::test]
async fn a_skipped_item_is_not_shown_again_and_undo_brings_it_back(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    classify_all(&app).await;
    let settings = QueueSettings::default();
    let first = lease(&pool, &ask("ann", Strategy::Uncertain, settings)).await;
    review::skip(&pool, first.id, Some("ann"), Utc::now())
        .await
        .unwrap();
    let second = lease(&pool, &ask("ann", Strategy::Uncertain, settings)).await;
    assert_ne!(second.transcript_id, first.transcript_id);
    // Skipping twice, or undoing an open lease, is refused.
    assert!(matches!(
        review::skip(&pool, first.id, Some("ann"), Utc::now()).await,
        Err(LeaseError::AlreadyFinished { .. })
    ));
    assert!(matches!(
        review::undo(&pool, second.id, Some("ann"), settings, Utc::now()).await,
        Err(LeaseError::NotFinished(_))
    ));
    // Another annotator cannot touch ann's lease.
    assert!(matches!(
        review::skip(&pool, second.id, Some("bob"), Utc::now()).await,
        Err(LeaseError::NotFound(_))
    ));
    review::undo(&pool, first.id, Some("ann"), settings, Utc::now())
        .await
        .unwrap();
    let back = next_id(&pool, &ask("ann", Strategy::Uncertain, settings)).await;
    assert_eq!(
        back,
        Some(first.transcript_id),
        "the undone item is shown again"
    );
    // The item ann was shown after it is free for others again.
    let bob = next_id(&pool, &ask("bob", Strategy::Uncertain, settings)).await;
    assert_eq!(bob, Some(second.transcript_id));
}

#[sqlx::test]
async fn undoing_a_label_withdraws_it(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    classify_all(&app).await;
    let settings = QueueSettings::default();
    let lease = lease(&pool, &ask("ann", Strategy::Uncertain, settings)).await;
    review::label(&pool, lease.id, Some("ann"), "positive", Utc::now())
        .await
        .unwrap();
    let undone = review::undo(&pool, lease.id, Some("ann"), settings, Utc::now())
        .await
        .unwrap();
    assert_eq!(undone.finished, None);
    let rows: Vec<(String, Option<String>, bool)> = sqlx::query_as(
        "SELECT label, annotator, superseded_at IS NOT NULL FROM labels WHERE transcript_id = $1",
    )
    .bind(lease.transcript_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, vec![("positive".into(), Some("ann".into()), true)]);
    let labeled = labeled_count(&pool, lease.transcript_id).await;
    assert_eq!(labeled, 0, "back in the unlabeled queue");
    // Labeling it again through the reopened lease works.
    review::label(&pool, lease.id, Some("ann"), "negative", Utc::now())
        .await
        .unwrap();
}

#[sqlx::test]
async fn random_follows_the_sample_key_and_recent_the_newest(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool.clone()).await;
    let ids = classify_all(&app).await;
    let settings = QueueSettings::default();
    let by_key = ranked(&pool, "sentiment", "sample_key").await;
    let anns = next_id(&pool, &ask("ann", Strategy::Random, settings)).await;
    assert_eq!(anns, Some(by_key[0]));
    // The sample keys are random, so ann may hold the newest item (one run in five): bob
    // then gets the newest that is free.
    let newest_free = ids.iter().rev().copied().find(|id| Some(*id) != anns);
    assert_eq!(
        next_id(&pool, &ask("bob", Strategy::Recent, settings)).await,
        newest_free,
        "the newest first, past the item ann holds"
    );
}

#[sqlx::test]
async fn disagreement_offers_labels_that_differ_from_the_guess_and_not_those_that_agree(
    pool: sqlx::PgPool,
) {
    let (app, _) = common::app(pool.clone()).await;
    classify_all(&app).await;
    let guesses: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT transcript_id, guess FROM review_items WHERE task = 'sentiment' ORDER BY created_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let other = |g: &str| {
        if g == "positive" {
            "negative"
        } else {
            "positive"
        }
    };
    let (agrees, differs) = (&guesses[0], &guesses[1]);
    for (id, label) in [
        (agrees.0, agrees.1.as_str()),
        (differs.0, other(&differs.1)),
    ] {
        let a = post_json(
            &app,
            "/feedback",
            &json!({"transcript_id": id, "labels": {"sentiment": label}, "annotator": "ann"}),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let settings = QueueSettings::default();
    assert_eq!(
        next_id(&pool, &ask("ann", Strategy::Disagreement, settings)).await,
        None,
        "not to the annotator who gave the label"
    );
    let bob = lease(&pool, &ask("bob", Strategy::Disagreement, settings)).await;
    assert_eq!(bob.transcript_id, differs.0);
    review::skip(&pool, bob.id, Some("bob"), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        next_id(&pool, &ask("bob", Strategy::Disagreement, settings)).await,
        None,
        "the label that agrees with the model is no disagreement"
    );
    let version = common::model_version();
    let counts = review::counts(&pool, settings, &version, Utc::now())
        .await
        .unwrap();
    let sentiment = counts.iter().find(|c| c.task == "sentiment").unwrap();
    assert_eq!(
        (
            sentiment.unlabeled,
            sentiment.labeled,
            sentiment.disagreements
        ),
        (3, 2, 1)
    );
}

fn keyed_settings() -> voc::service::ServiceSettings {
    let mut settings = common::settings();
    settings.keys = voc::service::ApiKeys {
        annotators: voc::service::AnnotatorKey::parse_list("ann:ann-key, bob:bob-key").unwrap(),
        ..voc::service::ApiKeys::from_lists("classify-key", "admin-key")
    };
    settings
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    key: &str,
    body: Option<Value>,
) -> common::Answer {
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str())];
    match body {
        Some(b) => {
            send_raw(
                app,
                method,
                uri,
                Some("application/json"),
                b.to_string(),
                &headers,
            )
            .await
        }
        None => send_raw(app, method, uri, None, axum::body::Body::empty(), &headers).await,
    }
}

#[sqlx::test]
async fn annotator_keys_label_under_their_own_name_and_other_keys_are_refused(pool: sqlx::PgPool) {
    let (app, _) = common::app_with(keyed_settings(), pool.clone()).await;
    for text in TEXTS {
        let a = call(
            &app,
            "POST",
            "/classify",
            "classify-key",
            Some(json!({"text": text})),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let next = "/review/next?task=sentiment";
    let refused = call(&app, "GET", next, "classify-key", None).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.text.contains("cannot label"), "{}", refused.text);
    assert_eq!(call(&app, "GET", next, "nobody", None).await.status, 401);
    let feedback = call(&app, "POST", "/feedback", "ann-key", Some(json!({}))).await;
    assert_eq!(
        feedback.status, 403,
        "an annotator key is for the queue only"
    );
    let classify = call(
        &app,
        "POST",
        "/classify",
        "ann-key",
        Some(json!({"text": "hi"})),
    )
    .await;
    assert_eq!(classify.status, 403);
    let posing = call(
        &app,
        "GET",
        &format!("{next}&annotator=bob"),
        "ann-key",
        None,
    )
    .await;
    assert_eq!(posing.status, 403, "{}", posing.text);
    let admin = call(&app, "GET", next, "admin-key", None).await;
    assert_eq!(
        admin.status, 422,
        "an admin names the annotator: {}",
        admin.text
    );

    let mut leases = Vec::new();
    for _ in 0..3 {
        let item = call(&app, "GET", next, "ann-key", None).await;
        assert_eq!(item.status, 200, "{}", item.text);
        assert_eq!(item.json["annotator"], "ann");
        assert_eq!(item.json["labels"], json!(["negative", "positive"]));
        assert!(item.json["transcript"]["text"].as_str().unwrap().len() > 5);
        assert!(item.json["prediction"]["margin"].as_f64().unwrap() >= 0.0);
        let id = item.json["lease_id"].as_str().unwrap().to_string();
        let other = call(&app, "POST", &format!("/review/{id}/skip"), "bob-key", None).await;
        assert_eq!(other.status, 404, "bob cannot end ann's lease");
        let bad = call(
            &app,
            "POST",
            &format!("/review/{id}/label"),
            "ann-key",
            Some(json!({"label": "meh"})),
        )
        .await;
        assert_eq!(bad.status, 422, "{}", bad.text);
        let done = call(
            &app,
            "POST",
            &format!("/review/{id}/label"),
            "ann-key",
            Some(json!({"label": "negative"})),
        )
        .await;
        assert_eq!(done.status, 200, "{}", done.text);
        assert_eq!(done.json["outcome"], "created");
        let twice = call(
            &app,
            "POST",
            &format!("/review/{id}/label"),
            "ann-key",
            Some(json!({"label": "negative"})),
        )
        .await;
        assert_eq!(twice.status, 409, "{}", twice.text);
        leases.push(id);
    }
    let rows: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT label, annotator, source FROM labels WHERE superseded_at IS NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![("negative".into(), Some("ann".into()), "feedback".into()); 3]
    );

    let queue = call(&app, "GET", "/review/queue", "bob-key", None).await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    let sentiment = queue.json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "sentiment")
        .unwrap()
        .clone();
    assert_eq!(
        (sentiment["unlabeled"].clone(), sentiment["labeled"].clone()),
        (json!(2), json!(3))
    );

    let undo = call(
        &app,
        "POST",
        &format!("/review/{}/undo", leases[2]),
        "ann-key",
        None,
    )
    .await;
    assert_eq!(undo.status, 200, "{}", undo.text);
    let shown = call(&app, "GET", next, "ann-key", None).await;
    assert_eq!(shown.json["lease_id"].as_str(), Some(leases[2].as_str()));
    // An admin may end anyone's lease, and name an annotator on a request of its own.
    let skip = call(
        &app,
        "POST",
        &format!("/review/{}/skip", leases[2]),
        "admin-key",
        None,
    )
    .await;
    assert_eq!(skip.status, 200, "{}", skip.text);
    let as_cy = call(
        &app,
        "GET",
        &format!("{next}&annotator=cy&strategy=random"),
        "admin-key",
        None,
    )
    .await;
    assert_eq!(as_cy.status, 200, "{}", as_cy.text);
    assert_eq!(as_cy.json["annotator"], "cy");
    assert_eq!(as_cy.json["strategy"], "random");
    let bad_strategy = call(
        &app,
        "GET",
        &format!("{next}&strategy=hardest"),
        "ann-key",
        None,
    )
    .await;
    assert_eq!(bad_strategy.status, 422);
    let bad_task = call(&app, "GET", "/review/next?task=mood", "ann-key", None).await;
    assert_eq!(bad_task.status, 404);
    let no_lease = call(
        &app,
        "POST",
        &format!("/review/{}/skip", Uuid::new_v4()),
        "ann-key",
        None,
    )
    .await;
    assert_eq!(no_lease.status, 404);
}

#[sqlx::test]
async fn an_empty_queue_answers_204_and_a_keyless_server_takes_the_annotator_from_the_query(
    pool: sqlx::PgPool,
) {
    let (app, _) = common::app(pool.clone()).await;
    let empty = get(&app, "/review/next?task=sentiment&annotator=ann").await;
    assert_eq!(empty.status, 204, "{}", empty.text);
    let unnamed = get(&app, "/review/next?task=sentiment").await;
    assert_eq!(unnamed.status, 422, "{}", unnamed.text);
    let blank = get(&app, "/review/next?task=sentiment&annotator=%20").await;
    assert_eq!(blank.status, 422, "{}", blank.text);
    let missing_task = get(&app, "/review/next?annotator=ann").await;
    assert_eq!(missing_task.status, 400, "{}", missing_task.text);
    classify_all(&app).await;
    let item = get(&app, "/review/next?task=category&annotator=ann").await;
    assert_eq!(item.status, 200, "{}", item.text);
    assert_eq!(item.json["task"], "category");
}

/// Prints each ranking's plan on a million queued transcripts (the figure issue 11 asks
/// for), and fails if a ranking stops reading its partial index in order.
#[sqlx::test]
async fn each_ranking_reads_its_index_with_a_million_transcripts_queued(pool: sqlx::PgPool) {
    sqlx::query(
        "INSERT INTO transcripts (id, text, created_at)
         SELECT gen_random_uuid(), 'call ' || n, now() - n * interval '1 second'
         FROM generate_series(1, 1000000) AS n",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO review_items (transcript_id, task, model_version, guess, margin, created_at)
         SELECT id, 'sentiment', 'v', 'negative', random(), created_at FROM transcripts",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE review_items")
        .execute(&pool)
        .await
        .unwrap();
    for (strategy, index) in [
        (Strategy::Uncertain, "review_items_uncertain"),
        (Strategy::Random, "review_items_random"),
        (Strategy::Recent, "review_items_recent"),
    ] {
        let query = review::candidate_query(strategy, false);
        let plan: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, COSTS OFF) {query}"))
                .bind("sentiment")
                .bind("ann")
                .bind(Utc::now())
                .bind(1i64)
                .fetch_all(&pool)
                .await
                .unwrap();
        let plan = plan.join("\n");
        println!(
            "--- {} on 1,000,000 queued transcripts:\n{plan}",
            strategy.as_str()
        );
        assert!(
            plan.contains(&format!("Index Scan using {index}")),
            "{} does not read {index}:\n{plan}",
            strategy.as_str()
        );
    }
}

#[sqlx::test]
async fn rescoring_puts_unlabeled_items_under_the_active_model_a_page_at_a_time(
    pool: sqlx::PgPool,
) {
    use voc::pipeline::rescore::rescore_page;
    let (app, _) = common::app(pool.clone()).await;
    let ids = classify_all(&app).await;
    let a = post_json(
        &app,
        "/feedback",
        &json!({"transcript_id": ids[0], "labels": {"sentiment": "negative"}, "annotator": "ann"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    // As an older version would have left them.
    sqlx::query("UPDATE review_items SET model_version = 'v-old', margin = 0.999, guess = 'x'")
        .execute(&pool)
        .await
        .unwrap();
    let dir = voc::model::list_versions(common::model_store())
        .pop()
        .unwrap();
    let classifier = voc::model::Classifier::load(&dir, tch::Device::Cpu).unwrap();
    let version = classifier.manifest().version.clone();
    let pending = |pool: sqlx::PgPool, version: String| async move {
        review::counts(&pool, QueueSettings::default(), &version, Utc::now())
            .await
            .unwrap()
            .iter()
            .map(|c| c.rescore_pending)
            .sum::<i64>()
    };
    assert_eq!(
        pending(pool.clone(), version.clone()).await,
        9,
        "ten items, one labeled"
    );
    let mut steps = Vec::new();
    loop {
        let n = rescore_page(&pool, &classifier, 2).await.unwrap();
        steps.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(steps, vec![2, 2, 1, 0], "five transcripts, two a step");
    assert_eq!(pending(pool.clone(), version.clone()).await, 0);
    let rows: Vec<(Uuid, String, String, String, f32, Value)> = sqlx::query_as(
        "SELECT r.transcript_id, r.task, r.model_version, r.guess, r.margin, p.outputs
         FROM review_items r JOIN predictions p ON p.transcript_id = r.transcript_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (id, task, model, guess, margin, outputs) in rows {
        if id == ids[0] && task == "sentiment" {
            assert_eq!(
                (model.as_str(), guess.as_str()),
                ("v-old", "x"),
                "a labeled item keeps its guess"
            );
            continue;
        }
        // The same weights scored it at classification: the same guess and margin return.
        assert_eq!(model, version);
        assert_eq!(outputs[&task]["label"], json!(guess));
        assert!((margin - 0.999).abs() > 1e-3 || guess != "x");
        let p = sorted_probabilities(&outputs[&task]);
        assert!(
            (f64::from(margin) - (p[0] - p[1])).abs() < 1e-4,
            "{task}: {margin} vs {p:?}"
        );
    }
}

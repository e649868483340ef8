//! The labelers' pages in a real browser: Debian's chromium, headless, driven through
//! chromedriver (WebDriver) against a real `voc serve` on a real Postgres. Screenshots of
//! each page are saved under `$CARGO_TARGET_TMPDIR/ui-screenshots/`.

mod common;
#[path = "support/webdriver.rs"]
mod webdriver;

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::path::PathBuf;
use uuid::Uuid;
use webdriver::{Browser, Driver, ENTER};

const KEYS: [&str; 6] = [
    "--classify-api-keys",
    "ck",
    "--admin-api-keys",
    "ak",
    "--annotator-api-keys",
    "ann:ann-key,bob:bob-key",
];

const TEXTS: [&str; 6] = [
    "my card was declined at the shop again",
    "thanks, the refund arrived, great help",
    "where is my new card, it has been two weeks",
    "the app will not let me log in",
    "I was charged twice for one coffee",
    "please close my account",
];

/// A `voc serve` that is killed if the test fails before stopping it (a server left running
/// keeps its test database open).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn screenshot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("ui-screenshots")
        .join(format!("{name}.png"))
}

async fn classify_all(base: &str) {
    let http = reqwest::Client::new();
    for text in TEXTS {
        let r = http
            .post(format!("{base}/classify"))
            .bearer_auth("ck")
            .json(&json!({ "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// The version the server serves now (GET /models/active).
async fn active_version(base: &str) -> String {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/models/active"))
        .bearer_auth("ck")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["version"].as_str().unwrap().to_string()
}

/// Signs in on the sign-in page with the keyboard: the key, Tab, the name, Enter.
async fn sign_in(b: &Browser, base: &str, key: &str, name: &str) {
    b.goto(&format!("{base}/ui/sign-in")).await;
    b.type_into("#key", key).await;
    if !name.is_empty() {
        b.type_into("#annotator", name).await;
    }
    b.press(ENTER).await;
    b.wait_for("the labeling page", || async {
        b.url().await.contains("/ui") && !b.url().await.contains("sign-in")
    })
    .await;
    b.goto(&format!("{base}/ui?task=sentiment")).await;
}

async fn shown_transcript(b: &Browser) -> Option<String> {
    b.attr("#item", "data-transcript").await
}

/// Waits until the page shows an item other than `before` (or the empty queue).
async fn wait_for_next(b: &Browser, before: Option<&str>) {
    b.wait_for("the next item", || async move {
        let now = shown_transcript(b).await;
        now.as_deref() != before || b.count("#empty").await > 0
    })
    .await;
}

#[sqlx::test]
async fn a_labeler_labels_three_transcripts_with_the_keyboard_only_then_skips_and_undoes(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = PgPoolOptions::new()
        .connect_with(connect.clone())
        .await
        .unwrap();
    let (server, base) = common::spawn_server(&common::database_url(&connect), &KEYS);
    let mut server = Server(server);
    classify_all(&base).await;
    let driver = Driver::start().await;
    let b = driver.browser(1280, 800).await;

    b.goto(&format!("{base}/ui")).await;
    let url = b.url().await;
    assert!(
        url.ends_with("/ui/sign-in"),
        "strangers are sent to sign in: {url}"
    );
    b.screenshot(&screenshot("sign-in")).await;

    // A classify-only key is refused.
    b.goto(&format!("{base}/ui/sign-in")).await;
    b.type_into("#key", "ck").await;
    b.press(ENTER).await;
    b.wait_for("the refusal", || async {
        b.source().await.contains("cannot label")
    })
    .await;
    b.screenshot(&screenshot("sign-in-refused")).await;

    sign_in(&b, &base, "ann-key", "").await;
    b.wait_for("the labeling page", || async {
        b.count("#item").await == 1
    })
    .await;
    let first_label = b.attr("input[data-key=\"1\"]", "value").await.unwrap();
    let mut labeled = Vec::new();
    for _ in 0..3 {
        let shown = shown_transcript(&b).await.expect("an item");
        b.press("1").await;
        let status = b.text("#status").await;
        assert!(
            status.starts_with("Chosen: "),
            "the number key chose a label: {status}"
        );
        b.press(ENTER).await;
        wait_for_next(&b, Some(&shown)).await;
        labeled.push(shown);
    }
    assert!(b.text("#status").await.contains("Saved"));
    b.screenshot(&screenshot("label")).await;

    let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT transcript_id, label, annotator FROM labels
         WHERE task = 'sentiment' AND superseded_at IS NULL ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for ((id, label, annotator), shown) in rows.iter().zip(&labeled) {
        assert_eq!(&id.to_string(), shown);
        assert_eq!(label, &first_label);
        assert_eq!(annotator.as_deref(), Some("ann"));
    }

    // S skips; U brings the skipped transcript back.
    let skipped = shown_transcript(&b).await.expect("an item");
    b.press("s").await;
    wait_for_next(&b, Some(&skipped)).await;
    assert!(b.text("#status").await.contains("Skipped"));
    b.press("u").await;
    b.wait_for("the skipped item back", || async {
        shown_transcript(&b).await.as_deref() == Some(skipped.as_str())
    })
    .await;
    assert!(b.text("#status").await.contains("Undone"));

    // U after a label withdraws it.
    b.press("2").await;
    b.press(ENTER).await;
    wait_for_next(&b, Some(&skipped)).await;
    b.press("u").await;
    b.wait_for("the labeled item back", || async {
        shown_transcript(&b).await.as_deref() == Some(skipped.as_str())
    })
    .await;
    let (current,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM labels WHERE transcript_id = $1::uuid AND superseded_at IS NULL",
    )
    .bind(&skipped)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(current, 0, "the undone label is withdrawn");

    b.resize(390, 844).await;
    b.screenshot(&screenshot("label-phone")).await;
    b.quit().await;
    common::terminate(&mut server.0);
}

#[sqlx::test]
async fn two_labelers_never_see_the_same_leased_item(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (server, base) = common::spawn_server(&common::database_url(&connect), &KEYS);
    let mut server = Server(server);
    classify_all(&base).await;
    let driver = Driver::start().await;
    let (ann, bob) = (
        driver.browser(1280, 800).await,
        driver.browser(1280, 800).await,
    );
    sign_in(&ann, &base, "ann-key", "").await;
    sign_in(&bob, &base, "bob-key", "").await;
    for b in [&ann, &bob] {
        b.wait_for("the labeling page", || async {
            b.count("#item").await == 1
        })
        .await;
    }
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (a, o) = (
            shown_transcript(&ann).await.unwrap(),
            shown_transcript(&bob).await.unwrap(),
        );
        assert_ne!(a, o, "two labelers were shown the same item");
        seen.extend([a.clone(), o.clone()]);
        // A reload shows the item still held; then both label it and move on.
        ann.goto(&format!("{base}/ui?task=sentiment")).await;
        assert_eq!(shown_transcript(&ann).await.as_deref(), Some(a.as_str()));
        for (b, shown) in [(&ann, &a), (&bob, &o)] {
            b.press("1").await;
            b.press(ENTER).await;
            wait_for_next(b, Some(shown)).await;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4);
    ann.quit().await;
    bob.quit().await;
    common::terminate(&mut server.0);
}

#[sqlx::test]
async fn the_models_page_plots_one_point_per_version_and_an_admin_rolls_back(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (store, base_version) = common::private_store();
    common::copy_version_as(store.path(), &base_version, "v29990101-000000-0002");
    let (server, base) =
        common::spawn_server_in(store.path(), &common::database_url(&connect), &KEYS);
    let mut server = Server(server);
    classify_all(&base).await;
    let http = reqwest::Client::new();
    let versions: serde_json::Value = http
        .get(format!("{base}/models"))
        .bearer_auth("ck")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let versions = versions["versions"].as_array().unwrap().len();
    assert_eq!(versions, 2);
    let driver = Driver::start().await;

    // An annotator sees the page without rollback buttons.
    let ann = driver.browser(1280, 800).await;
    sign_in(&ann, &base, "ann-key", "").await;
    ann.wait_for("the labeling page", || async {
        ann.count("#item").await == 1
    })
    .await;
    ann.goto(&format!("{base}/ui/models")).await;
    assert_eq!(ann.count("#versions tbody tr").await, versions);
    assert_eq!(ann.count("#versions form").await, 0);
    ann.quit().await;

    let lead = driver.browser(1280, 800).await;
    sign_in(&lead, &base, "ak", "qa-lead").await;
    lead.wait_for("the labeling page", || async {
        lead.count("#item").await == 1
    })
    .await;
    lead.goto(&format!("{base}/ui/models")).await;
    for task in ["category", "sentiment"] {
        let css = format!("svg.curve circle[data-task=\"{task}\"]");
        assert_eq!(
            lead.count(&css).await,
            versions,
            "one point per version for {task}"
        );
    }
    assert!(lead.count("svg.confusion rect.cell").await > 0);
    lead.screenshot(&screenshot("models")).await;
    let before = active_version(&base).await;
    assert_eq!(
        lead.count("#versions form").await,
        1,
        "one version to roll back to"
    );
    let target = lead.attr("#versions form", "action").await.unwrap();
    lead.click("#versions form button").await;
    lead.wait_for("the rollback to finish", || async {
        lead.url().await.contains("/ui/models?version=")
    })
    .await;
    let after = active_version(&base).await;
    assert_ne!(before, after, "rolled back through {target}");

    lead.goto(&format!("{base}/ui/queue")).await;
    assert!(lead.text("#queue").await.contains("sentiment"));
    lead.screenshot(&screenshot("queue")).await;
    lead.quit().await;
    common::terminate(&mut server.0);
    println!(
        "screenshots in {}",
        screenshot("x").parent().unwrap().display()
    );
}

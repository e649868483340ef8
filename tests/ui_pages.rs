//! The pages over HTTP, without a browser: sign-in and its cookies, the CSRF check, who may
//! roll back, escaping of transcript text, and the assets served from the binary.

mod common;

use axum::body::Body;
use common::send_raw;
use serde_json::json;

fn keyed_settings() -> voc::service::ServiceSettings {
    let mut settings = common::settings();
    settings.keys = voc::service::ApiKeys {
        annotators: voc::service::AnnotatorKey::parse_list("ann:ann-key").unwrap(),
        ..voc::service::ApiKeys::from_lists("classify-key", "admin-key")
    };
    settings
}

async fn sign_in(app: &axum::Router, form: &str) -> common::Answer {
    send_raw(
        app,
        "POST",
        "/ui/sign-in",
        Some("application/x-www-form-urlencoded"),
        form.to_string(),
        &[],
    )
    .await
}

/// The `Cookie` header a browser would send back after `answer`.
fn cookies_from(answer: &common::Answer) -> String {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn csrf_in(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + 64].to_string()
}

async fn get_with(app: &axum::Router, uri: &str, cookie: &str) -> common::Answer {
    send_raw(app, "GET", uri, None, Body::empty(), &[("cookie", cookie)]).await
}

async fn post_form(app: &axum::Router, uri: &str, cookie: &str, form: &str) -> common::Answer {
    send_raw(
        app,
        "POST",
        uri,
        Some("application/x-www-form-urlencoded"),
        form.to_string(),
        &[("cookie", cookie)],
    )
    .await
}

#[sqlx::test]
async fn sign_in_refuses_classify_and_unknown_keys_and_sets_strict_http_only_cookies(
    pool: sqlx::PgPool,
) {
    let (app, _) = common::app_with(keyed_settings(), pool).await;
    let stranger = common::get(&app, "/ui").await;
    assert_eq!(stranger.status, 303);
    assert_eq!(stranger.headers["location"], "/ui/sign-in");

    let classify = sign_in(&app, "key=classify-key").await;
    assert_eq!(classify.status, 403);
    assert!(classify.text.contains("cannot label"), "{}", classify.text);
    assert!(classify.headers.get("set-cookie").is_none());
    assert_eq!(sign_in(&app, "key=nope").await.status, 401);
    let unnamed_admin = sign_in(&app, "key=admin-key&annotator=").await;
    assert_eq!(unnamed_admin.status, 422);

    let ann = sign_in(&app, "key=ann-key").await;
    assert_eq!(ann.status, 303);
    let set: Vec<&str> = ann
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set.len(), 2);
    for cookie in &set {
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
    }
    let page = get_with(&app, "/ui", &cookies_from(&ann)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Signed in as <strong>ann</strong>"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
}

#[sqlx::test]
async fn forms_without_the_session_csrf_token_are_refused_and_change_nothing(pool: sqlx::PgPool) {
    let (app, _) = common::app_with(keyed_settings(), pool.clone()).await;
    let c = send_raw(
        &app,
        "POST",
        "/classify",
        Some("application/json"),
        json!({"text": "<script>alert(1)</script> my card was declined"}).to_string(),
        &[("authorization", "Bearer classify-key")],
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.text);
    let cookie = cookies_from(&sign_in(&app, "key=ann-key").await);
    let page = get_with(&app, "/ui?task=sentiment", &cookie).await;
    assert!(
        page.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("<script>alert"));
    let lease = {
        let at = page.text.find("data-lease=\"").unwrap() + 12;
        page.text[at..at + 36].to_string()
    };
    let form = |csrf: &str| {
        format!("csrf={csrf}&lease={lease}&label=negative&task=sentiment&strategy=uncertain")
    };
    let forged = post_form(&app, "/ui/label", &cookie, &form("0000")).await;
    assert_eq!(forged.status, 403);
    assert!(forged.text.contains("Form refused"));
    let (labels,): (i64,) = sqlx::query_as("SELECT count(*) FROM labels")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(labels, 0);

    let csrf = csrf_in(&page.text);
    let done = post_form(&app, "/ui/label", &cookie, &form(&csrf)).await;
    assert_eq!(done.status, 303, "{}", done.text);
    let location = done.headers["location"].to_str().unwrap();
    assert!(location.contains(&format!("last={lease}")), "{location}");
    let rows: Vec<(String, Option<String>)> = sqlx::query_as("SELECT label, annotator FROM labels")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![("negative".to_string(), Some("ann".to_string()))]
    );
    // A second submit of the same form (a double Enter) moves on without a second label.
    let again = post_form(&app, "/ui/label", &cookie, &form(&csrf)).await;
    assert_eq!(again.status, 303);
    assert!(again.headers["location"]
        .to_str()
        .unwrap()
        .contains("said=already"));

    // An annotator may not roll back the model, even with a right token.
    let models = get_with(&app, "/ui/models", &cookie).await;
    assert_eq!(models.status, 200, "{}", models.text);
    assert!(!models.text.contains("Roll back to this"));
    let version = common::model_version();
    let refused = post_form(
        &app,
        &format!("/ui/models/{version}/activate"),
        &cookie,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
}

#[sqlx::test]
async fn a_keyless_server_signs_in_by_name_and_serves_its_assets(pool: sqlx::PgPool) {
    let (app, _) = common::app(pool).await;
    assert_eq!(sign_in(&app, "key=&annotator=").await.status, 422);
    let named = sign_in(&app, "key=&annotator=Ann+Lee").await;
    assert_eq!(named.status, 303);
    let queue = get_with(&app, "/ui/queue", &cookies_from(&named)).await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    assert!(queue.text.contains("Ann Lee"));
    let js = common::get(&app, "/ui/assets/ui.js").await;
    assert_eq!(js.status, 200);
    assert!(js.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(js.text.contains("keydown"));
    let css = common::get(&app, "/ui/assets/ui.css").await;
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

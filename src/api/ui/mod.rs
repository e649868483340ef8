//! The labelers' pages, served by `voc` itself as server-rendered HTML: `/ui` (labeling,
//! keyboard-first), `/ui/models` (versions, scores, learning curve, rollback for admins) and
//! `/ui/queue` (what waits). One script and one style sheet, compiled into the binary; no
//! CDN, no build step. Sign-in takes an annotator key (or an admin key with a name); every
//! form carries a CSRF token; a classify-only key is refused.

mod charts;
mod html;
mod label_page;
mod models_page;
mod queue_page;
mod session;

use crate::error::ApiError;
use crate::service::AppState;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use html::{esc, hidden, page, Nav};
use serde::Deserialize;
use session::{cleared_cookies, Session};

/// Every page route; each checks the session cookie itself and sends strangers to sign in.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(label_page::show))
        .route("/ui/label", post(label_page::label))
        .route("/ui/skip", post(label_page::skip))
        .route("/ui/undo", post(label_page::undo))
        .route("/ui/models", get(models_page::show))
        .route("/ui/models/{version}/activate", post(models_page::activate))
        .route("/ui/queue", get(queue_page::show))
        .route("/ui/sign-in", get(sign_in_form).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/assets/ui.js", get(script))
        .route("/ui/assets/ui.css", get(style))
}

/// Why a page request is not served: no session (go and sign in), or a form whose CSRF
/// token is not the session's.
pub enum Denied {
    SignIn,
    BadForm(Box<Session>),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::SignIn => Redirect::to("/ui/sign-in").into_response(),
            Denied::BadForm(session) => page(
                StatusCode::FORBIDDEN,
                "Form refused",
                Some(&session),
                Nav::Label,
                "<p class=\"error\" role=\"alert\">This form has expired or came from another page. \
                 <a href=\"/ui\">Reload the labeling page</a>.</p>",
            ),
        }
    }
}

/// The signed-in session, or [`Denied::SignIn`].
fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Session, Denied> {
    Session::from_cookies(state, headers).ok_or(Denied::SignIn)
}

/// The session of a form post whose CSRF token is right.
fn form_session(state: &AppState, headers: &HeaderMap, csrf: &str) -> Result<Session, Denied> {
    let session = signed_in(state, headers)?;
    if session.csrf_ok(csrf) {
        Ok(session)
    } else {
        Err(Denied::BadForm(Box::new(session)))
    }
}

/// An API error as a page, with its status.
fn error_page(session: Option<&Session>, error: ApiError) -> Response {
    let message = match &error {
        ApiError::Internal(_) => "Something went wrong on the server; it has been logged.".into(),
        other => other.to_string(),
    };
    page(
        error.status(),
        "Something went wrong",
        session,
        Nav::Label,
        &format!(
            "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/ui\">Back to labeling</a></p>",
            esc(&message)
        ),
    )
}

async fn sign_in_form(State(state): State<AppState>) -> Response {
    sign_in_page(&state, StatusCode::OK, None)
}

fn sign_in_page(state: &AppState, status: StatusCode, refusal: Option<&str>) -> Response {
    let alert = refusal.map_or(String::new(), |m| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(m))
    });
    let key_hint = if state.keys.is_open() {
        "This server has no keys: leave the key empty and give your name."
    } else {
        "Your annotator key, or an admin key together with your name."
    };
    page(
        status,
        "Sign in to label",
        None,
        Nav::SignIn,
        &format!(
            "{alert}<form method=\"post\" action=\"/ui/sign-in\">\
             <label class=\"field\">Key <input type=\"password\" name=\"key\" id=\"key\" autocomplete=\"current-password\" aria-describedby=\"key-hint\"></label>\
             <p id=\"key-hint\">{key_hint}</p>\
             <label class=\"field\">Your name (with an admin key, or on a server without keys) \
             <input type=\"text\" name=\"annotator\" id=\"annotator\" autocomplete=\"username\" maxlength=\"100\"></label>\
             <button type=\"submit\" id=\"sign-in\">Sign in</button></form>"
        ),
    )
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    annotator: String,
}

async fn sign_in(State(state): State<AppState>, Form(form): Form<SignInForm>) -> Response {
    match Session::sign_in(&state, &form.key, &form.annotator) {
        Ok(session) => {
            let mut response = Redirect::to("/ui").into_response();
            for cookie in session.cookies() {
                if let Ok(value) = cookie.parse() {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(refusal) => {
            let status = match refusal {
                session::Refusal::UnknownKey => StatusCode::UNAUTHORIZED,
                session::Refusal::ClassifyOnly => StatusCode::FORBIDDEN,
                session::Refusal::NameNeeded => StatusCode::UNPROCESSABLE_ENTITY,
            };
            sign_in_page(&state, status, Some(refusal.message()))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = form_session(&state, &headers, &form.csrf) {
        return refused.into_response();
    }
    let mut response = Redirect::to("/ui/sign-in").into_response();
    for cookie in cleared_cookies() {
        if let Ok(value) = cookie.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", html::UI_JS)
}

async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", html::UI_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
}

/// The hidden fields every form of the labeling page carries.
fn form_fields(session: &Session, task: &str, strategy: &str) -> String {
    format!(
        "{}{}{}",
        hidden("csrf", &session.csrf_token()),
        hidden("task", task),
        hidden("strategy", strategy)
    )
}

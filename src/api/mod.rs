//! The HTTP API: one file per resource, thin handlers, and [`app`], which builds the whole
//! router so the binary and the tests serve exactly the same thing.

mod auth;
mod classify;
mod docs;
mod feedback;
mod health;
mod labels;
mod models;
mod review;
mod tasks;
mod training_runs;
mod transcripts;
mod ui;

use crate::error::ApiError;
use crate::service::AppState;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use std::time::Instant;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The service's router with every route, limit and error mapping.
pub fn app(state: AppState) -> Router {
    // Metrics and the API docs are behind the classify key when keys are configured,
    // unless the operator made them public.
    let metrics_routes = Router::new().route("/metrics", get(health::metrics));
    let docs_routes = Router::new()
        .route("/openapi.json", get(docs::openapi))
        .route("/docs", get(docs::page))
        .route("/docs/swagger-ui-bundle.js", get(docs::swagger_ui_js))
        .route("/docs/swagger-ui.css", get(docs::swagger_ui_css))
        .route("/docs/swagger-ui-init.js", get(docs::swagger_ui_init));
    let (mut keyed, mut open) = (Router::new(), Router::new());
    for (routes, public) in [
        (metrics_routes, state.keys.public_metrics),
        (docs_routes, state.keys.public_docs),
    ] {
        if public {
            open = open.merge(routes);
        } else {
            keyed = keyed.merge(routes);
        }
    }
    let classify_routes = Router::new()
        .route("/classify", post(classify::classify))
        .route("/models", get(models::list))
        .route("/models/active", get(models::active))
        .route("/tasks", get(tasks::list))
        .route("/training-runs", get(training_runs::list))
        .route("/training-runs/{id}", get(training_runs::get))
        .merge(keyed)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_classify_key,
        ));
    let admin_routes = Router::new()
        .route("/feedback", post(feedback::submit))
        .route("/transcripts/{id}", get(transcripts::get))
        .route("/models/{version}/activate", post(models::activate))
        .route("/tasks/{task}/labels", post(tasks::add_label))
        .route("/tasks/{task}/agreement", get(tasks::agreement))
        .route("/labels/export", get(labels::export))
        .route("/training-runs", post(training_runs::request))
        .route("/training-runs/{id}/cancel", post(training_runs::cancel))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin_key,
        ));
    let review_routes = Router::new()
        .route("/review/next", get(review::next))
        .route("/review/queue", get(review::queue))
        .route("/review/{lease}/label", post(review::label))
        .route("/review/{lease}/skip", post(review::skip))
        .route("/review/{lease}/undo", post(review::undo))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_label_key,
        ));
    let open_routes = Router::new()
        .route("/health", get(health::live))
        .route("/ready", get(health::ready))
        // Kubernetes-style aliases.
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .merge(open);
    let timeout = state.limits.request_timeout;
    Router::new()
        .merge(classify_routes)
        .merge(admin_routes)
        .merge(review_routes)
        .merge(ui::routes())
        .merge(open_routes)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(refuse_encoded_bodies))
        .layer(DefaultBodyLimit::max(state.limits.body_limit_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(TraceLayer::new_for_http())
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    record_metrics,
                ))
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::Timeout
                }))
                .timeout(timeout),
        )
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Refuses a body sent with a `Content-Encoding` other than `identity` (415, as RFC 7694
/// asks of a server that does not decode it): the JSON reader would otherwise take the
/// compressed bytes as they are, and a client must not learn that by a confusing 400.
async fn refuse_encoded_bodies(req: Request, next: Next) -> Result<Response, ApiError> {
    if let Some(encoding) = unsupported_encoding(req.headers()) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding `{encoding}` is not supported; send the body uncompressed"
        )));
    }
    Ok(next.run(req).await)
}

/// The first coding other than `identity` that the `Content-Encoding` headers name (cut to
/// 40 characters: it is echoed in the answer).
fn unsupported_encoding(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|coding| String::from_utf8_lossy(coding.trim_ascii()).to_ascii_lowercase())
        .find(|coding| !coding.is_empty() && coding != "identity")
        .map(|coding| coding.chars().take(40).collect())
}

/// Counts every answer by method, route template and status, with its latency. Every label
/// comes from a fixed set, whatever the client sends: `http` accepts any token as a method,
/// so methods other than the standard ones count as `other`, and paths no route matches
/// count as `unmatched` (a matched route is its template, e.g. `/transcripts/{id}`).
async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(req).await;
    state.metrics.observe_request(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The metrics label of a method: one of the nine standard methods, else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

//! `/ui/queue`: how many items wait per task, for each strategy, and how many are leased
//! and labeled.

use super::html::{esc, page, url, Nav};
use super::{error_page, signed_in};
use crate::service::AppState;
use crate::store::review;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

pub async fn show(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(to_sign_in) => return to_sign_in.into_response(),
    };
    let active = state.pipeline.active().version.clone();
    let counts = match review::counts(&state.pool, state.review, &active, Utc::now()).await {
        Ok(c) => c,
        Err(e) => return error_page(Some(&session), e.into()),
    };
    let rows: String = counts
        .iter()
        .map(|c| {
            let link = |strategy: &str, n: i64| {
                format!(
                    "<a href=\"/ui?task={}&amp;strategy={strategy}\">{n}</a>",
                    url(&c.task)
                )
            };
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.task),
                link("uncertain", c.unlabeled),
                link("uncertain", c.wanting_more),
                link("disagreement", c.disagreements),
                c.leased,
                c.labeled,
                c.rescore_pending
            )
        })
        .collect();
    let body = format!(
        "<p>Each item is shown to {} annotator(s); a lease lasts {} s. <code>uncertain</code>, \
         <code>random</code> and <code>recent</code> draw from the unlabeled items (and, with an overlap above one, \
         first from items that want more annotators); <code>disagreement</code> from labeled items whose labels differ.</p>\
         <div class=\"scroll\"><table id=\"queue\"><caption>Items per task</caption><thead><tr>\
         <th scope=\"col\">Task</th><th scope=\"col\">Unlabeled</th><th scope=\"col\">Wanting more annotators</th>\
         <th scope=\"col\">Disagreements</th><th scope=\"col\">Leased now</th><th scope=\"col\">Labeled</th><th scope=\"col\">Waiting to be scored by the active model</th></tr></thead>\
         <tbody>{rows}</tbody></table></div>",
        state.review.overlap,
        state.review.lease_for.as_secs()
    );
    page(StatusCode::OK, "Queue", Some(&session), Nav::Queue, &body)
}

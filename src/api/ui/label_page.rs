//! `/ui`: the next transcript of a task for the signed-in annotator, the model's guesses,
//! and one choice per label (number keys choose, Enter submits, S skips, U undoes).

use super::html::{esc, hidden, page, url, Nav};
use super::session::Session;
use super::{error_page, form_fields, form_session, signed_in};
use crate::data::TaskLabels;
use crate::error::ApiError;
use crate::review::queue::Strategy;
use crate::service::AppState;
use crate::store::review::{self, Lease, LeasedItem, NextItem};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    task: Option<String>,
    strategy: Option<String>,
    /// The lease of the last decision, which U undoes.
    last: Option<String>,
    /// What the last action did, for the status line.
    said: Option<String>,
}

/// What the status line reports after an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Labeled,
    Skipped,
    Undone,
    AlreadyDone,
}

impl Said {
    fn parse(name: &str) -> Option<Said> {
        match name {
            "labeled" => Some(Said::Labeled),
            "skipped" => Some(Said::Skipped),
            "undone" => Some(Said::Undone),
            "already" => Some(Said::AlreadyDone),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Said::Labeled => "labeled",
            Said::Skipped => "skipped",
            Said::Undone => "undone",
            Said::AlreadyDone => "already",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Said::Labeled => "Saved. Here is the next transcript.",
            Said::Skipped => "Skipped. Here is the next transcript.",
            Said::Undone => "Undone: the transcript is back.",
            Said::AlreadyDone => "That transcript was already decided; here is the next.",
        }
    }
}

/// The task a page is about: the one asked for, else the active model's first.
async fn pick_task(
    state: &AppState,
    asked: Option<&str>,
) -> Result<(TaskLabels, Vec<TaskLabels>), ApiError> {
    let tasks = crate::api::tasks::allowed(state).await?;
    let name = asked.unwrap_or_else(|| tasks.first().map_or("", |t| t.name.as_str()));
    let task = super::super::tasks::known_task(state, name).await?;
    Ok((task, tasks))
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ShowQuery>,
) -> Response {
    let session = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(to_sign_in) => return to_sign_in.into_response(),
    };
    match render(&state, &session, &q).await {
        Ok(body) => body,
        Err(e) => error_page(Some(&session), e),
    }
}

async fn render(state: &AppState, session: &Session, q: &ShowQuery) -> Result<Response, ApiError> {
    let (task, tasks) = pick_task(state, q.task.as_deref()).await?;
    let strategy =
        super::super::review::parse_strategy(q.strategy.as_deref().filter(|s| !s.is_empty()))?;
    let ask = NextItem {
        task: &task.name,
        annotator: &session.annotator,
        strategy,
        settings: state.review,
        now: Utc::now(),
    };
    let lease = review::next(&state.pool, &ask).await?;
    let item = match &lease {
        Some(l) => review::item(&state.pool, l).await?,
        None => None,
    };
    let view = View {
        session,
        task: &task,
        tasks: &tasks,
        strategy,
        lease: lease.as_ref().zip(item.as_ref()),
        last: q.last.as_deref().and_then(|l| Uuid::parse_str(l).ok()),
        said: q.said.as_deref().and_then(Said::parse),
    };
    Ok(page(
        StatusCode::OK,
        &format!("Label: {}", task.name),
        Some(session),
        Nav::Label,
        &view.body(),
    ))
}

/// Everything the labeling page shows.
struct View<'a> {
    session: &'a Session,
    task: &'a TaskLabels,
    tasks: &'a [TaskLabels],
    strategy: Strategy,
    lease: Option<(&'a Lease, &'a LeasedItem)>,
    last: Option<Uuid>,
    said: Option<Said>,
}

impl View<'_> {
    fn body(&self) -> String {
        let item = match self.lease {
            Some((lease, item)) => self.item(lease, item),
            None => format!(
                "<p id=\"empty\">Nothing waits for you in <strong>{}</strong> with the <strong>{}</strong> strategy. \
                 Try another strategy, or come back when more calls are classified.</p>",
                esc(&self.task.name),
                self.strategy.as_str()
            ),
        };
        format!(
            "{}{}<p id=\"status\" role=\"status\" aria-live=\"polite\">{}</p>{item}{}",
            self.tabs(),
            self.strategy_form(),
            self.said.map_or("", Said::message),
            self.undo_form()
        )
    }

    fn tabs(&self) -> String {
        let links: Vec<String> = self
            .tasks
            .iter()
            .map(|t| {
                let current = if t.name == self.task.name {
                    " aria-current=\"true\""
                } else {
                    ""
                };
                format!(
                    "<a href=\"/ui?task={}&amp;strategy={}\"{current}>{}</a>",
                    url(&t.name),
                    self.strategy.as_str(),
                    esc(&t.name)
                )
            })
            .collect();
        format!(
            "<nav class=\"tabs\" aria-label=\"Tasks\">{}</nav>",
            links.join(" ")
        )
    }

    fn strategy_form(&self) -> String {
        let options: String = Strategy::ALL
            .iter()
            .map(|s| {
                let selected = if *s == self.strategy { " selected" } else { "" };
                format!("<option value=\"{0}\"{selected}>{0}</option>", s.as_str())
            })
            .collect();
        format!(
            "<form method=\"get\" action=\"/ui\" class=\"actions\">{}\
             <label for=\"strategy\">Order</label> <select id=\"strategy\" name=\"strategy\">{options}</select>\
             <button type=\"submit\" class=\"secondary\">Show</button></form>",
            hidden("task", &self.task.name)
        )
    }

    fn item(&self, lease: &Lease, item: &LeasedItem) -> String {
        let fields = form_fields(self.session, &self.task.name, self.strategy.as_str());
        let guesses = guesses(&item.outputs);
        let probabilities = &item.probabilities;
        let choices: String = self
            .task
            .labels
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let p = probabilities[label].as_f64().map_or(String::new(), |p| {
                    format!(" <small>model {:.0}%</small>", p * 100.0)
                });
                let guess = if *label == item.guess { " guess" } else { "" };
                format!(
                    "<label class=\"choice{guess}\"><input type=\"radio\" name=\"label\" value=\"{v}\" data-key=\"{n}\" required> \
                     <kbd>{n}</kbd> {v}{p}</label>",
                    v = esc(label),
                    n = i + 1
                )
            })
            .collect();
        format!(
            "<article id=\"item\" data-lease=\"{lease_id}\" data-transcript=\"{transcript}\" aria-labelledby=\"item-title\">\
             <h2 id=\"item-title\">Transcript</h2>\
             <p class=\"transcript\" id=\"transcript\">{text}</p>\
             <h2>The model's guesses when the call was classified</h2><dl class=\"guesses\">{guesses}</dl></article>\
             <form id=\"label-form\" method=\"post\" action=\"/ui/label\">{fields}{lease_field}\
             <fieldset><legend>{task}: press a label's number, then Enter</legend><div class=\"choices\">{choices}</div></fieldset>\
             <div class=\"actions\"><button type=\"submit\" id=\"submit-label\">Submit <kbd>Enter</kbd></button></div></form>\
             <div class=\"actions\"><form id=\"skip-form\" method=\"post\" action=\"/ui/skip\">{fields}{lease_field}\
             <button type=\"submit\" class=\"secondary\">Skip <kbd>S</kbd></button></form></div>\
             <p><small>Leased to you until {until} ({strategy}; model {model}).</small></p>",
            lease_id = lease.id,
            transcript = lease.transcript_id,
            text = esc(&item.text),
            lease_field = hidden("lease", &lease.id.to_string()),
            task = esc(&self.task.name),
            until = lease.expires_at.format("%H:%M:%S UTC"),
            strategy = self.strategy.as_str(),
            model = esc(&item.model_version),
        )
    }

    fn undo_form(&self) -> String {
        let fields = form_fields(self.session, &self.task.name, self.strategy.as_str());
        let (lease, disabled) = match self.last {
            Some(id) => (id.to_string(), ""),
            None => (String::new(), " disabled"),
        };
        format!(
            "<form id=\"undo-form\" method=\"post\" action=\"/ui/undo\" class=\"actions\">{fields}{}\
             <button type=\"submit\" class=\"secondary\"{disabled}>Undo the last decision <kbd>U</kbd></button></form>",
            hidden("lease", &lease)
        )
    }
}

/// Each task's guess and confidence, from a prediction's outputs.
fn guesses(outputs: &serde_json::Value) -> String {
    outputs
        .as_object()
        .into_iter()
        .flatten()
        .map(|(task, out)| {
            format!(
                "<dt>{}</dt><dd>{} ({:.0}% sure)</dd>",
                esc(task),
                esc(out["label"].as_str().unwrap_or("?")),
                out["confidence"].as_f64().unwrap_or(0.0) * 100.0
            )
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lease: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    task: String,
    #[serde(default)]
    strategy: String,
}

impl ActionForm {
    /// Back to the labeling page of the same task and strategy.
    fn back(&self, last: Option<Uuid>, said: Said) -> Response {
        let last = last.map_or(String::new(), |id| format!("&last={id}"));
        Redirect::to(&format!(
            "/ui?task={}&strategy={}{last}&said={}",
            url(&self.task),
            url(&self.strategy),
            said.as_str()
        ))
        .into_response()
    }

    fn lease_id(&self) -> Result<Uuid, ApiError> {
        Uuid::parse_str(self.lease.trim())
            .map_err(|_| ApiError::NotFound("no such lease: reload the page".into()))
    }
}

/// What a form of the labeling page asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Label,
    Skip,
    Undo,
}

pub async fn label(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    act(&state, &headers, &form, Action::Label).await
}

pub async fn skip(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    act(&state, &headers, &form, Action::Skip).await
}

pub async fn undo(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    act(&state, &headers, &form, Action::Undo).await
}

/// Checks the form's session and token, does `action` and goes back to the page: a label
/// or a skip remembers its lease for U; a second submit of a decided item moves on.
async fn act(state: &AppState, headers: &HeaderMap, form: &ActionForm, action: Action) -> Response {
    let session = match form_session(state, headers, &form.csrf) {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    match perform(state, &session, form, action).await {
        Ok(()) if action == Action::Undo => form.back(None, Said::Undone),
        Ok(()) => {
            let said = if action == Action::Label {
                Said::Labeled
            } else {
                Said::Skipped
            };
            form.back(form.lease_id().ok(), said)
        }
        Err(ApiError::Conflict(_)) if action != Action::Undo => form.back(None, Said::AlreadyDone),
        Err(e) => error_page(Some(&session), e),
    }
}

async fn perform(
    state: &AppState,
    session: &Session,
    form: &ActionForm,
    action: Action,
) -> Result<(), ApiError> {
    let id = form.lease_id()?;
    let me = Some(session.annotator.as_str());
    match action {
        Action::Label => record_label(state, session, form, id).await,
        Action::Skip => Ok(review::skip(&state.pool, id, me, Utc::now())
            .await
            .map(drop)?),
        Action::Undo => Ok(review::undo(&state.pool, id, me, state.review, Utc::now())
            .await
            .map(drop)?),
    }
}

async fn record_label(
    state: &AppState,
    session: &Session,
    form: &ActionForm,
    id: Uuid,
) -> Result<(), ApiError> {
    let Some(label) = form.label.as_deref().filter(|l| !l.is_empty()) else {
        return Err(ApiError::unprocessable(
            "choose a label first (press its number)",
        ));
    };
    super::super::review::label_lease(state, id, Some(&session.annotator), label).await?;
    Ok(())
}

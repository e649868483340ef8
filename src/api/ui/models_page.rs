//! `/ui/models`: every version with its scores and the gate's decision, the learning curve
//! over versions, one version's per-class table and confusion matrix, the training run in
//! progress, and (for admins) a rollback button per version.

use super::charts::{confusion_matrix, learning_curve, CurvePoint};
use super::html::{esc, hidden, page, url, Nav};
use super::session::Session;
use super::{error_page, form_session, signed_in, CsrfForm};
use crate::error::ApiError;
use crate::service::AppState;
use crate::store::models::{self, ModelVersionRow};
use crate::store::training_runs;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    /// The version whose per-class scores are shown (default: the active one).
    version: Option<String>,
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
    match render(&state, &session, q.version.as_deref()).await {
        Ok(body) => page(StatusCode::OK, "Models", Some(&session), Nav::Models, &body),
        Err(e) => error_page(Some(&session), e),
    }
}

/// A version's validation scores per task (`metrics.validation.tasks`).
fn validation(row: &ModelVersionRow) -> BTreeMap<String, Value> {
    row.metrics["validation"]["tasks"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

async fn render(
    state: &AppState,
    session: &Session,
    shown: Option<&str>,
) -> Result<String, ApiError> {
    let mut versions = models::list(&state.pool).await?;
    versions.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then(a.version.cmp(&b.version))
    });
    let tasks: Vec<String> = state
        .pipeline
        .active()
        .tasks
        .iter()
        .map(|t| t.name.clone())
        .collect();
    let run = training_runs::open(&state.pool).await?;
    let points: Vec<CurvePoint> = versions
        .iter()
        .map(|v| CurvePoint {
            version: v.version.clone(),
            scores: validation(v)
                .iter()
                .filter_map(|(t, m)| m["macro_f1"].as_f64().map(|f| (t.clone(), f)))
                .collect(),
        })
        .collect();
    let detail = versions
        .iter()
        .find(|v| shown.map_or(v.active, |s| v.version == s));
    Ok(format!(
        "{}<h2>Learning curve</h2><p>Validation macro-F1 that each version recorded when it was made, oldest (1) to newest.</p>{}\
         <h2>Versions</h2>{}{}",
        run_section(run.as_ref()),
        learning_curve(&points, &tasks),
        versions_table(session, &versions, &tasks),
        detail.map_or(String::new(), detail_section)
    ))
}

fn run_section(run: Option<&training_runs::TrainingRun>) -> String {
    let Some(run) = run else {
        return "<p id=\"run\">No training run is queued or running.</p>".into();
    };
    let p = &run.progress;
    let field = |k: &str| p[k].as_f64().map_or("–".to_string(), |v| format!("{v:.4}"));
    format!(
        "<section id=\"run\" aria-labelledby=\"run-title\"><h2 id=\"run-title\">Training run {} ({})</h2>\
         <p>Epoch {}, step {} of {}; loss {}; validation score {}.</p>\
         <progress max=\"{}\" value=\"{}\" aria-label=\"Steps done\"></progress></section>",
        run.id,
        run.state.as_str(),
        p["epoch"].as_u64().unwrap_or(0),
        p["step"].as_u64().unwrap_or(0),
        p["planned_steps"].as_u64().unwrap_or(0),
        field("loss"),
        field("valid_score"),
        p["planned_steps"].as_u64().unwrap_or(1).max(1),
        p["step"].as_u64().unwrap_or(0)
    )
}

fn versions_table(session: &Session, versions: &[ModelVersionRow], tasks: &[String]) -> String {
    let heads: String = tasks
        .iter()
        .map(|t| format!("<th scope=\"col\">{} macro-F1</th>", esc(t)))
        .collect();
    let rows: String = versions
        .iter()
        .rev()
        .map(|v| {
            let scores = validation(v);
            let cells: String = tasks
                .iter()
                .map(|t| {
                    let f = scores.get(t).and_then(|m| m["macro_f1"].as_f64());
                    format!("<td>{}</td>", f.map_or("–".into(), |f| format!("{f:.4}")))
                })
                .collect();
            let state = if v.active {
                "<span class=\"badge\">active</span>".to_string()
            } else {
                match v.gate.as_ref().and_then(|g| g["decision"].as_str()) {
                    Some("rejected") => "<span class=\"badge rejected\">rejected by the gate</span>".into(),
                    Some(d) => esc(d),
                    None => String::new(),
                }
            };
            let action = if session.admin && !v.active && v.files_removed_at.is_none() {
                format!(
                    "<form method=\"post\" action=\"/ui/models/{}/activate\">{}\
                     <button type=\"submit\" class=\"secondary\">Roll back to this</button></form>",
                    url(&v.version),
                    hidden("csrf", &session.csrf_token())
                )
            } else {
                String::new()
            };
            format!(
                "<tr><th scope=\"row\"><a href=\"/ui/models?version={}\">{}</a></th><td>{}</td>{cells}<td>{state}</td><td>{action}</td></tr>",
                url(&v.version),
                esc(&v.version),
                v.created_at.format("%Y-%m-%d %H:%M"),
            )
        })
        .collect();
    format!(
        "<div class=\"scroll\"><table id=\"versions\"><caption>{} versions, newest first</caption>\
         <thead><tr><th scope=\"col\">Version</th><th scope=\"col\">Made</th>{heads}<th scope=\"col\">State</th><th scope=\"col\"><span class=\"skip\">Action</span></th></tr></thead>\
         <tbody>{rows}</tbody></table></div>",
        versions.len()
    )
}

/// One version's per-class precision, recall, F1 and support, and its confusion matrix,
/// per task.
fn detail_section(v: &ModelVersionRow) -> String {
    let mut out = format!("<h2>Version {}</h2>", esc(&v.version));
    for (task, m) in validation(v) {
        let per_class = m["per_class"].as_object().cloned().unwrap_or_default();
        let labels: Vec<String> = per_class.keys().cloned().collect();
        let rows: String = per_class
            .iter()
            .map(|(label, c)| {
                format!(
                    "<tr><th scope=\"row\">{}</th><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
                    esc(label),
                    c["precision"].as_f64().unwrap_or(0.0),
                    c["recall"].as_f64().unwrap_or(0.0),
                    c["f1"].as_f64().unwrap_or(0.0),
                    c["support"].as_u64().unwrap_or(0)
                )
            })
            .collect();
        let confusion: BTreeMap<String, BTreeMap<String, u64>> =
            serde_json::from_value(m["confusion"].clone()).unwrap_or_default();
        out.push_str(&format!(
            "<h3>{t}</h3><p>Macro-F1 {:.4}, accuracy {:.4}, on {} validation rows.</p>\
             <div class=\"scroll\"><table class=\"per-class\"><caption>{t}: per class</caption>\
             <thead><tr><th scope=\"col\">Class</th><th scope=\"col\">Precision</th><th scope=\"col\">Recall</th><th scope=\"col\">F1</th><th scope=\"col\">Support</th></tr></thead>\
             <tbody>{rows}</tbody></table></div><div class=\"scroll\">{}</div>",
            m["macro_f1"].as_f64().unwrap_or(0.0),
            m["accuracy"].as_f64().unwrap_or(0.0),
            m["n"].as_u64().unwrap_or(0),
            confusion_matrix(&task, &labels, &confusion),
            t = esc(&task)
        ));
    }
    out
}

/// The rollback button: makes `version` live everywhere (admins only).
pub async fn activate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(version): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let session = match form_session(&state, &headers, &form.csrf) {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    if !session.admin {
        return error_page(
            Some(&session),
            ApiError::Forbidden("only an admin may roll back the model".into()),
        );
    }
    match crate::service::activation::activate(&state, &version).await {
        Ok(_) => Redirect::to(&format!("/ui/models?version={}", url(&version))).into_response(),
        Err(e) => error_page(Some(&session), e.into()),
    }
}

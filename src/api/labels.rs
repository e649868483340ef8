//! GET /labels/export: every labeled transcript with its current label per task, as JSONL
//! (`id`, `text`, one key per task) or CSV (`id,text,<task>...`), the two formats `voc train`
//! reads. Streamed a page at a time, so a large export never sits in memory whole.
//! `exclude_eval=true` leaves out the frozen evaluation set the gate scores candidates on.

use crate::error::ApiError;
use crate::learning::eval_set::in_frozen_eval;
use crate::learning::LearningSettings;
use crate::service::AppState;
use crate::store::exports::{self, ExportedTranscript};
use crate::store::learning_settings;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use serde::Deserialize;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Transcripts read per query (and sent as one chunk).
const PAGE: i64 = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
    exclude_eval: Option<bool>,
}

/// The two formats `voc train` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExportFormat {
    Jsonl,
    Csv,
}

impl ExportFormat {
    fn parse(name: Option<&str>) -> Result<ExportFormat, ApiError> {
        match name.unwrap_or("jsonl") {
            "jsonl" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            other => Err(ApiError::unprocessable(format!(
                "format `{other}` is not one of jsonl, csv"
            ))),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "labels.jsonl",
            ExportFormat::Csv => "labels.csv",
        }
    }
}

pub async fn export(
    State(state): State<AppState>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let format = ExportFormat::parse(q.format.as_deref())?;
    let eval_share = if q.exclude_eval.unwrap_or(false) {
        let recorded = learning_settings::recorded_eval_share(&state.pool).await?;
        // No learning loop has recorded a share yet: the one it would start with.
        Some(recorded.unwrap_or(LearningSettings::default().eval_share))
    } else {
        None
    };
    let tasks: Vec<String> = super::tasks::allowed(&state)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    // The first page is read before answering, so a database error is a clean 503, not a
    // cut-off download.
    let first = exports::labeled_page(&state.pool, None, PAGE).await?;
    let (tx, rx) = mpsc::channel(2);
    let pool = state.pool.clone();
    tokio::spawn(async move {
        let mut page = first;
        let mut header = format == ExportFormat::Csv;
        loop {
            let chunk = render(format, &tasks, header, &page, eval_share);
            header = false;
            if tx.send(chunk.map(Bytes::from)).await.is_err() {
                return; // the client went away
            }
            let Some(last) = page.last() else { return };
            page = match exports::labeled_page(&pool, Some(last.id), PAGE).await {
                Ok(next) if next.is_empty() => return,
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "labels export stopped: the database failed");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", format.file_name()),
            ),
        ],
        Body::new(ChannelBody(rx)),
    )
        .into_response())
}

/// One page as JSONL lines or CSV records (with the header row first when `header`),
/// leaving out the frozen evaluation set when `eval_share` is given.
fn render(
    format: ExportFormat,
    tasks: &[String],
    header: bool,
    page: &[ExportedTranscript],
    eval_share: Option<f64>,
) -> Result<Vec<u8>, std::io::Error> {
    let rows = page
        .iter()
        .filter(|row| !eval_share.is_some_and(|s| in_frozen_eval(row.eval_bucket as u32, s)));
    match format {
        ExportFormat::Jsonl => {
            let mut out = Vec::new();
            for row in rows {
                serde_json::to_writer(&mut out, &row.training_row())?;
                out.push(b'\n');
            }
            Ok(out)
        }
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            if header {
                let names = ["id", "text"]
                    .into_iter()
                    .chain(tasks.iter().map(String::as_str));
                writer.write_record(names).map_err(std::io::Error::other)?;
            }
            for row in rows {
                let id = row.id.to_string();
                let labels = tasks
                    .iter()
                    .map(|t| row.labels.get(t).and_then(|v| v.as_str()).unwrap_or(""));
                let record = [id.as_str(), row.text.as_str()].into_iter().chain(labels);
                writer.write_record(record).map_err(std::io::Error::other)?;
            }
            writer
                .into_inner()
                .map_err(|e| std::io::Error::other(e.to_string()))
        }
    }
}

/// A response body fed page by page from the task that reads the export.
struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}

//! Commits a scored batch (every transcript and prediction in one statement) on the tokio
//! runtime, then answers each request of the batch.

use super::{Classified, Job, PipelineError};
use crate::metrics::Metrics;
use crate::model::Prediction;
use crate::store::transcripts::{insert_classified, ClassifiedRow, ReviewGuess};
use crate::store::StoreError;
use std::sync::Arc;
use std::time::Instant;

pub(super) struct ScoredJob {
    pub job: Job,
    pub predictions: Vec<Prediction>,
    pub latency_ms: f32,
}

pub(super) struct BatchWriter {
    pub pool: sqlx::PgPool,
    pub metrics: Arc<Metrics>,
    pub runtime: tokio::runtime::Handle,
}

impl BatchWriter {
    /// Starts the commit of one batch; the inference thread moves on to the next batch.
    pub fn commit(&self, version: Arc<str>, batch: Vec<ScoredJob>) {
        let pool = self.pool.clone();
        let metrics = self.metrics.clone();
        self.runtime
            .spawn(async move { commit_batch(pool, metrics, version, batch).await });
    }
}

/// A prediction's review-queue entries: per task, the guess and how sure the model was.
pub fn review_guesses(p: &Prediction) -> Vec<ReviewGuess> {
    p.tasks
        .iter()
        .map(|(task, tp)| ReviewGuess {
            task: task.clone(),
            guess: tp.label.clone(),
            margin: tp.margin(),
            probabilities: serde_json::to_string(&tp.probabilities).unwrap_or_else(|_| "{}".into()),
        })
        .collect()
}

async fn commit_batch(
    pool: sqlx::PgPool,
    metrics: Arc<Metrics>,
    version: Arc<str>,
    batch: Vec<ScoredJob>,
) {
    let rows: Vec<ClassifiedRow> = batch
        .iter()
        .flat_map(|s| {
            s.job
                .items
                .iter()
                .zip(&s.predictions)
                .map(|(item, p)| ClassifiedRow {
                    transcript_id: item.transcript_id,
                    prediction_id: item.prediction_id,
                    call_id: item.call_id.clone(),
                    text: item.text.clone(),
                    metadata: item.metadata.clone(),
                    redaction_version: item.redaction_version,
                    request_digest: item.request_digest.clone(),
                    model_version: version.to_string(),
                    outputs: serde_json::to_string(&p.tasks).unwrap_or_default(),
                    latency_ms: s.latency_ms,
                    review: review_guesses(p),
                })
        })
        .collect();
    let started = Instant::now();
    let result = insert_classified(&pool, &rows).await;
    match result {
        Ok(()) => {
            metrics.observe_commit(
                started.elapsed().as_secs_f64(),
                batch.iter().flat_map(|s| {
                    s.predictions.iter().flat_map(|p| {
                        p.tasks
                            .iter()
                            .map(|(task, tp)| (task.as_str(), tp.label.as_str()))
                    })
                }),
            );
            for s in batch {
                let answer = s
                    .job
                    .items
                    .iter()
                    .zip(s.predictions)
                    .map(|(item, prediction)| Classified {
                        transcript_id: item.transcript_id,
                        prediction_id: item.prediction_id,
                        model_version: version.clone(),
                        prediction,
                        latency_ms: s.latency_ms,
                    })
                    .collect();
                let _ = s.job.reply.send(Ok(answer));
            }
        }
        Err(e) => {
            let error = match e {
                StoreError::Unavailable(cause) => PipelineError::DatabaseUnavailable(cause),
                StoreError::Other(cause) => {
                    tracing::error!(%cause, "storing a batch failed");
                    PipelineError::Failed("storing the prediction failed".into())
                }
            };
            for s in batch {
                let _ = s.job.reply.send(Err(error.clone()));
            }
        }
    }
}

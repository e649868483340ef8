//! One inference replica: a thread that owns a copy of the classifier, scores the batches
//! the dispatcher gives it, and passes the results to the batch writer.

use super::writer::{BatchWriter, ScoredJob};
use super::{AliveFlag, Job, PipelineError};
use crate::metrics::PreparedBy;
use crate::model::{Classifier, ModelError, PreparedBatch, Scores, TextPreparer};
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// What the dispatcher sends one replica; a replica handles them in order.
pub(super) enum ReplicaCommand {
    Score(Vec<Job>),
    /// Serve `classifier` from the next batch on; answered on `done` once it does.
    Swap {
        classifier: Box<Classifier>,
        done: mpsc::Sender<()>,
    },
    /// End this replica's thread now, as a crash would.
    Stop {
        stopped: tokio::sync::oneshot::Sender<()>,
    },
}

/// One model replica: its own copy of the classifier, owned by its own OS thread (a tch
/// `Tensor` is `Send` but not `Sync`), scoring the batches the dispatcher hands it.
pub(super) struct Replica {
    pub index: usize,
    pub classifier: Classifier,
    pub rx: mpsc::Receiver<ReplicaCommand>,
    /// Where this replica says it is free for the next batch.
    pub ready: mpsc::Sender<usize>,
    /// libtorch intra-op threads of this replica.
    pub intra_op_threads: usize,
    /// Held only for its `Drop`.
    pub _alive: AliveFlag,
    pub writer: BatchWriter,
}

impl Replica {
    pub fn run(mut self) {
        tch::set_num_threads(self.intra_op_threads.max(1) as i32);
        let mut stopped = None;
        if self.ready.send(self.index).is_err() {
            return;
        }
        while let Ok(command) = self.rx.recv() {
            match command {
                ReplicaCommand::Score(batch) => {
                    self.score(batch);
                    if self.ready.send(self.index).is_err() {
                        break;
                    }
                }
                ReplicaCommand::Swap { classifier, done } => {
                    self.swap(*classifier);
                    let _ = done.send(());
                }
                ReplicaCommand::Stop { stopped: s } => {
                    stopped = Some(s);
                    break;
                }
            }
        }
        tracing::info!(replica = self.index, "inference replica stopped");
        // Clear the alive flag before telling `stop_replica` the thread is gone.
        drop(self);
        if let Some(s) = stopped {
            let _ = s.send(());
        }
    }

    fn score(&self, batch: Vec<Job>) {
        // Requests whose client is gone are dropped before they cost model time.
        let mut batch: Vec<Job> = batch.into_iter().filter(|j| !j.reply.is_closed()).collect();
        if batch.is_empty() {
            return;
        }
        let parts = batch.iter_mut().map(|j| j.prepared.take()).collect();
        let texts: Vec<&str> = batch
            .iter()
            .flat_map(|j| j.items.iter().map(|i| i.text.as_str()))
            .collect();
        let started = Instant::now();
        let prepared = serving_batch(parts, self.classifier.preparer(), &texts);
        let prepared_by = prepared.as_ref().ok().map(|(_, by)| *by);
        let result = prepared
            .and_then(|(batch, _)| self.classifier.prepared_scores(&batch))
            .map(Scores::into_predictions);
        let done = Instant::now();
        self.writer
            .metrics
            .observe_batch(texts.len(), (done - started).as_secs_f64(), prepared_by);
        let predictions = match result {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "inference failed");
                for job in batch {
                    let _ = job
                        .reply
                        .send(Err(PipelineError::Failed("inference failed".into())));
                }
                return;
            }
        };
        let version: Arc<str> = Arc::from(self.classifier.manifest().version.as_str());
        let mut predictions = predictions.into_iter();
        let scored = batch
            .into_iter()
            .map(|job| {
                let latency_ms = (done - job.enqueued).as_secs_f32() * 1000.0;
                let p: Vec<_> = predictions.by_ref().take(job.items.len()).collect();
                ScoredJob {
                    job,
                    predictions: p,
                    latency_ms,
                }
            })
            .collect();
        self.writer.commit(version, scored);
    }

    fn swap(&mut self, classifier: Classifier) {
        // The old version's weights are freed here, between two batches; give them back.
        drop(std::mem::replace(&mut self.classifier, classifier));
        crate::memory::return_freed_memory();
    }
}

/// The batch to score with the version `serving` prepares for: the jobs' own prepared
/// texts (done on their request tasks) when every job has them from this version, or
/// `texts` prepared here, on the replica, when any job lacks them or was prepared by another
/// version (a swap came in between).
fn serving_batch(
    parts: Vec<Option<PreparedBatch>>,
    serving: &TextPreparer,
    texts: &[&str],
) -> Result<(PreparedBatch, PreparedBy), ModelError> {
    let joined = parts
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .and_then(PreparedBatch::concat);
    match joined {
        Some(batch) if batch.version() == serving.version() && batch.len() == texts.len() => {
            Ok((batch, PreparedBy::Request))
        }
        _ => Ok((serving.prepare(texts)?, PreparedBy::Replica)),
    }
}

#[cfg(test)]
mod tests {
    use super::serving_batch;
    use crate::metrics::PreparedBy;
    use crate::model::tokenizer::TextTokenizer;
    use crate::model::TextPreparer;

    const TEXTS: [&str; 3] = [
        "my card has not arrived",
        "the refund came through quickly",
        "why was my card charged twice",
    ];

    fn preparer(version: &str, corpus: &[&str]) -> TextPreparer {
        let tokenizer = TextTokenizer::train(corpus.iter().copied(), 200, 16).unwrap();
        TextPreparer::new(version, tokenizer, None)
    }

    #[test]
    fn the_requests_own_prepared_texts_are_scored_when_the_serving_version_made_them() {
        let a = preparer("a", &TEXTS);
        let mut first = a.prepare(&TEXTS[..1]).unwrap();
        // Marked, to tell the request's ids from ids prepared again on the replica.
        first.set_tokens(0, vec![1, 1, 1]);
        let rest = a.prepare(&TEXTS[1..]).unwrap();
        let (batch, by) = serving_batch(vec![Some(first), Some(rest)], &a, &TEXTS).unwrap();
        assert_eq!(by, PreparedBy::Request);
        assert_eq!(batch.version(), "a");
        assert_eq!(batch.tokens(0), &[1, 1, 1], "the request's own ids");
        assert_eq!(batch.tokens(2), a.prepare(&TEXTS[2..]).unwrap().tokens(0));
    }

    #[test]
    fn texts_another_version_prepared_or_left_unprepared_are_prepared_again_by_the_serving_one() {
        let a = preparer("a", &TEXTS);
        let b = preparer("b", &["card card card refund", "twice twice arrived"]);
        let again = b.prepare(&TEXTS).unwrap();
        let old = a.prepare(&TEXTS).unwrap();
        assert_ne!(
            old.tokens(0),
            again.tokens(0),
            "the two vocabularies differ"
        );
        let cases = [
            vec![Some(old.clone())],
            vec![Some(b.prepare(&TEXTS[..1]).unwrap()), None],
            vec![
                Some(b.prepare(&TEXTS[..1]).unwrap()),
                Some(a.prepare(&TEXTS[1..]).unwrap()),
            ],
        ];
        for parts in cases {
            let (batch, by) = serving_batch(parts, &b, &TEXTS).unwrap();
            assert_eq!(by, PreparedBy::Replica);
            assert_eq!(batch.version(), "b");
            for i in 0..TEXTS.len() {
                assert_eq!(batch.tokens(i), again.tokens(i), "text {i}");
            }
        }
    }
}

//! One inference replica: a thread that owns a copy of the classifier, scores the batches
//! the dispatcher gives it, and passes the results to the batch writer.

use super::writer::{BatchWriter, ScoredJob};
use super::{AliveFlag, Job, PipelineError};
use crate::model::Classifier;
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
        let batch: Vec<Job> = batch.into_iter().filter(|j| !j.reply.is_closed()).collect();
        if batch.is_empty() {
            return;
        }
        let max_len = self.classifier.manifest().config.model.max_len;
        let texts: Vec<&str> = batch
            .iter()
            .flat_map(|j| j.items.iter().map(|i| model_input(&i.text, max_len)))
            .collect();
        let started = Instant::now();
        let result = self.classifier.predict(&texts);
        let done = Instant::now();
        self.writer
            .metrics
            .observe_batch(texts.len(), (done - started).as_secs_f64());
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

/// Bytes of text the tokenizer is given per token the model reads.
const BYTES_PER_TOKEN: usize = 64;

/// The part of `text` the tokenizer sees: its first `max_len * 64` bytes, cut back to a
/// character boundary. The model reads only the first `max_len` tokens, and a WordPiece token
/// stands for a piece of one word (at most 100 characters, `max_input_chars_per_word`) plus
/// the whitespace and punctuation before it, so ordinary text reaches `max_len` tokens long
/// before the cut and the model sees the same tokens as with the whole text. Only text that
/// averages more than 64 bytes a token (long runs of spaces, "words" of over 64 bytes, each
/// one `[UNK]`) is read on its first `max_len * 64` bytes instead; either way the inference
/// thread never tokenizes a megabyte to keep a few hundred tokens. The stored text is whole.
pub(super) fn model_input(text: &str, max_len: usize) -> &str {
    let limit = max_len.saturating_mul(BYTES_PER_TOKEN);
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::model_input;

    #[test]
    fn the_model_input_is_cut_at_a_char_boundary_after_max_len_times_64_bytes() {
        let korean = "가".repeat(100_000);
        let cut = model_input(&korean, 128);
        assert_eq!(cut.len(), 128 * 64 - 2, "the last whole 3-byte character");
        assert!(korean.starts_with(cut));
        let ascii = "a".repeat(128 * 64 + 1);
        assert_eq!(model_input(&ascii, 128).len(), 128 * 64);
        assert_eq!(model_input("short text", 128), "short text");
    }
}

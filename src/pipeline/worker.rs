//! The inference thread: owns the classifier, cuts batches of up to `max_batch_size` texts
//! or `max_batch_wait`, runs the model, and passes results to the batch writer.

use super::writer::{BatchWriter, ScoredJob};
use super::{ActiveModel, Command, Job, PipelineError, PipelineSettings};
use crate::model::Classifier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, RwLock};
use std::time::Instant;

pub(super) struct InferenceWorker {
    pub classifier: Classifier,
    pub rx: mpsc::Receiver<Command>,
    pub settings: PipelineSettings,
    pub depth: Arc<AtomicUsize>,
    pub active: Arc<RwLock<Arc<ActiveModel>>>,
    /// Held only for its `Drop`.
    pub _alive: AliveFlag,
    pub writer: BatchWriter,
}

/// Cleared when the worker stops, however it stops (a panic included).
pub(super) struct AliveFlag(pub Arc<std::sync::atomic::AtomicBool>);

impl Drop for AliveFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl InferenceWorker {
    pub fn run(mut self) {
        tch::set_num_threads(self.settings.inference_threads.max(1) as i32);
        let mut held: Option<Command> = None;
        let mut stopped = None;
        loop {
            let first = match held.take() {
                Some(c) => c,
                None => match self.rx.recv() {
                    Ok(c) => c,
                    Err(_) => break,
                },
            };
            match first {
                Command::Swap { classifier, reply } => {
                    let _ = reply.send(self.swap(*classifier));
                }
                Command::Stop { stopped: s } => {
                    stopped = Some(s);
                    break;
                }
                Command::Classify(job) => {
                    let (batch, next) = self.cut_batch(job);
                    held = next;
                    self.depth.fetch_sub(batch.len(), Ordering::SeqCst);
                    self.score(batch);
                }
            }
        }
        tracing::info!("inference worker stopped");
        // Clear the alive flag before telling `stop_worker` the thread is gone.
        drop(self);
        if let Some(s) = stopped {
            let _ = s.send(());
        }
    }

    /// Collects jobs after `first` until the batch is full or the wait is over. Returns the
    /// batch and a command that did not fit (kept for the next round).
    fn cut_batch(&self, first: Job) -> (Vec<Job>, Option<Command>) {
        let deadline = Instant::now() + self.settings.max_batch_wait;
        let mut texts = first.items.len();
        let mut batch = vec![first];
        while texts < self.settings.max_batch_size {
            let next = match self.rx.try_recv() {
                Ok(c) => c,
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    match self.rx.recv_timeout(deadline - now) {
                        Ok(c) => c,
                        Err(_) => break,
                    }
                }
            };
            match next {
                Command::Classify(job)
                    if texts + job.items.len() <= self.settings.max_batch_size =>
                {
                    texts += job.items.len();
                    batch.push(job);
                }
                other => return (batch, Some(other)),
            }
        }
        (batch, None)
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

    fn swap(&mut self, classifier: Classifier) -> Arc<ActiveModel> {
        let model = Arc::new(ActiveModel::of(&classifier));
        // The old version's weights are freed here, between two batches; give them back.
        drop(std::mem::replace(&mut self.classifier, classifier));
        crate::memory::return_freed_memory();
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = model.clone();
        self.writer.metrics.set_active_version(&model.version);
        tracing::info!(version = %model.version, "model version now serving");
        model
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

//! The classification pipeline: a bounded queue in front of a dispatcher thread that cuts
//! dynamic batches and hands each to a free model replica. Each replica is an OS thread that
//! owns its own copy of the model (a tch `Tensor` is `Send` but not `Sync`) and hands its
//! scored batch to a writer that commits all its transcripts and predictions in one
//! statement before any request of the batch is answered.
//!
//! ```text
//! handler [prepare on the blocking pool] --Command--> [voc-dispatch: cut batch] --> [voc-inference-N: predict] --spawn--> commit batch --oneshot--> handler
//! ```
//!
//! A request of several texts has them prepared (token ids, TF-IDF rows) with the active
//! version before it is queued, so the replica only runs the network on them; a replica that
//! serves another version by then (a swap came in between) prepares them again itself, as it
//! does single texts.

mod dispatcher;
mod replica;
pub mod rescore;
mod writer;
pub use writer::review_guesses;

use crate::data::TaskLabels;
use crate::metrics::Metrics;
use crate::model::{Classifier, Prediction, PreparedBatch, TextPreparer};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// One text to classify and store, with the ids its rows will get.
#[derive(Debug, Clone)]
pub struct TextToClassify {
    pub transcript_id: Uuid,
    pub prediction_id: Uuid,
    pub call_id: Option<String>,
    pub text: String,
    pub metadata: serde_json::Value,
    /// The redactor version that redacted `text` and `call_id` (0: stored as given).
    pub redaction_version: i16,
    /// For a request sent with an `Idempotency-Key`: the digest of the whole request, stored
    /// with the transcript so a retry can be told from another request under the same key.
    pub request_digest: Option<Vec<u8>>,
}

/// One text's stored prediction.
#[derive(Debug, Clone)]
pub struct Classified {
    pub transcript_id: Uuid,
    pub prediction_id: Uuid,
    pub model_version: Arc<str>,
    pub prediction: Prediction,
    /// Time from entering the queue to the model's answer.
    pub latency_ms: f32,
}

/// Why the pipeline could not classify and store a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    #[error("the inference queue is full")]
    Overloaded,
    #[error("the database is unavailable: {0}")]
    DatabaseUnavailable(String),
    #[error("{0}")]
    Failed(String),
    #[error("the inference worker has stopped")]
    Stopped,
}

/// The model version being served, as the API describes it.
#[derive(Debug, Clone)]
pub struct ActiveModel {
    pub version: String,
    pub dir: PathBuf,
    pub tasks: Vec<TaskLabels>,
    pub metrics: serde_json::Value,
    /// Prepares texts for this version on the request's own task (see
    /// [`crate::model::prepared`]), so the inference thread only runs the network.
    pub preparer: TextPreparer,
}

impl ActiveModel {
    pub fn of(classifier: &Classifier) -> ActiveModel {
        ActiveModel {
            version: classifier.manifest().version.clone(),
            dir: classifier.dir().to_path_buf(),
            tasks: classifier.manifest().tasks.clone(),
            metrics: classifier.metrics().clone(),
            preparer: classifier.preparer().clone(),
        }
    }
}

/// How batches are cut and how much may wait.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Most texts in one model call (a larger single request runs alone).
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for company.
    pub max_batch_wait: Duration,
    /// Most requests waiting for a batch; more are refused at once (503).
    pub queue_capacity: usize,
    /// Most text bytes held by requests in the pipeline (queued, scored or being stored);
    /// a request that would go over is refused at once (503), like one over `queue_capacity`.
    pub queue_bytes: usize,
    /// Model replicas, each on its own thread with its own copy of the weights.
    pub replicas: usize,
    /// libtorch intra-op threads of each replica.
    pub intra_op_threads: usize,
    pub device: tch::Device,
}

/// Requests of fewer texts than this are left for the replica to prepare (see
/// `Pipeline::prepare`).
const PREPARE_AHEAD_TEXTS: usize = 8;

type Reply = oneshot::Sender<Result<Vec<Classified>, PipelineError>>;

struct Job {
    items: Vec<TextToClassify>,
    /// The items' texts prepared by the version active when the job was sent; `None` for a
    /// request of fewer than `PREPARE_AHEAD_TEXTS` texts, or when preparing failed (the
    /// replica then prepares them itself and reports what went wrong).
    prepared: Option<PreparedBatch>,
    enqueued: Instant,
    reply: Reply,
    /// Gives the job's text bytes back to the budget when the job is done with.
    _bytes: HeldBytes,
}

/// Text bytes counted against [`PipelineSettings::queue_bytes`] until dropped.
struct HeldBytes {
    held: Arc<AtomicUsize>,
    bytes: usize,
}

impl HeldBytes {
    /// Counts `bytes` in `held` if that stays within `budget`.
    fn take(held: &Arc<AtomicUsize>, bytes: usize, budget: usize) -> Option<HeldBytes> {
        held.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
            now.checked_add(bytes).filter(|total| *total <= budget)
        })
        .ok()
        .map(|_| HeldBytes {
            held: held.clone(),
            bytes,
        })
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

enum Command {
    Classify(Job),
    /// Serve `classifiers` (one per replica, loaded off the inference threads) from each
    /// replica's next batch on.
    Swap {
        classifiers: Vec<Classifier>,
        reply: oneshot::Sender<Arc<ActiveModel>>,
    },
    /// End one replica now, as a crash would (see [`Pipeline::stop_replica`]).
    Stop {
        replica: usize,
        stopped: oneshot::Sender<()>,
    },
}

/// A version loaded once per replica, ready for [`Pipeline::swap`].
pub struct LoadedModel {
    replicas: Vec<Classifier>,
}

impl LoadedModel {
    /// The version these copies are of.
    pub fn version(&self) -> &str {
        &self.replicas[0].manifest().version
    }
}

/// `first` and `replicas - 1` more classifiers sharing its weights, one per replica.
fn copies_for_replicas(first: Classifier, replicas: usize) -> Vec<Classifier> {
    let mut copies: Vec<Classifier> = (1..replicas).map(|_| first.replicate()).collect();
    copies.insert(0, first);
    copies
}

/// Counts a pipeline thread as running until dropped, however the thread ends (a panic
/// included).
struct AliveFlag(Arc<AtomicUsize>);

impl AliveFlag {
    fn new(running: &Arc<AtomicUsize>) -> AliveFlag {
        running.fetch_add(1, Ordering::SeqCst);
        AliveFlag(running.clone())
    }
}

impl Drop for AliveFlag {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A cheap, cloneable handle to the pipeline.
#[derive(Clone)]
pub struct Pipeline {
    tx: mpsc::Sender<Command>,
    depth: Arc<AtomicUsize>,
    capacity: usize,
    /// Text bytes of the requests in the pipeline, and their most.
    bytes: Arc<AtomicUsize>,
    byte_budget: usize,
    active: Arc<RwLock<Arc<ActiveModel>>>,
    /// Pipeline threads running now, and how many there are when all run.
    running: Arc<AtomicUsize>,
    threads: usize,
    replicas: usize,
    device: tch::Device,
}

impl Pipeline {
    /// Starts the dispatcher and `settings.replicas` replicas of `classifier` (the others
    /// sharing its weights); commits go to `pool` on the current tokio runtime. The
    /// threads stop when every handle is dropped; the returned handle joins them all.
    pub fn start(
        classifier: Classifier,
        settings: PipelineSettings,
        pool: sqlx::PgPool,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Pipeline, std::thread::JoinHandle<()>)> {
        let replicas = settings.replicas.max(1);
        let copies = copies_for_replicas(classifier, replicas);
        let (tx, rx) = mpsc::channel();
        let depth = metrics.queue_depth.clone();
        let active = Arc::new(RwLock::new(Arc::new(ActiveModel::of(&copies[0]))));
        let running = Arc::new(AtomicUsize::new(0));
        metrics.set_active_version(&copies[0].manifest().version);
        let (ready_tx, ready) = mpsc::channel();
        let mut senders = Vec::new();
        let mut replica_threads = Vec::new();
        for (index, classifier) in copies.into_iter().enumerate() {
            let (replica_tx, replica_rx) = mpsc::channel();
            let replica = replica::Replica {
                index,
                classifier,
                rx: replica_rx,
                ready: ready_tx.clone(),
                intra_op_threads: settings.intra_op_threads,
                _alive: AliveFlag::new(&running),
                writer: writer::BatchWriter {
                    pool: pool.clone(),
                    metrics: metrics.clone(),
                    runtime: tokio::runtime::Handle::current(),
                },
            };
            replica_threads.push(
                std::thread::Builder::new()
                    .name(format!("voc-inference-{index}"))
                    .spawn(move || replica.run())?,
            );
            senders.push(replica_tx);
        }
        drop(ready_tx);
        let dispatcher = dispatcher::Dispatcher {
            rx,
            replicas: senders,
            replica_threads,
            ready,
            settings: settings.clone(),
            depth: depth.clone(),
            active: active.clone(),
            metrics,
            _alive: AliveFlag::new(&running),
        };
        let thread = std::thread::Builder::new()
            .name("voc-dispatch".into())
            .spawn(move || dispatcher.run())?;
        Ok((
            Pipeline {
                tx,
                depth,
                capacity: settings.queue_capacity,
                bytes: Arc::new(AtomicUsize::new(0)),
                byte_budget: settings.queue_bytes,
                active,
                running,
                threads: replicas + 1,
                replicas,
                device: settings.device,
            },
            thread,
        ))
    }

    /// Classifies `items` and stores them; answers once they are committed.
    pub async fn classify(
        &self,
        items: Vec<TextToClassify>,
    ) -> Result<Vec<Classified>, PipelineError> {
        let text_bytes = items.iter().map(|i| i.text.len()).sum();
        let held = HeldBytes::take(&self.bytes, text_bytes, self.byte_budget)
            .ok_or(PipelineError::Overloaded)?;
        // A full queue refuses at once, before any text is prepared; the count is taken
        // after preparing (no await may come between taking it and sending the job).
        if self.depth.load(Ordering::SeqCst) >= self.capacity {
            return Err(PipelineError::Overloaded);
        }
        let (items, prepared) = self.prepare(items).await?;
        if self.depth.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            return Err(PipelineError::Overloaded);
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            items,
            prepared,
            enqueued: Instant::now(),
            reply,
            _bytes: held,
        };
        if self.tx.send(Command::Classify(job)).is_err() {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            return Err(PipelineError::Stopped);
        }
        answer.await.unwrap_or(Err(PipelineError::Stopped))
    }

    /// A request of several texts has them prepared by the active version on tokio's
    /// blocking pool, beside the replicas, which then only run the network; single texts
    /// are left to the replica (measured with `bash bench/load.sh` on 2 CPUs: S3 +4 %,
    /// while preparing single texts ahead cost S1 4 %).
    async fn prepare(
        &self,
        items: Vec<TextToClassify>,
    ) -> Result<(Vec<TextToClassify>, Option<PreparedBatch>), PipelineError> {
        if items.len() < PREPARE_AHEAD_TEXTS {
            return Ok((items, None));
        }
        let preparer = self.active().preparer.clone();
        tokio::task::spawn_blocking(move || {
            let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
            let prepared = preparer.prepare(&texts).ok();
            (items, prepared)
        })
        .await
        .map_err(|e| PipelineError::Failed(format!("preparing the texts failed: {e}")))
    }

    /// Loads and checks the version in `dir` on a blocking thread, leaving the replicas
    /// serving meanwhile, and makes one copy per replica that shares its weights.
    pub async fn load(&self, dir: PathBuf) -> Result<LoadedModel, PipelineError> {
        let (device, replicas) = (self.device, self.replicas);
        tokio::task::spawn_blocking(move || {
            Classifier::load(&dir, device).map(|first| copies_for_replicas(first, replicas))
        })
        .await
        .map_err(|e| PipelineError::Failed(e.to_string()))?
        .map(|replicas| LoadedModel { replicas })
        .map_err(|e| PipelineError::Failed(e.to_string()))
    }

    /// Serves `model` from each replica's next batch on: a batch in progress finishes on the
    /// old version, no request sees a half-loaded one, and once this returns every later
    /// batch is scored by the new version.
    pub async fn swap(&self, model: LoadedModel) -> Result<Arc<ActiveModel>, PipelineError> {
        if model.replicas.len() != self.replicas {
            return Err(PipelineError::Failed(format!(
                "{} copies of the model for {} replicas",
                model.replicas.len(),
                self.replicas
            )));
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Swap {
                classifiers: model.replicas,
                reply,
            })
            .map_err(|_| PipelineError::Stopped)?;
        answer.await.map_err(|_| PipelineError::Stopped)
    }

    /// The version serving now.
    pub fn active(&self) -> Arc<ActiveModel> {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the dispatcher and every replica are still running (false after a panic in
    /// any of them).
    pub fn is_alive(&self) -> bool {
        self.running.load(Ordering::SeqCst) == self.threads
    }

    /// How many model replicas serve.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Ends replica `replica` (counted from 0) as a panic in it would, and returns once it
    /// has ended ([`Pipeline::is_alive`] is then false). For tests of what the service does
    /// with a dead inference thread; the service itself never calls it.
    #[doc(hidden)]
    pub async fn stop_replica(&self, replica: usize) {
        let (stopped, done) = oneshot::channel();
        if self.tx.send(Command::Stop { replica, stopped }).is_ok() {
            let _ = done.await;
        }
    }

    /// Requests waiting for a batch.
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

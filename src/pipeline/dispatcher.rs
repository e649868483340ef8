//! The dispatcher thread: waits for a free replica, cuts the next batch of up to
//! `max_batch_size` texts or `max_batch_wait` from the queue, and hands it to that replica.
//! Waiting for a free replica first means that while every replica is busy, requests gather
//! in the queue and make the next batch bigger. A swap goes to every replica and is answered
//! once all of them serve the new version.

use super::replica::ReplicaCommand;
use super::{ActiveModel, AliveFlag, Command, Job, PipelineSettings};
use crate::metrics::Metrics;
use crate::model::Classifier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

pub(super) struct Dispatcher {
    pub rx: mpsc::Receiver<Command>,
    /// One channel per replica, by index.
    pub replicas: Vec<mpsc::Sender<ReplicaCommand>>,
    pub replica_threads: Vec<JoinHandle<()>>,
    /// Replica indices, each sent when that replica is free for a batch.
    pub ready: mpsc::Receiver<usize>,
    pub settings: PipelineSettings,
    pub depth: Arc<AtomicUsize>,
    pub active: Arc<RwLock<Arc<ActiveModel>>>,
    pub metrics: Arc<Metrics>,
    /// Held only for its `Drop`.
    pub _alive: AliveFlag,
}

impl Dispatcher {
    pub fn run(self) {
        let mut held: Option<Command> = None;
        let mut free: Option<usize> = None;
        loop {
            let Some(replica) = free.take().or_else(|| self.ready.recv().ok()) else {
                tracing::error!("every inference replica has stopped");
                break;
            };
            let first = match held.take() {
                Some(c) => c,
                None => match self.rx.recv() {
                    Ok(c) => c,
                    Err(_) => break,
                },
            };
            match first {
                Command::Swap { classifiers, reply } => {
                    free = Some(replica);
                    let _ = reply.send(self.swap(classifiers));
                }
                Command::Stop {
                    replica: ending,
                    stopped,
                } => {
                    // The free replica stays free unless it is the one that ends.
                    free = (replica != ending).then_some(replica);
                    if let Some(tx) = self.replicas.get(ending) {
                        let _ = tx.send(ReplicaCommand::Stop { stopped });
                    }
                }
                Command::Classify(job) => {
                    let (batch, next) = self.cut_batch(job);
                    held = next;
                    self.depth.fetch_sub(batch.len(), Ordering::SeqCst);
                    self.dispatch(replica, batch);
                }
            }
        }
        let Dispatcher {
            replicas,
            replica_threads,
            ..
        } = self;
        drop(replicas);
        for thread in replica_threads {
            let _ = thread.join();
        }
        tracing::info!("inference dispatcher stopped");
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

    /// Gives `batch` to `replica`, or, if that replica has died, to the next free one. With
    /// no replica left the jobs are dropped, which answers each "the worker has stopped".
    fn dispatch(&self, mut replica: usize, batch: Vec<Job>) {
        let mut command = ReplicaCommand::Score(batch);
        loop {
            match self.replicas[replica].send(command) {
                Ok(()) => return,
                Err(mpsc::SendError(back)) => {
                    tracing::warn!(
                        replica,
                        "inference replica is gone; giving its batch to another"
                    );
                    command = back;
                    match self.ready.recv() {
                        Ok(r) => replica = r,
                        Err(_) => return,
                    }
                }
            }
        }
    }

    /// Sends each replica its copy of the new version and waits until every live replica
    /// serves it (each finishes the batch it is scoring first).
    fn swap(&self, classifiers: Vec<Classifier>) -> Arc<ActiveModel> {
        let model = Arc::new(ActiveModel::of(&classifiers[0]));
        let (done, acks) = mpsc::channel();
        let mut sent = 0;
        for (replica, classifier) in self.replicas.iter().zip(classifiers) {
            let command = ReplicaCommand::Swap {
                classifier: Box::new(classifier),
                done: done.clone(),
            };
            if replica.send(command).is_ok() {
                sent += 1;
            }
        }
        drop(done);
        // A replica that dies before its swap drops its `done`; recv then ends early.
        for _ in 0..sent {
            if acks.recv().is_err() {
                break;
            }
        }
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = model.clone();
        self.metrics.set_active_version(&model.version);
        tracing::info!(version = %model.version, replicas = sent, "model version now serving");
        model
    }
}

//! Watching a run's training thread: it trains on a thread of its own (libtorch blocks),
//! and this side records its progress and a heartbeat every second, passes on a cancel
//! asked for through Postgres, and keeps the training lock.

use super::record::{to_json, ProgressRecord};
use super::run::{execute, RunInput, RunResult};
use super::slot::TrainingSlot;
use crate::store::training_runs;
use crate::train::{Progress, TrainError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// Messages from the training thread.
enum FromTraining {
    Progress(Progress),
    Done(Box<Result<RunResult, TrainError>>),
}

/// Trains `input` on its own thread and watches it until it ends.
pub async fn train(
    pool: &sqlx::PgPool,
    slot: &mut TrainingSlot,
    run: i64,
    input: RunInput,
) -> Result<RunResult, TrainError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let rx = spawn_thread(input, cancel.clone())
        .map_err(|e| TrainError::Data(format!("cannot start the training thread: {e}")))?;
    watch(pool, slot, run, &cancel, rx).await
}

fn spawn_thread(
    input: RunInput,
    cancel: Arc<AtomicBool>,
) -> std::io::Result<UnboundedReceiver<FromTraining>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("voc-training".into())
        .spawn(move || {
            // Before libtorch starts its worker threads, which inherit it.
            if let Err(e) = crate::thread_priority::lower_current_thread(input.nice) {
                tracing::warn!(error = %e, "cannot lower the training thread's priority");
            }
            let progress_tx = tx.clone();
            let mut on_progress = |p: &Progress| {
                let _ = progress_tx.send(FromTraining::Progress(p.clone()));
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                execute(input, &cancel, &mut on_progress)
            }))
            .unwrap_or_else(|panic| Err(TrainError::Data(panic_message(panic))));
            crate::memory::return_freed_memory();
            let _ = tx.send(FromTraining::Done(Box::new(result)));
        })?;
    Ok(rx)
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    format!("training panicked: {what}")
}

async fn watch(
    pool: &sqlx::PgPool,
    slot: &mut TrainingSlot,
    run: i64,
    cancel: &AtomicBool,
    mut rx: UnboundedReceiver<FromTraining>,
) -> Result<RunResult, TrainError> {
    let started = Instant::now();
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    loop {
        let progress = tokio::select! {
            message = rx.recv() => match message {
                Some(FromTraining::Progress(p)) => Some(p),
                Some(FromTraining::Done(result)) => return *result,
                None => return Err(TrainError::Data("the training thread stopped without an answer".into())),
            },
            _ = heartbeat.tick() => None,
        };
        let record = progress
            .as_ref()
            .map(|p| to_json(&ProgressRecord::new(p, started)));
        match training_runs::heartbeat(pool, run, record.as_ref()).await {
            Ok(true) => cancel.store(true, Ordering::Relaxed),
            Ok(false) => {}
            Err(e) => tracing::warn!(run, error = %e, "cannot record training progress"),
        }
        if progress.is_none() {
            slot.keep(pool, run).await;
        }
    }
}

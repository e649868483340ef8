//! The scheduler inside `voc serve`: decides when a fine-tuning run is due, takes the
//! training slot (a Postgres advisory lock, so one run at a time across every process on
//! the database), runs it on its own thread, records its progress, and promotes or rejects
//! the candidate.

use super::eval_set::in_frozen_eval;
use super::gate::GateSettings;
use super::retention;
use super::run::{
    execute, fine_tune_config, snapshot_dataset, tasks_with_added, FineTuneSettings, RunInput,
    RunResult,
};
use crate::data::Example;
use crate::model::read_manifest;
use crate::service::{activation, AppState};
use crate::store::training_runs::{self, RunEnd, RunStart};
use crate::store::{labels, learning_settings, models, StoreError};
use crate::train::{Progress, TrainError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When and how the service fine-tunes (see `voc serve --help`).
#[derive(Debug, Clone)]
pub struct LearningSettings {
    /// Whether this process may run training at all (it still follows promotions).
    pub enabled: bool,
    /// Start a run once this many labels arrived since the last run.
    pub min_new_labels: i64,
    /// Also start one when this long has passed since the last run and any label arrived.
    pub interval: Option<Duration>,
    /// How often to check; manual requests wake the scheduler at once.
    pub poll: Duration,
    /// Share of labeled transcripts (by content hash) held out as the frozen evaluation set;
    /// the first server records it in Postgres and every later one uses the recorded value.
    pub eval_share: f64,
    /// Most unlabeled transcripts (newest first) a run samples for the association loss.
    pub unlabeled_sample: i64,
    /// A `running` run whose owner has not beaten its heartbeat (every second) for this
    /// long is taken for dead and marked failed by the next holder of the training lock.
    pub orphan_after: Duration,
    /// Folders of versions the gate rejected (and nobody activated) are removed this long
    /// after the run; `None` keeps them forever.
    pub rejected_retention: Option<Duration>,
    pub fine_tune: FineTuneSettings,
    pub gate: GateSettings,
}

impl Default for LearningSettings {
    fn default() -> LearningSettings {
        LearningSettings {
            enabled: true,
            min_new_labels: 300,
            interval: Some(Duration::from_secs(6 * 3600)),
            poll: Duration::from_secs(5),
            eval_share: 0.1,
            unlabeled_sample: 2000,
            orphan_after: Duration::from_secs(10),
            rejected_retention: Some(Duration::from_secs(30 * 24 * 3600)),
            fine_tune: FineTuneSettings::default(),
            gate: GateSettings::default(),
        }
    }
}

/// Starts the scheduler loop on the current runtime.
pub fn spawn(state: AppState, mut settings: LearningSettings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = chrono::Utc::now();
        let mut share_recorded = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(settings.poll) => {}
                _ = state.learning_wake.notified() => {}
            }
            if !share_recorded {
                match adopt_recorded_share(&state, &mut settings).await {
                    Ok(()) => share_recorded = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "training scheduler: cannot read the recorded evaluation share; trying again later");
                        continue;
                    }
                }
            }
            if let Err(e) = tick(&state, &settings, started).await {
                tracing::warn!(error = %e, "training scheduler: check failed; trying again later");
            }
        }
    })
}

/// Records this process's evaluation share unless the database holds one, and uses the
/// recorded one: membership of the frozen set must not change with a process's flags.
async fn adopt_recorded_share(
    state: &AppState,
    settings: &mut LearningSettings,
) -> Result<(), StoreError> {
    let recorded = learning_settings::record_eval_share(&state.pool, settings.eval_share).await?;
    if (recorded - settings.eval_share).abs() > 1e-12 {
        tracing::warn!(
            recorded,
            asked = settings.eval_share,
            "the database records a frozen evaluation share of {recorded}; --eval-share {} is not used",
            settings.eval_share
        );
        settings.eval_share = recorded;
    }
    Ok(())
}

/// Why a run is due, if one is.
async fn due(
    state: &AppState,
    settings: &LearningSettings,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<Option<&'static str>, StoreError> {
    if let Some(run) = training_runs::open(&state.pool).await? {
        // A queued run is a manual request; a running one is either live elsewhere (then
        // the lock is taken) or left by a dead process (then it is cleaned up below).
        return Ok(Some(if run.state == "queued" {
            "manual"
        } else {
            "orphan-check"
        }));
    }
    let (watermark, last) = training_runs::last_started(&state.pool)
        .await?
        .unwrap_or((0, None));
    let new = labels::count_after(&state.pool, watermark).await?;
    if new >= settings.min_new_labels.max(1) {
        return Ok(Some("labels"));
    }
    if let Some(interval) = settings.interval {
        let since = last.unwrap_or(started).max(started);
        let elapsed = (chrono::Utc::now() - since).to_std().unwrap_or_default();
        if new > 0 && elapsed >= interval {
            return Ok(Some("interval"));
        }
    }
    Ok(None)
}

async fn tick(
    state: &AppState,
    settings: &LearningSettings,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    if !settings.enabled {
        return Ok(());
    }
    let Some(trigger) = due(state, settings, started).await? else {
        return Ok(());
    };
    // The lock lives on this connection, which leaves the pool for the run's duration.
    let mut conn = state.pool.acquire().await?.detach();
    if !training_runs::try_lock(&mut conn).await? {
        return Ok(()); // another process holds the training slot
    }
    let result = async {
        for id in training_runs::fail_orphans(&mut conn, settings.orphan_after).await? {
            tracing::warn!(
                run = id,
                "training run left running by a stopped process marked failed"
            );
        }
        retention::remove_partial_versions(&state.store_dir);
        if let Some(keep) = settings.rejected_retention {
            retention::remove_expired_rejected(&state.pool, &state.store_dir, keep).await?;
        }
        // Checked again under the lock: another process may just have run it.
        match due(state, settings, started).await? {
            Some(trigger) if trigger != "orphan-check" => {
                run_one(state, settings, &mut conn, trigger).await
            }
            _ => Ok(()),
        }
    }
    .await;
    let _ = training_runs::unlock(&mut conn).await;
    let _ = sqlx::Connection::close(conn).await;
    tracing::debug!(trigger, "training slot released");
    result
}

/// Messages from the training thread.
enum FromTraining {
    Progress(Progress),
    Done(Box<Result<RunResult, TrainError>>),
}

async fn run_one(
    state: &AppState,
    settings: &LearningSettings,
    conn: &mut sqlx::PgConnection,
    trigger: &str,
) -> Result<(), StoreError> {
    let parent = state.pipeline.active();
    let watermark = labels::max_id(&state.pool).await?;
    let owner = process_owner();
    let run = training_runs::start(
        conn,
        RunStart {
            trigger,
            owner: &owner,
            label_watermark: watermark,
            parent_version: &parent.version,
        },
    )
    .await?;
    tracing::info!(
        run = run.id,
        trigger = run.trigger,
        parent = parent.version,
        "training run started"
    );
    let fail = |reason: String| async move {
        tracing::error!(run = run.id, reason, "training run failed");
        end_run(
            state,
            run.id,
            RunEnd {
                state: "failed",
                candidate_version: None,
                evaluation: None,
                reason: &reason,
            },
        )
        .await
    };
    let input = match prepare_input(state, settings, run.id, watermark, &parent.dir).await {
        Ok(input) => input,
        Err(reason) => return fail(reason).await,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let thread_cancel = cancel.clone();
    let spawned = std::thread::Builder::new()
        .name("voc-training".into())
        .spawn(move || {
            let progress_tx = tx.clone();
            let mut on_progress = |p: &Progress| {
                let _ = progress_tx.send(FromTraining::Progress(p.clone()));
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                execute(input, &thread_cancel, &mut on_progress)
            }))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(TrainError::Data(format!("training panicked: {what}")))
            });
            let _ = tx.send(FromTraining::Done(Box::new(result)));
        });
    if let Err(e) = spawned {
        return fail(format!("cannot start the training thread: {e}")).await;
    }
    let started = Instant::now();
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        let progress = tokio::select! {
            message = rx.recv() => match message {
                Some(FromTraining::Progress(p)) => Some(p),
                Some(FromTraining::Done(result)) => break *result,
                None => break Err(TrainError::Data("the training thread stopped without an answer".into())),
            },
            _ = heartbeat.tick() => None,
        };
        let progress = progress.map(|p| {
            let mut v = serde_json::to_value(&p).unwrap_or_default();
            v["elapsed_seconds"] = started.elapsed().as_secs_f64().into();
            v
        });
        match training_runs::heartbeat(&state.pool, run.id, progress.as_ref()).await {
            Ok(true) => cancel.store(true, Ordering::Relaxed),
            Ok(false) => {}
            Err(e) => tracing::warn!(run = run.id, error = %e, "cannot record training progress"),
        }
        if progress.is_none() {
            keep_lock(state, conn, run.id).await;
        }
    };
    match result {
        Err(TrainError::Cancelled) => {
            tracing::info!(run = run.id, "training run cancelled");
            end_run(
                state,
                run.id,
                RunEnd {
                    state: "cancelled",
                    candidate_version: None,
                    evaluation: None,
                    reason: "cancelled while training",
                },
            )
            .await
        }
        Err(e) => fail(e.to_string()).await,
        Ok(RunResult { summary, decision }) => {
            let mut evaluation = serde_json::to_value(&decision).unwrap_or_default();
            evaluation["training"] = serde_json::json!({
                "steps": summary.steps,
                "epochs": summary.epochs,
                "best_step": summary.best_step,
                "stop_reason": summary.stop_reason,
                "wall_seconds": summary.wall_seconds,
                "examples_per_second": summary.examples_per_second,
                "validation_macro_f1": summary
                    .validation
                    .tasks
                    .iter()
                    .map(|(t, m)| (t.clone(), m.macro_f1))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            });
            let gate = serde_json::json!({
                "decision": if decision.promote { "promoted" } else { "rejected" },
                "reason": decision.reason,
                "run": run.id,
                "tasks": decision.tasks,
            });
            // Record the candidate and the gate's word on it before anything goes live; a
            // failure here ends the run as failed instead of leaving it `running`.
            let recorded = async {
                crate::service::register_version(&state.pool, &summary.version_dir).await?;
                models::set_gate(&state.pool, &summary.version, &gate).await
            }
            .await;
            let (end_state, reason) = if let Err(e) = recorded {
                ("failed", format!("cannot record the candidate: {e}"))
            } else if decision.promote && !still_running(state, run.id).await {
                (
                    "failed",
                    "the gate passed, but the run was ended elsewhere while this process was cut off; nothing was activated".to_string(),
                )
            } else if decision.promote {
                match activation::activate_over(state, &summary.version, Some(&parent.version))
                    .await
                {
                    Ok(_) => ("promoted", decision.reason.clone()),
                    Err(e @ activation::ActivationError::Superseded { .. }) => {
                        ("superseded", format!("the gate passed, but {e}"))
                    }
                    Err(e) => (
                        "failed",
                        format!("the gate passed but activation failed: {e}"),
                    ),
                }
            } else {
                ("rejected", decision.reason.clone())
            };
            tracing::info!(
                run = run.id,
                candidate = summary.version,
                decision = end_state,
                reason,
                "training run finished"
            );
            end_run(
                state,
                run.id,
                RunEnd {
                    state: end_state,
                    candidate_version: Some(&summary.version),
                    evaluation: Some(&evaluation),
                    reason: &reason,
                },
            )
            .await
        }
    }
}

/// Records how a run ended, in Postgres and in the metrics; a run another process already
/// ended keeps the state it was given there.
async fn end_run(state: &AppState, id: i64, end: RunEnd<'_>) -> Result<(), StoreError> {
    let outcome = end.state;
    if training_runs::finish(&state.pool, id, end).await? {
        state.metrics.observe_training_run(outcome);
    } else {
        tracing::warn!(
            run = id,
            outcome,
            "the run was already ended by another process; its recorded state stands"
        );
    }
    Ok(())
}

/// Whether run `id` is still `running` (unknown counts as not).
async fn still_running(state: &AppState, id: i64) -> bool {
    training_runs::is_running(&state.pool, id)
        .await
        .unwrap_or(false)
}

/// The training lock lives on `conn`; when that session is gone (Postgres restarted, the
/// connection was cut), takes the lock again on a fresh connection so that the run keeps
/// its single-writer guarantee. The run goes on either way: its heartbeat tells the others
/// it is alive, and its end is recorded only if nobody ended it meanwhile.
async fn keep_lock(state: &AppState, conn: &mut sqlx::PgConnection, run: i64) {
    if training_runs::connection_alive(conn).await {
        return;
    }
    let retaken = async {
        let mut fresh = state.pool.acquire().await?.detach();
        if training_runs::try_lock(&mut fresh).await? {
            Ok::<_, StoreError>(Some(fresh))
        } else {
            Ok(None)
        }
    }
    .await;
    match retaken {
        Ok(Some(fresh)) => {
            *conn = fresh;
            tracing::warn!(
                run,
                "the training lock's connection was lost; lock taken again"
            );
        }
        Ok(None) => {
            tracing::warn!(
                run,
                "the training lock's connection was lost and another session holds the lock"
            )
        }
        Err(e) => {
            tracing::warn!(run, error = %e, "the training lock's connection was lost; cannot take it again yet")
        }
    }
}

/// Reads the snapshot and builds the run's input; an error is the run's failure reason.
async fn prepare_input(
    state: &AppState,
    settings: &LearningSettings,
    run_id: i64,
    watermark: i64,
    parent_dir: &std::path::Path,
) -> Result<RunInput, String> {
    let manifest = read_manifest(parent_dir).map_err(|e| e.to_string())?;
    let (labeled, unlabeled) = labels::snapshot(&state.pool, watermark, settings.unlabeled_sample)
        .await
        .map_err(|e| e.to_string())?;
    let added = labels::added_classes(&state.pool)
        .await
        .map_err(|e| e.to_string())?;
    let tasks = tasks_with_added(&manifest.tasks, &added);
    let task_names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    let (mut train_rows, mut eval_rows) = (Vec::new(), Vec::new());
    for row in labeled {
        let example = Example {
            id: row.transcript_id.to_string(),
            text: row.text,
            labels: row
                .labels
                .into_iter()
                .filter(|(t, _)| task_names.contains(&t.as_str()))
                .collect(),
        };
        if in_frozen_eval(row.eval_bucket as u32, settings.eval_share) {
            eval_rows.push(example);
        } else {
            train_rows.push(example);
        }
    }
    let count = |rows: &[Example]| {
        tasks
            .iter()
            .map(|t| {
                let n = rows
                    .iter()
                    .filter(|e| e.labels.contains_key(&t.name))
                    .count();
                (t.name.clone(), n)
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let snapshot = serde_json::json!({
        "label_watermark": watermark,
        "train_labeled": count(&train_rows),
        "eval_labeled": count(&eval_rows),
        "unlabeled": unlabeled.len(),
        "tasks": tasks,
    });
    if let Err(e) = training_runs::set_snapshot(&state.pool, run_id, &snapshot).await {
        tracing::warn!(run = run_id, error = %e, "cannot record the run's snapshot");
    }
    let target_labels = train_rows
        .iter()
        .filter(|e| e.labels.contains_key(&manifest.target_task))
        .count();
    // Unlabeled transcripts from the evaluation share stay out of training too.
    train_rows.extend(
        unlabeled
            .into_iter()
            .filter(|(_, _, bucket)| !in_frozen_eval(*bucket as u32, settings.eval_share))
            .map(|(id, text, _)| Example {
                id: id.to_string(),
                text,
                labels: Default::default(),
            }),
    );
    Ok(RunInput {
        run_id,
        parent_dir: parent_dir.to_path_buf(),
        store: state.store_dir.as_ref().clone(),
        device: state.device,
        tasks,
        config: fine_tune_config(
            &manifest.config,
            &settings.fine_tune,
            run_id as u64,
            target_labels,
        ),
        train: snapshot_dataset(run_id, train_rows),
        eval: eval_rows,
        gate: settings.gate.clone(),
    })
}

/// How runs name the process running them: `host:pid`.
pub fn process_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Called on a clean shutdown: a run this process was training cannot finish, so it is
/// marked failed now rather than when the next process takes the training slot.
pub async fn abandon_own_runs(state: &AppState) {
    match training_runs::fail_owned(
        &state.pool,
        &process_owner(),
        "the service was stopped during the run",
    )
    .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            runs = n,
            "training run abandoned at shutdown and marked failed"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot mark this process's training run failed at shutdown")
        }
    }
}

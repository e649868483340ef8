//! The scheduler inside `voc serve`: decides when a fine-tuning run is due, takes the
//! training slot, and runs one. [`Scheduler::tick`] is one such check, which the loop of
//! [`spawn`] repeats every poll (and at once when a run is asked for) and tests call
//! directly, one step at a time.

use super::handle::LearningHandle;
use super::outcome::{conclude, end_run, Ending};
use super::retention;
use super::settings::LearningSettings;
use super::slot::TrainingSlot;
use super::snapshot::prepare_input;
use super::supervise;
use crate::store::training_runs::{self, RunStart, RunState, Trigger};
use crate::store::{labels, learning_settings, StoreError};
use chrono::{DateTime, Utc};

/// What one [`Scheduler::tick`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// This process does not train (`--no-learning`).
    Disabled,
    /// No run is due.
    NotDue,
    /// A run is due, but another process holds the training slot.
    Busy,
    /// The slot was taken, runs left by dead processes were failed and old files removed,
    /// but no run was due any more (another process had just run it).
    Swept,
    /// A run trained here and ended.
    Ran {
        run: i64,
        trigger: Trigger,
        state: RunState,
        /// False when another process had ended the run meanwhile: its state stands.
        recorded: bool,
    },
}

/// Why the scheduler wants the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Run(Trigger),
    /// A run is `running`: live elsewhere (then the slot is taken) or left by a dead
    /// process (then taking the slot fails it).
    OrphanCheck,
}

pub struct Scheduler {
    handle: LearningHandle,
    settings: LearningSettings,
    /// The interval counts from here when no run has started yet.
    started: DateTime<Utc>,
    share_recorded: bool,
}

impl Scheduler {
    pub fn new(handle: LearningHandle, settings: LearningSettings) -> Scheduler {
        Scheduler {
            handle,
            settings,
            started: Utc::now(),
            share_recorded: false,
        }
    }

    /// The moment the interval counts from when no run has started.
    pub fn started(&self) -> DateTime<Utc> {
        self.started
    }

    /// One check, now.
    pub async fn tick(&mut self) -> Result<Tick, StoreError> {
        self.tick_at(Utc::now()).await
    }

    /// One check as if the clock read `now` (for the interval trigger): runs a due run to
    /// its end before returning.
    pub async fn tick_at(&mut self, now: DateTime<Utc>) -> Result<Tick, StoreError> {
        // Recorded even by a process that does not train: `voc export --exclude-eval`
        // reads it.
        self.adopt_recorded_share().await?;
        if !self.settings.enabled {
            return Ok(Tick::Disabled);
        }
        if self.due(now).await?.is_none() {
            return Ok(Tick::NotDue);
        }
        let Some(mut slot) = TrainingSlot::try_take(&self.handle.pool).await? else {
            return Ok(Tick::Busy);
        };
        let result = self.under_slot(&mut slot, now).await;
        slot.release().await;
        result
    }

    /// Records this process's evaluation share unless the database holds one, and uses the
    /// recorded one: membership of the frozen set must not change with a process's flags.
    async fn adopt_recorded_share(&mut self) -> Result<(), StoreError> {
        if self.share_recorded {
            return Ok(());
        }
        let asked = self.settings.eval_share;
        let recorded = learning_settings::record_eval_share(&self.handle.pool, asked).await?;
        if (recorded - asked).abs() > 1e-12 {
            tracing::warn!(
                recorded,
                asked,
                "the database records a frozen evaluation share of {recorded}; --eval-share {asked} is not used",
            );
            self.settings.eval_share = recorded;
        }
        self.share_recorded = true;
        Ok(())
    }

    async fn due(&self, now: DateTime<Utc>) -> Result<Option<Due>, StoreError> {
        let pool = &self.handle.pool;
        if let Some(run) = training_runs::open(pool).await? {
            return Ok(Some(match run.state {
                RunState::Queued => Due::Run(Trigger::Manual),
                _ => Due::OrphanCheck,
            }));
        }
        let (watermark, last) = training_runs::last_started(pool)
            .await?
            .unwrap_or((0, None));
        let new = labels::count_after(pool, watermark).await?;
        if new >= self.settings.min_new_labels.max(1) {
            return Ok(Some(Due::Run(Trigger::Labels)));
        }
        if let Some(interval) = self.settings.interval {
            let since = last.unwrap_or(self.started).max(self.started);
            let elapsed = (now - since).to_std().unwrap_or_default();
            if new > 0 && elapsed >= interval {
                return Ok(Some(Due::Run(Trigger::Interval)));
            }
        }
        Ok(None)
    }

    /// The work done while holding the slot: sweep, then run what is still due.
    async fn under_slot(
        &self,
        slot: &mut TrainingSlot,
        now: DateTime<Utc>,
    ) -> Result<Tick, StoreError> {
        self.sweep(slot).await?;
        // Checked again under the lock: another process may just have run it.
        match self.due(now).await? {
            Some(Due::Run(trigger)) => self.run_one(slot, trigger).await,
            _ => Ok(Tick::Swept),
        }
    }

    /// Fails runs left by dead processes, and removes half-written and expired version
    /// folders.
    async fn sweep(&self, slot: &mut TrainingSlot) -> Result<(), StoreError> {
        let orphan_after = self.settings.orphan_after;
        for id in training_runs::fail_orphans(slot.conn(), orphan_after).await? {
            tracing::warn!(
                run = id,
                "training run left running by a stopped process marked failed"
            );
        }
        let (pool, store) = (&self.handle.pool, self.handle.store_dir.as_path());
        retention::remove_partial_versions(store);
        if let Some(keep) = self.settings.rejected_retention {
            retention::remove_expired_rejected(pool, store, keep).await?;
        }
        Ok(())
    }

    async fn run_one(&self, slot: &mut TrainingSlot, trigger: Trigger) -> Result<Tick, StoreError> {
        let h = &self.handle;
        let parent = h.serving.served();
        let watermark = labels::max_id(&h.pool).await?;
        let owner = process_owner();
        let run = training_runs::start(
            slot.conn(),
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
            trigger = run.trigger.as_str(),
            parent = parent.version,
            "training run started"
        );
        let ending = match prepare_input(h, &self.settings, run.id, watermark, &parent.dir).await {
            Err(reason) => Ending::failed(reason),
            Ok(input) => {
                let result = supervise::train(&h.pool, slot, run.id, input).await;
                conclude(h, run.id, &parent.version, result).await
            }
        };
        let recorded = end_run(h, run.id, &ending).await?;
        Ok(Tick::Ran {
            run: run.id,
            trigger: run.trigger,
            state: ending.state,
            recorded,
        })
    }
}

/// Starts the scheduler loop on the current runtime: a tick every poll, and at once when
/// the handle's `wake` is notified.
pub fn spawn(handle: LearningHandle, settings: LearningSettings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (poll, wake) = (settings.poll, handle.wake.clone());
        let mut scheduler = Scheduler::new(handle, settings);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = wake.notified() => {}
            }
            if let Err(e) = scheduler.tick().await {
                tracing::warn!(error = %e, "training scheduler: check failed; trying again later");
            }
        }
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
pub async fn abandon_own_runs(pool: &sqlx::PgPool) {
    let reason = "the service was stopped during the run";
    match training_runs::fail_owned(pool, &process_owner(), reason).await {
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

//! When and how the service fine-tunes (see `voc serve --help`).

use super::gate::GateSettings;
use super::run::FineTuneSettings;
use std::time::Duration;

/// When and how the service fine-tunes.
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

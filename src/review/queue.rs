//! The review queue's vocabulary: how the next item is chosen, and how a lease ends.

use serde::{Deserialize, Serialize};

/// How `GET /review/next` chooses the next transcript for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Smallest margin between the model's two most probable labels first.
    #[default]
    Uncertain,
    /// Labeled transcripts whose human labels differ from the model's guess or from each
    /// other, asking one more annotator (humans disagreeing first).
    Disagreement,
    /// A uniformly random unlabeled transcript (an honest sample for evaluation).
    Random,
    /// The newest unlabeled transcript first.
    Recent,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::Uncertain,
        Strategy::Disagreement,
        Strategy::Random,
        Strategy::Recent,
    ];

    /// The name used in URLs and stored with each lease.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Uncertain => "uncertain",
            Strategy::Disagreement => "disagreement",
            Strategy::Random => "random",
            Strategy::Recent => "recent",
        }
    }

    pub fn parse(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// How a lease ended (an open lease has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finished {
    Labeled,
    Skipped,
}

impl Finished {
    pub fn as_str(self) -> &'static str {
        match self {
            Finished::Labeled => "labeled",
            Finished::Skipped => "skipped",
        }
    }

    pub fn parse(name: &str) -> Option<Finished> {
        [Finished::Labeled, Finished::Skipped]
            .into_iter()
            .find(|f| f.as_str() == name)
    }
}

/// How many annotators label each item, and how long an item stays leased to one.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    /// Annotators per item (Argilla's and Prodigy's "overlap"); 1 gives each item to one.
    pub overlap: u32,
    /// How long an item stays with the annotator it was shown to before others may get it.
    pub lease_for: std::time::Duration,
    /// Whether `voc serve` scores unlabeled items again under each newly active version, so
    /// that `uncertain` ranks by the model serving now.
    pub rescore: bool,
}

impl Default for QueueSettings {
    fn default() -> QueueSettings {
        QueueSettings {
            overlap: 1,
            lease_for: std::time::Duration::from_secs(300),
            rescore: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Strategy::parse("Uncertain"), None);
        for f in [Finished::Labeled, Finished::Skipped] {
            assert_eq!(Finished::parse(f.as_str()), Some(f));
        }
    }
}

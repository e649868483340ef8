//! Rows turned into what the network eats: token ids and one class id per task
//! ([`NO_LABEL`] where the row has no label for it).

use crate::data::{Example, TaskLabels};
use crate::model::losses::NO_LABEL;
use crate::model::tokenizer::TextTokenizer;

pub struct EncodedRows {
    pub ids: Vec<Vec<i64>>,
    /// `targets[task][row]`.
    pub targets: Vec<Vec<i64>>,
    /// Labels seen that are not in the task's label set, per task.
    pub unknown_labels: Vec<usize>,
}

impl EncodedRows {
    pub fn encode(
        examples: &[&Example],
        tokenizer: &TextTokenizer,
        tasks: &[TaskLabels],
    ) -> Result<EncodedRows, crate::model::tokenizer::TokenizerError> {
        let ids = examples
            .iter()
            .map(|e| tokenizer.encode(&e.text))
            .collect::<Result<Vec<_>, _>>()?;
        let mut unknown_labels = vec![0; tasks.len()];
        let targets = tasks
            .iter()
            .enumerate()
            .map(|(t, task)| {
                examples
                    .iter()
                    .map(|e| match e.labels.get(&task.name) {
                        None => NO_LABEL,
                        Some(label) => match task.index_of(label) {
                            Some(i) => i as i64,
                            None => {
                                unknown_labels[t] += 1;
                                NO_LABEL
                            }
                        },
                    })
                    .collect()
            })
            .collect();
        Ok(EncodedRows {
            ids,
            targets,
            unknown_labels,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether row `i` has a label for any task.
    pub fn is_labeled(&self, i: usize) -> bool {
        self.targets.iter().any(|t| t[i] != NO_LABEL)
    }
}

//! Rows turned into what the network eats: token ids and one class id per task
//! ([`NO_LABEL`] where the row has no label for it).

use super::encoder::TokenBatch;
use super::losses::NO_LABEL;
use super::tokenizer::TextTokenizer;
use crate::data::{Example, TaskLabels};

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
    ) -> Result<EncodedRows, super::tokenizer::TokenizerError> {
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

/// Token ids of many rows, padded into one tensor on the device once, so that a training
/// step only indexes it instead of building its batch on the host.
pub struct DeviceRows {
    ids: tch::Tensor,
    lengths: tch::Tensor,
    host_lengths: Vec<usize>,
}

impl DeviceRows {
    pub fn upload(rows: &[Vec<i64>], device: tch::Device) -> DeviceRows {
        let refs: Vec<&[i64]> = rows.iter().map(Vec::as_slice).collect();
        let batch = TokenBatch::new(&refs, device);
        DeviceRows {
            ids: batch.ids,
            lengths: batch.lengths,
            host_lengths: rows.iter().map(|r| r.len().max(1)).collect(),
        }
    }

    /// The rows `indices`, padded to the longest of them.
    pub fn batch(&self, indices: &[usize]) -> TokenBatch {
        self.batch_at(indices, &self.index(indices))
    }

    /// `indices` as an index tensor on the rows' device (to select other per-row tensors
    /// with the same rows).
    pub fn index(&self, indices: &[usize]) -> tch::Tensor {
        let index: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        tch::Tensor::from_slice(&index).to_device(self.ids.device())
    }

    /// [`DeviceRows::batch`] with the index tensor already made by [`DeviceRows::index`].
    pub fn batch_at(&self, indices: &[usize], index: &tch::Tensor) -> TokenBatch {
        let width = indices
            .iter()
            .map(|&i| self.host_lengths[i])
            .max()
            .unwrap_or(1);
        TokenBatch {
            ids: self.ids.index_select(0, index).narrow(1, 0, width as i64),
            lengths: self.lengths.index_select(0, index),
        }
    }
}

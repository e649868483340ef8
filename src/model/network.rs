//! The multi-task network: one shared encoder (hard parameter sharing), a softmax head per
//! task and an association embedding.
//!
//! The association target task's head reads the association embedding, so the space the
//! walker and visit losses shape is the very space that task is classified in; the other
//! heads read the encoder features directly.

use super::encoder::{Encoder, TokenBatch};
use crate::config::ModelConfig;
use crate::data::TaskLabels;
use tch::nn::{self, Module};
use tch::Tensor;

/// What one forward pass gives.
pub struct NetOutput {
    /// `[batch, assoc_dim]` association embedding.
    pub embedding: Tensor,
    /// One `[batch, classes]` logit tensor per task, in task order.
    pub logits: Vec<Tensor>,
}

struct Head {
    linear: nn::Linear,
    reads_embedding: bool,
}

pub struct MultiTaskNet {
    encoder: Encoder,
    association: nn::Linear,
    heads: Vec<Head>,
    dropout: f64,
}

impl MultiTaskNet {
    /// Builds the network under `vs` with stable variable names (`encoder.*`,
    /// `association.*`, `heads.<task>.*`) so saved weights load by name.
    pub fn new(
        vs: &nn::Path,
        config: &ModelConfig,
        vocab_size: i64,
        tasks: &[TaskLabels],
        target_task: &str,
    ) -> MultiTaskNet {
        let encoder = Encoder::new(&(vs / "encoder"), config, vocab_size);
        let association = nn::linear(
            vs / "association",
            encoder.output_dim(),
            config.assoc_dim,
            Default::default(),
        );
        let heads = tasks
            .iter()
            .map(|task| {
                let reads_embedding = task.name == target_task;
                let input = if reads_embedding {
                    config.assoc_dim
                } else {
                    encoder.output_dim()
                };
                Head {
                    linear: nn::linear(
                        vs / "heads" / task.name.as_str(),
                        input,
                        task.labels.len() as i64,
                        Default::default(),
                    ),
                    reads_embedding,
                }
            })
            .collect();
        MultiTaskNet {
            encoder,
            association,
            heads,
            dropout: config.dropout,
        }
    }

    pub fn forward_t(&self, batch: &TokenBatch, train: bool) -> NetOutput {
        let features = self.encoder.forward_t(batch, train);
        let embedding = self.association.forward(&features);
        let features = features.dropout(self.dropout, train);
        let dropped_embedding = embedding.dropout(self.dropout, train);
        let logits = self
            .heads
            .iter()
            .map(|head| {
                let input = if head.reads_embedding {
                    &dropped_embedding
                } else {
                    &features
                };
                head.linear.forward(input)
            })
            .collect();
        NetOutput { embedding, logits }
    }
}

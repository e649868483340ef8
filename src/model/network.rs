//! The multi-task network: a shared trunk (one encoder, or one per task: see
//! [`super::sharing`]), a softmax head per task and an association embedding.
//!
//! The association target task's head reads the association embedding, so the space the
//! walker and visit losses shape is the very space that task is classified in; the other
//! heads read the encoder features directly.

use super::encoder::TokenBatch;
use super::ngram::NgramBag;
use super::sharing::SharedTrunk;
use super::tokenizer::TextTokenizer;
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
    trunk: SharedTrunk,
    /// The task whose head reads the association embedding (0 when none does).
    target_index: usize,
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
        let trunk = SharedTrunk::new(vs, config, vocab_size, tasks);
        let association = nn::linear(
            vs / "association",
            trunk.output_dim(),
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
                    trunk.output_dim()
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
            trunk,
            target_index: tasks
                .iter()
                .position(|t| t.name == target_task)
                .unwrap_or(0),
            association,
            heads,
            dropout: config.dropout,
        }
    }

    /// Every n-gram branch of the network (one per encoder).
    pub fn ngram_bags(&self) -> Vec<&NgramBag> {
        self.trunk
            .encoders()
            .iter()
            .filter_map(|e| e.ngrams())
            .collect()
    }

    /// Gives every n-gram branch the vocabulary its character n-grams are read from
    /// (a freshly built network; a loaded one has them from its weights file).
    pub fn set_vocabulary(&self, tokenizer: &TextTokenizer) {
        let bags = self.ngram_bags();
        if bags.is_empty() {
            return;
        }
        let pieces = tokenizer.pieces();
        for bag in bags {
            bag.set_vocabulary(&pieces);
        }
    }

    /// `soft` sharing's L2 penalty between task encoders (see [`SharedTrunk::soft_penalty`]).
    pub fn soft_sharing_penalty(&self, vs: &nn::VarStore) -> Option<Tensor> {
        self.trunk.soft_penalty(vs)
    }

    /// The shared trunk's features, one `[batch, dim]` tensor per task (one tensor per task
    /// under hard sharing too): the forward pass without the linear layers that read them.
    pub fn features_t(&self, batch: &TokenBatch, train: bool) -> Vec<Tensor> {
        self.trunk.forward_t(batch, self.heads.len().max(1), train)
    }

    pub fn forward_t(&self, batch: &TokenBatch, train: bool) -> NetOutput {
        let features = self.features_t(batch, train);
        let embedding = self.association.forward(&features[self.target_index]);
        let dropped_embedding = embedding.dropout(self.dropout, train);
        let logits = self
            .heads
            .iter()
            .zip(&features)
            .map(|(head, features)| {
                if head.reads_embedding {
                    head.linear.forward(&dropped_embedding)
                } else {
                    head.linear.forward(&features.dropout(self.dropout, train))
                }
            })
            .collect();
        NetOutput { embedding, logits }
    }
}

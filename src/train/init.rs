//! Where a new network's weights start: its parent version (fine-tuning), a pretrained
//! encoder or another classifier's encoder (`--init-from`), word vectors
//! (`--pretrained-vectors`), skip-gram on the run's own text, or nothing (random).

use super::skipgram::{rescale, skipgram, SkipGramInput, SkipGramReport};
use crate::config::PretrainConfig;
use crate::model::tokenizer::TextTokenizer;
use crate::model::vectors::MappedVectors;
use serde::Serialize;
use std::collections::BTreeMap;
use tch::nn::VarStore;
use tch::{Device, Tensor};

/// The embedding matrix's variable name.
pub const EMBEDDING: &str = "encoder.embedding.weight";

/// What the encoder started from, saved in `metrics.json` and printed by `voc train`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum InitReport {
    /// Random weights.
    Random,
    /// Every weight from the version being fine-tuned.
    Parent { version: String },
    /// The `encoder.*` weights of a stored version.
    Version { version: String, tensors: usize },
    /// Word vectors from a `.vec` file.
    Vectors {
        file: String,
        exact: usize,
        averaged: usize,
        missing: usize,
    },
    /// Skip-gram on the training text.
    Skipgram(SkipGramReport),
}

impl InitReport {
    /// Whether the embedding matrix starts from learned vectors.
    pub fn pretrained_embedding(&self) -> bool {
        !matches!(self, InitReport::Random)
    }
}

/// Copies every `encoder.*` tensor of `tensors` into the same-named variable of `vs`
/// (shapes must match). Returns how many were copied; the embedding must be among them.
pub fn copy_encoder(tensors: &BTreeMap<String, Tensor>, vs: &VarStore) -> Result<usize, String> {
    if !tensors.contains_key(EMBEDDING) {
        return Err(format!("the version has no '{EMBEDDING}'"));
    }
    let mut copied = 0;
    for (name, var) in vs.variables() {
        let Some(src) = tensors.get(&name) else {
            continue;
        };
        if !name.starts_with("encoder.") {
            continue;
        }
        if src.size() != var.size() {
            return Err(format!(
                "tensor '{name}' has shape {:?} there, this network needs {:?} (set the same \
                 model sizes)",
                src.size(),
                var.size()
            ));
        }
        tch::no_grad(|| var.shallow_clone().copy_(src));
        copied += 1;
    }
    Ok(copied)
}

/// Sets the rows of the embedding matrix that `vectors` found; the others keep their
/// random start.
pub fn set_embedding_from_vectors(vs: &VarStore, vectors: &MappedVectors, std: f64) {
    let rows: Vec<i64> = (0..vectors.found.len())
        .filter(|&i| vectors.found[i])
        .map(|i| i as i64)
        .collect();
    if rows.is_empty() {
        return;
    }
    let index = Tensor::from_slice(&rows);
    let found = rescale(&vectors.matrix.index_select(0, &index), std);
    let var = &vs.variables()[EMBEDDING];
    tch::no_grad(|| {
        let _ = var.shallow_clone().index_copy_(
            0,
            &index.to_device(var.device()),
            &found.to_device(var.device()),
        );
    });
}

/// Runs skip-gram on `rows` and puts the result (rescaled) into the embedding matrix.
pub fn pretrain_embedding(
    vs: &VarStore,
    rows: &[Vec<i64>],
    tokenizer: &TextTokenizer,
    config: &PretrainConfig,
    seed: u64,
    device: Device,
) -> Result<SkipGramReport, super::skipgram::SkipGramError> {
    let var = &vs.variables()[EMBEDDING];
    let size = var.size();
    let (vectors, report) = skipgram(
        SkipGramInput {
            rows,
            vocab_size: size[0] as usize,
            dim: size[1],
            special: &tokenizer.special_ids(),
            config,
            seed,
            device,
        },
        |epoch, epochs, loss| {
            tracing::debug!(epoch, epochs, loss, "skip-gram pretraining");
        },
    )?;
    let vectors = rescale(&vectors, config.embedding_std);
    tch::no_grad(|| var.shallow_clone().copy_(&vectors));
    Ok(report)
}

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

/// The embedding matrix's variable name (under `hard` sharing; per-task encoders have
/// `encoder_<task>.embedding.weight`).
pub const EMBEDDING: &str = "encoder.embedding.weight";

/// Every encoder's embedding matrix in `vs`.
pub fn embedding_vars(vs: &VarStore) -> Vec<Tensor> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(name, _)| name.starts_with("encoder") && name.ends_with(".embedding.weight"))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter().map(|(_, t)| t).collect()
}

/// The name a variable of this network has in a `hard`-sharing version: per-task encoders
/// (`encoder_<task>.x`) start from the shared one (`encoder.x`).
fn source_name(name: &str) -> Option<String> {
    let rest = name.strip_prefix("encoder")?;
    let (_, param) = rest.split_once('.')?;
    Some(format!("encoder.{param}"))
}

/// What the encoder started from, saved in `metrics.json` and printed by `voc train`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum InitReport {
    /// Random weights.
    Random,
    /// Every weight from the version being fine-tuned.
    Parent { version: String },
    /// The `encoder.*` weights of a stored version (`lstm`: its BiLSTM among them).
    Version {
        version: String,
        tensors: usize,
        lstm: bool,
    },
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

    /// Whether the BiLSTM starts from a pretrained encoder's (language-model) weights.
    pub fn pretrained_lstm(&self) -> bool {
        matches!(self, InitReport::Version { lstm: true, .. })
    }
}

/// Copies every `encoder.*` tensor of `tensors` into the same-named variable of `vs`
/// (shapes must match). Returns how many were copied; the embedding must be among them.
pub fn copy_encoder(tensors: &BTreeMap<String, Tensor>, vs: &VarStore) -> Result<usize, String> {
    if !tensors.keys().any(|k| k.ends_with(".embedding.weight")) {
        return Err(format!("the version has no '{EMBEDDING}'"));
    }
    let mut copied = 0;
    for (name, var) in vs.variables() {
        if !name.starts_with("encoder") {
            continue;
        }
        let src = match tensors.get(&name) {
            Some(src) => src,
            None => match source_name(&name).and_then(|n| tensors.get(&n)) {
                Some(src) => src,
                None => continue,
            },
        };
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
    for var in embedding_vars(vs) {
        tch::no_grad(|| {
            let _ = var.shallow_clone().index_copy_(
                0,
                &index.to_device(var.device()),
                &found.to_device(var.device()),
            );
        });
    }
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
    let vars = embedding_vars(vs);
    let size = vars[0].size();
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
    for var in vars {
        tch::no_grad(|| var.shallow_clone().copy_(&vectors));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelConfig, Sharing};
    use crate::data::TaskLabels;
    use crate::model::network::MultiTaskNet;

    #[test]
    fn per_task_encoders_start_from_a_shared_encoders_weights() {
        let config = ModelConfig {
            embedding_dim: 4,
            cnn_filters: 2,
            assoc_dim: 3,
            sharing: Sharing::Soft,
            ..Default::default()
        };
        let tasks: Vec<TaskLabels> = ["a", "b"]
            .iter()
            .map(|t| TaskLabels {
                name: t.to_string(),
                labels: vec!["x".into(), "y".into()],
            })
            .collect();
        let vs = VarStore::new(Device::Cpu);
        let _net = MultiTaskNet::new(&vs.root(), &config, 10, &tasks, "a");
        let embedding = Tensor::ones([10, 4], (tch::Kind::Float, Device::Cpu));
        let tensors = BTreeMap::from([(EMBEDDING.to_string(), embedding.shallow_clone())]);
        assert_eq!(copy_encoder(&tensors, &vs), Ok(2));
        for var in embedding_vars(&vs) {
            assert!(var.equal(&embedding));
        }
        assert!(copy_encoder(&BTreeMap::new(), &vs).is_err());
    }
}

//! How the tasks share the encoder (Ruder 2017, "An Overview of Multi-Task Learning"):
//!
//! - `hard`: one encoder for every task (hard parameter sharing; variables `encoder.*`).
//! - `soft`: one encoder per task (`encoder_<task>.*`), kept close by an L2 penalty on the
//!   distance between their parameters (Duong et al., 2015).
//! - `cross-stitch`: one encoder per task, whose embeddings and pooled features are mixed
//!   across tasks by learned matrices (`cross_stitch.*`), started near the identity
//!   (Misra et al., 2016).

use super::encoder::{Encoder, TokenBatch};
use crate::config::{ModelConfig, Sharing};
use crate::data::TaskLabels;
use tch::nn;
use tch::{Kind, Tensor};

pub struct SharedTrunk {
    sharing: Sharing,
    /// One encoder (`hard`) or one per task, in task order.
    encoders: Vec<Encoder>,
    /// Cross-stitch units `[tasks, tasks]` after the embeddings and after the pooled features.
    stitch: Option<(Tensor, Tensor)>,
}

impl SharedTrunk {
    pub fn new(
        vs: &nn::Path,
        config: &ModelConfig,
        vocab_size: i64,
        tasks: &[TaskLabels],
    ) -> SharedTrunk {
        let encoders = match config.sharing {
            Sharing::Hard => vec![Encoder::new(&(vs / "encoder"), config, vocab_size)],
            Sharing::Soft | Sharing::CrossStitch => tasks
                .iter()
                .map(|t| Encoder::new(&(vs / format!("encoder_{}", t.name)), config, vocab_size))
                .collect(),
        };
        let stitch = (config.sharing == Sharing::CrossStitch).then(|| {
            let n = tasks.len() as i64;
            let start = cross_stitch_start(n);
            let unit = |name: &str| {
                let t = (vs / "cross_stitch").var(name, &[n, n], nn::Init::Const(0.0));
                tch::no_grad(|| t.shallow_clone().copy_(&start));
                t
            };
            (unit("embedding"), unit("features"))
        });
        SharedTrunk {
            sharing: config.sharing,
            encoders,
            stitch,
        }
    }

    pub fn output_dim(&self) -> i64 {
        self.encoders[0].output_dim()
    }

    /// The encoders (one under `hard`).
    pub fn encoders(&self) -> &[Encoder] {
        &self.encoders
    }

    /// Per task, `[batch, output_dim]` features (under `hard`, the same tensor for all).
    pub fn forward_t(&self, batch: &TokenBatch, tasks: usize, train: bool) -> Vec<Tensor> {
        if self.sharing == Sharing::Hard {
            let features = self.encoders[0].forward_t(batch, train);
            return (0..tasks).map(|_| features.shallow_clone()).collect();
        }
        let embedded: Vec<Tensor> = self
            .encoders
            .iter()
            .map(|e| e.embed_t(batch, train))
            .collect();
        let embedded = match &self.stitch {
            Some((unit, _)) => stitch(unit, &embedded),
            None => embedded,
        };
        let features: Vec<Tensor> = self
            .encoders
            .iter()
            .zip(&embedded)
            .map(|(e, x)| e.encode_t(x, batch, train))
            .collect();
        match &self.stitch {
            Some((_, unit)) => stitch(unit, &features),
            None => features,
        }
    }

    /// `soft` sharing's penalty: the summed squared distance between every pair of task
    /// encoders' trainable parameters (none under the other kinds of sharing).
    pub fn soft_penalty(&self, vs: &nn::VarStore) -> Option<Tensor> {
        if self.sharing != Sharing::Soft || self.encoders.len() < 2 {
            return None;
        }
        let vars = vs.variables();
        let mut groups: std::collections::BTreeMap<String, Vec<Tensor>> = Default::default();
        for (name, t) in vars {
            let Some(rest) = name.strip_prefix("encoder_") else {
                continue;
            };
            let Some((_, param)) = rest.split_once('.') else {
                continue;
            };
            if t.requires_grad() {
                groups.entry(param.to_string()).or_default().push(t);
            }
        }
        let mut total = Tensor::zeros([], (Kind::Float, vs.device()));
        for params in groups.values() {
            for i in 0..params.len() {
                for j in i + 1..params.len() {
                    total += (&params[i] - &params[j]).square().sum(Kind::Float);
                }
            }
        }
        Some(total)
    }
}

/// `[n, n]` with 0.9 on the diagonal and the rest spread evenly (the identity for n = 1).
fn cross_stitch_start(n: i64) -> Tensor {
    if n == 1 {
        return Tensor::ones([1, 1], (Kind::Float, tch::Device::Cpu));
    }
    let off = 0.1 / (n - 1) as f64;
    Tensor::eye(n, (Kind::Float, tch::Device::Cpu)) * (0.9 - off) + off
}

/// Output `t` is `Σ_s unit[t, s] · inputs[s]`.
fn stitch(unit: &Tensor, inputs: &[Tensor]) -> Vec<Tensor> {
    let stacked = Tensor::stack(inputs, 0);
    let flat = stacked.flatten(1, -1);
    let mixed = unit.matmul(&flat).view(stacked.size().as_slice());
    (0..inputs.len() as i64).map(|t| mixed.get(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_stitch_mixes_by_its_matrix_and_starts_near_the_identity() {
        let start = cross_stitch_start(2);
        let v: Vec<f32> = Vec::try_from(start.flatten(0, -1)).unwrap();
        for (got, want) in v.iter().zip([0.9, 0.1, 0.1, 0.9]) {
            assert!((got - want).abs() < 1e-6, "{v:?}");
        }
        let a = Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]);
        let b = Tensor::from_slice(&[10.0f32, 20.0]).view([1, 2]);
        let out = stitch(&start, &[a, b]);
        let first: Vec<f32> = Vec::try_from(out[0].flatten(0, -1)).unwrap();
        assert!((first[0] - 1.9).abs() < 1e-5 && (first[1] - 3.8).abs() < 1e-5);
    }
}

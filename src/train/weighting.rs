//! How the per-task losses add up: fixed weights, or weights learned from each task's
//! homoscedastic uncertainty (Kendall et al., 2018): `Σ exp(-s_t)·L_t + s_t/2` with one
//! learned log-variance `s_t` per task. The log-variances are training-only parameters with
//! their own optimiser; the learned weights `exp(-s_t)` are reported in `metrics.json`.

use crate::config::LossWeighting;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// The run's loss combiner.
pub enum TaskWeighting {
    Fixed,
    Uncertainty {
        vs: nn::VarStore,
        log_variance: Tensor,
        optimizer: nn::Optimizer,
    },
}

impl TaskWeighting {
    pub fn new(
        kind: LossWeighting,
        tasks: usize,
        learning_rate: f64,
        device: Device,
    ) -> Result<TaskWeighting, tch::TchError> {
        Ok(match kind {
            LossWeighting::Fixed => TaskWeighting::Fixed,
            LossWeighting::Uncertainty => {
                let vs = nn::VarStore::new(device);
                let log_variance = vs.root().zeros("log_variance", &[tasks as i64]);
                let optimizer = nn::Adam::default().build(&vs, learning_rate)?;
                TaskWeighting::Uncertainty {
                    vs,
                    log_variance,
                    optimizer,
                }
            }
        })
    }

    /// Adds up the (already fixed-weighted) loss of each task that had labels in the batch.
    pub fn combine(&self, losses: &[(usize, Tensor)], device: Device) -> Tensor {
        let mut total = Tensor::zeros([], (Kind::Float, device));
        for (t, loss) in losses {
            total += match self {
                TaskWeighting::Fixed => loss.shallow_clone(),
                TaskWeighting::Uncertainty { log_variance, .. } => {
                    let s = log_variance.get(*t as i64);
                    (-&s).exp() * loss + s * 0.5
                }
            };
        }
        total
    }

    pub fn zero_grad(&mut self) {
        if let TaskWeighting::Uncertainty { optimizer, .. } = self {
            optimizer.zero_grad();
        }
    }

    pub fn step(&mut self) {
        if let TaskWeighting::Uncertainty { optimizer, .. } = self {
            optimizer.step();
        }
    }

    /// The learned weights `exp(-s_t)` per task, for the run's report (none when fixed).
    pub fn learned_weights(&self) -> Option<Vec<f64>> {
        match self {
            TaskWeighting::Fixed => None,
            TaskWeighting::Uncertainty { log_variance, .. } => {
                Vec::<f64>::try_from((-log_variance.detach()).exp().to_kind(Kind::Double)).ok()
            }
        }
    }

    /// The log-variance variable (tests check that it learns).
    pub fn log_variance(&self) -> Option<&Tensor> {
        match self {
            TaskWeighting::Fixed => None,
            TaskWeighting::Uncertainty {
                vs: _,
                log_variance,
                ..
            } => Some(log_variance),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncertainty_weighting_matches_kendall_and_its_log_variances_get_gradients() {
        let mut w = TaskWeighting::new(LossWeighting::Uncertainty, 2, 0.1, Device::Cpu).unwrap();
        let losses = vec![(0, Tensor::from(2.0f32)), (1, Tensor::from(0.5f32))];
        let total = w.combine(&losses, Device::Cpu);
        // s = 0 at the start: exp(0)·2 + 0 + exp(0)·0.5 + 0.
        assert!((total.double_value(&[]) - 2.5).abs() < 1e-6);
        w.zero_grad();
        total.backward();
        let grad = w.log_variance().unwrap().grad();
        // d/ds (e^-s·L + s/2) at s = 0 is 0.5 - L.
        assert!((grad.double_value(&[0]) - (0.5 - 2.0)).abs() < 1e-6);
        assert!((grad.double_value(&[1]) - (0.5 - 0.5)).abs() < 1e-6);
        w.step();
        let learned = w.learned_weights().unwrap();
        assert!(
            learned[0] < 1.0,
            "the task with the larger loss is weighed down: {learned:?}"
        );
        assert!((learned[1] - 1.0).abs() < 1e-6, "{learned:?}");
    }

    #[test]
    fn a_task_without_labels_in_the_batch_adds_nothing() {
        let w = TaskWeighting::new(LossWeighting::Uncertainty, 2, 0.1, Device::Cpu).unwrap();
        let total = w.combine(&[(1, Tensor::from(0.7f32))], Device::Cpu);
        assert!((total.double_value(&[]) - 0.7).abs() < 1e-6);
    }
}

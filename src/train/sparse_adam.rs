//! Adam for a large lookup table, touching only the rows a step used (PyTorch's
//! `SparseAdam`): the n-gram branch's million-row table costs per step what its used rows
//! cost, and a row no step used keeps its value and its moments.

use crate::model::ngram::UsedRows;
use tch::Tensor;

pub struct SparseAdam {
    first: Tensor,
    second: Tensor,
    step: i32,
}

impl SparseAdam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    pub fn new(table: &Tensor) -> SparseAdam {
        SparseAdam {
            first: table.zeros_like(),
            second: table.zeros_like(),
            step: 0,
        }
    }

    /// One Adam step on `table` from the gradients the used rows collected (a row used by
    /// several lookups of the step has their gradients summed).
    pub fn step(&mut self, table: &Tensor, used: Vec<UsedRows>, lr: f64) {
        let used: Vec<UsedRows> = used
            .into_iter()
            .filter(|u| u.values.grad().defined())
            .collect();
        if used.is_empty() {
            return;
        }
        self.step += 1;
        tch::no_grad(|| {
            let all_rows = Tensor::cat(&used.iter().map(|u| &u.rows).collect::<Vec<_>>(), 0);
            let all_grads =
                Tensor::cat(&used.iter().map(|u| u.values.grad()).collect::<Vec<_>>(), 0);
            let (rows, inverse) = all_rows.internal_unique(false, true);
            let grad = Tensor::zeros(
                [rows.size()[0], all_grads.size()[1]],
                (all_grads.kind(), all_grads.device()),
            )
            .index_add(0, &inverse, &all_grads);
            let m = self.first.index_select(0, &rows) * Self::BETA1 + &grad * (1.0 - Self::BETA1);
            let v = self.second.index_select(0, &rows) * Self::BETA2
                + (&grad * &grad) * (1.0 - Self::BETA2);
            let m_hat = &m / (1.0 - Self::BETA1.powi(self.step));
            let v_hat = &v / (1.0 - Self::BETA2.powi(self.step));
            let update = m_hat / (v_hat.sqrt() + Self::EPS) * (-lr);
            let _ = self.first.index_copy_(0, &rows, &m);
            let _ = self.second.index_copy_(0, &rows, &v);
            let _ = table.shallow_clone().index_add_(0, &rows, &update);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn only_the_used_rows_move_and_repeats_add_up() {
        let table = Tensor::zeros([4, 2], (Kind::Float, tch::Device::Cpu));
        let mut adam = SparseAdam::new(&table);
        let values = Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        (values.sum(Kind::Float)).backward();
        let used = vec![
            UsedRows {
                rows: Tensor::from_slice(&[1i64, 3]),
                values: values.shallow_clone(),
            },
            UsedRows {
                rows: Tensor::from_slice(&[3i64]),
                values: values.narrow(0, 0, 1).detach().set_requires_grad(true),
            },
        ];
        // The second lookup has no gradient (no backward through it): it is skipped.
        adam.step(&table, used, 0.1);
        let after: Vec<f32> = Vec::try_from(table.flatten(0, -1)).unwrap();
        // Adam's first step moves each used coordinate by -lr (positive gradient).
        let expected = [0.0, 0.0, -0.1, -0.1, 0.0, 0.0, -0.1, -0.1];
        for (a, e) in after.iter().zip(expected) {
            assert!((a - e).abs() < 1e-4, "{after:?}");
        }
    }
}

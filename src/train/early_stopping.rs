//! Early stopping on a validation score: keeps a copy of the best weights seen, counts the
//! evaluations without a gain, and puts the best weights back at the end.

use tch::nn::VarStore;
use tch::Tensor;

pub struct EarlyStopping {
    patience: usize,
    best_score: f64,
    best_step: usize,
    best_weights: Vec<(String, Tensor)>,
    evals_without_gain: usize,
}

impl EarlyStopping {
    /// Starts with the current weights of `vs` as the best (score −∞).
    pub fn new(vs: &VarStore, patience: usize) -> EarlyStopping {
        EarlyStopping {
            patience,
            best_score: f64::NEG_INFINITY,
            best_step: 0,
            best_weights: snapshot(vs),
            evals_without_gain: 0,
        }
    }

    /// Records an evaluation; a strictly better score copies the weights. Returns whether
    /// it was better.
    pub fn observe(&mut self, score: f64, step: usize, vs: &VarStore) -> bool {
        if score > self.best_score {
            self.best_score = score;
            self.best_step = step;
            self.best_weights = snapshot(vs);
            self.evals_without_gain = 0;
            true
        } else {
            self.evals_without_gain += 1;
            false
        }
    }

    /// Whether `patience` evaluations in a row brought no gain.
    pub fn out_of_patience(&self) -> bool {
        self.evals_without_gain >= self.patience
    }

    pub fn best_score(&self) -> f64 {
        self.best_score
    }

    pub fn best_step(&self) -> usize {
        self.best_step
    }

    /// Whether any evaluation was observed.
    pub fn has_score(&self) -> bool {
        self.best_score > f64::NEG_INFINITY
    }

    /// Puts the best weights back into `vs`.
    pub fn restore_best(&self, vs: &VarStore) {
        let vars = vs.variables();
        tch::no_grad(|| {
            for (name, saved) in &self.best_weights {
                if let Some(var) = vars.get(name) {
                    var.shallow_clone().copy_(saved);
                }
            }
        });
    }
}

fn snapshot(vs: &VarStore) -> Vec<(String, Tensor)> {
    tch::no_grad(|| {
        vs.variables()
            .into_iter()
            .map(|(name, t)| (name, t.detach().copy()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::Init;

    #[test]
    fn the_best_weights_come_back_and_patience_counts_evaluations_without_gain() {
        let vs = VarStore::new(tch::Device::Cpu);
        let w = vs.root().var("w", &[1], Init::Const(1.0));
        let mut stop = EarlyStopping::new(&vs, 2);
        assert!(stop.observe(0.5, 10, &vs));
        tch::no_grad(|| {
            let _ = w.shallow_clone().fill_(2.0);
        });
        assert!(!stop.observe(0.4, 20, &vs));
        assert!(!stop.out_of_patience());
        assert!(!stop.observe(0.5, 30, &vs), "equal is not better");
        assert!(stop.out_of_patience());
        stop.restore_best(&vs);
        assert_eq!(w.double_value(&[0]), 1.0);
        assert_eq!((stop.best_step(), stop.best_score()), (10, 0.5));
    }
}

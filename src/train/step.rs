//! The loss of one optimisation step: masked cross-entropy for every task and, once the
//! association losses are on, walker + visit between the batch's rows labeled for the
//! target task and a sample of unlabeled rows.

use crate::model::encoder::TokenBatch;
use crate::model::losses::{association_losses, masked_cross_entropy, NO_LABEL};
use crate::model::network::MultiTaskNet;
use tch::{Kind, Tensor};

/// How the per-task losses are weighed; fixed for the run.
pub struct Objective {
    /// Per task: inverse-frequency class weights, when on.
    pub class_weights: Vec<Option<Tensor>>,
    /// Per task: the loss weight.
    pub task_weights: Vec<f64>,
    /// The task whose labels define "same class" for the walker.
    pub target_index: usize,
}

/// The association part of a step: unlabeled rows and the (ramped) loss weights.
pub struct AssociationInput<'a> {
    pub unlabeled: &'a TokenBatch,
    pub walker_weight: f64,
    pub visit_weight: f64,
}

/// A step's loss, and whether the association losses were part of it.
pub struct StepLoss {
    pub total: Tensor,
    pub association_used: bool,
}

/// Forward `batch` (and the unlabeled rows, when given) and add up the losses. `targets`
/// holds one `[batch]` class-id tensor per task, [`NO_LABEL`] where a row has none. The
/// association losses need at least two rows labeled for the target task.
pub fn step_loss(
    net: &MultiTaskNet,
    objective: &Objective,
    batch: &TokenBatch,
    targets: &[Tensor],
    association: Option<AssociationInput>,
) -> StepLoss {
    let out = net.forward_t(batch, true);
    let mut total = Tensor::zeros([], (Kind::Float, batch.ids.device()));
    for (t, logits) in out.logits.iter().enumerate() {
        total += masked_cross_entropy(logits, &targets[t], objective.class_weights[t].as_ref())
            * objective.task_weights[t];
    }
    let Some(association) = association else {
        return StepLoss {
            total,
            association_used: false,
        };
    };
    let target = &targets[objective.target_index];
    let labeled = target.ne(NO_LABEL).nonzero().squeeze_dim(1);
    if labeled.size()[0] < 2 {
        return StepLoss {
            total,
            association_used: false,
        };
    }
    let unlabeled = net.forward_t(association.unlabeled, true);
    let losses = association_losses(
        &out.embedding.index_select(0, &labeled),
        &target.index_select(0, &labeled),
        &unlabeled.embedding,
    );
    total += losses.walker * association.walker_weight + losses.visit * association.visit_weight;
    StepLoss {
        total,
        association_used: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::data::TaskLabels;
    use tch::nn::VarStore;
    use tch::Device;

    fn toy() -> (VarStore, MultiTaskNet, Objective) {
        tch::manual_seed(1);
        let vs = VarStore::new(Device::Cpu);
        let config = ModelConfig {
            embedding_dim: 8,
            cnn_filters: 4,
            assoc_dim: 6,
            ..Default::default()
        };
        let tasks = vec![
            TaskLabels {
                name: "sentiment".into(),
                labels: vec!["neg".into(), "pos".into()],
            },
            TaskLabels {
                name: "topic".into(),
                labels: vec!["a".into(), "b".into(), "c".into()],
            },
        ];
        let net = MultiTaskNet::new(&vs.root(), &config, 30, &tasks, "sentiment");
        let objective = Objective {
            class_weights: vec![None, None],
            task_weights: vec![1.0, 1.0],
            target_index: 0,
        };
        (vs, net, objective)
    }

    fn rows(rows: &[&[i64]]) -> TokenBatch {
        TokenBatch::new(rows, Device::Cpu)
    }

    #[test]
    fn association_adds_walker_and_visit_and_reaches_the_association_layer() {
        let (vs, net, objective) = toy();
        let batch = rows(&[&[3, 4, 5], &[6, 7], &[8, 9, 10, 11], &[12]]);
        let targets = [
            Tensor::from_slice(&[0i64, 1, 0, NO_LABEL]),
            Tensor::from_slice(&[2i64, NO_LABEL, NO_LABEL, 0]),
        ];
        let unlabeled = rows(&[&[13, 14], &[15, 16, 17], &[18]]);
        let plain = tch::no_grad(|| step_loss(&net, &objective, &batch, &targets, None));
        let with = step_loss(
            &net,
            &objective,
            &batch,
            &targets,
            Some(AssociationInput {
                unlabeled: &unlabeled,
                walker_weight: 1.0,
                visit_weight: 0.5,
            }),
        );
        assert!(with.association_used);
        assert!(!plain.association_used);
        // The walker and visit losses are positive: the total must grow (dropout is on in
        // both, so compare against a margin no dropout noise reaches on this toy).
        let extra = with.total.double_value(&[]) - plain.total.double_value(&[]);
        assert!(extra > 0.3, "association added {extra}");
        with.total.backward();
        let grad = vs.variables()["association.weight"].grad();
        assert!(grad.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    #[test]
    fn association_needs_two_rows_labeled_for_the_target_task() {
        let (_vs, net, objective) = toy();
        let batch = rows(&[&[3, 4], &[5, 6]]);
        let targets = [
            Tensor::from_slice(&[1i64, NO_LABEL]),
            Tensor::from_slice(&[0i64, 1]),
        ];
        let unlabeled = rows(&[&[7, 8]]);
        let loss = step_loss(
            &net,
            &objective,
            &batch,
            &targets,
            Some(AssociationInput {
                unlabeled: &unlabeled,
                walker_weight: 1.0,
                visit_weight: 1.0,
            }),
        );
        assert!(!loss.association_used);
    }
}

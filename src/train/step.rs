//! The loss of one optimisation step: masked cross-entropy for every task and, once the
//! association losses are on, walker + visit between the batch's rows labeled for the
//! target task and a sample of unlabeled rows.

use super::weighting::TaskWeighting;
use crate::model::encoder::TokenBatch;
use crate::model::losses::{association_losses, masked_cross_entropy, NO_LABEL};
use crate::model::network::MultiTaskNet;
use tch::Tensor;

/// How the per-task losses are weighed; fixed for the run.
pub struct Objective {
    /// Per task: inverse-frequency class weights, when on.
    pub class_weights: Vec<Option<Tensor>>,
    /// Per task: the loss weight.
    pub task_weights: Vec<f64>,
    /// The task whose labels define "same class" for the walker.
    pub target_index: usize,
    /// Strength of `soft` sharing's L2 pull between task encoders.
    pub soft_sharing_weight: f64,
}

/// The association part of a step: unlabeled rows and the (ramped) loss weights.
pub struct AssociationInput<'a> {
    pub unlabeled: &'a TokenBatch,
    pub walker_weight: f64,
    pub visit_weight: f64,
}

/// What one step learns from.
pub struct StepInput<'a> {
    pub batch: &'a TokenBatch,
    /// One `[batch]` class-id tensor per task, [`NO_LABEL`] where a row has none.
    pub targets: &'a [Tensor],
    pub association: Option<AssociationInput<'a>>,
    /// Only this task's loss (the `alternate` schedule); `None`: every task's.
    pub only_task: Option<usize>,
    /// `soft` sharing's distance between the task encoders, added (weighted) to the loss.
    pub soft_sharing_penalty: Option<Tensor>,
}

/// A step's loss, and whether the association losses were part of it.
pub struct StepLoss {
    pub total: Tensor,
    /// How many tasks had labels in the batch (and so a loss).
    pub tasks_used: usize,
    pub association_used: bool,
}

impl StepLoss {
    /// Whether anything in the loss has a gradient to follow.
    pub fn is_empty(&self) -> bool {
        self.tasks_used == 0 && !self.association_used
    }
}

/// Forwards the batch (and the unlabeled rows, when given) and adds up the losses of the
/// tasks labeled in the batch through `weighting`. The association losses need at least
/// two rows labeled for the target task, and belong to the target task's turn.
pub fn step_loss(
    net: &MultiTaskNet,
    objective: &Objective,
    weighting: &TaskWeighting,
    mut input: StepInput,
) -> StepLoss {
    let penalty = input.soft_sharing_penalty.take();
    let mut loss = task_and_association_loss(net, objective, weighting, input);
    if let (Some(penalty), true) = (penalty, loss.tasks_used > 0) {
        loss.total += penalty * objective.soft_sharing_weight;
    }
    loss
}

fn task_and_association_loss(
    net: &MultiTaskNet,
    objective: &Objective,
    weighting: &TaskWeighting,
    input: StepInput,
) -> StepLoss {
    let device = input.batch.ids.device();
    let out = net.forward_t(input.batch, true);
    let mut losses = Vec::new();
    for (t, logits) in out.logits.iter().enumerate() {
        if input.only_task.is_some_and(|o| o != t) {
            continue;
        }
        let target = &input.targets[t];
        if target.ne(NO_LABEL).any().int64_value(&[]) == 0 {
            continue;
        }
        let loss = masked_cross_entropy(logits, target, objective.class_weights[t].as_ref())
            * objective.task_weights[t];
        losses.push((t, loss));
    }
    let tasks_used = losses.len();
    let mut total = weighting.combine(&losses, device);
    let target_turn = input.only_task.is_none_or(|o| o == objective.target_index);
    let association = match input.association {
        Some(a) if target_turn => a,
        _ => {
            return StepLoss {
                total,
                tasks_used,
                association_used: false,
            }
        }
    };
    let target = &input.targets[objective.target_index];
    let labeled = target.ne(NO_LABEL).nonzero().squeeze_dim(1);
    if labeled.size()[0] < 2 {
        return StepLoss {
            total,
            tasks_used,
            association_used: false,
        };
    }
    let unlabeled = net.forward_t(association.unlabeled, true);
    let assoc = association_losses(
        &out.embedding.index_select(0, &labeled),
        &target.index_select(0, &labeled),
        &unlabeled.embedding,
    );
    total += assoc.walker * association.walker_weight + assoc.visit * association.visit_weight;
    StepLoss {
        total,
        tasks_used,
        association_used: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::data::TaskLabels;
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    fn toy() -> (VarStore, MultiTaskNet, Objective) {
        toy_with_dropout(0.3)
    }

    fn toy_with_dropout(dropout: f64) -> (VarStore, MultiTaskNet, Objective) {
        tch::manual_seed(1);
        let vs = VarStore::new(Device::Cpu);
        let config = ModelConfig {
            embedding_dim: 8,
            cnn_filters: 4,
            assoc_dim: 6,
            dropout,
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
            soft_sharing_weight: 0.0,
        };
        (vs, net, objective)
    }

    fn input<'a>(
        batch: &'a TokenBatch,
        targets: &'a [Tensor],
        association: Option<AssociationInput<'a>>,
        only_task: Option<usize>,
    ) -> StepInput<'a> {
        StepInput {
            batch,
            targets,
            association,
            only_task,
            soft_sharing_penalty: None,
        }
    }

    fn associate(unlabeled: &TokenBatch, visit_weight: f64) -> Option<AssociationInput<'_>> {
        Some(AssociationInput {
            unlabeled,
            walker_weight: 1.0,
            visit_weight,
        })
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
        let fixed = TaskWeighting::Fixed;
        let plain = tch::no_grad(|| {
            step_loss(
                &net,
                &objective,
                &fixed,
                input(&batch, &targets, None, None),
            )
        });
        let with = step_loss(
            &net,
            &objective,
            &fixed,
            input(&batch, &targets, associate(&unlabeled, 0.5), None),
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
            &TaskWeighting::Fixed,
            input(&batch, &targets, associate(&unlabeled, 1.0), None),
        );
        assert!(!loss.association_used);
    }

    #[test]
    fn the_alternate_schedule_takes_one_task_at_a_time() {
        let (_vs, net, objective) = toy_with_dropout(0.0);
        let batch = rows(&[&[3, 4], &[5, 6]]);
        let targets = [
            Tensor::from_slice(&[1i64, 0]),
            Tensor::from_slice(&[0i64, NO_LABEL]),
        ];
        let loss = |only_task| {
            step_loss(
                &net,
                &objective,
                &TaskWeighting::Fixed,
                input(&batch, &targets, None, only_task),
            )
            .total
            .double_value(&[])
        };
        let (both, first, second) = (loss(None), loss(Some(0)), loss(Some(1)));
        assert!(
            (both - (first + second)).abs() < 1e-5,
            "{both} {first} {second}"
        );
        assert!(first > 0.0 && second > 0.0);
    }
}

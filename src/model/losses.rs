//! The training losses: per-task cross-entropy masked to labeled rows, and the walker and
//! visit losses of "Learning by Association" (Haeusser et al., 2017).

use tch::{Kind, Tensor};

/// Marks a row without a label for a task.
pub const NO_LABEL: i64 = -1;

const EPS: f64 = 1e-8;

/// Mean (class-weighted) cross-entropy over the rows whose target is not [`NO_LABEL`];
/// zero, with a gradient path, when no row in the batch is labeled.
pub fn masked_cross_entropy(logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>) -> Tensor {
    let labeled = targets.ne(NO_LABEL);
    let safe_targets = targets.clamp_min(0);
    let log_probs = logits.log_softmax(-1, Kind::Float);
    let picked = -log_probs
        .gather(1, &safe_targets.unsqueeze(1), false)
        .squeeze_dim(1);
    let row_weight = match weights {
        Some(w) => w.index_select(0, &safe_targets) * labeled.to_kind(Kind::Float),
        None => labeled.to_kind(Kind::Float),
    };
    let total = row_weight.sum(Kind::Float);
    (picked * &row_weight).sum(Kind::Float) / total.clamp_min(EPS)
}

/// The two association losses for one step.
pub struct AssociationLosses {
    /// Round trip labeled -> unlabeled -> labeled should end in the same class.
    pub walker: Tensor,
    /// Every unlabeled row should be visited equally often.
    pub visit: Tensor,
}

/// `labeled` is `[A, d]` with class ids `labels` `[A]`; `unlabeled` is `[B, d]`.
pub fn association_losses(
    labeled: &Tensor,
    labels: &Tensor,
    unlabeled: &Tensor,
) -> AssociationLosses {
    let similarity = labeled.matmul(&unlabeled.tr());
    let p_ab = similarity.softmax(1, Kind::Float);
    let p_ba = similarity.tr().softmax(1, Kind::Float);
    let p_aba = p_ab.matmul(&p_ba);
    let same = labels
        .unsqueeze(1)
        .eq_tensor(&labels.unsqueeze(0))
        .to_kind(Kind::Float);
    let target = &same / same.sum_dim_intlist([1].as_slice(), true, Kind::Float);
    let walker = -(target * (p_aba + EPS).log())
        .sum_dim_intlist([1].as_slice(), false, Kind::Float)
        .mean(Kind::Float);
    let visit_probability = p_ab.mean_dim([0].as_slice(), false, Kind::Float);
    let visit = -(visit_probability + EPS).log().mean(Kind::Float);
    AssociationLosses { walker, visit }
}

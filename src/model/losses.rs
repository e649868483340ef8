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

/// Skip-gram with negative sampling (Mikolov et al., 2013): `center` `[B, d]` should score
/// high against its true `context` `[B, d]` and low against `negatives` `[B, K, d]`.
/// Summed over the batch (each pair takes a word2vec-sized step under SGD):
/// `Σ -log σ(u·v) - Σ_k log σ(-u·n_k)`.
pub fn skipgram_loss(center: &Tensor, context: &Tensor, negatives: &Tensor) -> Tensor {
    let positive = (center * context)
        .sum_dim_intlist([1].as_slice(), false, Kind::Float)
        .log_sigmoid();
    let negative = negatives
        .bmm(&center.unsqueeze(2))
        .squeeze_dim(2)
        .neg()
        .log_sigmoid()
        .sum_dim_intlist([1].as_slice(), false, Kind::Float);
    -(positive + negative).sum(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rows: &[&[f32]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
    }

    fn scalar(x: &Tensor) -> f64 {
        x.double_value(&[])
    }

    // a = b = identity: every similarity softmax row is [p, q] with p = e/(e+1), q = 1/(e+1).
    fn pq() -> (f64, f64) {
        let e = std::f64::consts::E;
        (e / (e + 1.0), 1.0 / (e + 1.0))
    }

    #[test]
    fn walker_and_visit_losses_match_a_hand_computed_example_with_two_classes() {
        let a = t(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let b = t(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let losses = association_losses(&a, &Tensor::from_slice(&[0i64, 1]), &b);
        let (p, q) = pq();
        // P_aba = [[p²+q², 2pq], [2pq, p²+q²]]; the target is the identity.
        let walker = -(p * p + q * q).ln();
        assert!((scalar(&losses.walker) - walker).abs() < 1e-6);
        // Visit probabilities are [(p+q)/2, (p+q)/2] = [1/2, 1/2].
        assert!((scalar(&losses.visit) - 2f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn walker_target_spreads_over_all_rows_of_the_same_class() {
        let a = t(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let b = t(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let losses = association_losses(&a, &Tensor::from_slice(&[0i64, 0]), &b);
        let (p, q) = pq();
        let walker = -(0.5 * (p * p + q * q).ln() + 0.5 * (2.0 * p * q).ln());
        assert!((scalar(&losses.walker) - walker).abs() < 1e-6);
    }

    #[test]
    fn visit_loss_grows_when_one_unlabeled_row_takes_all_visits() {
        let a = t(&[&[5.0, 0.0], &[4.0, 0.0]]);
        let b = t(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let losses = association_losses(&a, &Tensor::from_slice(&[0i64, 1]), &b);
        assert!(scalar(&losses.visit) > 2f64.ln() + 0.5);
    }

    #[test]
    fn masked_cross_entropy_ignores_rows_without_a_label() {
        let logits = t(&[&[2.0, 0.0], &[9.0, -9.0], &[0.0, 1.0]]).set_requires_grad(true);
        let targets = Tensor::from_slice(&[1i64, NO_LABEL, 0]);
        let loss = masked_cross_entropy(&logits, &targets, None);
        // By hand: rows 0 and 2 only.
        let ce = |z_true: f64, z_other: f64| -(z_true - (z_true.exp() + z_other.exp()).ln());
        let expected = (ce(0.0, 2.0) + ce(0.0, 1.0)) / 2.0;
        assert!((scalar(&loss) - expected).abs() < 1e-5);
        loss.backward();
        let grad: Vec<f32> = Vec::try_from(logits.grad().get(1)).unwrap();
        assert_eq!(
            grad,
            vec![0.0, 0.0],
            "an unlabeled row must get no gradient"
        );
    }

    #[test]
    fn masked_cross_entropy_is_zero_when_no_row_is_labeled() {
        let logits = t(&[&[2.0, 0.0], &[0.0, 1.0]]);
        let targets = Tensor::from_slice(&[NO_LABEL, NO_LABEL]);
        let loss = masked_cross_entropy(&logits, &targets, None);
        assert_eq!(scalar(&loss), 0.0);
    }

    #[test]
    fn class_weights_scale_each_row_and_normalise_by_their_sum() {
        let logits = t(&[&[2.0, 0.0], &[0.0, 1.0]]);
        let targets = Tensor::from_slice(&[1i64, 0]);
        let weights = Tensor::from_slice(&[3.0f32, 1.0]);
        let loss = masked_cross_entropy(&logits, &targets, Some(&weights));
        let ce = |z_true: f64, z_other: f64| -(z_true - (z_true.exp() + z_other.exp()).ln());
        // row 0 has class 1 (weight 1), row 1 has class 0 (weight 3)
        let expected = (1.0 * ce(0.0, 2.0) + 3.0 * ce(0.0, 1.0)) / 4.0;
        assert!((scalar(&loss) - expected).abs() < 1e-5);
    }

    #[test]
    fn skipgram_loss_matches_a_hand_computed_example() {
        // u = [1, 2], v = [0.5, 0], one negative n = [1, -1]: u·v = 0.5, u·n = -1.
        let u = t(&[&[1.0, 2.0]]);
        let v = t(&[&[0.5, 0.0]]);
        let n = Tensor::from_slice(&[1.0f32, -1.0]).view([1, 1, 2]);
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let expected = -(sigmoid(0.5).ln() + sigmoid(1.0).ln());
        assert!((scalar(&skipgram_loss(&u, &v, &n)) - expected).abs() < 1e-6);
    }
}

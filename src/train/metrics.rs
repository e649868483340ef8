//! Classification metrics per task: macro-F1, accuracy, per-class precision/recall/F1,
//! confusion matrix and expected calibration error. Scores are fractions in [0, 1].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bins of the expected calibration error.
const ECE_BINS: usize = 15;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Rows whose true label is this class.
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// Mean F1 over the classes that occur in the truth or the predictions.
    pub macro_f1: f64,
    pub accuracy: f64,
    pub n: usize,
    pub per_class: BTreeMap<String, ClassMetrics>,
    /// True label to predicted label to count.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Expected calibration error of the top-class confidence (15 equal-width bins).
    pub ece: f64,
}

/// Metrics of one task. `truth` and `predicted` index into `labels`; `confidence` is the
/// probability the model gave its predicted class.
pub fn task_metrics(
    labels: &[String],
    truth: &[usize],
    predicted: &[usize],
    confidence: &[f32],
) -> TaskMetrics {
    let k = labels.len();
    let n = truth.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t][p] += 1;
    }
    let mut per_class = BTreeMap::new();
    let mut f1_sum = 0.0;
    let mut present = 0;
    for c in 0..k {
        let tp = confusion[c][c] as f64;
        let support: usize = confusion[c].iter().sum();
        let predicted_c: usize = (0..k).map(|t| confusion[t][c]).sum();
        let precision = ratio(tp, predicted_c as f64);
        let recall = ratio(tp, support as f64);
        let f1 = ratio(2.0 * precision * recall, precision + recall);
        if support > 0 || predicted_c > 0 {
            f1_sum += f1;
            present += 1;
        }
        per_class.insert(
            labels[c].clone(),
            ClassMetrics {
                precision,
                recall,
                f1,
                support,
            },
        );
    }
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    TaskMetrics {
        macro_f1: ratio(f1_sum, present as f64),
        accuracy: ratio(correct as f64, n as f64),
        n,
        per_class,
        confusion: (0..k)
            .filter(|&t| confusion[t].iter().any(|&c| c > 0))
            .map(|t| {
                let row = (0..k)
                    .filter(|&p| confusion[t][p] > 0)
                    .map(|p| (labels[p].clone(), confusion[t][p]))
                    .collect();
                (labels[t].clone(), row)
            })
            .collect(),
        ece: expected_calibration_error(truth, predicted, confidence),
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn expected_calibration_error(truth: &[usize], predicted: &[usize], confidence: &[f32]) -> f64 {
    let n = truth.len();
    if n == 0 {
        return 0.0;
    }
    let mut count = [0usize; ECE_BINS];
    let mut correct = [0usize; ECE_BINS];
    let mut conf_sum = [0f64; ECE_BINS];
    for i in 0..n {
        let c = confidence[i].clamp(0.0, 1.0) as f64;
        let bin = ((c * ECE_BINS as f64) as usize).min(ECE_BINS - 1);
        count[bin] += 1;
        conf_sum[bin] += c;
        if truth[i] == predicted[i] {
            correct[bin] += 1;
        }
    }
    (0..ECE_BINS)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let acc = correct[b] as f64 / count[b] as f64;
            let conf = conf_sum[b] / count[b] as f64;
            (count[b] as f64 / n as f64) * (acc - conf).abs()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn macro_f1_and_accuracy_match_a_hand_computed_case() {
        // truth a a b b c ; predicted a b b b a
        let m = task_metrics(&labels(), &[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0], &[0.9; 5]);
        // a: p=1/2 r=1/2 f=1/2 ; b: p=2/3 r=1 f=0.8 ; c: p=0 r=0 f=0
        assert!((m.macro_f1 - (0.5 + 0.8 + 0.0) / 3.0).abs() < 1e-12);
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        assert_eq!(m.confusion["a"]["b"], 1);
        assert_eq!(m.per_class["b"].support, 2);
        // all confidences 0.9 in one bin, accuracy 0.6
        assert!((m.ece - 0.3).abs() < 1e-6);
    }

    #[test]
    fn classes_absent_from_truth_and_predictions_do_not_dilute_macro_f1() {
        let m = task_metrics(&labels(), &[0, 1], &[0, 1], &[1.0, 1.0]);
        assert!((m.macro_f1 - 1.0).abs() < 1e-12);
    }
}

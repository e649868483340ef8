//! Fitting the TF-IDF companion (see [`crate::model::tfidf`]) after the network: the
//! vocabulary and idf from all training text (labeled or not), then per task a
//! class-balanced, L2-regularised logistic regression by full-batch Adam, keeping the
//! iterate with the best validation macro-F1, and finally the companion's share in the
//! averaged probabilities, chosen on the same validation rows.

use super::metrics::task_metrics;
use crate::config::TfidfConfig;
use crate::data::TaskLabels;
use crate::model::losses::NO_LABEL;
use crate::model::tfidf::{softmax_rows, SparseRows, TfidfHead, TfidfModel, Vocabulary};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use tch::Tensor;

/// Evaluate the regression on the validation rows every this many Adam steps, and stop
/// once this many steps went by without a better score.
const EVAL_EVERY: usize = 10;
const PATIENCE: usize = 40;

/// Texts with their class ids per task (`targets[task][row]`, [`NO_LABEL`] where none).
pub struct LabeledTexts<'a> {
    pub texts: Vec<&'a str>,
    pub targets: &'a [Vec<i64>],
}

/// What fitting found, saved in `metrics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TfidfReport {
    pub features: usize,
    pub seconds: f64,
    pub tasks: BTreeMap<String, TfidfTaskReport>,
    /// The second fit on every labeled row (see [`refit_tfidf`]), when there was one.
    pub refit: Option<RefitReport>,
}

/// What the second fit, on the training and the held-out rows together, used.
#[derive(Debug, Clone, Serialize)]
pub struct RefitReport {
    pub rows: usize,
    pub features: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TfidfTaskReport {
    pub labeled_rows: usize,
    /// The Adam step whose weights were kept.
    pub best_iteration: usize,
    /// Validation macro-F1 of the network alone, the companion alone and the average
    /// (absent without validation labels for the task).
    pub valid_network: Option<f64>,
    pub valid_tfidf: Option<f64>,
    pub valid_mixed: Option<f64>,
    pub mix: f64,
}

/// Fits the companion on `train`, choosing iterates and shares on `valid`, where
/// `network_valid` holds the network's per-task probabilities of the validation rows.
pub fn fit_tfidf(
    config: &TfidfConfig,
    tasks: &[TaskLabels],
    train: &LabeledTexts,
    valid: &LabeledTexts,
    network_valid: &[Tensor],
) -> (TfidfModel, TfidfReport) {
    let started = Instant::now();
    let vocabulary = Vocabulary::fit(train.texts.iter().copied(), config);
    let train_rows = vocabulary.rows(&train.texts, config);
    let valid_rows = vocabulary.rows(&valid.texts, config);
    let mut heads = Vec::new();
    let mut reports = BTreeMap::new();
    for (t, task) in tasks.iter().enumerate() {
        let valid_picks = labeled(&valid.targets[t]);
        let fit = Regression {
            config,
            features: vocabulary.len(),
            classes: task.labels.len(),
        };
        let (task_rows, truth) = labeled_rows(&train_rows, &train.targets[t]);
        let valid_set =
            (!valid_picks.is_empty()).then(|| labeled_rows(&valid_rows, &valid.targets[t]));
        let (weight, bias, best_iteration) = fit.run(&task_rows, &truth, valid_set.as_ref());
        let mut head = TfidfHead {
            weight,
            bias,
            mix: 0.5,
        };
        let mut report = TfidfTaskReport {
            labeled_rows: truth.len(),
            best_iteration,
            valid_network: None,
            valid_tfidf: None,
            valid_mixed: None,
            mix: 0.5,
        };
        if let Some((rows, truth)) = &valid_set {
            let own = head.probabilities(rows);
            let index =
                Tensor::from_slice(&valid_picks.iter().map(|&i| i as i64).collect::<Vec<_>>());
            let net = network_valid[t].index_select(0, &index);
            let (mix, mixed) = choose_mix(config, &net, &own, truth, &task.labels);
            head.mix = mix;
            report.mix = mix;
            report.valid_network = Some(macro_f1(&net, truth, &task.labels));
            report.valid_tfidf = Some(macro_f1(&own, truth, &task.labels));
            report.valid_mixed = Some(mixed);
        }
        heads.push(head);
        reports.insert(task.name.clone(), report);
    }
    let report = TfidfReport {
        features: vocabulary.len(),
        seconds: started.elapsed().as_secs_f64(),
        tasks: reports,
        refit: None,
    };
    (TfidfModel::new(config.clone(), vocabulary, heads), report)
}

/// Fits the companion again on `all` (the training rows and the held-out validation rows
/// together), with no rows left to choose on: each task's regression takes the number of
/// Adam steps the first fit kept and the first fit's share. The vocabulary and idf come
/// from `all` too. `report.refit` says what it used.
pub fn refit_tfidf(
    config: &TfidfConfig,
    tasks: &[TaskLabels],
    all: &LabeledTexts,
    first: &TfidfModel,
    report: &mut TfidfReport,
) -> TfidfModel {
    let started = Instant::now();
    let vocabulary = Vocabulary::fit(all.texts.iter().copied(), config);
    let rows = vocabulary.rows(&all.texts, config);
    let heads = tasks
        .iter()
        .zip(first.heads())
        .enumerate()
        .map(|(t, (task, first_head))| {
            let steps = report.tasks.get(&task.name).map_or(0, |r| r.best_iteration);
            let budget = TfidfConfig {
                iterations: steps,
                ..config.clone()
            };
            let fit = Regression {
                config: &budget,
                features: vocabulary.len(),
                classes: task.labels.len(),
            };
            let (task_rows, truth) = labeled_rows(&rows, &all.targets[t]);
            let (weight, bias, _) = fit.run(&task_rows, &truth, None);
            TfidfHead {
                weight,
                bias,
                mix: first_head.mix,
            }
        })
        .collect();
    report.refit = Some(RefitReport {
        rows: all.texts.len(),
        features: vocabulary.len(),
        seconds: started.elapsed().as_secs_f64(),
    });
    TfidfModel::new(config.clone(), vocabulary, heads)
}

/// The rows of `rows` that have a class id in `targets`, with those ids.
fn labeled_rows(rows: &SparseRows, targets: &[i64]) -> (SparseRows, Vec<i64>) {
    let picks = labeled(targets);
    let truth = picks.iter().map(|&i| targets[i]).collect();
    (rows.select(&picks), truth)
}

fn labeled(targets: &[i64]) -> Vec<usize> {
    (0..targets.len())
        .filter(|&i| targets[i] != NO_LABEL)
        .collect()
}

/// Macro-F1 of the arg-max of `probs` `[rows, classes]` against `truth`.
pub fn macro_f1(probs: &Tensor, truth: &[i64], labels: &[String]) -> f64 {
    let flat: Vec<f32> = Vec::try_from(probs.flatten(0, -1)).unwrap_or_default();
    argmax_macro_f1(&flat, labels.len(), truth, labels)
}

/// The share `w` in `(1 - w) * network + w * tfidf` with the best validation macro-F1,
/// from `mix_min..=mix_max` in steps of 0.1; ties go to the share nearest 0.5.
pub fn choose_mix(
    config: &TfidfConfig,
    network: &Tensor,
    tfidf: &Tensor,
    truth: &[i64],
    labels: &[String],
) -> (f64, f64) {
    let steps = ((config.mix_max - config.mix_min) * 10.0).round() as usize;
    // Shares are saved as f32: choose among values an f32 holds exactly as they are used.
    let mut candidates: Vec<f64> = (0..=steps)
        .map(|k| f64::from((config.mix_min + k as f64 / 10.0) as f32))
        .collect();
    candidates.sort_by(|a, b| (a - 0.5).abs().total_cmp(&(b - 0.5).abs()));
    let mut best = (0.5, f64::MIN);
    for w in candidates {
        let score = macro_f1(&(network * (1.0 - w) + tfidf * w), truth, labels);
        if score > best.1 + 1e-12 {
            best = (w, score);
        }
    }
    best
}

/// One task's logistic regression.
struct Regression<'c> {
    config: &'c TfidfConfig,
    features: usize,
    classes: usize,
}

/// Adam's running moments of one parameter vector (PyTorch's defaults).
struct AdamState {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl AdamState {
    fn new(n: usize) -> AdamState {
        AdamState {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// One bias-corrected Adam step of `params` along `grad` at step `t` (from 1).
    fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f64, t: usize) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let c1 = 1.0 - b1.powi(t as i32);
        let c2 = 1.0 - b2.powi(t as i32);
        let step = (lr / c1) as f32;
        let (b1, b2, c2) = (b1 as f32, b2 as f32, c2 as f32);
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= step * *m / ((*v / c2).sqrt() + eps as f32);
        }
    }
}

impl Regression<'_> {
    /// Full-batch Adam on the class-balanced cross-entropy plus `|W|^2 / (2 C n)`; the
    /// weights of the step with the best validation macro-F1 (the last step without
    /// validation rows), with that step's number. Stops [`PATIENCE`] steps after the best.
    fn run(
        &self,
        rows: &SparseRows,
        truth: &[i64],
        valid: Option<&(SparseRows, Vec<i64>)>,
    ) -> (Vec<f32>, Vec<f32>, usize) {
        let k = self.classes;
        let mut weight = vec![0.0f32; self.features * k];
        let mut bias = vec![0.0f32; k];
        if rows.is_empty() {
            return (weight, bias, 0);
        }
        let n = rows.len() as f32;
        let class_weights = balanced_weights(truth, k);
        let labels: Vec<String> = (0..k).map(|c| c.to_string()).collect();
        let (mut adam_w, mut adam_b) = (AdamState::new(weight.len()), AdamState::new(k));
        let mut best = (f64::MIN, weight.clone(), bias.clone(), 0);
        let l2 = 1.0 / (self.config.c as f32 * n);
        for step in 1..=self.config.iterations {
            // d loss / d logits = row weight / n * (softmax - one-hot).
            let mut grad_logits = rows.scores(&weight, &bias);
            softmax_rows(&mut grad_logits, k);
            for (r, row) in grad_logits.chunks_mut(k).enumerate() {
                let y = truth[r] as usize;
                row[y] -= 1.0;
                let scale = class_weights[y] / n;
                row.iter_mut().for_each(|g| *g *= scale);
            }
            let mut grad_w: Vec<f32> = weight.iter().map(|w| w * l2).collect();
            let mut grad_b = vec![0.0f32; k];
            for (r, g) in grad_logits.chunks(k).enumerate() {
                for (gb, gi) in grad_b.iter_mut().zip(g) {
                    *gb += gi;
                }
                for i in rows.span(r) {
                    let (j, x) = (rows.indices[i] as usize, rows.weights[i]);
                    for (gw, gi) in grad_w[j * k..(j + 1) * k].iter_mut().zip(g) {
                        *gw += x * gi;
                    }
                }
            }
            adam_w.step(&mut weight, &grad_w, self.config.learning_rate, step);
            adam_b.step(&mut bias, &grad_b, self.config.learning_rate, step);
            let last = step == self.config.iterations;
            let Some((valid_rows, valid_truth)) = valid else {
                if last {
                    best = (0.0, weight.clone(), bias.clone(), step);
                }
                continue;
            };
            if step % EVAL_EVERY == 0 || last {
                let scores = valid_rows.scores(&weight, &bias);
                let score = argmax_macro_f1(&scores, k, valid_truth, &labels);
                if score > best.0 {
                    best = (score, weight.clone(), bias.clone(), step);
                } else if step - best.3 >= PATIENCE {
                    break;
                }
            }
        }
        (best.1, best.2, best.3)
    }
}

/// Macro-F1 of the arg-max of every `classes`-wide row of `scores` against `truth`.
fn argmax_macro_f1(scores: &[f32], classes: usize, truth: &[i64], labels: &[String]) -> f64 {
    let (pred, conf): (Vec<usize>, Vec<f32>) = scores
        .chunks(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::MIN), |a, (j, &v)| if v > a.1 { (j, v) } else { a })
        })
        .unzip();
    let truth: Vec<usize> = truth.iter().map(|&y| y as usize).collect();
    task_metrics(labels, &truth, &pred, &conf).macro_f1
}

/// scikit-learn's `class_weight="balanced"`: `n / (classes * n_c)`, 0 for an absent class.
fn balanced_weights(truth: &[i64], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for &y in truth {
        counts[y as usize] += 1;
    }
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                truth.len() as f32 / (classes * c) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn balanced_weights_equalise_the_classes() {
        assert_eq!(
            balanced_weights(&[0, 0, 0, 1], 3),
            [4.0 / 9.0, 4.0 / 3.0, 0.0]
        );
    }

    #[test]
    fn the_regression_learns_which_words_mean_which_class() {
        let config = TfidfConfig {
            iterations: 60,
            ..Default::default()
        };
        let good = ["great flight thanks", "lovely crew thanks", "great service"];
        let bad = ["late again awful", "lost my bag awful", "delayed and late"];
        let texts: Vec<&str> = good.iter().chain(&bad).copied().collect();
        let targets = vec![vec![0, 0, 0, 1, 1, 1], vec![NO_LABEL; 6]];
        let tasks = [
            TaskLabels::new("sentiment", &["positive", "negative"]),
            TaskLabels::new("reason", &["a", "b"]),
        ];
        let train = LabeledTexts {
            texts: texts.clone(),
            targets: &targets,
        };
        let valid_targets = vec![vec![0, 1], vec![NO_LABEL; 2]];
        let valid = LabeledTexts {
            texts: vec!["thanks great crew", "awful late bag"],
            targets: &valid_targets,
        };
        // A network that is always 50/50 leaves the decision to the companion.
        let flat = || -> Vec<Tensor> {
            (0..2)
                .map(|_| Tensor::full([2, 2], 0.5, (Kind::Float, Device::Cpu)))
                .collect()
        };
        let (model, report) = fit_tfidf(&config, &tasks, &train, &valid, &flat());
        let s = &report.tasks["sentiment"];
        assert_eq!(s.labeled_rows, 6);
        assert_eq!(s.valid_tfidf, Some(1.0));
        assert_eq!(s.valid_mixed, Some(1.0));
        assert_eq!(report.tasks["reason"].labeled_rows, 0);
        let probs = model.mix(flat(), &["great crew", "late bag"]);
        let p: Vec<f32> = Vec::try_from(probs[0].flatten(0, -1)).unwrap();
        assert!(p[0] > 0.5 && p[3] > 0.5, "{p:?}");
        // A task without labels keeps zero weights: its companion says 50/50.
        let r: Vec<f32> = Vec::try_from(model.probabilities(&["x y"])[1].flatten(0, -1)).unwrap();
        assert_eq!(r, [0.5, 0.5]);
    }

    #[test]
    fn a_refit_learns_from_the_held_out_rows_and_keeps_the_chosen_share() {
        let config = TfidfConfig {
            iterations: 60,
            ..Default::default()
        };
        let tasks = [TaskLabels::new("sentiment", &["positive", "negative"])];
        let texts = vec![
            "great flight thanks",
            "lovely crew",
            "late again awful",
            "lost bag",
        ];
        let targets = vec![vec![0, 0, 1, 1]];
        let train = LabeledTexts {
            texts: texts.clone(),
            targets: &targets,
        };
        // Words only the held-out rows have.
        let held_out = vec!["bonus miles bonus", "refund refund now"];
        let held_targets = vec![vec![0, 1]];
        let valid = LabeledTexts {
            texts: held_out.clone(),
            targets: &held_targets,
        };
        let network = vec![Tensor::full([2, 2], 0.5, (Kind::Float, Device::Cpu))];
        let (first, mut report) = fit_tfidf(&config, &tasks, &train, &valid, &network);
        assert!(report.refit.is_none());
        let all_targets = vec![vec![0, 0, 1, 1, 0, 1]];
        let all = LabeledTexts {
            texts: texts.iter().chain(&held_out).copied().collect(),
            targets: &all_targets,
        };
        let refit = refit_tfidf(&config, &tasks, &all, &first, &mut report);
        let r = report.refit.as_ref().expect("the refit is reported");
        assert_eq!(r.rows, 6);
        assert!(
            r.features > report.features,
            "{} vs {}",
            r.features,
            report.features
        );
        assert_eq!(refit.heads()[0].mix, first.heads()[0].mix);
        let negative = |m: &TfidfModel| -> f32 {
            let p: Vec<f32> =
                Vec::try_from(m.probabilities(&["refund"])[0].flatten(0, -1)).unwrap();
            p[1]
        };
        assert!(negative(&refit) > 0.5, "{}", negative(&refit));
        assert!(negative(&refit) > negative(&first) + 0.05);
    }

    #[test]
    fn the_mix_prefers_the_better_model_within_its_bounds() {
        let config = TfidfConfig::default();
        let labels = vec!["a".to_string(), "b".to_string()];
        let truth = [0, 1, 0, 1];
        let right = Tensor::from_slice(&[0.9f32, 0.1, 0.2, 0.8, 0.7, 0.3, 0.4, 0.6]).view([4, 2]);
        let wrong = Tensor::from_slice(&[0.4f32, 0.6, 0.7, 0.3, 0.45, 0.55, 0.6, 0.4]).view([4, 2]);
        let (mix, score) = choose_mix(&config, &wrong, &right, &truth, &labels);
        assert_eq!(score, 1.0);
        // Every share above 0.5 gets all four right; 0.6 is the nearest to 0.5.
        assert_eq!(mix, f64::from(0.6f32));
    }
}

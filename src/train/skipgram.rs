//! Skip-gram with negative sampling over subword token ids: unlabeled text in, one vector
//! per vocabulary entry out, to start the encoder's embedding matrix from.
//!
//! Follows word2vec's recipe: frequent tokens are subsampled, each center token draws a
//! window from 1 to `window`, noise tokens come from the unigram distribution to the power
//! 0.75, and the learning rate decays linearly. Each step moves only the rows it used, by
//! their gradient averaged over their uses in the batch. Pairs are built on the host once an epoch;
//! the dot products, the loss and the updates run on the device in large batches.

use crate::config::PretrainConfig;
use crate::model::losses::skipgram_loss;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What a skip-gram run did, for logs and `metrics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct SkipGramReport {
    pub tokens: usize,
    pub epochs: usize,
    pub pairs: usize,
    pub steps: usize,
    /// Mean loss per pair over the last epoch.
    pub final_loss: f64,
    pub seconds: f64,
    pub pairs_per_second: f64,
}

/// Why skip-gram could not run.
#[derive(Debug, thiserror::Error)]
pub enum SkipGramError {
    #[error("the text has too few tokens for skip-gram ({0} usable tokens; at least 100)")]
    TooLittleText(usize),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// What skip-gram learns from.
pub struct SkipGramInput<'a> {
    /// Token ids of each text.
    pub rows: &'a [Vec<i64>],
    pub vocab_size: usize,
    pub dim: i64,
    /// Ids skip-gram learns nothing about (padding and unknown): never a center, a
    /// context or a noise token.
    pub special: &'a [i64],
    pub config: &'a PretrainConfig,
    pub seed: u64,
    pub device: Device,
}

/// How many passes fit the token budget: at least one, at most `config.epochs`.
pub fn epochs_for(tokens: usize, config: &PretrainConfig) -> usize {
    (config.token_budget / tokens.max(1)).clamp(1, config.epochs.max(1))
}

/// Probability of keeping each token id (word2vec's subsampling of frequent tokens).
pub fn keep_probabilities(counts: &[u64], threshold: f64) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if c == 0 || threshold <= 0.0 {
                return 1.0;
            }
            let f = c as f64 / total as f64;
            (((f / threshold).sqrt() + 1.0) * threshold / f).min(1.0)
        })
        .collect()
}

/// One epoch's (center, context) pairs, shuffled.
pub fn epoch_pairs(
    rows: &[Vec<i64>],
    keep: &[f64],
    window: usize,
    rng: &mut StdRng,
) -> (Vec<i64>, Vec<i64>) {
    let mut centers = Vec::new();
    let mut contexts = Vec::new();
    let mut kept = Vec::new();
    for row in rows {
        kept.clear();
        kept.extend(
            row.iter()
                .copied()
                .filter(|&id| keep[id as usize] > 0.0 && rng.gen::<f64>() < keep[id as usize]),
        );
        for (i, &center) in kept.iter().enumerate() {
            let reach = rng.gen_range(1..=window);
            let lo = i.saturating_sub(reach);
            let hi = (i + reach).min(kept.len() - 1);
            for (j, &context) in kept.iter().enumerate().take(hi + 1).skip(lo) {
                if j != i {
                    centers.push(center);
                    contexts.push(context);
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..centers.len()).collect();
    order.shuffle(rng);
    (
        order.iter().map(|&i| centers[i]).collect(),
        order.iter().map(|&i| contexts[i]).collect(),
    )
}

/// Learns `[vocab_size, dim]` vectors; `on_epoch(epoch, epochs, mean loss)` after each pass.
/// How often each id occurs in `rows`; `special` ids count 0.
pub fn unigram_counts(rows: &[Vec<i64>], vocab_size: usize, special: &[i64]) -> Vec<u64> {
    let mut counts = vec![0u64; vocab_size];
    for &id in rows.iter().flatten() {
        if !special.contains(&id) {
            counts[id as usize] += 1;
        }
    }
    counts
}

pub fn skipgram(
    input: SkipGramInput,
    mut on_epoch: impl FnMut(usize, usize, f64),
) -> Result<(Tensor, SkipGramReport), SkipGramError> {
    let SkipGramInput {
        rows,
        vocab_size,
        dim,
        special,
        config,
        seed,
        device,
    } = input;
    let started = Instant::now();
    let counts = unigram_counts(rows, vocab_size, special);
    let tokens: usize = counts.iter().sum::<u64>() as usize;
    if tokens < 100 {
        return Err(SkipGramError::TooLittleText(tokens));
    }
    let mut keep = keep_probabilities(&counts, config.subsample);
    for &id in special {
        keep[id as usize] = 0.0;
    }
    let noise: Vec<f32> = counts.iter().map(|&c| (c as f32).powf(0.75)).collect();
    let noise = Tensor::from_slice(&noise).to_device(device);

    tch::manual_seed(seed as i64);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5c1a_9ba3);
    let bound = 0.5 / dim as f64;
    let options = (Kind::Float, device);
    let mut center_vectors = (Tensor::rand([vocab_size as i64, dim], options) * (2.0 * bound)
        - bound)
        .set_requires_grad(true);
    let mut context_vectors =
        Tensor::zeros([vocab_size as i64, dim], options).set_requires_grad(true);

    let epochs = epochs_for(tokens, config);
    // Planned steps, for the learning-rate decay: one epoch's pairs, as an estimate.
    let mut planned_steps = 0usize;
    let (mut steps, mut pairs, mut final_loss) = (0usize, 0usize, f64::NAN);
    for epoch in 1..=epochs {
        let (centers, contexts) = epoch_pairs(rows, &keep, config.window, &mut rng);
        if planned_steps == 0 {
            planned_steps = centers.len().div_ceil(config.batch_size).max(1) * epochs;
        }
        let mut loss_sum = 0.0;
        for (c, x) in centers
            .chunks(config.batch_size)
            .zip(contexts.chunks(config.batch_size))
        {
            let progress = (steps as f64 / planned_steps as f64).min(1.0);
            let lr = config.learning_rate * (1.0 - 0.9 * progress);
            let c = Tensor::from_slice(c).to_device(device);
            let x = Tensor::from_slice(x).to_device(device);
            let n = c.size()[0];
            let k = config.negatives as i64;
            let negatives = noise.multinomial(n * k, true);
            let loss = skipgram_loss(
                &center_vectors.index_select(0, &c),
                &context_vectors.index_select(0, &x),
                &context_vectors
                    .index_select(0, &negatives)
                    .view([n, k, dim]),
            );
            loss.backward();
            row_averaged_step(&mut center_vectors, &c, lr);
            row_averaged_step(&mut context_vectors, &Tensor::cat(&[x, negatives], 0), lr);
            loss_sum += loss.double_value(&[]);
            steps += 1;
        }
        pairs += centers.len();
        final_loss = loss_sum / centers.len().max(1) as f64;
        on_epoch(epoch, epochs, final_loss);
    }
    let vectors = tch::no_grad(|| center_vectors.detach().copy());
    let seconds = started.elapsed().as_secs_f64();
    Ok((
        vectors.to_kind(Kind::Float),
        SkipGramReport {
            tokens,
            epochs,
            pairs,
            steps,
            final_loss,
            seconds,
            pairs_per_second: pairs as f64 / seconds.max(1e-9),
        },
    ))
}

/// Apply `table`'s gradient to the rows a step `used` (repeats allowed), each row's
/// gradient averaged over its uses in the batch, then clear it. So every row moves by one
/// word2vec-sized step a batch however often it occurs, and a row outside the batch does
/// not move at all. (Dense Adam collapses skip-gram vectors onto one direction: its
/// momentum keeps moving unused rows, and its per-coordinate steps favour the direction
/// every row shares; a plain summed gradient diverges on frequent tokens.)
fn row_averaged_step(table: &mut Tensor, used: &Tensor, lr: f64) {
    tch::no_grad(|| {
        let (rows, _) = used.internal_unique(false, false);
        let mut grad = table.grad();
        let uses = used
            .bincount::<Tensor>(None, table.size()[0])
            .index_select(0, &rows)
            .to_kind(Kind::Float)
            .clamp_min(1.0)
            .unsqueeze(1);
        let step = grad.index_select(0, &rows) / uses * (-lr);
        let _ = table.index_add_(0, &rows, &step);
        let _ = grad.zero_();
    });
}

/// `vectors` centred (the mean vector removed: skip-gram vectors share one large common
/// direction, which carries no meaning; "all-but-the-top", Mu & Viswanath 2018), then every
/// row rescaled to the norm a random `N(0, std²)` row has on average (`std·√dim`), so rare
/// tokens, whose vectors skip-gram barely moved, are as usable as in a random start
/// (std 0: unchanged).
pub fn rescale(vectors: &Tensor, std: f64) -> Tensor {
    if std <= 0.0 {
        return vectors.shallow_clone();
    }
    let dim = vectors.size()[1] as f64;
    let centred = vectors - vectors.mean_dim([0].as_slice(), true, Kind::Float);
    let norms = centred
        .norm_scalaropt_dim(2, [1].as_slice(), true)
        .clamp_min(1e-12);
    centred / norms * (std * dim.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsampling_keeps_rare_tokens_and_drops_frequent_ones() {
        let keep = keep_probabilities(&[0, 1, 1_000_000], 1e-4);
        assert_eq!(keep[0], 1.0);
        assert_eq!(keep[1], 1.0);
        // f ≈ 1: (sqrt(1e-4) + 1e-4) ≈ 0.0101.
        assert!((keep[2] - 0.0101).abs() < 1e-3, "{}", keep[2]);
    }

    #[test]
    fn pairs_stay_inside_the_window_and_skip_dropped_tokens() {
        let rows = vec![vec![2, 3, 4, 5, 6, 7]];
        let mut keep = vec![1.0; 8];
        keep[4] = 0.0;
        let mut rng = StdRng::seed_from_u64(1);
        let (c, x) = epoch_pairs(&rows, &keep, 2, &mut rng);
        assert!(!c.is_empty());
        let kept = [2, 3, 5, 6, 7];
        for (a, b) in c.iter().zip(&x) {
            assert!(*a != 4 && *b != 4);
            let pa = kept.iter().position(|k| k == a).unwrap() as i64;
            let pb = kept.iter().position(|k| k == b).unwrap() as i64;
            assert!(pa != pb && (pa - pb).abs() <= 2, "{a} {b}");
        }
    }

    #[test]
    fn rescaled_rows_are_centred_and_all_have_the_norm_of_a_random_row() {
        // Two vectors that differ only around a shared offset point opposite ways once
        // the offset (the mean) is gone.
        let shared = Tensor::from_slice(&[10.0f32, 1.0, 10.0, -1.0]).view([2, 2]);
        let r = rescale(&shared, 0.5);
        let cos = r.get(0).dot(&r.get(1)) / (r.get(0).norm() * r.get(1).norm());
        assert!(cos.double_value(&[]) < -0.99, "{cos}");
        let v = Tensor::from_slice(&[3.0f32, 4.0, 1.0, 0.01, 5.0, 5.0]).view([3, 2]);
        let norms = rescale(&v, 0.5).norm_scalaropt_dim(2, [1].as_slice(), false);
        let expected = 0.5 * 2f64.sqrt();
        for i in 0..3 {
            assert!((norms.double_value(&[i]) - expected).abs() < 1e-5);
        }
    }

    fn cosine(m: &Tensor, a: i64, b: i64) -> f64 {
        let (x, y) = (m.get(a), m.get(b));
        (x.dot(&y) / (x.norm() * y.norm())).double_value(&[])
    }

    #[test]
    fn tokens_that_share_contexts_end_up_closer_than_tokens_that_never_meet() {
        // Two topics: ids 2..12 only ever appear with each other, ids 12..22 likewise.
        let mut rng = StdRng::seed_from_u64(3);
        let rows: Vec<Vec<i64>> = (0..400)
            .map(|i| {
                let base = if i % 2 == 0 { 2 } else { 12 };
                (0..12).map(|_| base + rng.gen_range(0..10)).collect()
            })
            .collect();
        let config = PretrainConfig {
            subsample: 0.0,
            ..Default::default()
        };
        let (m, report) = skipgram(
            SkipGramInput {
                rows: &rows,
                vocab_size: 22,
                dim: 16,
                special: &[0, 1],
                config: &config,
                seed: 5,
                device: Device::Cpu,
            },
            |_, _, _| {},
        )
        .unwrap();
        let same: f64 = (3..12).map(|b| cosine(&m, 2, b)).sum::<f64>() / 9.0;
        let other: f64 = (12..22).map(|b| cosine(&m, 2, b)).sum::<f64>() / 10.0;
        assert!(
            same > other + 0.3,
            "same topic {same:.3}, other topic {other:.3}"
        );
        assert!(report.final_loss.is_finite());
    }

    #[test]
    fn epochs_shrink_for_large_text() {
        let config = PretrainConfig::default();
        assert_eq!(epochs_for(1000, &config), config.epochs);
        assert_eq!(epochs_for(config.token_budget, &config), 1);
        assert_eq!(epochs_for(config.token_budget * 10, &config), 1);
    }
}

//! Language-model pretraining of the BiLSTM (Dai & Le, 2015; Howard & Ruder, 2018): at each
//! position the forward LSTM's state predicts the next token and the backward LSTM's the
//! previous one. Each prediction is scored by a sampled softmax (Jean et al., 2015): the true
//! token against `lm_samples` noise tokens drawn once per batch from the unigram
//! distribution to the power 0.75, every logit corrected by the log of its expected count
//! under the sampler, noise that happens to be the true token left out. The output layer
//! lives in its own variable store and is dropped at the end: only the embedding and the
//! LSTMs are kept.

use super::skipgram::unigram_counts;
use super::TrainError;
use crate::config::PretrainConfig;
use crate::model::encoder::{BiLstm, TokenBatch};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use std::time::Instant;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// What the language-model pass did, saved in the encoder's `metrics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct LmReport {
    pub epochs: usize,
    pub steps: usize,
    /// Texts read, over every epoch.
    pub sequences: usize,
    /// Mean sampled-softmax loss (both directions) of the first and the last epoch. With
    /// the sampler's correction it estimates the full softmax's cross-entropy, so
    /// `ln(vocabulary size)` is what a model that knows nothing scores.
    pub first_epoch_loss: f64,
    pub final_loss: f64,
    pub seconds: f64,
    pub sequences_per_second: f64,
}

/// The text and the parts of the encoder the language model trains.
pub struct LmInput<'a> {
    /// Token ids of each text.
    pub rows: &'a [Vec<i64>],
    pub vocab_size: i64,
    /// Ids never predicted nor sampled (padding, unknown).
    pub special: &'a [i64],
    pub hidden: i64,
    pub dropout: f64,
    pub config: &'a PretrainConfig,
    pub grad_clip: f64,
    pub seed: u64,
    pub device: Device,
}

/// The output layer: one row of weights and a bias per vocabulary entry, per direction.
struct OutputLayer {
    forward: (Tensor, Tensor),
    backward: (Tensor, Tensor),
}

impl OutputLayer {
    fn new(vs: &nn::Path, vocab: i64, hidden: i64) -> OutputLayer {
        let layer = |name: &str| {
            let p = vs / name;
            (
                p.var("weight", &[vocab, hidden], nn::Init::Const(0.0)),
                p.var("bias", &[vocab], nn::Init::Const(0.0)),
            )
        };
        OutputLayer {
            forward: layer("forward"),
            backward: layer("backward"),
        }
    }
}

/// Trains `embedding` and `lstm` (both in `encoder_vs`) as a forward and a backward
/// language model over `input.rows`.
pub fn pretrain_lstm(
    encoder_vs: &nn::VarStore,
    embedding: &nn::Embedding,
    lstm: &BiLstm,
    input: LmInput,
    mut on_epoch: impl FnMut(usize, usize, f64),
) -> Result<LmReport, TrainError> {
    let started = Instant::now();
    let config = input.config;
    let log_expected = noise_log_expected_counts(&input);
    let noise = log_expected.exp();
    let output_vs = nn::VarStore::new(input.device);
    let output = OutputLayer::new(&output_vs.root(), input.vocab_size, input.hidden);
    let adam = nn::Adam::default();
    let optimizer = |vs: &nn::VarStore| {
        adam.build(vs, config.lm_learning_rate)
            .map_err(|e| TrainError::Data(format!("cannot build the optimizer: {e}")))
    };
    let mut encoder_opt = optimizer(encoder_vs)?;
    let mut output_opt = optimizer(&output_vs)?;
    let mut order: Vec<usize> = (0..input.rows.len())
        .filter(|&i| input.rows[i].len() >= 2)
        .collect();
    if order.is_empty() {
        return Err(TrainError::Data(
            "no text is two tokens long: nothing for a language model to predict".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(input.seed ^ 0x1a9e_0de1);
    let (mut steps, mut sequences) = (0, 0);
    let (mut first_epoch_loss, mut final_loss) = (f64::NAN, f64::NAN);
    for epoch in 1..=config.lm_epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        for chunk in order.chunks(config.lm_batch_size.max(1)) {
            let rows: Vec<&[i64]> = chunk.iter().map(|&i| input.rows[i].as_slice()).collect();
            let batch = TokenBatch::new(&rows, input.device);
            let samples = noise.multinomial(config.lm_samples as i64, true);
            let loss = lm_loss(
                embedding,
                lstm,
                &output,
                &batch,
                &samples,
                &log_expected,
                input.dropout,
            );
            encoder_opt.zero_grad();
            output_opt.zero_grad();
            loss.backward();
            encoder_opt.clip_grad_norm(input.grad_clip);
            output_opt.clip_grad_norm(input.grad_clip);
            encoder_opt.step();
            output_opt.step();
            loss_sum += loss.double_value(&[]);
            batches += 1;
            steps += 1;
            sequences += rows.len();
        }
        final_loss = loss_sum / batches.max(1) as f64;
        if epoch == 1 {
            first_epoch_loss = final_loss;
        }
        on_epoch(epoch, config.lm_epochs, final_loss);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(LmReport {
        epochs: config.lm_epochs,
        steps,
        sequences,
        first_epoch_loss,
        final_loss,
        seconds,
        sequences_per_second: sequences as f64 / seconds.max(1e-9),
    })
}

/// `log(lm_samples · q(id))` for every id, `q` the unigram distribution to the power 0.75
/// (special ids get a vanishing share, so they are never drawn).
fn noise_log_expected_counts(input: &LmInput) -> Tensor {
    let counts = unigram_counts(input.rows, input.vocab_size as usize, input.special);
    let weights: Vec<f32> = counts
        .iter()
        .map(|&c| (c as f32).powf(0.75) + 1e-12)
        .collect();
    let total: f32 = weights.iter().sum();
    let k = input.config.lm_samples as f32;
    let log_expected: Vec<f32> = weights.iter().map(|w| (k * w / total).ln()).collect();
    Tensor::from_slice(&log_expected).to_device(input.device)
}

/// The mean sampled-softmax loss of both directions over one batch.
fn lm_loss(
    embedding: &nn::Embedding,
    lstm: &BiLstm,
    output: &OutputLayer,
    batch: &TokenBatch,
    samples: &Tensor,
    log_expected: &Tensor,
    dropout: f64,
) -> Tensor {
    let mask = batch.mask();
    let embedded = (embedding.forward(&batch.ids) * mask.unsqueeze(-1)).dropout(dropout, true);
    let (forward_states, backward_states) = lstm.states(&embedded, &batch.lengths);
    let time = batch.ids.size()[1];
    // Position t + 1 is real only if t is, so its mask marks the pairs to score.
    let pairs = mask.narrow(1, 1, time - 1);
    // The forward state at t predicts token t + 1; the backward state at t + 1 predicts t.
    let (earlier, later) = (
        batch.ids.narrow(1, 0, time - 1),
        batch.ids.narrow(1, 1, time - 1),
    );
    let directions = [
        (
            forward_states.narrow(1, 0, time - 1),
            later,
            &output.forward,
        ),
        (
            backward_states.narrow(1, 1, time - 1),
            earlier,
            &output.backward,
        ),
    ];
    let losses: Vec<Tensor> = directions
        .iter()
        .map(|(states, targets, layer)| {
            sampled_softmax_loss(states, targets, &pairs, layer, samples, log_expected)
        })
        .collect();
    (&losses[0] + &losses[1]) / 2.0
}

/// Cross-entropy of the true token against the sampled ones, for the states `[batch, time,
/// hidden]` whose `valid` entry is set.
fn sampled_softmax_loss(
    states: &Tensor,
    targets: &Tensor,
    valid: &Tensor,
    (weight, bias): &(Tensor, Tensor),
    samples: &Tensor,
    log_expected: &Tensor,
) -> Tensor {
    let hidden = states.size()[2];
    let keep = valid.reshape([-1]).nonzero().squeeze_dim(-1);
    let h = states.reshape([-1, hidden]).index_select(0, &keep);
    let targets = targets.reshape([-1]).index_select(0, &keep);
    let true_logit =
        (&h * weight.index_select(0, &targets)).sum_dim_intlist([1].as_slice(), false, Kind::Float)
            + bias.index_select(0, &targets)
            - log_expected.index_select(0, &targets);
    let sample_logits = h.mm(&weight.index_select(0, samples).tr()) + bias.index_select(0, samples)
        - log_expected.index_select(0, samples);
    let hits = targets.unsqueeze(1).eq_tensor(&samples.unsqueeze(0));
    let sample_logits = sample_logits.masked_fill(&hits, -1e9);
    let logits = Tensor::cat(&[true_logit.unsqueeze(1), sample_logits], 1);
    let zeros = Tensor::zeros([logits.size()[0]], (Kind::Int64, logits.device()));
    logits.cross_entropy_for_logits(&zeros)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny language: every text counts up from a random start, so the next token is
    /// always the previous one plus one and the previous always minus one.
    fn counting_rows(n: usize, seed: u64) -> Vec<Vec<i64>> {
        use rand::Rng;
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let start = rng.gen_range(2..40i64);
                let len = rng.gen_range(3..12i64);
                (start..start + len).collect()
            })
            .collect()
    }

    #[test]
    fn the_lstm_learns_to_predict_both_neighbours_of_a_token() {
        tch::manual_seed(7);
        let rows = counting_rows(400, 3);
        let config = PretrainConfig {
            lm_epochs: 6,
            lm_samples: 20,
            lm_batch_size: 32,
            lm_learning_rate: 0.01,
            ..PretrainConfig::default()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root() / "encoder";
        let embedding = nn::embedding(&root / "embedding", 60, 16, Default::default());
        let lstm = BiLstm::new(&root, 16, 32);
        let lstm_start = vs.variables()["encoder.lstm_forward.weight_ih_l0"].copy();
        let report = pretrain_lstm(
            &vs,
            &embedding,
            &lstm,
            LmInput {
                rows: &rows,
                vocab_size: 60,
                special: &[0, 1],
                hidden: 32,
                dropout: 0.0,
                config: &config,
                grad_clip: 5.0,
                seed: 7,
                device: Device::Cpu,
            },
            |_, _, _| {},
        )
        .unwrap();
        let know_nothing = 60f64.ln();
        assert!(
            report.first_epoch_loss < know_nothing * 1.2,
            "{report:?} against {know_nothing}"
        );
        assert!(
            report.final_loss < 0.25 * know_nothing,
            "a counting language is easy: {report:?}"
        );
        assert_eq!(report.sequences, 400 * 6);
        let lstm_end = &vs.variables()["encoder.lstm_forward.weight_ih_l0"];
        assert!(
            !lstm_end.equal(&lstm_start),
            "the LSTM weights were trained"
        );
        assert_eq!(
            vs.variables().len(),
            9,
            "only the embedding and the two LSTMs are in the encoder's store"
        );
    }

    #[test]
    fn text_too_short_to_predict_anything_is_an_error() {
        let config = PretrainConfig::default();
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root() / "encoder";
        let embedding = nn::embedding(&root / "embedding", 10, 4, Default::default());
        let lstm = BiLstm::new(&root, 4, 4);
        let err = pretrain_lstm(
            &vs,
            &embedding,
            &lstm,
            LmInput {
                rows: &[vec![3], vec![4]],
                vocab_size: 10,
                special: &[0, 1],
                hidden: 4,
                dropout: 0.0,
                config: &config,
                grad_clip: 5.0,
                seed: 1,
                device: Device::Cpu,
            },
            |_, _, _| {},
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("two tokens"), "{err}");
    }
}

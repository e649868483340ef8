//! The shared text encoder: token ids in, one feature vector per text out.
//!
//! Padding never changes a text's features: padded embeddings are zeroed, convolution
//! outputs that only a longer text would have are masked before pooling, and the
//! backward LSTM reads each text reversed within its own length. So a text gets the same
//! features alone as in any batch.

use super::ngram::NgramBag;
use crate::config::ModelConfig;
use tch::nn::{self, Module, RNN};
use tch::{Kind, Tensor};

/// The optimiser group of the embedding matrix.
pub const EMBEDDING_GROUP: usize = 1;
/// The optimiser group of the BiLSTM (every weight not in a named group is in group 0).
pub const LSTM_GROUP: usize = 2;

/// Token ids `[batch, time]` (padded with 0) and each row's real length `[batch]`.
pub struct TokenBatch {
    pub ids: Tensor,
    pub lengths: Tensor,
}

impl TokenBatch {
    /// Pads `rows` to the longest one, on `device`.
    pub fn new(rows: &[&[i64]], device: tch::Device) -> TokenBatch {
        let width = rows.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
        let mut flat = vec![super::tokenizer::PAD_ID; rows.len() * width];
        for (i, row) in rows.iter().enumerate() {
            flat[i * width..i * width + row.len()].copy_from_slice(row);
        }
        let lengths: Vec<i64> = rows.iter().map(|r| r.len().max(1) as i64).collect();
        TokenBatch {
            ids: Tensor::from_slice(&flat)
                .view([rows.len() as i64, width as i64])
                .to_device(device),
            lengths: Tensor::from_slice(&lengths).to_device(device),
        }
    }

    /// `[batch, time]` true where a position holds a real token.
    pub(crate) fn mask(&self) -> Tensor {
        let time = self.ids.size()[1];
        Tensor::arange(time, (Kind::Int64, self.ids.device()))
            .unsqueeze(0)
            .lt_tensor(&self.lengths.unsqueeze(1))
    }
}

struct Cnn {
    convs: Vec<(i64, nn::Conv1D)>,
}

/// A forward and a backward LSTM over the same embeddings (`lstm_forward`, `lstm_backward`
/// under the encoder's path), the backward one reading each text reversed within its own
/// length.
pub struct BiLstm {
    forward: nn::LSTM,
    backward: nn::LSTM,
}

/// Embedding plus the configured CNN and/or BiLSTM branch, and the n-gram branch.
pub struct Encoder {
    embedding: nn::Embedding,
    cnn: Option<Cnn>,
    lstm: Option<BiLstm>,
    ngrams: Option<NgramBag>,
    dropout: f64,
    output_dim: i64,
}

impl Encoder {
    pub fn new(vs: &nn::Path, config: &ModelConfig, vocab_size: i64) -> Encoder {
        // Small initial embeddings keep the first logits near zero; N(0, 1) (the
        // default) makes conv features, and the first losses, several times too large.
        let embedding_config = nn::EmbeddingConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 0.1,
            },
            ..Default::default()
        };
        // In its own optimiser group, so pretrained vectors can fine-tune more gently.
        let embedding = nn::embedding(
            vs.set_group(EMBEDDING_GROUP) / "embedding",
            vocab_size,
            config.embedding_dim,
            embedding_config,
        );
        let mut output_dim = 0;
        let cnn = config.encoder.has_cnn().then(|| {
            let convs = config
                .cnn_widths
                .iter()
                .map(|&w| {
                    let conv_config = nn::ConvConfig {
                        padding: w - 1,
                        ..Default::default()
                    };
                    let conv = nn::conv1d(
                        vs / format!("conv{w}"),
                        config.embedding_dim,
                        config.cnn_filters,
                        w,
                        conv_config,
                    );
                    (w, conv)
                })
                .collect::<Vec<_>>();
            output_dim += config.cnn_filters * convs.len() as i64;
            Cnn { convs }
        });
        let lstm = config.encoder.has_lstm().then(|| {
            output_dim += 4 * config.lstm_hidden;
            // In its own group, so an LSTM pretrained as a language model can fine-tune
            // more gently than the freshly initialised layers above it.
            BiLstm::new(
                &vs.set_group(LSTM_GROUP),
                config.embedding_dim,
                config.lstm_hidden,
            )
        });
        let ngrams = config.ngrams.enabled.then(|| {
            let bag = NgramBag::new(&(vs / "ngrams"), &config.ngrams, vocab_size);
            output_dim += bag.output_dim();
            bag
        });
        Encoder {
            embedding,
            cnn,
            lstm,
            ngrams,
            dropout: config.dropout,
            output_dim,
        }
    }

    /// The n-gram branch, when the model has one.
    pub fn ngrams(&self) -> Option<&NgramBag> {
        self.ngrams.as_ref()
    }

    /// Width of the feature vector [`Encoder::forward_t`] returns.
    pub fn output_dim(&self) -> i64 {
        self.output_dim
    }

    /// `[batch, output_dim]` features; dropout only when `train`.
    pub fn forward_t(&self, batch: &TokenBatch, train: bool) -> Tensor {
        let embedded = self.embed_t(batch, train);
        self.encode_t(&embedded, batch, train)
    }

    /// First stage: `[batch, time, embedding_dim]` embeddings, zero at padding.
    pub fn embed_t(&self, batch: &TokenBatch, train: bool) -> Tensor {
        let embedded = self.embedding.forward(&batch.ids) * batch.mask().unsqueeze(-1);
        embedded.dropout(self.dropout, train)
    }

    /// Second stage: the branches over (possibly mixed) embeddings, pooled and concatenated.
    pub fn encode_t(&self, embedded: &Tensor, batch: &TokenBatch, train: bool) -> Tensor {
        let mut parts = Vec::new();
        if let Some(cnn) = &self.cnn {
            parts.push(cnn.forward(embedded, &batch.lengths));
        }
        if let Some(lstm) = &self.lstm {
            parts.push(lstm.forward(embedded, &batch.lengths, &batch.mask()));
        }
        if let Some(ngrams) = &self.ngrams {
            parts.push(ngrams.forward_t(batch, train));
        }
        Tensor::cat(&parts, 1)
    }
}

impl Cnn {
    fn forward(&self, embedded: &Tensor, lengths: &Tensor) -> Tensor {
        let x = embedded.transpose(1, 2);
        let pooled: Vec<Tensor> = self
            .convs
            .iter()
            .map(|(w, conv)| {
                let out = conv.forward(&x).relu();
                // With padding w-1 a text of length L has L+w-1 output positions.
                let positions = out.size()[2];
                let valid = Tensor::arange(positions, (Kind::Int64, out.device()))
                    .unsqueeze(0)
                    .lt_tensor(&(lengths + (*w - 1)).unsqueeze(1));
                // ReLU outputs are >= 0, so zeroing the extra positions leaves the max as is.
                (out * valid.unsqueeze(1)).amax([2].as_slice(), false)
            })
            .collect();
        Tensor::cat(&pooled, 1)
    }
}

impl BiLstm {
    /// Both LSTMs under `vs` (the encoder's path), `input_dim` wide in, `hidden` out.
    pub fn new(vs: &nn::Path, input_dim: i64, hidden: i64) -> BiLstm {
        let rnn_config = nn::RNNConfig {
            batch_first: true,
            ..Default::default()
        };
        BiLstm {
            forward: nn::lstm(vs / "lstm_forward", input_dim, hidden, rnn_config),
            backward: nn::lstm(vs / "lstm_backward", input_dim, hidden, rnn_config),
        }
    }

    /// Each position's states `[batch, time, hidden]`: the forward LSTM's after reading
    /// tokens `0..=t`, and the backward LSTM's after reading tokens `t..len` (put back in
    /// the text's order). Positions past a row's length hold nothing meaningful.
    pub fn states(&self, embedded: &Tensor, lengths: &Tensor) -> (Tensor, Tensor) {
        let (forward_out, _) = self.forward.seq(embedded);
        let reverse = reverse_index(lengths, embedded.size()[1]);
        let gather_index = reverse.unsqueeze(-1).expand_as(embedded);
        let reversed = embedded.gather(1, &gather_index, false);
        let (backward_rev, _) = self.backward.seq(&reversed);
        let hidden_index = reverse.unsqueeze(-1).expand_as(&backward_rev);
        let backward_out = backward_rev.gather(1, &hidden_index, false);
        (forward_out, backward_out)
    }

    fn forward(&self, embedded: &Tensor, lengths: &Tensor, mask: &Tensor) -> Tensor {
        let (forward_out, backward_out) = self.states(embedded, lengths);
        let out = Tensor::cat(&[forward_out, backward_out], 2);
        let mask3 = mask.unsqueeze(-1);
        let max = out
            .masked_fill(&mask3.logical_not(), -1e4)
            .amax([1].as_slice(), false);
        let mean = (&out * &mask3).sum_dim_intlist([1].as_slice(), false, Kind::Float)
            / lengths.unsqueeze(1).to_kind(Kind::Float);
        Tensor::cat(&[max, mean], 1)
    }
}

/// For each row, positions `0..len` map to `len-1..0` and padding maps to itself.
fn reverse_index(lengths: &Tensor, time: i64) -> Tensor {
    let positions = Tensor::arange(time, (Kind::Int64, lengths.device())).unsqueeze(0);
    let lengths = lengths.unsqueeze(1);
    let reversed = &lengths - 1 - &positions;
    reversed.where_self(
        &positions.lt_tensor(&lengths),
        &positions.expand_as(&reversed),
    )
}

//! The wide n-gram branch beside the CNN/LSTM (Joulin et al. 2016, "Bag of Tricks"): every
//! token 1-gram up to `max_order`-gram of a text is hashed into one of `buckets` rows of an
//! embedding table, and the rows are averaged into one vector per text. Its features join
//! the encoder's, so the heads can always fall back on a linear n-gram model.
//!
//! The n-grams are taken over the subword token ids, not the raw characters: the tokenizer
//! already splits rare words into pieces, so a piece bigram inside a word plays the part of
//! a character n-gram, and nothing beyond the token ids needs to reach the model. The hash
//! is plain integer arithmetic on those ids: the same in every process and on every device.

use super::encoder::TokenBatch;
use crate::config::NgramConfig;
use std::cell::RefCell;
use tch::nn;
use tch::{Kind, Tensor};

/// Odd multipliers, one per position in an n-gram, and one per order.
const POSITION_PRIMES: [i64; 4] = [1_000_003, 999_983, 1_000_033, 999_979];
const ORDER_PRIME: i64 = 1_048_573;

/// Bucket ids `[batch, time - n + 1]` of the `n`-grams of `ids`, and a mask of the ones
/// that lie inside each row's real length. Token ids stay far below 2^20, so the sums
/// stay far below 2^63: no overflow anywhere.
pub fn bucket_ids(ids: &Tensor, lengths: &Tensor, n: i64, buckets: i64) -> (Tensor, Tensor) {
    let time = ids.size()[1];
    let width = time - n + 1;
    let mut hash = Tensor::full(
        [ids.size()[0], width],
        n * ORDER_PRIME,
        (Kind::Int64, ids.device()),
    );
    for k in 0..n {
        hash += ids.narrow(1, k, width) * POSITION_PRIMES[k as usize % POSITION_PRIMES.len()];
    }
    let end = Tensor::arange(width, (Kind::Int64, ids.device())).unsqueeze(0) + (n - 1);
    let valid = end.lt_tensor(&lengths.unsqueeze(1));
    (hash.remainder(buckets), valid)
}

/// One forward pass's table rows, to be updated after the backward pass: `rows` are the
/// bucket ids, `values` the leaf tensor whose gradient holds their updates.
pub struct UsedRows {
    pub rows: Tensor,
    pub values: Tensor,
}

pub struct NgramBag {
    /// `[buckets, dim]`, saved with the model but left out of the main optimiser: a dense
    /// optimiser over a million rows per step would cost more than the rest of the model.
    /// Training updates only the rows a step used (see `train::sparse_adam`).
    table: Tensor,
    config: NgramConfig,
    used: RefCell<Vec<UsedRows>>,
}

impl NgramBag {
    pub fn new(vs: &nn::Path, config: &NgramConfig) -> NgramBag {
        let table = vs.zeros_no_train("table", &[config.buckets, config.dim]);
        tch::no_grad(|| {
            let _ = table.shallow_clone().normal_(0.0, 0.1);
        });
        NgramBag {
            table,
            config: config.clone(),
            used: RefCell::new(Vec::new()),
        }
    }

    pub fn output_dim(&self) -> i64 {
        self.config.dim
    }

    /// The hashed table (its rows are trained through [`NgramBag::take_used_rows`]).
    pub fn table(&self) -> Tensor {
        self.table.shallow_clone()
    }

    /// The rows the training passes since the last call looked up, with their gradients
    /// once the backward pass ran.
    pub fn take_used_rows(&self) -> Vec<UsedRows> {
        std::mem::take(&mut self.used.borrow_mut())
    }

    /// `[batch, dim]`: the mean row over every n-gram of each text. In training the rows
    /// are looked up through a small leaf tensor that collects their gradient.
    pub fn forward_t(&self, batch: &TokenBatch, train: bool) -> Tensor {
        let time = batch.ids.size()[1];
        let rows = batch.ids.size()[0];
        let mut ids = Vec::new();
        let mut masks = Vec::new();
        for n in 1..=self.config.max_order.min(time) {
            let (buckets, valid) = bucket_ids(&batch.ids, &batch.lengths, n, self.config.buckets);
            ids.push(buckets);
            masks.push(valid);
        }
        let ids = Tensor::cat(&ids, 1);
        let valid = Tensor::cat(&masks, 1).to_kind(Kind::Float).unsqueeze(-1);
        let vectors = if train {
            let (unique, inverse) = ids.flatten(0, -1).internal_unique(false, true);
            let values = self
                .table
                .index_select(0, &unique)
                .detach()
                .set_requires_grad(true);
            let looked_up = values.index_select(0, &inverse);
            self.used.borrow_mut().push(UsedRows {
                rows: unique,
                values,
            });
            looked_up.view([rows, -1, self.config.dim])
        } else {
            self.table
                .index_select(0, &ids.flatten(0, -1))
                .view([rows, -1, self.config.dim])
        };
        let sum = (vectors * &valid).sum_dim_intlist([1].as_slice(), false, Kind::Float);
        let count = valid.sum_dim_intlist([1].as_slice(), false, Kind::Float);
        sum / count.clamp_min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_fixed_numbers_and_padding_is_masked() {
        let ids = Tensor::from_slice(&[5i64, 7, 9, 0]).view([1, 4]);
        let lengths = Tensor::from_slice(&[3i64]);
        let (b, valid) = bucket_ids(&ids, &lengths, 2, 1 << 20);
        // By hand: 2·1048573 + 5·1000003 + 7·999983 = 14097042, mod 2^20 = 465554.
        assert_eq!(b.int64_value(&[0, 0]), 465_554);
        let valid: Vec<bool> = Vec::try_from(valid.flatten(0, -1)).unwrap();
        assert_eq!(valid, vec![true, true, false]);
    }

    #[test]
    fn a_text_gets_the_same_vector_alone_and_padded_in_a_batch() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let config = NgramConfig {
            buckets: 1000,
            dim: 4,
            ..NgramConfig::default()
        };
        let bag = NgramBag::new(&vs.root(), &config);
        let short: &[i64] = &[3, 4];
        let long: &[i64] = &[3, 4, 5, 6, 7];
        let alone = bag.forward_t(&TokenBatch::new(&[short], tch::Device::Cpu), false);
        let both = bag.forward_t(&TokenBatch::new(&[long, short], tch::Device::Cpu), true);
        let diff = (alone.get(0) - both.get(1)).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
        // Training looked the rows up through a leaf that collects their gradient.
        both.sum(Kind::Float).backward();
        let used = bag.take_used_rows();
        assert_eq!(used.len(), 1);
        // At least the 5 + 4 + 3 distinct n-grams of the long text (padding adds a few
        // masked ones, which get no gradient).
        assert!(used[0].rows.size()[0] >= 12);
        assert!(
            used[0]
                .values
                .grad()
                .abs()
                .sum(Kind::Float)
                .double_value(&[])
                > 0.0
        );
        assert!(bag.take_used_rows().is_empty());
    }
}

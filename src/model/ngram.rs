//! The wide n-gram branch beside the CNN/LSTM (Joulin et al. 2016, "Bag of Tricks"): every
//! token 1-gram up to `max_order`-gram of a text is hashed into one of `buckets` rows of an
//! embedding table, and the rows are averaged into one vector per text. Its features join
//! the encoder's, so the heads can always fall back on a linear n-gram model.
//!
//! The token n-grams are taken over the subword token ids, and the hash is plain integer
//! arithmetic on those ids: the same in every process and on every device. Character
//! n-grams (`char_min`..=`char_max`, as TF-IDF char 2–5-grams and fastText's subwords) are
//! taken inside each vocabulary entry: a word-initial entry `delay` is read as `<delay`, a
//! continuation `##ed` as `ed`. Their bucket ids depend only on the vocabulary, so they are
//! computed once per vocabulary into a `[vocab, char_per_token]` table (`char_buckets`,
//! saved with the weights, -1 where an entry has fewer n-grams) and looked up by token id.
//! A text's feature vector is the mean row of its token n-grams plus the mean row of its
//! character n-grams.

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

/// FNV-1a (64 bit) of `bytes`: fixed arithmetic, the same in every process.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The bucket ids of the character n-grams of one vocabulary entry, shorter n-grams first,
/// at most `config.char_per_token` of them. `special` entries (padding, unknown, tags) have
/// none.
pub fn char_buckets(piece: &str, special: bool, config: &NgramConfig) -> Vec<i64> {
    if special || !config.chars() {
        return Vec::new();
    }
    let chars: Vec<char> = match piece.strip_prefix("##") {
        Some(rest) => rest.chars().collect(),
        None => std::iter::once('<').chain(piece.chars()).collect(),
    };
    let mut out = Vec::new();
    let mut gram = String::new();
    for n in config.char_min as usize..=config.char_max as usize {
        for window in chars.windows(n) {
            if out.len() as i64 >= config.char_per_token {
                return out;
            }
            gram.clear();
            gram.push('\u{1}'); // keeps "ab" as a character gram apart from other hashes
            gram.extend(window);
            out.push((fnv1a(gram.as_bytes()) % config.buckets as u64) as i64);
        }
    }
    out
}

/// `[pieces, char_per_token]` bucket ids of every vocabulary entry's character n-grams,
/// -1 in the unused places. `pieces[i]` is entry `i` and whether it is special.
pub fn char_bucket_table(pieces: &[(String, bool)], config: &NgramConfig) -> Tensor {
    let width = config.char_per_token.max(1) as usize;
    let mut flat = vec![-1i64; pieces.len() * width];
    for (i, (piece, special)) in pieces.iter().enumerate() {
        for (j, b) in char_buckets(piece, *special, config)
            .into_iter()
            .enumerate()
        {
            flat[i * width + j] = b;
        }
    }
    Tensor::from_slice(&flat).view([pieces.len() as i64, width as i64])
}

pub struct NgramBag {
    /// `[buckets, dim]`, saved with the model but left out of the main optimiser: a dense
    /// optimiser over a million rows per step would cost more than the rest of the model.
    /// Training updates only the rows a step used (see `train::sparse_adam`).
    table: Tensor,
    /// `[vocab, char_per_token]` character n-gram buckets per token id (see
    /// [`char_bucket_table`]); `None` without character n-grams.
    char_buckets: Option<Tensor>,
    config: NgramConfig,
    used: RefCell<Vec<UsedRows>>,
}

impl NgramBag {
    /// The table under `vs`, and for character n-grams a `char_buckets` tensor of
    /// `vocab_size` rows, all -1 until [`NgramBag::set_vocabulary`] fills it (loading a
    /// saved version fills it from the weights file instead).
    pub fn new(vs: &nn::Path, config: &NgramConfig, vocab_size: i64) -> NgramBag {
        let table = vs.zeros_no_train("table", &[config.buckets, config.dim]);
        tch::no_grad(|| {
            let _ = table.shallow_clone().normal_(0.0, 0.1);
        });
        let char_buckets = config.chars().then(|| {
            let empty = Tensor::full(
                [vocab_size, config.char_per_token],
                -1,
                (Kind::Int64, vs.device()),
            );
            vs.add("char_buckets", empty, false)
        });
        NgramBag {
            table,
            char_buckets,
            config: config.clone(),
            used: RefCell::new(Vec::new()),
        }
    }

    pub fn output_dim(&self) -> i64 {
        self.config.dim
    }

    /// Fills the character n-gram buckets from the vocabulary: `pieces[i]` is token `i` and
    /// whether it is special (no character n-grams).
    pub fn set_vocabulary(&self, pieces: &[(String, bool)]) {
        if let Some(buckets) = &self.char_buckets {
            let table = char_bucket_table(pieces, &self.config).to_device(buckets.device());
            tch::no_grad(|| buckets.shallow_clone().copy_(&table));
        }
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

    /// `[batch, dim]`: the mean row over the token n-grams of each text, plus the mean row
    /// over its character n-grams. In training the rows are looked up through a small leaf
    /// tensor that collects their gradient.
    pub fn forward_t(&self, batch: &TokenBatch, train: bool) -> Tensor {
        let time = batch.ids.size()[1];
        let mut ids = Vec::new();
        let mut masks = Vec::new();
        for n in 1..=self.config.max_order.min(time) {
            let (buckets, valid) = bucket_ids(&batch.ids, &batch.lengths, n, self.config.buckets);
            ids.push(buckets);
            masks.push(valid);
        }
        let token_ids = Tensor::cat(&ids, 1);
        let token_valid = Tensor::cat(&masks, 1);
        let Some((char_ids, char_valid)) = self.char_ids(batch) else {
            let vectors = self.look_up(&token_ids, train);
            return masked_mean(&vectors, &token_valid);
        };
        let split = token_ids.size()[1];
        let vectors = self.look_up(&Tensor::cat(&[token_ids, char_ids], 1), train);
        masked_mean(&vectors.narrow(1, 0, split), &token_valid)
            + masked_mean(
                &vectors.narrow(1, split, vectors.size()[1] - split),
                &char_valid,
            )
    }

    /// `[batch, time * char_per_token]` character n-gram buckets of each text's tokens (0
    /// where unused) and the mask of the used ones.
    fn char_ids(&self, batch: &TokenBatch) -> Option<(Tensor, Tensor)> {
        let table = self.char_buckets.as_ref()?;
        let (rows, time) = (batch.ids.size()[0], batch.ids.size()[1]);
        let per_token = table
            .index_select(0, &batch.ids.flatten(0, -1))
            .view([rows, time, -1]);
        let real = batch.mask().to_kind(Kind::Bool).unsqueeze(-1);
        let valid = per_token.ge(0).logical_and(&real).view([rows, -1]);
        Some((per_token.clamp_min(0).view([rows, -1]), valid))
    }

    /// `[batch, n, dim]` table rows of `ids` `[batch, n]`; in training through a leaf tensor
    /// of the distinct rows, recorded for [`NgramBag::take_used_rows`].
    fn look_up(&self, ids: &Tensor, train: bool) -> Tensor {
        let rows = ids.size()[0];
        if !train {
            return self.table.index_select(0, &ids.flatten(0, -1)).view([
                rows,
                -1,
                self.config.dim,
            ]);
        }
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
    }
}

/// `[batch, dim]`: the mean of `vectors` `[batch, n, dim]` over the places `valid`
/// `[batch, n]` marks (zero where none).
fn masked_mean(vectors: &Tensor, valid: &Tensor) -> Tensor {
    let valid = valid.to_kind(Kind::Float).unsqueeze(-1);
    let sum = (vectors * &valid).sum_dim_intlist([1].as_slice(), false, Kind::Float);
    let count = valid.sum_dim_intlist([1].as_slice(), false, Kind::Float);
    sum / count.clamp_min(1.0)
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
            char_max: 3,
            ..NgramConfig::default()
        };
        let bag = NgramBag::new(&vs.root(), &config, 8);
        let pieces: Vec<(String, bool)> =
            ["[PAD]", "[UNK]", "a", "delay", "##ed", "late", "x", "##s"]
                .iter()
                .map(|p| (p.to_string(), p.starts_with('[')))
                .collect();
        bag.set_vocabulary(&pieces);
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

    fn two_to_three() -> NgramConfig {
        NgramConfig {
            buckets: 1 << 18,
            char_min: 2,
            char_max: 3,
            char_per_token: 32,
            ..NgramConfig::default()
        }
    }

    #[test]
    fn character_ngrams_are_taken_inside_a_vocabulary_entry() {
        let config = two_to_three();
        // By hand: FNV-1a of the bytes 0x01 'e' 'd' is 15061876741695575709, mod 2^18 = 235165.
        assert_eq!(char_buckets("##ed", false, &config), vec![235_165]);
        // "<delay": five 2-grams and four 3-grams.
        assert_eq!(char_buckets("delay", false, &config).len(), 9);
        assert!(char_buckets("[UNK]", true, &config).is_empty());
        let capped = NgramConfig {
            char_per_token: 4,
            ..config.clone()
        };
        assert_eq!(
            char_buckets("delay", false, &capped),
            char_buckets("delay", false, &config)[..4].to_vec()
        );
        let off = NgramConfig {
            char_max: 0,
            ..config
        };
        assert!(char_buckets("delay", false, &off).is_empty());
    }

    #[test]
    fn character_ngrams_move_the_features_and_unfilled_places_do_not() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let bag = NgramBag::new(&vs.root(), &two_to_three(), 4);
        let pieces: Vec<(String, bool)> = [
            ("[PAD]", true),
            ("[UNK]", true),
            ("go", false),
            ("##ne", false),
        ]
        .iter()
        .map(|(p, s)| (p.to_string(), *s))
        .collect();
        let text: &[i64] = &[2, 3];
        let before = bag.forward_t(&TokenBatch::new(&[text], tch::Device::Cpu), false);
        bag.set_vocabulary(&pieces);
        let table = bag.char_buckets.as_ref().unwrap();
        // "<go": "<g", "go", "<go"; "ne": "ne"; specials none.
        let filled: Vec<i64> = Vec::try_from(table.ge(0).sum_dim_intlist(
            [1].as_slice(),
            false,
            Kind::Int64,
        ))
        .unwrap();
        assert_eq!(filled, vec![0, 0, 3, 1]);
        let after = bag.forward_t(&TokenBatch::new(&[text], tch::Device::Cpu), false);
        let moved = (&after - &before).abs().max().double_value(&[]);
        assert!(moved > 1e-3, "character n-grams changed nothing: {moved}");
    }
}

//! The TF-IDF companion: per task, a logistic regression on TF-IDF word n-grams and
//! character n-grams inside word boundaries (the baseline a data scientist writes in ten
//! minutes), whose probabilities are averaged with the network's. Ensembling a linear
//! n-gram model with a neural one is the classic way to get the best of both (Mesnil et
//! al. 2014, "Ensemble of Generative and Discriminative Techniques for Sentiment
//! Analysis"; Wang & Manning 2012): the n-gram model is strong on rare, exact phrases, the
//! network on everything that needs generalisation.
//!
//! Features are hashed (FNV-1a, 64 bit: the same in every process) and only those seen in
//! the training text are kept, as a sorted id list saved with the weights; TF-IDF follows
//! scikit-learn's defaults (raw counts, smoothed idf `ln((1 + n) / (1 + df)) + 1`, each
//! group L2-normalised). The companion lives on the CPU whatever the network's device.
//!
//! Saved tensors: `tfidf.features` (i64 `[F]`), `tfidf.idf` (`[F]`) and per task
//! `tfidf.<task>.weight` (`[F, classes]`), `.bias` and `.mix` (the companion's share).

use crate::config::TfidfConfig;
use crate::data::TaskLabels;
use std::collections::{BTreeMap, HashMap};
use tch::{Kind, Tensor};

const WORD_TAG: u8 = 1;
const CHAR_TAG: u8 = 2;
pub const PREFIX: &str = "tfidf.";

/// Feature ids are FNV-1a hashes already: the index map uses them as they are instead of
/// hashing them again.
#[derive(Default, Clone, Copy)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_i64(&mut self, v: i64) {
        self.0 = v as u64;
    }
}

type FeatureMap<V> = HashMap<i64, V, std::hash::BuildHasherDefault<PassThrough>>;

/// FNV-1a (64 bit) of a tag byte and `chars`, folded into the non-negative `i64` range.
fn hash_chars(tag: u8, chars: impl Iterator<Item = char>) -> i64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |b: u8| h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    eat(tag);
    let mut buf = [0u8; 4];
    for c in chars {
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            eat(b);
        }
    }
    (h >> 1) as i64
}

/// Lower-cased words: runs of two or more letters, digits or `_` (scikit-learn's default
/// token pattern `\b\w\w+\b`).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if word.chars().nth(1).is_some() {
                out.push(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    if word.chars().nth(1).is_some() {
        out.push(word);
    }
    out
}

/// The hashed word n-grams and character n-grams of one text, each occurrence once.
pub fn text_grams(text: &str, config: &TfidfConfig) -> (Vec<i64>, Vec<i64>) {
    let ws = words(text);
    let mut word_grams = Vec::new();
    for n in 1..=config.word_max {
        for window in ws.windows(n) {
            let joined = window
                .iter()
                .enumerate()
                .flat_map(|(i, w)| (i > 0).then_some(' ').into_iter().chain(w.chars()));
            word_grams.push(hash_chars(WORD_TAG, joined));
        }
    }
    let mut char_grams = Vec::new();
    if config.char_max > 0 {
        let lower = text.to_lowercase();
        for w in lower.split_whitespace() {
            let padded: Vec<char> = std::iter::once(' ')
                .chain(w.chars())
                .chain(std::iter::once(' '))
                .collect();
            // As scikit-learn's `char_wb`: a word no longer than `n` gives itself once.
            for n in config.char_min..=config.char_max {
                if padded.len() <= n {
                    char_grams.push(hash_chars(CHAR_TAG, padded.iter().copied()));
                    break;
                }
                for window in padded.windows(n) {
                    char_grams.push(hash_chars(CHAR_TAG, window.iter().copied()));
                }
            }
        }
    }
    (word_grams, char_grams)
}

/// Texts as TF-IDF rows in compressed form: row `r` holds `indices[offsets[r]..offsets[r+1]]`
/// with `weights` alongside (the layout `embedding_bag` reads).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseRows {
    pub indices: Vec<i64>,
    pub offsets: Vec<i64>,
    pub weights: Vec<f32>,
}

impl SparseRows {
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The rows `picks`, in that order.
    pub fn select(&self, picks: &[usize]) -> SparseRows {
        let mut out = SparseRows::default();
        for &r in picks {
            out.offsets.push(out.indices.len() as i64);
            out.indices.extend_from_slice(&self.indices[self.span(r)]);
            out.weights.extend_from_slice(&self.weights[self.span(r)]);
        }
        out
    }

    /// Appends the rows of `more` after these.
    pub fn extend(&mut self, more: &SparseRows) {
        let shift = self.indices.len() as i64;
        self.offsets.extend(more.offsets.iter().map(|o| o + shift));
        self.indices.extend_from_slice(&more.indices);
        self.weights.extend_from_slice(&more.weights);
    }

    /// Where row `r` lies in `indices` and `weights`.
    pub fn span(&self, r: usize) -> std::ops::Range<usize> {
        let start = self.offsets[r] as usize;
        let end = self
            .offsets
            .get(r + 1)
            .map_or(self.indices.len(), |&e| e as usize);
        start..end
    }

    /// `[rows × classes]` (row-major) = rows · `weight` + `bias`, for a row-major
    /// `[features × classes]` weight.
    pub fn scores(&self, weight: &[f32], bias: &[f32]) -> Vec<f32> {
        let classes = bias.len();
        let mut out = Vec::with_capacity(self.len() * classes);
        for r in 0..self.len() {
            let start = out.len();
            out.extend_from_slice(bias);
            let row = &mut out[start..];
            for k in self.span(r) {
                let (j, x) = (self.indices[k] as usize, self.weights[k]);
                for (o, w) in row.iter_mut().zip(&weight[j * classes..(j + 1) * classes]) {
                    *o += x * w;
                }
            }
        }
        out
    }
}

/// Softmax of every `classes`-wide row of `scores`, in place.
pub fn softmax_rows(scores: &mut [f32], classes: usize) {
    for row in scores.chunks_mut(classes.max(1)) {
        let max = row.iter().copied().fold(f32::MIN, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

/// The kept features and their idf.
#[derive(Debug)]
pub struct Vocabulary {
    /// Sorted feature hashes; a feature's row is its position here.
    features: Vec<i64>,
    idf: Vec<f32>,
    index: FeatureMap<u32>,
}

impl Vocabulary {
    /// Counts in how many of `texts` each feature occurs and keeps those in at least
    /// `min_df` texts, at most `max_features` of them (the most frequent).
    pub fn fit<'t>(texts: impl Iterator<Item = &'t str>, config: &TfidfConfig) -> Vocabulary {
        let mut df: FeatureMap<u32> = FeatureMap::default();
        let mut n = 0usize;
        for text in texts {
            n += 1;
            let (mut grams, chars) = text_grams(text, config);
            grams.extend(chars);
            grams.sort_unstable();
            grams.dedup();
            for g in grams {
                *df.entry(g).or_default() += 1;
            }
        }
        let mut kept: Vec<(i64, u32)> = df
            .into_iter()
            .filter(|&(_, d)| d as usize >= config.min_df.max(1))
            .collect();
        if kept.len() > config.max_features {
            kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            kept.truncate(config.max_features);
        }
        kept.sort_unstable();
        let idf = kept
            .iter()
            .map(|&(_, d)| (((1 + n) as f64 / (1 + d) as f64).ln() + 1.0) as f32)
            .collect();
        Vocabulary::new(kept.into_iter().map(|(f, _)| f).collect(), idf)
    }

    fn new(features: Vec<i64>, idf: Vec<f32>) -> Vocabulary {
        let index = features
            .iter()
            .enumerate()
            .map(|(i, &f)| (f, i as u32))
            .collect();
        Vocabulary {
            features,
            idf,
            index,
        }
    }

    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Every text as one TF-IDF row; features not kept at fitting are dropped.
    pub fn rows(&self, texts: &[&str], config: &TfidfConfig) -> SparseRows {
        let mut out = SparseRows::default();
        for text in texts {
            out.offsets.push(out.indices.len() as i64);
            let (word_grams, char_grams) = text_grams(text, config);
            for group in [word_grams, char_grams] {
                self.push_group(&group, &mut out);
            }
        }
        out
    }

    /// Appends one group's features with tf × idf weights, L2-normalised.
    fn push_group(&self, grams: &[i64], out: &mut SparseRows) {
        let mut rows: Vec<u32> = grams
            .iter()
            .filter_map(|g| self.index.get(g).copied())
            .collect();
        rows.sort_unstable();
        let start = out.indices.len();
        let mut i = 0;
        while i < rows.len() {
            let j = i + rows[i..].iter().take_while(|&&r| r == rows[i]).count();
            out.indices.push(i64::from(rows[i]));
            out.weights
                .push((j - i) as f32 * self.idf[rows[i] as usize]);
            i = j;
        }
        let norm = out.weights[start..]
            .iter()
            .map(|w| w * w)
            .sum::<f32>()
            .sqrt();
        if norm > 0.0 {
            out.weights[start..].iter_mut().for_each(|w| *w /= norm);
        }
    }
}

/// One task's logistic regression.
#[derive(Debug, Clone)]
pub struct TfidfHead {
    /// `[features × classes]`, row-major.
    pub weight: Vec<f32>,
    /// `[classes]`.
    pub bias: Vec<f32>,
    /// The companion's share in the averaged probabilities.
    pub mix: f64,
}

impl TfidfHead {
    /// `[rows, classes]` probabilities of `rows`.
    pub fn probabilities(&self, rows: &SparseRows) -> Tensor {
        let classes = self.bias.len();
        let mut p = rows.scores(&self.weight, &self.bias);
        softmax_rows(&mut p, classes);
        Tensor::from_slice(&p).view([rows.len() as i64, classes as i64])
    }
}

#[derive(Debug)]
pub struct TfidfModel {
    config: TfidfConfig,
    vocabulary: Vocabulary,
    /// In task order.
    heads: Vec<TfidfHead>,
}

impl TfidfModel {
    pub fn new(config: TfidfConfig, vocabulary: Vocabulary, heads: Vec<TfidfHead>) -> Self {
        TfidfModel {
            config,
            vocabulary,
            heads,
        }
    }

    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    pub fn heads(&self) -> &[TfidfHead] {
        &self.heads
    }

    /// Every text as one row of this companion's features.
    pub fn rows(&self, texts: &[&str]) -> SparseRows {
        self.vocabulary.rows(texts, &self.config)
    }

    /// Per-task `[texts, classes]` probabilities of the companion alone.
    pub fn probabilities(&self, texts: &[&str]) -> Vec<Tensor> {
        self.row_probabilities(&self.rows(texts))
    }

    /// Per-task `[rows, classes]` probabilities of rows from [`TfidfModel::rows`].
    pub fn row_probabilities(&self, rows: &SparseRows) -> Vec<Tensor> {
        self.heads.iter().map(|h| h.probabilities(rows)).collect()
    }

    /// `(1 - mix) * network + mix * companion`, per task; `network` holds per-task
    /// `[texts, classes]` probabilities on the CPU.
    pub fn mix(&self, network: Vec<Tensor>, texts: &[&str]) -> Vec<Tensor> {
        self.mix_rows(network, &self.rows(texts))
    }

    /// [`TfidfModel::mix`] of texts already made into rows.
    pub fn mix_rows(&self, network: Vec<Tensor>, rows: &SparseRows) -> Vec<Tensor> {
        let own = self.row_probabilities(rows);
        network
            .into_iter()
            .zip(own.iter().zip(&self.heads))
            .map(|(net, (tfidf, head))| net * (1.0 - head.mix) + tfidf * head.mix)
            .collect()
    }

    /// The tensors to save beside the network's, named as the module docs say.
    pub fn tensors(&self, tasks: &[TaskLabels]) -> Vec<(String, Tensor)> {
        let mut out = vec![
            (
                format!("{PREFIX}features"),
                Tensor::from_slice(&self.vocabulary.features),
            ),
            (
                format!("{PREFIX}idf"),
                Tensor::from_slice(&self.vocabulary.idf),
            ),
        ];
        for (task, head) in tasks.iter().zip(&self.heads) {
            let name = |part: &str| format!("{PREFIX}{}.{part}", task.name);
            let classes = head.bias.len() as i64;
            let weight = Tensor::from_slice(&head.weight).view([-1, classes]);
            out.push((name("weight"), weight));
            out.push((name("bias"), Tensor::from_slice(&head.bias)));
            out.push((name("mix"), Tensor::from_slice(&[head.mix as f32])));
        }
        out
    }

    /// Rebuilds the companion from the `tfidf.*` tensors of a weights file, checking every
    /// shape against the tasks; `None` when the file has none.
    pub fn from_tensors(
        tensors: &BTreeMap<String, Tensor>,
        tasks: &[TaskLabels],
        config: &TfidfConfig,
    ) -> Result<Option<TfidfModel>, String> {
        let get = |name: String| {
            tensors
                .get(&name)
                .ok_or_else(|| format!("the TF-IDF companion has no tensor '{name}'"))
        };
        let Some(features) = tensors.get(&format!("{PREFIX}features")) else {
            return Ok(None);
        };
        let features: Vec<i64> =
            Vec::try_from(features).map_err(|e: tch::TchError| e.to_string())?;
        let idf: Vec<f32> = Vec::try_from(get(format!("{PREFIX}idf"))?.to_kind(Kind::Float))
            .map_err(|e: tch::TchError| e.to_string())?;
        if idf.len() != features.len() || features.windows(2).any(|w| w[0] >= w[1]) {
            return Err("tfidf.features must be sorted and as long as tfidf.idf".into());
        }
        let mut heads = Vec::new();
        for task in tasks {
            let name = |part: &str| format!("{PREFIX}{}.{part}", task.name);
            let weight = get(name("weight"))?.to_kind(Kind::Float);
            let bias = get(name("bias"))?.to_kind(Kind::Float);
            let classes = task.labels.len() as i64;
            if weight.size() != [features.len() as i64, classes] || bias.size() != [classes] {
                return Err(format!(
                    "{} has shape {:?}, the task needs [{}, {classes}]",
                    name("weight"),
                    weight.size(),
                    features.len()
                ));
            }
            let mix = get(name("mix"))?.double_value(&[0]);
            let floats =
                |t: &Tensor| Vec::<f32>::try_from(t.flatten(0, -1)).map_err(|e| e.to_string());
            heads.push(TfidfHead {
                weight: floats(&weight)?,
                bias: floats(&bias)?,
                mix,
            });
        }
        Ok(Some(TfidfModel::new(
            config.clone(),
            Vocabulary::new(features, idf),
            heads,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_cased_runs_of_two_or_more_word_characters() {
        assert_eq!(
            words("I can't FLY to Seoul—서울 지연 a 1 23!"),
            ["can", "fly", "to", "seoul", "서울", "지연", "23"]
        );
    }

    #[test]
    fn character_grams_follow_word_boundaries_like_char_wb() {
        let config = TfidfConfig {
            word_max: 0,
            char_min: 2,
            char_max: 5,
            ..Default::default()
        };
        // " ab " has 3 bigrams, 2 trigrams, 1 four-gram; n = 5 is longer than it: stop.
        let (words, chars) = text_grams("ab", &config);
        assert!(words.is_empty());
        assert_eq!(chars.len(), 6);
        let expect: Vec<i64> = [" a", "ab", "b ", " ab", "ab ", " ab "]
            .iter()
            .map(|g| hash_chars(CHAR_TAG, g.chars()))
            .collect();
        assert_eq!(chars, expect);
    }

    #[test]
    fn hashes_are_fixed_numbers_not_per_process_seeds() {
        // FNV-1a of [1, b'a'] shifted right once: computed by hand from the FNV constants.
        let by_hand = ((0xcbf2_9ce4_8422_2325u64 ^ 1).wrapping_mul(0x100_0000_01b3) ^ 0x61)
            .wrapping_mul(0x100_0000_01b3)
            >> 1;
        assert_eq!(hash_chars(WORD_TAG, "a".chars()), by_hand as i64);
    }

    #[test]
    fn rows_are_tf_idf_weighted_and_normalised_per_group() {
        let config = TfidfConfig {
            word_max: 1,
            char_max: 0,
            ..Default::default()
        };
        let vocab = Vocabulary::fit(["late late flight", "late bag"].into_iter(), &config);
        assert_eq!(vocab.len(), 3);
        let rows = vocab.rows(&["late late flight", "unseen words", ""], &config);
        assert_eq!(rows.offsets, [0, 2, 2]);
        // idf(late) = ln(3/3) + 1 = 1, idf(flight) = ln(3/2) + 1; tf(late) = 2.
        let (late, flight) = (2.0f32, (1.5f32).ln() + 1.0);
        let norm = (late * late + flight * flight).sqrt();
        let mut got = rows.weights.clone();
        got.sort_by(f32::total_cmp);
        let mut want = vec![flight / norm, late / norm];
        want.sort_by(f32::total_cmp);
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
        let picked = rows.select(&[2, 0]);
        assert_eq!(picked.offsets, [0, 0]);
        assert_eq!(picked.indices, rows.indices);
    }

    #[test]
    fn rows_times_weights_plus_bias_and_an_empty_row_scores_its_bias() {
        let rows = SparseRows {
            indices: vec![0, 1],
            offsets: vec![0, 2],
            weights: vec![2.0, 1.0],
        };
        let weight = [1.0f32, -1.0, 0.5, 0.5];
        let out = rows.scores(&weight, &[0.5, 0.25]);
        assert_eq!(out, [3.0, -1.25, 0.5, 0.25]);
        let mut p = out.clone();
        softmax_rows(&mut p, 2);
        assert!((p[0] + p[1] - 1.0).abs() < 1e-6 && p[0] > p[1]);
        assert!((p[2] - (0.25f32).exp() / ((0.25f32).exp() + 1.0)).abs() < 1e-6);
    }
}

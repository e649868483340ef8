//! Texts turned into what one model version reads (token ids and, when the version has a
//! TF-IDF companion, its feature row), done by whoever holds the text, not by the thread
//! that owns the model. Tokenizing and hashing n-grams need no tensors, so the service does
//! it on the request's own task and the inference thread only runs the network.
//!
//! A prepared batch carries the version that prepared it: a replica that serves another
//! version by the time the batch reaches it (a swap came in between) prepares the texts
//! again with its own tokenizer, so a text is never scored with another version's ids.

use super::tfidf::{SparseRows, TfidfModel};
use super::tokenizer::TextTokenizer;
use super::version_dir::ModelError;
use std::sync::Arc;

/// Bytes of text the tokenizer is given per token the model reads.
const BYTES_PER_TOKEN: usize = 64;

/// The part of `text` the model reads: its first `max_len * 64` bytes, cut back to a
/// character boundary. The model reads only the first `max_len` tokens, and a WordPiece token
/// stands for a piece of one word (at most 100 characters, `max_input_chars_per_word`) plus
/// the whitespace and punctuation before it, so ordinary text reaches `max_len` tokens long
/// before the cut and the model sees the same tokens as with the whole text. Only text that
/// averages more than 64 bytes a token (long runs of spaces, "words" of over 64 bytes, each
/// one `[UNK]`) is read on its first `max_len * 64` bytes instead; either way nobody
/// tokenizes a megabyte to keep a few hundred tokens. The stored text is whole.
pub fn model_input(text: &str, max_len: usize) -> &str {
    let limit = max_len.saturating_mul(BYTES_PER_TOKEN);
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Texts prepared for one version: each text's token ids, and the companion's rows.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    version: Arc<str>,
    pub(super) tokens: Vec<Vec<i64>>,
    /// One TF-IDF row per text, when the version has a companion.
    pub(super) tfidf: Option<SparseRows>,
}

impl PreparedBatch {
    /// The version whose tokenizer and companion prepared these texts.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// How many texts.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Token ids of text `i` (for tests and tools).
    pub fn tokens(&self, i: usize) -> &[i64] {
        &self.tokens[i]
    }

    /// Replaces the token ids of text `i`: for tests that tell whether a replica scored
    /// the prepared ids or prepared the text again.
    #[cfg(test)]
    pub(crate) fn set_tokens(&mut self, i: usize, tokens: Vec<i64>) {
        self.tokens[i] = tokens;
    }

    /// These batches' texts, in order, as one batch; `None` when there are none or they
    /// were not all prepared by the same version.
    pub fn concat(parts: Vec<PreparedBatch>) -> Option<PreparedBatch> {
        let mut parts = parts.into_iter();
        let mut out = parts.next()?;
        for part in parts {
            if part.version != out.version {
                return None;
            }
            out.tokens.extend(part.tokens);
            match (&mut out.tfidf, &part.tfidf) {
                (Some(rows), Some(more)) => rows.extend(more),
                (None, None) => {}
                _ => return None,
            }
        }
        Some(out)
    }
}

/// Prepares texts for one version: its tokenizer and companion, shared and cheap to clone,
/// usable from any thread.
#[derive(Clone)]
pub struct TextPreparer {
    version: Arc<str>,
    tokenizer: Arc<TextTokenizer>,
    tfidf: Option<Arc<TfidfModel>>,
}

impl std::fmt::Debug for TextPreparer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextPreparer")
            .field("version", &self.version)
            .field("tfidf", &self.tfidf.is_some())
            .finish()
    }
}

impl TextPreparer {
    pub fn new(
        version: &str,
        tokenizer: TextTokenizer,
        tfidf: Option<Arc<TfidfModel>>,
    ) -> TextPreparer {
        TextPreparer {
            version: Arc::from(version),
            tokenizer: Arc::new(tokenizer),
            tfidf,
        }
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Each text's model input (see [`model_input`]) as token ids and TF-IDF row.
    pub fn prepare(&self, texts: &[&str]) -> Result<PreparedBatch, ModelError> {
        let max_len = self.tokenizer.max_len();
        let inputs: Vec<&str> = texts.iter().map(|t| model_input(t, max_len)).collect();
        let tokens = inputs
            .iter()
            .map(|t| self.tokenizer.encode(t).map_err(ModelError::from))
            .collect::<Result<_, _>>()?;
        Ok(PreparedBatch {
            version: self.version.clone(),
            tokens,
            tfidf: self.tfidf.as_ref().map(|c| c.rows(&inputs)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{PreparedBatch, TextPreparer};
    use crate::config::TfidfConfig;
    use crate::model::tfidf::{TfidfModel, Vocabulary};
    use crate::model::tokenizer::TextTokenizer;
    use std::sync::Arc;

    const TEXTS: [&str; 4] = [
        "my card has not arrived",
        "the refund came through quickly",
        "why was my card charged twice",
        "card refund please",
    ];

    fn preparer(version: &str) -> TextPreparer {
        let config = TfidfConfig::default();
        let vocabulary = Vocabulary::fit(TEXTS.iter().copied(), &config);
        let companion = TfidfModel::new(config, vocabulary, Vec::new());
        let tokenizer = TextTokenizer::train(TEXTS.iter().copied(), 200, 16).unwrap();
        TextPreparer::new(version, tokenizer, Some(Arc::new(companion)))
    }

    #[test]
    fn batches_joined_in_order_equal_the_texts_prepared_together() {
        let p = preparer("a");
        let parts = vec![
            p.prepare(&TEXTS[..1]).unwrap(),
            p.prepare(&TEXTS[1..3]).unwrap(),
            p.prepare(&TEXTS[3..]).unwrap(),
        ];
        let joined = PreparedBatch::concat(parts).unwrap();
        let together = p.prepare(&TEXTS).unwrap();
        assert_eq!(joined.tokens, together.tokens);
        assert_eq!(joined.tfidf, together.tfidf);
        assert!(!together.tfidf.as_ref().unwrap().indices.is_empty());
    }

    #[test]
    fn the_model_input_is_cut_at_a_char_boundary_after_max_len_times_64_bytes() {
        use super::model_input;
        let korean = "가".repeat(100_000);
        let cut = model_input(&korean, 128);
        assert_eq!(cut.len(), 128 * 64 - 2, "the last whole 3-byte character");
        assert!(korean.starts_with(cut));
        let ascii = "a".repeat(128 * 64 + 1);
        assert_eq!(model_input(&ascii, 128).len(), 128 * 64);
        assert_eq!(model_input("short text", 128), "short text");
    }

    #[test]
    fn batches_of_two_versions_do_not_join() {
        let (a, b) = (preparer("a"), preparer("b"));
        let parts = vec![
            a.prepare(&TEXTS[..1]).unwrap(),
            b.prepare(&TEXTS[1..]).unwrap(),
        ];
        assert!(PreparedBatch::concat(parts).is_none());
        assert!(PreparedBatch::concat(Vec::new()).is_none());
    }
}

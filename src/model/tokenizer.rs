//! Subword tokenization learned from the training text, saved as a Hugging Face
//! `tokenizer.json` so Python's `tokenizers` loads the very same vocabulary.
//!
//! NFKC normalization and lower-casing, BERT-style splitting on whitespace and punctuation,
//! then WordPiece. NFKC keeps Hangul syllables composed, so Korean words split into
//! syllable-level subwords without any morphological analyser.
//!
//! The redaction tags (`[CARD]`, `[PHONE]`, …, see [`crate::redact`]) are whole tokens of
//! every newly learned vocabulary, at ids 2.. right after [`PAD`] and [`UNK`]: in the
//! WordPiece vocabulary and, with the same ids, as added tokens (matched in the raw text
//! before normalization and splitting), so `[CARD]` is one token and not `[`, `card`, `]`.
//! They are not special: a card number in a call says something about it. Tokenizers saved
//! before the tags existed load and split them as before.

use std::path::Path;
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainerBuilder};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::{unicode::NFKC, utils::Sequence, Lowercase, NormalizerWrapper};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{AddedToken, Tokenizer};

pub const PAD: &str = "[PAD]";
pub const UNK: &str = "[UNK]";
/// The id of [`PAD`]; the trainer puts special tokens first.
pub const PAD_ID: i64 = 0;

/// Why tokenization failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer: {0}")]
    Tokenizers(String),
    #[error("tokenizer file {path}: {reason}")]
    File { path: String, reason: String },
}

fn tk_err(e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Tokenizers(e.to_string())
}

/// The tokens every new vocabulary starts with, in id order: [`PAD`], [`UNK`], then the
/// redaction tags.
fn fixed_tokens() -> Vec<&'static str> {
    let mut fixed = vec![PAD, UNK];
    fixed.extend(crate::redact::all_tags());
    fixed
}

/// Renumbers the learned vocabulary: the fixed tokens first, then the rest in string order.
/// The trainer's ids depend on hash-map iteration order; WordPiece only matches strings,
/// so renumbering changes nothing but makes the same data give the same ids every time.
fn canonical_ids(tokenizer: &mut Tokenizer) -> Result<(), TokenizerError> {
    let fixed = fixed_tokens();
    let mut tokens: Vec<String> = tokenizer.get_vocab(false).into_keys().collect();
    tokens.retain(|t| !fixed.contains(&t.as_str()));
    tokens.sort();
    let vocab: ahash::AHashMap<String, u32> = fixed
        .iter()
        .map(|t| t.to_string())
        .chain(tokens)
        .enumerate()
        .map(|(i, t)| (t, i as u32))
        .collect();
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token(UNK.to_string())
        .continuing_subword_prefix("##".to_string())
        .build()
        .map_err(tk_err)?;
    tokenizer.with_model(model);
    // The tags as added tokens: the added vocabulary takes their ids from the model above
    // (2..), so both maps agree; matched in the raw text, before lower-casing and splitting.
    let tags: Vec<AddedToken> = crate::redact::all_tags()
        .into_iter()
        .map(|t| AddedToken::from(t, false).normalized(false))
        .collect();
    tokenizer.add_tokens(&tags);
    Ok(())
}

/// A trained subword tokenizer plus the model's maximum sequence length.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_len: usize,
    unk_id: i64,
}

impl TextTokenizer {
    /// Learns a vocabulary of at most `vocab_size` subwords from `texts`.
    pub fn train<'a>(
        texts: impl Iterator<Item = &'a str> + Send,
        vocab_size: usize,
        max_len: usize,
    ) -> Result<TextTokenizer, TokenizerError> {
        let mut trainer: TrainerWrapper = WordPieceTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(vec![
                AddedToken::from(PAD, true),
                AddedToken::from(UNK, true),
            ])
            .build()
            .into();
        let normalizer: NormalizerWrapper =
            Sequence::new(vec![NFKC.into(), Lowercase.into()]).into();
        let mut inner = Tokenizer::new(WordPiece::default());
        inner.with_normalizer(Some(normalizer));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.train(&mut trainer, texts).map_err(tk_err)?;
        canonical_ids(&mut inner)?;
        TextTokenizer::from_tokenizer(inner, max_len)
    }

    /// Loads a `tokenizer.json` written by [`TextTokenizer::save`].
    pub fn load(path: &Path, max_len: usize) -> Result<TextTokenizer, TokenizerError> {
        let inner = Tokenizer::from_file(path).map_err(|e| TokenizerError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        TextTokenizer::from_tokenizer(inner, max_len)
    }

    fn from_tokenizer(inner: Tokenizer, max_len: usize) -> Result<TextTokenizer, TokenizerError> {
        let pad = inner.token_to_id(PAD);
        let unk = inner.token_to_id(UNK);
        match (pad, unk) {
            (Some(0), Some(unk)) => Ok(TextTokenizer {
                inner,
                max_len: max_len.max(1),
                unk_id: unk as i64,
            }),
            _ => Err(TokenizerError::Tokenizers(format!(
                "vocabulary must hold {PAD} at id 0 and {UNK}"
            ))),
        }
    }

    /// The same vocabulary, truncating at `max_len` tokens.
    pub fn with_max_len(mut self, max_len: usize) -> TextTokenizer {
        self.max_len = max_len.max(1);
        self
    }

    pub fn save(&self, path: &Path) -> Result<(), TokenizerError> {
        self.inner.save(path, false).map_err(tk_err)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids of `text`, truncated to `max_len`; never empty (an untokenizable text
    /// becomes a single unknown token).
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, TokenizerError> {
        let encoding = self.inner.encode(text, false).map_err(tk_err)?;
        let mut ids: Vec<i64> = encoding
            .get_ids()
            .iter()
            .take(self.max_len)
            .map(|&i| i as i64)
            .collect();
        if ids.is_empty() {
            ids.push(self.unk_id);
        }
        Ok(ids)
    }

    /// Token ids of `text`, not truncated (may be empty).
    pub fn encode_all(&self, text: &str) -> Result<Vec<i64>, TokenizerError> {
        let encoding = self.inner.encode(text, false).map_err(tk_err)?;
        Ok(encoding.get_ids().iter().map(|&i| i as i64).collect())
    }

    /// The id of a vocabulary entry given exactly as stored (e.g. `delay` or `##ed`).
    pub fn token_id(&self, token: &str) -> Option<usize> {
        self.inner.token_to_id(token).map(|i| i as usize)
    }

    /// The vocabulary entry with id `id`.
    pub fn id_token(&self, id: usize) -> Option<String> {
        self.inner.id_to_token(id as u32)
    }

    /// Whether `id` is padding or the unknown token.
    pub fn is_special(&self, id: usize) -> bool {
        id as i64 == PAD_ID || id as i64 == self.unk_id
    }

    /// Every vocabulary entry by id, with whether it is special (padding, unknown).
    pub fn pieces(&self) -> Vec<(String, bool)> {
        (0..self.vocab_size())
            .map(|id| {
                let piece = self.id_token(id).unwrap_or_default();
                (piece, self.is_special(id))
            })
            .collect()
    }

    /// The ids that carry no text: padding and the unknown token.
    pub fn special_ids(&self) -> [i64; 2] {
        [PAD_ID, self.unk_id]
    }

    /// Subword strings of `text` (for inspection and tests).
    pub fn tokens(&self, text: &str) -> Result<Vec<String>, TokenizerError> {
        let encoding = self.inner.encode(text, false).map_err(tk_err)?;
        Ok(encoding.get_tokens().to_vec())
    }
}

//! Word vectors in the word2vec / fastText text format (`.vec`): a header line `count dim`,
//! then one line per token, `token v1 … vd`. Read onto a subword vocabulary, and written
//! from one, so vectors move between this project and Python tools.

use super::tokenizer::TextTokenizer;
use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use tch::{Kind, Tensor};

/// Why a vectors file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum VectorsError {
    #[error("vectors file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("vectors file {path}:{line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
}

/// Vectors mapped onto a tokenizer's vocabulary.
pub struct MappedVectors {
    /// `[vocab, dim]`; rows without a vector are zero (see `found`).
    pub matrix: Tensor,
    /// Per vocabulary id: whether the file gave it a vector (exactly or by averaging).
    pub found: Vec<bool>,
    pub dim: i64,
    /// Vocabulary entries that are a token of the file.
    pub exact: usize,
    /// Subword pieces given the mean vector of the file's words that contain them.
    pub averaged: usize,
    /// Vocabulary entries the file says nothing about (they keep a random start).
    pub missing: usize,
}

/// Reads `path` onto `tokenizer`'s vocabulary: an entry that is a token of the file takes
/// its vector (the first, most frequent, spelling wins after normalisation); any other
/// entry takes the mean vector of the file's words whose tokenization contains it.
pub fn read_vec_file(
    path: &Path,
    tokenizer: &TextTokenizer,
) -> Result<MappedVectors, VectorsError> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| VectorsError::File {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    let vocab = tokenizer.vocab_size();
    let mut dim: Option<usize> = None;
    let mut exact: HashMap<usize, Vec<f32>> = HashMap::new();
    let mut sums: HashMap<usize, (Vec<f64>, usize)> = HashMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_err = |reason: String| VectorsError::Line {
            path: p.clone(),
            line: n + 1,
            reason,
        };
        let line = line.map_err(|e| line_err(e.to_string()))?;
        let mut fields = line.split_whitespace();
        let Some(word) = fields.next() else { continue };
        let values: Vec<&str> = fields.collect();
        if n == 0 && values.len() == 1 && word.parse::<usize>().is_ok() {
            dim = Some(
                values[0]
                    .parse()
                    .map_err(|_| line_err("bad header".into()))?,
            );
            continue;
        }
        let vector: Vec<f32> = values
            .iter()
            .map(|v| v.parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|_| line_err("a value is not a number".into()))?;
        match dim {
            None => dim = Some(vector.len()),
            Some(d) if d != vector.len() => {
                return Err(line_err(format!(
                    "{} values, the file's dimension is {d}",
                    vector.len()
                )))
            }
            Some(_) => {}
        }
        if let Some(id) = tokenizer.token_id(word) {
            exact.entry(id).or_insert(vector);
            continue;
        }
        let ids = tokenizer
            .encode_all(word)
            .map_err(|e| line_err(e.to_string()))?;
        if ids.len() == 1 {
            exact.entry(ids[0] as usize).or_insert(vector);
        } else {
            for id in ids {
                let (sum, count) = sums
                    .entry(id as usize)
                    .or_insert_with(|| (vec![0.0; vector.len()], 0));
                sum.iter_mut()
                    .zip(&vector)
                    .for_each(|(s, v)| *s += *v as f64);
                *count += 1;
            }
        }
    }
    let dim = dim.filter(|&d| d > 0).ok_or_else(|| VectorsError::File {
        path: p.clone(),
        reason: "no vectors in the file".into(),
    })?;
    let mut flat = vec![0f32; vocab * dim];
    let mut found = vec![false; vocab];
    let (mut n_exact, mut n_averaged) = (0, 0);
    for id in 0..vocab {
        if tokenizer.is_special(id) {
            continue;
        }
        let row = &mut flat[id * dim..(id + 1) * dim];
        if let Some(v) = exact.get(&id) {
            row.copy_from_slice(v);
            n_exact += 1;
        } else if let Some((sum, count)) = sums.get(&id) {
            row.iter_mut()
                .zip(sum)
                .for_each(|(r, s)| *r = (*s / *count as f64) as f32);
            n_averaged += 1;
        } else {
            continue;
        }
        found[id] = true;
    }
    Ok(MappedVectors {
        matrix: Tensor::from_slice(&flat)
            .view([vocab as i64, dim as i64])
            .to_kind(Kind::Float),
        missing: vocab - n_exact - n_averaged,
        found,
        dim: dim as i64,
        exact: n_exact,
        averaged: n_averaged,
    })
}

/// Writes one line per vocabulary entry (special tokens left out) with its row of `matrix`.
pub fn write_vec_file(
    path: &Path,
    tokenizer: &TextTokenizer,
    matrix: &Tensor,
) -> std::io::Result<()> {
    let size = matrix.size();
    let (rows, dim) = (size[0] as usize, size[1] as usize);
    let flat = Vec::<f32>::try_from(matrix.to_kind(Kind::Float).flatten(0, -1))
        .map_err(std::io::Error::other)?;
    let tokens: Vec<(usize, String)> = (0..rows)
        .filter(|&id| !tokenizer.is_special(id))
        .filter_map(|id| tokenizer.id_token(id).map(|t| (id, t)))
        .collect();
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "{} {dim}", tokens.len())?;
    for (id, token) in tokens {
        write!(out, "{token}")?;
        for v in &flat[id * dim..(id + 1) * dim] {
            write!(out, " {v}")?;
        }
        writeln!(out)?;
    }
    out.flush()
}

//! Reading JSONL and CSV files into [`Dataset`]s, with errors that name file and line.

use super::{Dataset, Example, SkippedRow};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// The file layouts we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    /// Guesses the format from the file extension (`.csv` is CSV, anything else JSONL).
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Jsonl,
        }
    }
}

/// How to read a file.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// `None` guesses from the extension.
    pub format: Option<Format>,
    pub text_column: String,
    pub id_column: String,
    /// Columns (CSV) or keys (JSONL) to read as tasks; `None` reads every other one.
    pub tasks: Option<Vec<String>>,
    /// Skip and count malformed rows instead of failing on the first.
    pub skip_bad_rows: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: None,
            text_column: "text".into(),
            id_column: "id".into(),
            tasks: None,
            skip_bad_rows: false,
        }
    }
}

/// Why a data file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {reason}")]
    BadRow {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("{file}: {reason}")]
    BadFile { file: String, reason: String },
}

/// Reads every row of `path`; see [`ReadOptions`].
pub fn read_dataset(path: &Path, options: &ReadOptions) -> Result<Dataset, DataError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        file: file.clone(),
        source,
    })?;
    let fingerprint = hex::encode(Sha256::digest(&bytes));
    let format = options.format.unwrap_or_else(|| Format::from_path(path));
    let rows = match format {
        Format::Jsonl => parse_jsonl(&file, &bytes)?,
        Format::Csv => parse_csv(&file, &bytes)?,
    };
    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    for (line, row) in rows {
        match row.and_then(|fields| to_example(fields, line, options)) {
            Ok(example) => examples.push(example),
            Err(reason) if options.skip_bad_rows => skipped.push(SkippedRow { line, reason }),
            Err(reason) => {
                return Err(DataError::BadRow { file, line, reason });
            }
        }
    }
    if examples.is_empty() {
        return Err(DataError::BadFile {
            file,
            reason: "no usable rows".into(),
        });
    }
    if let Some(tasks) = &options.tasks {
        for task in tasks {
            let seen = examples.iter().any(|e| e.labels.contains_key(task));
            if !seen && format == Format::Csv {
                return Err(DataError::BadFile {
                    file,
                    reason: format!("task column '{task}' is missing or empty"),
                });
            }
        }
    }
    Ok(Dataset {
        source: file,
        fingerprint,
        examples,
        skipped,
    })
}

/// A row as field name to value, before validation; `Err` is a parse problem.
type RawRow = Result<BTreeMap<String, serde_json::Value>, String>;

fn parse_jsonl(file: &str, bytes: &[u8]) -> Result<Vec<(usize, RawRow)>, DataError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DataError::BadFile {
        file: file.to_string(),
        reason: format!("not UTF-8 text ({e})"),
    })?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(map)) => Ok(map.into_iter().collect()),
            Ok(_) => Err("not a JSON object".to_string()),
            Err(e) => Err(format!("invalid JSON: {e}")),
        };
        rows.push((i + 1, row));
    }
    Ok(rows)
}

fn parse_csv(file: &str, bytes: &[u8]) -> Result<Vec<(usize, RawRow)>, DataError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| DataError::BadFile {
            file: file.to_string(),
            reason: format!("cannot read CSV header: {e}"),
        })?
        .clone();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let row = match record {
            Ok(r) if r.len() != headers.len() => Err(format!(
                "has {} fields, the header has {}",
                r.len(),
                headers.len()
            )),
            Ok(r) => Ok(headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| {
                    let value = if v.is_empty() {
                        serde_json::Value::Null
                    } else {
                        serde_json::Value::String(v.to_string())
                    };
                    (h.to_string(), value)
                })
                .collect()),
            Err(e) => Err(format!("invalid CSV: {e}")),
        };
        rows.push((line, row));
    }
    Ok(rows)
}

fn to_example(
    mut fields: BTreeMap<String, serde_json::Value>,
    line: usize,
    options: &ReadOptions,
) -> Result<Example, String> {
    let text = match fields.remove(&options.text_column) {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Null) | None => {
            return Err(format!("missing text field '{}'", options.text_column))
        }
        Some(other) => return Err(format!("text is not a string: {other}")),
    };
    if !super::chars::has_visible_text(&text) {
        return Err("text is empty (nothing but spaces or invisible characters)".into());
    }
    let id = match fields.remove(&options.id_column) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        None | Some(serde_json::Value::Null) => format!("line-{line}"),
        Some(other) => return Err(format!("id is not a string or number: {other}")),
    };
    let mut labels = BTreeMap::new();
    for (key, value) in fields {
        if let Some(tasks) = &options.tasks {
            if !tasks.contains(&key) {
                continue;
            }
        }
        let label = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) if s.trim().is_empty() => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => return Err(format!("label for '{key}' is not a string: {other}")),
        };
        labels.insert(key, label);
    }
    Ok(Example { id, text, labels })
}

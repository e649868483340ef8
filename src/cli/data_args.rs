//! Flags shared by every command that reads a data file.

use crate::data::{read_dataset, Dataset, Format, ReadOptions};
use std::path::Path;

#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// File format; guessed from the extension (.csv, else JSONL) when absent.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Column (CSV) or key (JSONL) holding the transcript text.
    #[arg(long, default_value = "text")]
    pub text_column: String,
    /// Column or key holding the row id (rows without one are named by line).
    #[arg(long, default_value = "id")]
    pub id_column: String,
    /// Comma-separated task columns or keys; default: found from the data.
    #[arg(long, value_delimiter = ',')]
    pub tasks: Option<Vec<String>>,
    /// Skip malformed rows (they are counted and reported) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

impl DataArgs {
    pub fn read(&self, path: &Path) -> anyhow::Result<Dataset> {
        let options = ReadOptions {
            format: self.format,
            text_column: self.text_column.clone(),
            id_column: self.id_column.clone(),
            tasks: self.tasks.clone(),
            skip_bad_rows: self.skip_bad_rows,
        };
        let data = read_dataset(path, &options)?;
        if !data.skipped.is_empty() {
            eprintln!(
                "{}: skipped {} bad rows (first: line {}: {})",
                data.source,
                data.skipped.len(),
                data.skipped[0].line,
                data.skipped[0].reason
            );
        }
        Ok(data)
    }
}

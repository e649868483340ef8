//! `voc predict`: one text per stdin line in, one JSON object per line out.

use crate::data::chars::has_visible_text;
use crate::model::{parse_device, Classifier};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Lines are classified in groups of this many.
const GROUP: usize = 64;

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// Model version folder.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let classifier = Classifier::load(&args.model, device)?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut group: Vec<String> = Vec::with_capacity(GROUP);
    for line in stdin.lock().lines() {
        group.push(line?);
        if group.len() == GROUP {
            write_group(&classifier, &group, &mut out)?;
            group.clear();
        }
    }
    write_group(&classifier, &group, &mut out)?;
    out.flush()?;
    Ok(())
}

fn write_group(
    classifier: &Classifier,
    lines: &[String],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| l.as_str())
        .filter(|l| has_visible_text(l))
        .collect();
    let mut predictions = classifier.predict(&texts)?.into_iter();
    for line in lines {
        if !has_visible_text(line) {
            writeln!(out, "{}", serde_json::json!({"error": "empty text"}))?;
        } else {
            let p = predictions.next().expect("one prediction per text");
            writeln!(out, "{}", serde_json::to_string(&p)?)?;
        }
    }
    out.flush()?;
    Ok(())
}

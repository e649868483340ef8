//! Scoring the redactor on a labeled file (`tests/fixtures/pii_sentences.jsonl`): per kind,
//! how many expected spans were fully covered by a finding of their kind (recall) and how
//! many findings overlap an expected span of their kind (precision).

use super::{Finding, PiiKind, Redactor};
use std::collections::BTreeMap;
use std::path::Path;

/// One labeled sentence; `spans` are character offsets (as Python counts them).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LabeledSentence {
    pub id: String,
    pub lang: String,
    pub text: String,
    pub spans: Vec<LabeledSpan>,
}

/// Where a piece of personal data is, in characters, and its kind.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LabeledSpan {
    pub start: usize,
    pub end: usize,
    #[serde(rename = "type")]
    pub kind: PiiKind,
}

/// Counts for one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindScore {
    /// Expected spans.
    pub expected: u32,
    /// Expected spans fully covered by a finding of the same kind.
    pub recalled: u32,
    /// Findings.
    pub found: u32,
    /// Findings overlapping an expected span of the same kind.
    pub correct: u32,
}

impl KindScore {
    /// `None` when nothing was found.
    pub fn precision(&self) -> Option<f64> {
        (self.found > 0).then(|| f64::from(self.correct) / f64::from(self.found))
    }

    /// `None` when nothing was expected.
    pub fn recall(&self) -> Option<f64> {
        (self.expected > 0).then(|| f64::from(self.recalled) / f64::from(self.expected))
    }
}

/// Scores per kind, and the sentences with a miss or a false hit (for reading).
#[derive(Debug, Default)]
pub struct EvalReport {
    pub sentences: usize,
    pub scores: BTreeMap<PiiKind, KindScore>,
    /// `id: what went wrong` for every sentence with an error.
    pub errors: Vec<String>,
}

/// Why the labeled file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{file}:{line}: {reason}")]
    BadLine {
        file: String,
        line: usize,
        reason: String,
    },
}

/// Reads a JSONL file of [`LabeledSentence`]s.
pub fn read_labeled(path: &Path) -> Result<Vec<LabeledSentence>, EvalError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::Io(file.clone(), e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let s: LabeledSentence =
                serde_json::from_str(line).map_err(|e| EvalError::BadLine {
                    file: file.clone(),
                    line: i + 1,
                    reason: e.to_string(),
                })?;
            let chars = s.text.chars().count();
            if let Some(bad) = s
                .spans
                .iter()
                .find(|sp| sp.start >= sp.end || sp.end > chars)
            {
                return Err(EvalError::BadLine {
                    file: file.clone(),
                    line: i + 1,
                    reason: format!("span {}..{} is outside the text", bad.start, bad.end),
                });
            }
            Ok(s)
        })
        .collect()
}

/// Runs `redactor` over every sentence and scores it.
pub fn evaluate(redactor: &Redactor, sentences: &[LabeledSentence]) -> EvalReport {
    let mut report = EvalReport {
        sentences: sentences.len(),
        ..EvalReport::default()
    };
    for s in sentences {
        let expected: Vec<Finding> = s.spans.iter().map(|sp| to_bytes(&s.text, sp)).collect();
        let found = redactor.find(&s.text);
        for e in &expected {
            let score = report.scores.entry(e.kind).or_default();
            score.expected += 1;
            if found
                .iter()
                .any(|f| f.kind == e.kind && covers(&s.text, f, e))
            {
                score.recalled += 1;
            } else {
                report.errors.push(format!(
                    "{}: missed {} {:?} in {:?}",
                    s.id,
                    e.kind.name(),
                    &s.text[e.start..e.end],
                    s.text
                ));
            }
        }
        for f in &found {
            let score = report.scores.entry(f.kind).or_default();
            score.found += 1;
            if expected
                .iter()
                .any(|e| e.kind == f.kind && f.start < e.end && e.start < f.end)
            {
                score.correct += 1;
            } else {
                report.errors.push(format!(
                    "{}: false {} {:?} in {:?}",
                    s.id,
                    f.kind.name(),
                    &s.text[f.start..f.end],
                    s.text
                ));
            }
        }
    }
    report
}

impl EvalReport {
    /// The per-kind table as the benchmark prints it.
    pub fn table(&self) -> String {
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let mut out = format!(
            "{} sentences\n| kind | expected | found | precision | recall |\n|---|---:|---:|---:|---:|\n",
            self.sentences
        );
        for (kind, s) in &self.scores {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                kind.name(),
                s.expected,
                s.found,
                fmt(s.precision()),
                fmt(s.recall())
            ));
        }
        out
    }
}

/// A labeled span in byte offsets.
fn to_bytes(text: &str, span: &LabeledSpan) -> Finding {
    let byte = |c: usize| text.char_indices().nth(c).map_or(text.len(), |(b, _)| b);
    Finding {
        kind: span.kind,
        start: byte(span.start),
        end: byte(span.end),
    }
}

/// Whether `f` covers every letter and digit of `e`.
fn covers(text: &str, f: &Finding, e: &Finding) -> bool {
    let inner = &text[e.start..e.end];
    let lead = inner.len()
        - inner
            .trim_start_matches(|c: char| !c.is_alphanumeric())
            .len();
    let trail = inner.len() - inner.trim_end_matches(|c: char| !c.is_alphanumeric()).len();
    f.start <= e.start + lead && e.end - trail <= f.end
}

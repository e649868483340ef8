//! PII redaction: payment cards, phone numbers, e-mail addresses, Korean resident
//! registration numbers, IBANs, US social security numbers and numbers read out digit by
//! digit are found in a text and replaced by a typed tag (`[CARD]`, `[PHONE]`, …) before the
//! text is stored or reaches a model.
//!
//! Patterns find candidates, check digits ([`checksums`]) and shapes decide. Written numbers
//! are cut into runs of digit groups and the longest valid slice of groups wins
//! ([`numbers`]); spoken digits ("four five three two", "공일공 일이삼사") are read into
//! digits first ([`spoken`]).

pub mod checksums;
pub mod eval;
mod numbers;
mod patterns;
mod spoken;
pub mod stored;

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Bump when the redactor finds more, so `voc redact` rewrites rows redacted before.
pub const REDACTION_VERSION: i16 = 1;

/// A kind of personal data, each replaced by its own tag.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum PiiKind {
    /// A payment card number: 13–19 digits passing the Luhn check.
    Card,
    /// A Korean, North American or `+`-prefixed international phone number.
    Phone,
    /// An e-mail address (written, or spoken as "name at host dot com").
    Email,
    /// A Korean resident registration number `YYMMDD-GNNNNNN`.
    Rrn,
    /// An IBAN passing mod-97.
    Iban,
    /// A US social security number `AAA-GG-SSSS`.
    Ssn,
    /// Seven or more digits read out one by one that fit none of the kinds above.
    Number,
}

impl PiiKind {
    /// Every kind, in tag order.
    pub const ALL: [PiiKind; 7] = [
        PiiKind::Card,
        PiiKind::Phone,
        PiiKind::Email,
        PiiKind::Rrn,
        PiiKind::Iban,
        PiiKind::Ssn,
        PiiKind::Number,
    ];

    /// The name used in JSON and in the fixture (`CARD`).
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Card => "CARD",
            PiiKind::Phone => "PHONE",
            PiiKind::Email => "EMAIL",
            PiiKind::Rrn => "RRN",
            PiiKind::Iban => "IBAN",
            PiiKind::Ssn => "SSN",
            PiiKind::Number => "NUMBER",
        }
    }

    /// The tag that replaces a hit in the text (`[CARD]`); the tokenizer keeps it whole.
    pub fn tag(self) -> &'static str {
        match self {
            PiiKind::Card => "[CARD]",
            PiiKind::Phone => "[PHONE]",
            PiiKind::Email => "[EMAIL]",
            PiiKind::Rrn => "[RRN]",
            PiiKind::Iban => "[IBAN]",
            PiiKind::Ssn => "[SSN]",
            PiiKind::Number => "[NUMBER]",
        }
    }

    /// The kind named `name` (`CARD`, case-insensitive).
    pub fn from_name(name: &str) -> Option<PiiKind> {
        PiiKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// Every tag, for the tokenizer's added tokens.
pub fn all_tags() -> Vec<&'static str> {
    PiiKind::ALL.iter().map(|k| k.tag()).collect()
}

/// One piece of personal data: its kind and its byte range in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

/// A text with its personal data replaced, and how many of each kind were replaced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Redacted {
    pub text: String,
    pub counts: BTreeMap<PiiKind, u32>,
}

impl Redacted {
    /// Whether anything was replaced.
    pub fn changed(&self) -> bool {
        !self.counts.is_empty()
    }
}

/// Finds and replaces personal data; build once ([`Redactor::shared`]) and reuse.
pub struct Redactor {
    patterns: patterns::Patterns,
}

static SHARED: LazyLock<Redactor> = LazyLock::new(Redactor::new);

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

impl Redactor {
    /// Compiles the patterns.
    pub fn new() -> Redactor {
        Redactor {
            patterns: patterns::Patterns::new(),
        }
    }

    /// One redactor for the whole process.
    pub fn shared() -> &'static Redactor {
        &SHARED
    }

    /// Every finding in `text`, in text order, none overlapping. E-mail addresses and IBANs
    /// are claimed first, then written numbers, then spoken digit runs in what is left.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        claim(&mut found, self.patterns.emails(text));
        claim(&mut found, self.patterns.ibans(text));
        claim(&mut found, numbers::find(text));
        let taken: Vec<(usize, usize)> = found.iter().map(|f| (f.start, f.end)).collect();
        claim(&mut found, spoken::find(text, &taken));
        found.sort_by_key(|f| f.start);
        found
    }

    /// `text` with every finding replaced by its tag, and the counts per kind.
    pub fn redact(&self, text: &str) -> Redacted {
        let found = self.find(text);
        let mut out = String::with_capacity(text.len());
        let mut counts = BTreeMap::new();
        let mut at = 0;
        for f in &found {
            out.push_str(&text[at..f.start]);
            out.push_str(f.kind.tag());
            *counts.entry(f.kind).or_insert(0) += 1;
            at = f.end;
        }
        out.push_str(&text[at..]);
        Redacted { text: out, counts }
    }
}

/// Adds the candidates that overlap nothing found so far.
fn claim(found: &mut Vec<Finding>, candidates: Vec<Finding>) {
    for c in candidates {
        if !found.iter().any(|f| c.start < f.end && f.start < c.end) {
            found.push(c);
        }
    }
}

/// Whether a command redacts what it stores and trains on: on unless `--no-redact`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Replace personal data by tags (the default).
    #[default]
    Redact,
    /// Keep texts as given (`--no-redact`); rows stored so keep `redaction_version` 0, so
    /// `voc redact` rewrites them later.
    Keep,
}

impl Policy {
    /// The policy of a command given its `--no-redact` flag.
    pub fn from_no_redact(no_redact: bool) -> Policy {
        if no_redact {
            Policy::Keep
        } else {
            Policy::Redact
        }
    }

    pub fn is_on(self) -> bool {
        self == Policy::Redact
    }

    /// `text` redacted (or as it is, with no counts, when redaction is off).
    pub fn apply(self, text: &str) -> Redacted {
        match self {
            Policy::Redact => Redactor::shared().redact(text),
            Policy::Keep => Redacted {
                text: text.to_string(),
                counts: BTreeMap::new(),
            },
        }
    }

    /// The `redaction_version` a row stored under this policy gets.
    pub fn version(self) -> i16 {
        match self {
            Policy::Redact => REDACTION_VERSION,
            Policy::Keep => 0,
        }
    }

    /// Redacts every text in place and returns the counts per kind.
    pub fn apply_all<'a>(
        self,
        texts: impl IntoIterator<Item = &'a mut String>,
    ) -> BTreeMap<PiiKind, u64> {
        let mut total = BTreeMap::new();
        if !self.is_on() {
            return total;
        }
        for text in texts {
            let r = Redactor::shared().redact(text);
            if r.changed() {
                add_counts(&mut total, &r.counts);
                *text = r.text;
            }
        }
        total
    }
}

/// Counts as a short line for people (`2 [CARD], 1 [PHONE]`, or `nothing`).
pub fn describe_counts(counts: &BTreeMap<PiiKind, u64>) -> String {
    if counts.is_empty() {
        return "nothing".into();
    }
    counts
        .iter()
        .map(|(kind, n)| format!("{n} {}", kind.tag()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An identifier that must stay unique (an imported row's `source_id`) with its personal
/// data replaced: unchanged when it holds none; else the redacted id followed by `#` and
/// 16 hex digits of SHA-256 of `redacted_text` (the row's text, already redacted), so two
/// rows whose ids were different phone numbers do not merge, a re-import finds the same
/// row, and nothing derived from the personal data itself is stored.
pub fn redact_unique_id(id: &str, redacted_text: &str) -> String {
    use sha2::{Digest, Sha256};
    let r = Redactor::shared().redact(id);
    if !r.changed() {
        return id.to_string();
    }
    let digest = hex::encode(Sha256::digest(redacted_text.as_bytes()));
    format!("{}#{}", r.text, &digest[..16])
}

/// Adds `b` into `a` (counts per kind).
pub fn add_counts(a: &mut BTreeMap<PiiKind, u64>, b: &BTreeMap<PiiKind, u32>) {
    for (kind, n) in b {
        *a.entry(*kind).or_insert(0) += u64::from(*n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        Redactor::shared().redact(text).text
    }

    #[test]
    fn every_kind_is_replaced_by_its_tag() {
        assert_eq!(
            redact("card 4532 0151 1283 0366, mail kim.j+voc@mail.example.co.kr"),
            "card [CARD], mail [EMAIL]"
        );
        assert_eq!(
            redact("010-1234-5678로 연락 주세요"),
            "[PHONE]로 연락 주세요"
        );
        assert_eq!(
            redact("주민번호 900101-1234567 입니다"),
            "주민번호 [RRN] 입니다"
        );
        assert_eq!(redact("IBAN DE89 3704 0044 0532 0130 00."), "IBAN [IBAN].");
        assert_eq!(redact("my SSN is 123-45-6789"), "my SSN is [SSN]");
        assert_eq!(redact("call +1 (415) 555-0132 today"), "call [PHONE] today");
    }

    #[test]
    fn look_alikes_stay() {
        for text in [
            "order ORD-2024-118822 shipped on 2024-03-15",
            "flight UA 1234 costs $1,234.56 or 15,000원",
            "card 4532 0151 1283 0367 fails Luhn",
            "tracking 1Z999AA10123456784",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        let once = Redactor::shared().redact("call 010 1234 5678 or four five three two zero one five one one two eight three zero three six six");
        let twice = Redactor::shared().redact(&once.text);
        assert_eq!(twice.text, once.text);
        assert!(twice.counts.is_empty());
    }

    #[test]
    fn counts_say_how_many_of_each_kind() {
        let r = Redactor::shared().redact("a@b.io and c@d.io, 010-1111-2222");
        assert_eq!(r.counts[&PiiKind::Email], 2);
        assert_eq!(r.counts[&PiiKind::Phone], 1);
        assert_eq!(
            serde_json::to_string(&r.counts).unwrap(),
            r#"{"PHONE":1,"EMAIL":2}"#
        );
    }
}

//! The text patterns: e-mail addresses (written, and spoken as "kim at gmail dot com" or
//! "kim 골뱅이 gmail 닷컴") and IBANs (mod-97 checked, longest valid prefix).

use super::checksums::iban_ok;
use super::{Finding, PiiKind};
use regex::Regex;

pub(super) struct Patterns {
    email: Regex,
    spoken_email: Regex,
    iban: Regex,
}

impl Patterns {
    pub fn new() -> Patterns {
        let label = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?";
        let email = format!(
            r"[A-Za-z0-9_%+-](?:[A-Za-z0-9._%+-]*[A-Za-z0-9_%+-])?@{label}(?:\.{label})*\.[A-Za-z]{{2,24}}"
        );
        let dot = r"(?:\s*\.\s*|\s+dot\b\s*|\s*(?:닷|점)\s*)";
        let spoken_email = format!(
            r"(?i)\b[a-z0-9][a-z0-9._-]*(?:\s+dot\s+[a-z0-9][a-z0-9._-]*)*(?:\s+at\b|\s*골뱅이|\s*앳)\s*[a-z0-9-]+(?:{dot}[a-z0-9-]+)*{dot}(?:(?:com|net|org|edu|gov|io|kr|co|us|uk|de|jp)\b|컴|넷|케이알)"
        );
        Patterns {
            email: Regex::new(&email).expect("e-mail pattern"),
            spoken_email: Regex::new(&spoken_email).expect("spoken e-mail pattern"),
            iban: Regex::new(r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}").expect("IBAN pattern"),
        }
    }

    /// Written and spoken e-mail addresses.
    pub fn emails(&self, text: &str) -> Vec<Finding> {
        let mut found: Vec<Finding> = self
            .email
            .find_iter(text)
            .map(|m| finding(PiiKind::Email, m.start(), m.end()))
            .collect();
        for m in self.spoken_email.find_iter(text) {
            if !found.iter().any(|f| m.start() < f.end && f.start < m.end()) {
                found.push(finding(PiiKind::Email, m.start(), m.end()));
            }
        }
        found
    }

    /// IBANs: the longest prefix of a candidate, cut between groups, that passes mod-97.
    pub fn ibans(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        for m in self.iban.find_iter(text) {
            if text[..m.start()]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            {
                continue;
            }
            let candidate = &text[m.start()..m.end()];
            if let Some(len) = longest_valid_iban(candidate) {
                found.push(finding(PiiKind::Iban, m.start(), m.start() + len));
            }
        }
        found
    }
}

/// The byte length of the longest prefix of `candidate` ending before a space or at its end
/// that is a valid IBAN once spaces are removed.
fn longest_valid_iban(candidate: &str) -> Option<usize> {
    let bytes = candidate.as_bytes();
    (15..=bytes.len()).rev().find(|&end| {
        let at_boundary = end == bytes.len() || bytes[end] == b' ';
        let compact: Vec<u8> = bytes[..end]
            .iter()
            .copied()
            .filter(|&b| b != b' ')
            .collect();
        at_boundary && bytes[end - 1] != b' ' && iban_ok(&compact)
    })
}

fn finding(kind: PiiKind, start: usize, end: usize) -> Finding {
    Finding { kind, start, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(found: Vec<Finding>, text: &str) -> Vec<String> {
        found
            .iter()
            .map(|f| text[f.start..f.end].to_string())
            .collect()
    }

    #[test]
    fn emails_with_plus_dots_and_subdomains_are_found_whole() {
        let p = Patterns::new();
        let text = "메일은 kim.j+voc@mail.example.co.kr로, 또는 a_b@x-y.io.";
        assert_eq!(
            spans(p.emails(text), text),
            ["kim.j+voc@mail.example.co.kr", "a_b@x-y.io"]
        );
    }

    #[test]
    fn spoken_emails_are_found() {
        let p = Patterns::new();
        let text = "it's john.smith at gmail dot com thanks";
        assert_eq!(spans(p.emails(text), text), ["john.smith at gmail dot com"]);
        let text = "메일은 minsu 골뱅이 naver 닷컴 이에요";
        assert_eq!(spans(p.emails(text), text), ["minsu 골뱅이 naver 닷컴"]);
    }

    #[test]
    fn an_iban_followed_by_capitals_is_cut_at_its_last_valid_group() {
        let p = Patterns::new();
        let text = "send to GB82 WEST 1234 5698 7654 32 BIC NWBKGB2L";
        assert_eq!(spans(p.ibans(text), text), ["GB82 WEST 1234 5698 7654 32"]);
        assert!(p.ibans("GB82 WEST 1234 5698 7654 33").is_empty());
    }
}

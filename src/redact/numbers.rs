//! Written numbers: the text is cut into runs of digit groups joined by spaces, dashes,
//! dots or parentheses, and the longest slice of whole groups that is a card, an RRN, an
//! SSN or a phone number is taken, then the groups left on either side are tried again.
//! A run glued to letters (`ORD-2024-118822`, `1Z999AA…`) loses its glued end group.

use super::checksums::{luhn_ok, rrn_checksum_ok, rrn_shape_ok};
use super::{Finding, PiiKind};

/// One group of digits: its byte range.
#[derive(Debug, Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
}

/// Digit groups one separator apart, and whether a `+` opens the first.
#[derive(Debug)]
struct Run {
    groups: Vec<Group>,
    plus: bool,
    /// The first / last group is glued to a word and may not be part of a finding.
    glued_start: bool,
    glued_end: bool,
}

const SEPARATORS: &[char] = &[' ', '-', '.', '(', ')', '\u{2013}'];

/// Every card, RRN, SSN and phone number written in digits.
pub(super) fn find(text: &str) -> Vec<Finding> {
    let mut found = Vec::new();
    for run in runs(text) {
        let lo = usize::from(run.glued_start);
        let hi = run.groups.len() - usize::from(run.glued_end);
        if lo < hi {
            best_slices(text, &run, lo, hi, &mut found);
        }
    }
    found
}

/// The runs of digit groups in `text`.
fn runs(text: &str) -> Vec<Run> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let first = i;
        let mut groups = Vec::new();
        loop {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            groups.push(Group { start, end: i });
            let sep_len = separator_len(&text[i..]);
            if sep_len > 0 && bytes.get(i + sep_len).is_some_and(u8::is_ascii_digit) {
                i += sep_len;
            } else {
                break;
            }
        }
        let before = text[..first].trim_end_matches(['(', ' ']);
        let plus = before.ends_with('+') && text[..first].len() - before.len() <= 2;
        let before = before.trim_end_matches('+');
        out.push(Run {
            glued_start: glued_before(&text[..first]) || (plus && glued_before(before)),
            glued_end: glued_after(&text[i..]),
            groups,
            plus,
        });
    }
    out
}

/// The length in bytes of a separator (1–3 separator characters) at the start of `rest`.
fn separator_len(rest: &str) -> usize {
    rest.char_indices()
        .take(3)
        .take_while(|(_, c)| SEPARATORS.contains(c))
        .last()
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// Whether a number starting here continues a word or code: `ORD-`, `A1`, `#`.
fn glued_before(before: &str) -> bool {
    let mut chars = before.chars().rev();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '#' => true,
        Some('-' | '_' | '/') => chars.next().is_some_and(|c| c.is_ascii_alphanumeric()),
        _ => false,
    }
}

/// Whether a number ending here runs on into a word or code: `5A`, `12/27`.
fn glued_after(after: &str) -> bool {
    let mut chars = after.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => true,
        Some('/' | '_') => chars.next().is_some_and(|c| c.is_ascii_alphanumeric()),
        _ => false,
    }
}

/// Takes the longest valid slice of `run.groups[lo..hi]` (leftmost among equals), then
/// looks at what is left on each side.
fn best_slices(text: &str, run: &Run, lo: usize, hi: usize, found: &mut Vec<Finding>) {
    for len in (1..=hi - lo).rev() {
        for i in lo..=hi - len {
            let groups = &run.groups[i..i + len];
            let plus = run.plus && i == 0;
            let kind = classify(text, groups, plus).filter(|&k| {
                !tightly_joined(text, &run.groups, i, i + len)
                    && (k != PiiKind::Card || !continues(text, &run.groups, i, i + len))
            });
            if let Some(kind) = kind {
                if lo < i {
                    best_slices(text, run, lo, i, found);
                }
                found.push(span(text, groups, plus, kind));
                if i + len < hi {
                    best_slices(text, run, i + len, hi, found);
                }
                return;
            }
        }
    }
}

/// Whether groups `i..j` touch a neighbour through a dash or dot with no space: a slice of
/// `929-0630638773` is part of one code, not a number of its own.
fn tightly_joined(text: &str, groups: &[Group], i: usize, j: usize) -> bool {
    let tight = |sep: &str| !sep.contains([' ', '(', ')']);
    (i > 0 && tight(&text[groups[i - 1].end..groups[i].start]))
        || (j < groups.len() && tight(&text[groups[j - 1].end..groups[j].start]))
}

/// Whether groups `i..j` of a run go on, on either side, with the separator used inside
/// them: `9400 1000 0000 0000 0000 00` (a parcel number) holds no card.
fn continues(text: &str, groups: &[Group], i: usize, j: usize) -> bool {
    if j - i < 2 {
        return false;
    }
    let inner = &text[groups[i].end..groups[i + 1].start];
    let before = i > 0 && &text[groups[i - 1].end..groups[i].start] == inner;
    let after = j < groups.len() && &text[groups[j - 1].end..groups[j].start] == inner;
    before || after
}

/// The finding's byte range: the groups, with an opening `+` or `(` in front.
fn span(text: &str, groups: &[Group], plus: bool, kind: PiiKind) -> Finding {
    let mut start = groups[0].start;
    let end = groups[groups.len() - 1].end;
    let inner = &text[start..end];
    if text[..start].ends_with('(') && inner.contains(')') {
        start -= 1;
    }
    if plus {
        let before = text[..start].trim_end_matches(['(', ' ']);
        start = before.len() - 1;
    }
    Finding { kind, start, end }
}

/// What a slice of digit groups is, if anything.
fn classify(text: &str, groups: &[Group], plus: bool) -> Option<PiiKind> {
    let digits: Vec<u8> = groups
        .iter()
        .flat_map(|g| text.as_bytes()[g.start..g.end].iter().copied())
        .collect();
    if digits.len() > 19 {
        return None;
    }
    let lens: Vec<usize> = groups.iter().map(|g| g.end - g.start).collect();
    let seps: Vec<&str> = groups
        .windows(2)
        .map(|w| &text[w[0].end..w[1].start])
        .collect();
    if plus {
        return international_phone(&digits, &lens).then_some(PiiKind::Phone);
    }
    if is_rrn(&digits, &lens) {
        return Some(PiiKind::Rrn);
    }
    if is_card(&digits, &lens, &seps) {
        return Some(PiiKind::Card);
    }
    if is_ssn(&digits, &lens, &seps) {
        return Some(PiiKind::Ssn);
    }
    if korean_phone_grouped(&digits, &lens) || north_american_phone(&digits, &lens) {
        return Some(PiiKind::Phone);
    }
    None
}

/// `YYMMDD-GNNNNNN` or the 13 digits together (then a Luhn-valid number whose RRN check
/// digit is wrong is taken for a card).
fn is_rrn(digits: &[u8], lens: &[usize]) -> bool {
    match lens {
        [6, 7] => rrn_shape_ok(digits),
        [13] => rrn_shape_ok(digits) && (rrn_checksum_ok(digits) || !luhn_ok(digits)),
        _ => false,
    }
}

/// 13–19 digits passing Luhn, written whole or in groups of at least three digits that
/// start with a group of four (4-4-4-4, 4-6-5, 4-4-4-4-3), one kind of separator.
fn is_card(digits: &[u8], lens: &[usize], seps: &[&str]) -> bool {
    if !(13..=19).contains(&digits.len()) || !luhn_ok(digits) {
        return false;
    }
    let grouped = lens[0] == 4 && lens.iter().all(|&l| l >= 3);
    (lens.len() == 1 || grouped) && seps.windows(2).all(|w| w[0] == w[1])
}

/// `AAA-GG-SSSS` (dashes or spaces) with the numbers the SSA never issues left out.
fn is_ssn(digits: &[u8], lens: &[usize], seps: &[&str]) -> bool {
    if lens != [3, 2, 4] || seps[0] != seps[1] || !matches!(seps[0], "-" | " ") {
        return false;
    }
    let area = &digits[..3];
    area != b"000"
        && area != b"666"
        && area[0] != b'9'
        && &digits[3..5] != b"00"
        && &digits[5..] != b"0000"
}

/// A Korean number as dialled at home: mobile `01X`, Seoul `02`, area `0NN`, `070`, `050X`.
pub(super) fn korean_phone(digits: &[u8]) -> bool {
    let n = digits.len();
    match digits {
        [b'0', b'1', b'0' | b'1' | b'6' | b'7' | b'8' | b'9', ..] => (10..=11).contains(&n),
        [b'0', b'2', ..] => (9..=10).contains(&n),
        [b'0', b'7', b'0', ..] => n == 11,
        [b'0', b'5', b'0', ..] => (11..=12).contains(&n),
        [b'0', b'3'..=b'6', b'1'..=b'5', ..] => (10..=11).contains(&n),
        _ => false,
    }
}

/// A Korean number written whole or in its own groups: the area or mobile prefix, then
/// 3–4 and 4 digits (`010-1234-5678`, `02 123 4567`), or the prefix and 7–8 digits.
fn korean_phone_grouped(digits: &[u8], lens: &[usize]) -> bool {
    let prefix = match digits {
        [b'0', b'2', ..] => 2,
        [b'0', b'5', b'0', ..] => 4,
        _ => 3,
    };
    let grouped = match lens {
        [_] => true,
        [p, rest] => *p == prefix && (7..=8).contains(rest),
        [p, mid, 4] => *p == prefix && (3..=4).contains(mid),
        _ => false,
    };
    grouped && korean_phone(digits)
}

/// A NANP number written in groups: `415-555-0132`, `(415) 555 0132`, `1-415-555-0132`.
/// Ten digits written together are left alone (too many order numbers look like that).
pub(super) fn north_american_phone(digits: &[u8], lens: &[usize]) -> bool {
    let national = match lens {
        [3, 3, 4] => digits,
        [1, 3, 3, 4] if digits[0] == b'1' => &digits[1..],
        _ => return false,
    };
    (b'2'..=b'9').contains(&national[0]) && (b'2'..=b'9').contains(&national[3])
}

/// After a `+`: a Korean number (`+82 10 …`, the trunk `0` optional), a NANP number
/// (`+1 …`), or any other 8–15 digits in at least two groups.
fn international_phone(digits: &[u8], lens: &[usize]) -> bool {
    if let Some(rest) = digits.strip_prefix(b"82") {
        let national: Vec<u8> = if rest.first() == Some(&b'0') {
            rest.to_vec()
        } else {
            [b"0".as_slice(), rest].concat()
        };
        return korean_phone(&national);
    }
    if let Some(rest) = digits.strip_prefix(b"1") {
        return rest.len() == 10 && (b'2'..=b'9').contains(&rest[0]);
    }
    (8..=15).contains(&digits.len()) && (lens.len() >= 2 || digits.len() >= 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(PiiKind, &str)> {
        find(text)
            .into_iter()
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect()
    }

    #[test]
    fn phones_in_korean_and_us_formats() {
        assert_eq!(found("02-123-4567"), [(PiiKind::Phone, "02-123-4567")]);
        assert_eq!(found("(02) 123-4567"), [(PiiKind::Phone, "(02) 123-4567")]);
        assert_eq!(
            found("+82 10 1234 5678로"),
            [(PiiKind::Phone, "+82 10 1234 5678")]
        );
        assert_eq!(found("01012345678번"), [(PiiKind::Phone, "01012345678")]);
        assert_eq!(
            found("at +1 (415) 555-0132."),
            [(PiiKind::Phone, "+1 (415) 555-0132")]
        );
        assert_eq!(found("415.555.0132"), [(PiiKind::Phone, "415.555.0132")]);
        assert_eq!(
            found("+44 20 7946 0958"),
            [(PiiKind::Phone, "+44 20 7946 0958")]
        );
    }

    #[test]
    fn a_phone_is_taken_out_of_a_run_that_starts_with_a_date() {
        assert_eq!(
            found("2024.03.15 010 1234 5678"),
            [(PiiKind::Phone, "010 1234 5678")]
        );
    }

    #[test]
    fn cards_rrns_and_ssns() {
        assert_eq!(
            found("4532-0151-1283-0366"),
            [(PiiKind::Card, "4532-0151-1283-0366")]
        );
        assert_eq!(
            found("3782 822463 10005"),
            [(PiiKind::Card, "3782 822463 10005")]
        );
        assert_eq!(found("9001011234568"), [(PiiKind::Rrn, "9001011234568")]);
        assert_eq!(found("040229-3123456"), [(PiiKind::Rrn, "040229-3123456")]);
        assert_eq!(found("123 45 6789"), [(PiiKind::Ssn, "123 45 6789")]);
    }

    #[test]
    fn look_alikes_are_not_found() {
        for text in [
            "ORD-2024-118822",
            "2024-03-15",
            "4532 0151 1283 0367",
            "order 4155550132",
            "1588-1234",
            "000-12-3456",
            "901301-1234567",
            "#4532015112830366",
            "9400 1000 0000 0000 0000 00",
        ] {
            assert_eq!(found(text), [], "{text}");
        }
    }
}

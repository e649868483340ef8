//! Numbers read out digit by digit, as speech-to-text writes them: "four five three two",
//! "zero one zero", "double five", "공일공 일이삼사 오육칠팔로", possibly mixed with written
//! digits. Seven or more digits in a row (at least four of them spoken) are a number; its
//! length and check digits say which kind, and one that fits none is a `[NUMBER]`: in a
//! call, a string of seven spoken digits is an account, card, phone or ID number far more
//! often than anything a classifier needs.

use super::checksums::{luhn_ok, rrn_shape_ok};
use super::numbers::{korean_phone, north_american_phone};
use super::{Finding, PiiKind};

/// Fewest digits that make a spoken run a number.
const MIN_DIGITS: usize = 7;
/// Fewest of them spoken: `2024-03-15 one two three` is a date and a count, not a number.
const MIN_SPOKEN: usize = 4;

/// Korean endings that may follow the last digit of a run (`오육칠팔로`, `…이에요`).
const KOREAN_ENDINGS: &[&str] = &[
    "번입니다",
    "입니다",
    "이에요",
    "번이요",
    "번이에요",
    "이예요",
    "예요",
    "에요",
    "이요",
    "으로",
    "이고",
    "이랑",
    "이며",
    "인데",
    "이야",
    "번",
    "로",
    "고",
    "랑",
    "요",
    "야",
];

/// One word's contribution to a run.
struct Word {
    start: usize,
    /// End of the digit part (before a Korean ending).
    end: usize,
    digits: String,
    spoken: bool,
    /// A Korean ending or a full stop follows: the run stops after this word.
    last: bool,
}

/// The spoken-digit runs of `text` that overlap none of `taken`.
pub(super) fn find(text: &str, taken: &[(usize, usize)]) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut run: Vec<Word> = Vec::new();
    let mut pending_repeat = 1;
    for (start, word) in words(text) {
        let end = start + word.len();
        let free = !taken.iter().any(|&(s, e)| start < e && s < end);
        if free {
            if let Some(n) = repeat(word) {
                pending_repeat = n;
                continue;
            }
        }
        match free.then(|| read_word(start, word)).flatten() {
            Some(mut w) => {
                w.digits = w.digits.repeat(pending_repeat);
                let last = w.last;
                run.push(w);
                if last {
                    close(&mut run, &mut found);
                }
            }
            None => close(&mut run, &mut found),
        }
        pending_repeat = 1;
    }
    close(&mut run, &mut found);
    found
}

/// Words of `text` with their byte offsets; spaces, commas and dashes separate them.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_inclusive(|c: char| c.is_whitespace() || c == ',' || c == '-')
        .scan(0, |at, piece| {
            let start = *at;
            *at += piece.len();
            let word = piece.trim_end_matches(|c: char| c.is_whitespace() || c == ',' || c == '-');
            Some((start, word))
        })
        .filter(|(_, w)| !w.is_empty())
}

/// "double" / "triple" before a digit word.
fn repeat(word: &str) -> Option<usize> {
    match word.to_ascii_lowercase().as_str() {
        "double" => Some(2),
        "triple" => Some(3),
        _ => None,
    }
}

/// The digits a word stands for, if it is a digit word, a Korean digit string or written
/// digits (each possibly with a Korean ending or a full stop after it).
fn read_word(start: usize, word: &str) -> Option<Word> {
    let (body, stop) = match word.strip_suffix(['.', '?', '!']) {
        Some(b) => (b, true),
        None => (word, false),
    };
    let english = english_digit(body).map(|d| (d.to_string(), body, false));
    let read = english
        .or_else(|| korean_digits(body).map(|d| (d, body, false)))
        .or_else(|| ascii_digits(body).map(|d| (d, body, false)))
        .or_else(|| {
            KOREAN_ENDINGS.iter().find_map(|ending| {
                let stem = body.strip_suffix(ending)?;
                korean_digits(stem)
                    .or_else(|| ascii_digits(stem))
                    .map(|d| (d, stem, true))
            })
        });
    let (digits, stem, ending) = read?;
    Some(Word {
        start,
        end: start + stem.len(),
        spoken: !stem.bytes().all(|b| b.is_ascii_digit()),
        digits,
        last: stop || ending,
    })
}

fn english_digit(word: &str) -> Option<char> {
    let digit = match word.to_ascii_lowercase().as_str() {
        "zero" | "oh" => '0',
        "one" => '1',
        "two" => '2',
        "three" => '3',
        "four" => '4',
        "five" => '5',
        "six" => '6',
        "seven" => '7',
        "eight" => '8',
        "nine" => '9',
        _ => return None,
    };
    Some(digit)
}

/// Sino-Korean digit syllables, every character one digit (`공일공` is 010).
fn korean_digits(word: &str) -> Option<String> {
    if word.is_empty() {
        return None;
    }
    word.chars()
        .map(|c| match c {
            '공' | '영' => Some('0'),
            '일' => Some('1'),
            '이' => Some('2'),
            '삼' => Some('3'),
            '사' => Some('4'),
            '오' => Some('5'),
            '육' | '륙' => Some('6'),
            '칠' => Some('7'),
            '팔' => Some('8'),
            '구' => Some('9'),
            _ => None,
        })
        .collect()
}

fn ascii_digits(word: &str) -> Option<String> {
    (!word.is_empty() && word.bytes().all(|b| b.is_ascii_digit())).then(|| word.to_string())
}

/// Ends the current run: a finding when it holds enough digits and at least one spoken.
fn close(run: &mut Vec<Word>, found: &mut Vec<Finding>) {
    let digits: String = run.iter().map(|w| w.digits.as_str()).collect();
    let spoken: usize = run
        .iter()
        .filter(|w| w.spoken)
        .map(|w| w.digits.len())
        .sum();
    if digits.len() >= MIN_DIGITS && spoken >= MIN_SPOKEN {
        found.push(Finding {
            kind: kind_of(digits.as_bytes()),
            start: run[0].start,
            end: run[run.len() - 1].end,
        });
    }
    run.clear();
}

/// What a spoken number is, by its length and check digits.
fn kind_of(digits: &[u8]) -> PiiKind {
    let n = digits.len();
    if n == 13 && rrn_shape_ok(digits) {
        PiiKind::Rrn
    } else if (13..=19).contains(&n) && luhn_ok(digits) {
        PiiKind::Card
    } else if korean_phone(digits)
        || (n == 10 && north_american_phone(digits, &[3, 3, 4]))
        || (n == 11 && digits[0] == b'1' && north_american_phone(digits, &[1, 3, 3, 4]))
    {
        PiiKind::Phone
    } else {
        PiiKind::Number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(PiiKind, &str)> {
        find(text, &[])
            .into_iter()
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect()
    }

    #[test]
    fn english_digits_make_a_card_or_a_phone() {
        let text = "it is four five three two zero one five one one two eight three zero three six six, thanks";
        assert_eq!(found(text)[0].0, PiiKind::Card);
        assert_eq!(
            found("call four one five, five five five, oh one three two."),
            [(
                PiiKind::Phone,
                "four one five, five five five, oh one three two"
            )]
        );
        assert_eq!(found("double five")[..], []);
    }

    #[test]
    fn korean_digits_with_an_ending_make_a_phone() {
        assert_eq!(
            found("번호는 공일공 일이삼사 오육칠팔로 연락 주세요"),
            [(PiiKind::Phone, "공일공 일이삼사 오육칠팔")]
        );
        assert_eq!(
            found("010 일이삼사 5678이에요"),
            [(PiiKind::Phone, "010 일이삼사 5678")]
        );
    }

    #[test]
    fn a_long_unknown_number_is_a_number_and_short_ones_stay() {
        assert_eq!(
            found("account one two three four five six seven eight")[0].0,
            PiiKind::Number
        );
        assert_eq!(found("I have one or two questions, three maybe")[..], []);
        assert_eq!(found("1234567 written only")[..], []);
    }
}

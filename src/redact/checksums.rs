//! The check digits that tell a real identifier from a number of the same shape: Luhn
//! (payment cards), the Korean resident registration number's weighted sum, and the IBAN's
//! mod-97.

/// Whether `digits` (ASCII digits only) passes the Luhn check of payment card numbers.
pub fn luhn_ok(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 {
                    twice - 9
                } else {
                    twice
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether the 13 digits of a resident registration number (`YYMMDDGNNNNNC`) carry a right
/// check digit. Numbers issued since October 2020 end in a random digit, so a failed check
/// does not mean the number is not an RRN.
pub fn rrn_checksum_ok(digits: &[u8]) -> bool {
    const WEIGHTS: [u32; 12] = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];
    if digits.len() != 13 {
        return false;
    }
    let sum: u32 = digits[..12]
        .iter()
        .zip(WEIGHTS)
        .map(|(&d, w)| u32::from(d - b'0') * w)
        .sum();
    (11 - sum % 11) % 10 == u32::from(digits[12] - b'0')
}

/// Whether the 13 digits have the shape of a resident registration number: a plausible
/// birth date `YYMMDD` and a century/sex digit 1–8 (5–8: foreign residents).
pub fn rrn_shape_ok(digits: &[u8]) -> bool {
    if digits.len() != 13 {
        return false;
    }
    let two = |i: usize| u32::from(digits[i] - b'0') * 10 + u32::from(digits[i + 1] - b'0');
    let (month, day) = (two(2), two(4));
    let days_in_month = match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return false,
    };
    (1..=days_in_month).contains(&day) && (b'1'..=b'8').contains(&digits[6])
}

/// Whether `iban` (upper-case letters and digits, no spaces) passes the ISO 13616 mod-97
/// check: the first four characters moved to the end, letters as 10–35, the number mod 97
/// is 1.
pub fn iban_ok(iban: &[u8]) -> bool {
    if !(15..=34).contains(&iban.len())
        || !iban[..2].iter().all(u8::is_ascii_uppercase)
        || !iban[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let mut rest = 0u32;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        let value = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rest = if value >= 10 {
            (rest * 100 + value) % 97
        } else {
            (rest * 10 + value) % 97
        };
    }
    rest == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_known_test_cards_and_refuses_a_changed_digit() {
        assert!(luhn_ok(b"4532015112830366"));
        assert!(luhn_ok(b"378282246310005"));
        assert!(luhn_ok(b"6011111111111117"));
        assert!(!luhn_ok(b"4532015112830367"));
        assert!(!luhn_ok(b""));
    }

    #[test]
    fn rrn_check_digit_is_the_weighted_sum_rule() {
        // 900101-123456C: sum = 9*2+0*3+0*4+1*5+0*6+1*7+1*8+2*9+3*2+4*3+5*4+6*5 = 124,
        // (11 - 124 % 11) % 10 = (11 - 3) % 10 = 8.
        assert!(rrn_checksum_ok(b"9001011234568"));
        assert!(!rrn_checksum_ok(b"9001011234567"));
    }

    #[test]
    fn rrn_shape_needs_a_real_month_day_and_a_sex_digit() {
        assert!(rrn_shape_ok(b"9001011234567"));
        assert!(rrn_shape_ok(b"0402297123456"));
        assert!(!rrn_shape_ok(b"9013011234567"), "month 13");
        assert!(!rrn_shape_ok(b"9002301234567"), "30 February");
        assert!(!rrn_shape_ok(b"9001019234567"), "sex digit 9");
    }

    #[test]
    fn iban_mod97_accepts_the_standard_examples() {
        assert!(iban_ok(b"DE89370400440532013000"));
        assert!(iban_ok(b"GB82WEST12345698765432"));
        assert!(!iban_ok(b"GB82WEST12345698765433"));
        assert!(!iban_ok(b"DE8937040044"));
    }
}

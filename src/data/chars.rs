//! Which characters a reader can see: a text made only of spaces, control characters and
//! invisible format characters is empty, and a name holding invisible ones can pass for
//! another.

/// Control characters, and the invisible ones that would make two names look the same
/// (zero-width spaces and joiners, direction marks and overrides, word joiners, the
/// byte-order mark, the soft hyphen).
pub fn is_invisible_or_control(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Whether `text` holds at least one character that is neither white space nor invisible.
pub fn has_visible_text(text: &str) -> bool {
    text.chars()
        .any(|c| !c.is_whitespace() && !is_invisible_or_control(c))
}

#[cfg(test)]
mod tests {
    use super::{has_visible_text, is_invisible_or_control};

    #[test]
    fn invisible_and_control_characters_are_caught_and_letters_are_not() {
        for c in [
            '\u{0}', '\n', '\u{7F}', '\u{200B}', '\u{200D}', '\u{202E}', '\u{2066}', '\u{FEFF}',
            '\u{00AD}',
        ] {
            assert!(is_invisible_or_control(c), "U+{:04X}", c as u32);
        }
        for c in ['a', ' ', 'é', '환', '-', '_'] {
            assert!(!is_invisible_or_control(c), "{c}");
        }
    }

    #[test]
    fn a_text_of_spaces_and_invisible_characters_has_nothing_visible() {
        for empty in [
            "",
            " \n\t",
            "\u{200B}\u{200D}",
            " \u{FEFF}\u{2060}\u{7} ",
            "\u{3000}",
        ] {
            assert!(!has_visible_text(empty), "{empty:?}");
        }
        for text in ["a", "\u{200B}ok\u{200B}", "환불", " . ", "tab\there\u{7}"] {
            assert!(has_visible_text(text), "{text:?}");
        }
    }
}

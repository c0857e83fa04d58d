//! Character classes for checking what people type (pet names here, email addresses on the
//! server): control characters, invisible format characters, and blank characters. Small
//! range tables instead of a Unicode-properties crate, because this crate is compiled into
//! the browser's wasm and a general-category table would cost tens of KB there; the tests
//! check the tables against `unicode-properties` for every code point.

/// General category Cf (format), Unicode 16: zero-width space/joiners, bidirectional
/// marks, embeddings, overrides and isolates, the BOM, the soft hyphen, invisible
/// operators, interlinear annotation, tags, …. They change how text around them looks
/// without showing themselves, which is what a spoofed name is made of.
const FORMAT: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// Default_Ignorable_Code_Point (Unicode 16) that are not already format characters:
/// fillers and selectors that render as nothing at all (the Hangul fillers U+115F, U+1160,
/// U+3164 and U+FFA0 are the classic "invisible name").
const IGNORABLE: &[(char, char)] = &[
    ('\u{034F}', '\u{034F}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{2065}', '\u{2065}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFF8}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Characters drawn as an empty cell although they are neither white space nor ignorable:
/// the blank braille pattern, a favourite for "invisible" names.
const DRAWN_BLANK: &[char] = &['\u{2800}'];

fn in_ranges(c: char, ranges: &[(char, char)]) -> bool {
    // The tables are sorted and disjoint: a binary search finds the one range that could
    // hold `c`.
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// A format character (general category Cf): invisible, but changes the text around it.
pub fn is_format(c: char) -> bool {
    in_ranges(c, FORMAT)
}

/// A control character (Cc: NUL, ESC, newline, tab, DEL, C1 controls) or a format
/// character (Cf): refused in names and email addresses.
pub fn is_control_or_format(c: char) -> bool {
    c.is_control() || is_format(c)
}

/// A character that shows nothing: white space, a default-ignorable code point (format
/// characters, fillers, variation selectors), or a character drawn as an empty cell
/// (U+2800 BRAILLE PATTERN BLANK). A name made only of these looks empty.
pub fn is_blank(c: char) -> bool {
    c.is_whitespace()
        || is_format(c)
        || in_ranges(c, IGNORABLE)
        || DRAWN_BLANK.contains(&c)
        || c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

    fn all_chars() -> impl Iterator<Item = char> {
        (0..=0x10FFFF_u32).filter_map(char::from_u32)
    }

    #[test]
    fn tables_are_sorted_and_disjoint() {
        for table in [FORMAT, IGNORABLE] {
            for pair in table.windows(2) {
                assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:?}");
            }
        }
    }

    #[test]
    fn format_is_exactly_general_category_cf() {
        for c in all_chars() {
            let cf = c.general_category() == GeneralCategory::Format;
            assert_eq!(is_format(c), cf, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn every_space_separator_and_line_break_is_blank() {
        for c in all_chars() {
            use GeneralCategory::*;
            if matches!(
                c.general_category(),
                SpaceSeparator | LineSeparator | ParagraphSeparator | Format | Control
            ) {
                assert!(is_blank(c), "U+{:04X}", c as u32);
            }
        }
    }

    #[test]
    fn the_known_invisible_name_characters_are_blank() {
        for c in [
            '\u{200B}',
            '\u{200D}',
            '\u{3164}',
            '\u{115F}',
            '\u{1160}',
            '\u{FFA0}',
            '\u{2800}',
            '\u{FEFF}',
            '\u{00A0}',
            '\u{3000}',
            '\u{034F}',
            '\u{FE0F}',
            '\u{E0041}',
        ] {
            assert!(is_blank(c), "U+{:04X}", c as u32);
        }
        for c in ['a', 'é', 'ж', '猫', '🐱', '.', '-', '\u{0301}'] {
            assert!(!is_blank(c), "{c}");
        }
    }

    #[test]
    fn controls_and_formats_are_refused() {
        for c in [
            '\0', '\u{1B}', '\n', '\t', '\u{7F}', '\u{85}', '\u{202E}', '\u{FEFF}',
        ] {
            assert!(is_control_or_format(c), "U+{:04X}", c as u32);
        }
        for c in ['a', ' ', '\u{3164}', '\u{2800}'] {
            assert!(!is_control_or_format(c), "U+{:04X}", c as u32);
        }
    }
}

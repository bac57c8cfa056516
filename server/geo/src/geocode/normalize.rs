//! Text normalisation for matching: one canonical form for what operators type and what the
//! map says, so case, diacritics, look-alike letters and punctuation never decide a match.

use unicode_normalization::char::{canonical_combining_class, is_combining_mark};
use unicode_normalization::UnicodeNormalization;

/// Canonical matching form: lowercase, compatibility-normalised (NFKC), diacritics dropped,
/// Cyrillic look-alikes inside Latin words folded, punctuation turned into single spaces.
///
/// Hangul survives: decomposition splits syllables into conjoining jamo, which are letters,
/// not marks, and recomposition puts them back, so "세종대로" stays "세종대로".
pub fn normalize(text: &str) -> String {
    let lowered = text.to_lowercase();
    let stripped: String = lowered.nfkd().filter(|c| !is_diacritic(*c)).nfc().collect();
    let mut out = String::with_capacity(stripped.len());
    for word in stripped.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let mixed = word.chars().any(|c| c.is_ascii_alphabetic()) && word.chars().any(is_cyrillic);
        out.extend(word.chars().map(|c| if mixed { latin_twin(c) } else { c }));
    }
    out
}

/// The words of a normalised text.
pub fn tokens(normalized: &str) -> Vec<&str> {
    normalized.split(' ').filter(|w| !w.is_empty()).collect()
}

/// Matching form of a house number: "12 A", "12a" and "12-A" are all "12a"; other parts stay
/// apart ("5-7" is "5 7") so that "57" is a different number.
pub fn housenumber_key(text: &str) -> String {
    housenumber_from_tokens(&tokens(&normalize(text)))
}

/// Joins house-number words, gluing a single letter to the number before it.
pub fn housenumber_from_tokens(words: &[&str]) -> String {
    let mut out = String::new();
    for word in words {
        let glue = word.chars().count() == 1
            && word.chars().all(char::is_alphabetic)
            && out.ends_with(|c: char| c.is_ascii_digit());
        if !out.is_empty() && !glue {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// A diacritic split off by decomposition. Conjoining Hangul jamo are letters and never match,
/// but they are excluded by name too so no future table change can break Korean addresses.
fn is_diacritic(c: char) -> bool {
    is_combining_mark(c) && canonical_combining_class(c) != 0 && !is_hangul(c)
}

fn is_hangul(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xD7B0..=0xD7FF
        | 0x302E..=0x302F | 0xAC00..=0xD7A3)
}

fn is_cyrillic(c: char) -> bool {
    matches!(c as u32, 0x0400..=0x04FF)
}

/// The Latin letter a lowercase Cyrillic one is mistaken for, as typed by a wrong keyboard
/// layout or pasted from a document ("Tӧölö").
fn latin_twin(c: char) -> char {
    match c {
        'а' => 'a',
        'в' => 'b',
        'е' | 'ё' => 'e',
        'і' | 'ї' => 'i',
        'ј' => 'j',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'т' => 't',
        'у' => 'y',
        'х' => 'x',
        'ѕ' => 's',
        other => other,
    }
}

/// Similarity of two normalised texts in 0..=1: 1 when equal, else one minus the edit distance
/// (in characters) over the longer length.
pub fn similarity(a: &str, b: &str) -> f64 {
    strsim::normalized_levenshtein(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_diacritics_do_not_matter() {
        assert_eq!(normalize("Mannerheimintie"), "mannerheimintie");
        assert_eq!(normalize("MANNERHEIMINTIE"), normalize("mannerheimintie"));
        assert_eq!(normalize("Töölö"), "toolo");
        assert_eq!(normalize("Tӧölö"), "toolo", "Cyrillic ӧ in a Latin word");
        assert_eq!(normalize("Ÿlä-Ärräs"), "yla arras");
        assert_eq!(normalize("İstanbul"), "istanbul");
    }

    #[test]
    fn compatibility_forms_and_punctuation_fold() {
        assert_eq!(normalize("ＡＢＣ　１２"), "abc 12", "full-width");
        assert_eq!(normalize("ﬁnlandia"), "finlandia", "ligature");
        assert_eq!(
            normalize("  Aleksanterinkatu,   52!! "),
            "aleksanterinkatu 52"
        );
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn hangul_is_kept() {
        assert_eq!(normalize("세종대로"), "세종대로");
        assert_eq!(normalize(&normalize("세종대로")), normalize("세종대로"));
        assert_eq!(normalize("세종대로 110"), "세종대로 110");
        // Decomposed jamo input recomposes to the same syllables.
        let decomposed: String = "세종대로".nfd().collect();
        assert_eq!(normalize(&decomposed), "세종대로");
    }

    #[test]
    fn purely_cyrillic_words_are_left_alone() {
        assert_eq!(normalize("Москва"), "москва");
    }

    #[test]
    fn house_numbers() {
        assert_eq!(housenumber_key("12 A"), "12a");
        assert_eq!(housenumber_key("12a"), "12a");
        assert_eq!(housenumber_key("12-A"), "12a");
        assert_eq!(housenumber_key("5-7"), "5 7");
        assert_eq!(housenumber_key("12 B 3"), "12b 3");
    }

    #[test]
    fn similarity_orders_by_edits() {
        assert_eq!(similarity("abc", "abc"), 1.0);
        assert!(similarity("mannerheimintie", "mannerheimintei") > 0.8);
        assert!(similarity("abc", "xyz") < 0.1);
    }
}

//! Unicode script of a character, for the suite's checks and the language-confusion metric.

/// The writing systems of the suite's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Script {
    Latin,
    Cyrillic,
    Arabic,
    Han,
    Kana,
    Hangul,
    Bengali,
    Thai,
}

/// The script of a letter, or `None` for digits, punctuation, spaces, symbols and other scripts.
pub fn of(c: char) -> Option<Script> {
    let u = c as u32;
    Some(match u {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x24F | 0x1E00..=0x1EFF => Script::Latin,
        0x400..=0x52F => Script::Cyrillic,
        0x600..=0x65F | 0x66E..=0x6D3 | 0x6D5..=0x6FF | 0x750..=0x77F | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF => {
            if (0x660..=0x669).contains(&u) || (0x6F0..=0x6F9).contains(&u) {
                return None;
            }
            // Arabic punctuation (، ؛ ؟) is not a letter.
            if matches!(u, 0x60C | 0x61B | 0x61F | 0x66A..=0x66D) {
                return None;
            }
            Script::Arabic
        }
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF | 0x3005 => Script::Han,
        0x3041..=0x309F | 0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => {
            if matches!(u, 0x30FB) {
                return None;
            }
            Script::Kana
        }
        0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F => Script::Hangul,
        0x980..=0x9FF => {
            if (0x9E6..=0x9EF).contains(&u) {
                return None;
            }
            Script::Bengali
        }
        0xE00..=0xE7F => {
            if (0xE50..=0xE59).contains(&u) {
                return None;
            }
            Script::Thai
        }
        _ => return None,
    })
}

/// The scripts a language of the suite is written in (by its `script` field in langs.toml).
pub fn of_lang_script(name: &str) -> &'static [Script] {
    match name {
        "Latin" => &[Script::Latin],
        "Cyrillic" => &[Script::Cyrillic],
        "Arabic" => &[Script::Arabic],
        "Han" => &[Script::Han],
        "Japanese" => &[Script::Han, Script::Kana],
        "Hangul" => &[Script::Hangul],
        "Bengali" => &[Script::Bengali],
        "Thai" => &[Script::Thai],
        _ => &[],
    }
}

/// Letters of `text` per script.
pub fn counts(text: &str) -> Vec<(Script, usize)> {
    let mut v: Vec<(Script, usize)> = Vec::new();
    for c in text.chars() {
        if let Some(s) = of(c) {
            match v.iter_mut().find(|(k, _)| *k == s) {
                Some((_, n)) => *n += 1,
                None => v.push((s, 1)),
            }
        }
    }
    v
}

/// The share of letters of `text` written in one of `scripts` (1.0 for text without letters).
pub fn share(text: &str, scripts: &[Script]) -> f64 {
    let c = counts(text);
    let total: usize = c.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return 1.0;
    }
    let inside: usize = c.iter().filter(|(s, _)| scripts.contains(s)).map(|(_, n)| n).sum();
    inside as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_suite_scripts() {
        let cases = [
            ('a', Some(Script::Latin)),
            ('é', Some(Script::Latin)),
            ('ж', Some(Script::Cyrillic)),
            ('ب', Some(Script::Arabic)),
            ('٣', None),
            ('،', None),
            ('中', Some(Script::Han)),
            ('の', Some(Script::Kana)),
            ('カ', Some(Script::Kana)),
            ('한', Some(Script::Hangul)),
            ('ক', Some(Script::Bengali)),
            ('৩', None),
            ('ก', Some(Script::Thai)),
            ('๓', None),
            ('7', None),
            ('。', None),
        ];
        for (c, want) in cases {
            assert_eq!(of(c), want, "{c}");
        }
        assert!((share("Привет, мир 7", &[Script::Cyrillic]) - 1.0).abs() < 1e-12);
        assert!(share("hello мир", &[Script::Cyrillic]) < 0.5);
    }
}

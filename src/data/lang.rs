//! The languages of the suite: codes, scripts, default groups and plural rules.

use std::sync::OnceLock;

use anyhow::Result;
use serde::Deserialize;

use super::assets;

/// A language's role in a run: the English anchor, seen in the fine-tuning mix, or held out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Anchor,
    Seen,
    Unseen,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Anchor => "anchor",
            Group::Seen => "seen",
            Group::Unseen => "unseen",
        }
    }
}

/// CLDR cardinal plural rule families used by the suite's languages (integers only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluralRule {
    /// one: n = 1 (en, es, sw)
    OneOther,
    /// one: n = 0 or 1 (fr, pt, bn)
    ZeroOneOther,
    /// one / few / many (ru)
    Slavic,
    /// zero / one / two / few / many / other (ar)
    Arabic,
    /// no plural distinction (ja, zh, ko, th)
    Other,
}

impl PluralRule {
    /// The CLDR category name of integer `n`.
    pub fn category(self, n: i64) -> &'static str {
        let n = n.unsigned_abs();
        match self {
            PluralRule::OneOther => {
                if n == 1 {
                    "one"
                } else {
                    "other"
                }
            }
            PluralRule::ZeroOneOther => {
                if n <= 1 {
                    "one"
                } else {
                    "other"
                }
            }
            PluralRule::Slavic => {
                let (m10, m100) = (n % 10, n % 100);
                if m10 == 1 && m100 != 11 {
                    "one"
                } else if (2..=4).contains(&m10) && !(12..=14).contains(&m100) {
                    "few"
                } else {
                    "many"
                }
            }
            PluralRule::Arabic => {
                let m100 = n % 100;
                match n {
                    0 => "zero",
                    1 => "one",
                    2 => "two",
                    _ if (3..=10).contains(&m100) => "few",
                    _ if (11..=99).contains(&m100) => "many",
                    _ => "other",
                }
            }
            PluralRule::Other => "other",
        }
    }
}

/// How ROUGE-L splits text into units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RougeUnit {
    Word,
    Char,
}

/// One language of the suite (from `assets/langs.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lang {
    pub code: String,
    pub name: String,
    pub native: String,
    pub script: String,
    pub group: Group,
    pub set: String,
    pub cased: bool,
    pub plural: PluralRule,
    pub rouge: RougeUnit,
}

impl Lang {
    pub fn is_latin(&self) -> bool {
        self.script == "Latin"
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LangsFile {
    lang: Vec<Lang>,
}

/// Parse a langs.toml text.
pub fn parse_langs(file: &str, src: &str) -> Result<Vec<Lang>> {
    let f: LangsFile = toml::from_str(src).map_err(|e| crate::error::toml_error(file, src, &e))?;
    Ok(f.lang)
}

static LANGS: OnceLock<Vec<Lang>> = OnceLock::new();

/// All languages of the suite, in the order of `assets/langs.toml` (English first).
pub fn all() -> &'static [Lang] {
    LANGS.get_or_init(|| {
        let (file, src) = assets::text("langs.toml").expect("assets/langs.toml is readable");
        parse_langs(&file, &src).unwrap_or_else(|e| panic!("invalid {file}: {e}"))
    })
}

/// Look a language up by its ISO 639-1 code.
pub fn get(code: &str) -> Option<&'static Lang> {
    all().iter().find(|l| l.code == code)
}

/// All language codes, in suite order.
pub fn codes() -> Vec<&'static str> {
    all().iter().map(|l| l.code.as_str()).collect()
}

/// The language's position in suite order (unknown codes sort last).
pub fn order(code: &str) -> usize {
    all().iter().position(|l| l.code == code).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_languages_with_paper_groups() {
        let codes = codes();
        assert_eq!(codes, ["en", "es", "fr", "ja", "zh", "ar", "ko", "pt", "ru", "sw", "bn", "th"]);
        assert_eq!(get("en").unwrap().group, Group::Anchor);
        for c in ["es", "fr", "ja", "zh"] {
            assert_eq!(get(c).unwrap().group, Group::Seen, "{c}");
        }
        for c in ["ar", "ko", "pt"] {
            assert_eq!(get(c).unwrap().group, Group::Unseen, "{c}");
        }
    }

    #[test]
    fn plural_categories() {
        use PluralRule::*;
        assert_eq!(OneOther.category(1), "one");
        assert_eq!(OneOther.category(0), "other");
        assert_eq!(ZeroOneOther.category(0), "one");
        assert_eq!(ZeroOneOther.category(2), "other");
        let ru: Vec<_> = [1, 2, 5, 11, 12, 21, 22, 25, 111].iter().map(|&n| Slavic.category(n)).collect();
        assert_eq!(ru, ["one", "few", "many", "many", "many", "one", "few", "many", "many"]);
        let ar: Vec<_> = [0, 1, 2, 3, 10, 11, 99, 100, 102, 103, 111].iter().map(|&n| Arabic.category(n)).collect();
        assert_eq!(ar, ["zero", "one", "two", "few", "few", "many", "many", "other", "other", "few", "many"]);
    }
}

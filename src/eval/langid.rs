//! Language identification among the suite's 12 languages, and the language-confusion check.
//!
//! # Detection ([`detect`])
//!
//! Letters are counted per script ([`crate::data::script`]; digits, punctuation, symbols and
//! spaces are ignored; letters of scripts outside the suite count as "other"). The script with
//! the most letters decides: Cyrillic → ru, Arabic → ar, Hangul → ko, Bengali → bn, Thai → th,
//! Han/Kana → ja when there is any Kana, else zh. Latin-script text goes to lingua, restricted
//! to en, es, fr, pt, sw, built once on first use and shared. The confidence is the winning
//! script's share of all letters, times lingua's confidence for Latin text.
//!
//! lingua runs in its default **high-accuracy mode** (1- to 5-gram models, loaded lazily on the
//! first Latin-script text). With five languages that is cheap: building the detector and
//! loading the models takes 10-25 ms and about 18 MB of resident memory (the process peaks at
//! 22 MB), as much as the low-accuracy mode (trigrams only); a short text takes about 0.2 ms
//! (0.13 ms in low-accuracy mode). The low-accuracy mode answers short texts with
//! all-or-nothing confidences (1.0 / 0.0, its "unique n-gram" shortcut), useless for the
//! margins below (measured once, on the 2-core development machine).
//! Only the five Latin-script lingua models are needed (the others would add ~20 MB of
//! embedded data to the binary and are never consulted).
//!
//! # Confusion ([`is_confused`])
//!
//! An answer is confused only when it is *reliably* in another language:
//! * fewer than [`MIN_LETTERS`] letters (after dropping digits and punctuation): never;
//! * non-Latin expected language: confused when less than half of the letters are in the
//!   language's scripts (Japanese: Han + Kana). Besides, a Japanese answer without a single
//!   Kana is Chinese when it has 20+ Han letters or one of the [`SIMPLIFIED_ONLY`] characters,
//!   and a Chinese answer whose Han + Kana letters are 10%+ Kana (at least 3) is Japanese;
//! * Latin expected language (en es fr pt sw): confused when less than half of the letters
//!   are Latin; or, from [`MIN_LATIN_WORDS`] words on, when lingua (on the Latin words)
//!   prefers another of the five languages with confidence ≥ [`LATIN_TOP`] while giving the
//!   expected one < [`LATIN_EXPECTED`] (texts under [`SHORT_LETTERS`] letters: [`SHORT_TOP`]
//!   and [`SHORT_EXPECTED`]).
//!
//! Words copied from the prompt (names, the word an instruction asks to repeat, "MARKET") are
//! a known hazard: [`is_confused_given_prompt`], which the task metrics use, first removes from
//! the answer every word that also occurs in the prompt (and in the constraints), since such
//! words say nothing about the answer's language.
//!
//! Measured on the suite's SM references (200 per language, `cargo run --release --example
//! confusion_matrix`): no reference is confused in its own language, no degraded reference
//! (prefixes, reversed, one word repeated) either, and 99.95% of the 26,400 swapped judgements
//! (132 ordered pairs) are confused; the lowest cell is French summaries of football results
//! judged as English, 98%.

use std::collections::HashSet;
use std::sync::OnceLock;

use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};

use super::rouge::{normalize, split_words};
use crate::data::lang;
use crate::data::script::{self, Script};

/// Below this many letters an answer is never judged confused.
pub const MIN_LETTERS: usize = 10;
/// Latin-script text is judged by lingua only from this many words on (two names, "China
/// Kenya", are no evidence of a language).
pub const MIN_LATIN_WORDS: usize = 3;
/// Latin texts with fewer letters than this are judged with the stricter short-text thresholds.
pub const SHORT_LETTERS: usize = 25;
/// lingua's confidence that another language must reach (normal texts).
pub const LATIN_TOP: f64 = 0.6;
/// lingua's confidence in the expected language must stay below this (normal texts).
pub const LATIN_EXPECTED: f64 = 0.2;
/// The same for short texts.
pub const SHORT_TOP: f64 = 0.75;
pub const SHORT_EXPECTED: f64 = 0.1;

/// Common simplified Chinese characters that modern Japanese does not use: Japanese writes 説
/// for 说, 時 for 时, 戸 for 户, 館 for 馆, and has no use for 们, 这, 吗. One of them in
/// kana-less Han text marks it as Chinese.
pub const SIMPLIFIED_ONLY: &str = "们这个说时对为发过还给让从吗呢么东车门马开关场长队员书馆图样电话见问间动进边实现\
    经种头两请谢谁钱买卖亿击败观众户钟师乐岁气热务处报纪录庆节园饭鸡鱼鸟龙";

/// A detected language.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detected {
    pub lang: &'static str,
    pub confidence: f64,
}

const LATIN: [(Language, &str); 5] = [
    (Language::English, "en"),
    (Language::Spanish, "es"),
    (Language::French, "fr"),
    (Language::Portuguese, "pt"),
    (Language::Swahili, "sw"),
];

/// Build a lingua detector for the five Latin-script languages of the suite.
pub fn build_detector(low_accuracy: bool) -> LanguageDetector {
    let langs: Vec<Language> = LATIN.iter().map(|&(l, _)| l).collect();
    let mut b = LanguageDetectorBuilder::from_languages(&langs);
    if low_accuracy {
        b.with_low_accuracy_mode();
    }
    b.build()
}

/// The shared detector (high-accuracy mode), built on first use.
pub fn latin_detector() -> &'static LanguageDetector {
    static DET: OnceLock<LanguageDetector> = OnceLock::new();
    DET.get_or_init(|| build_detector(false))
}

fn code_of(l: Language) -> &'static str {
    LATIN.iter().find(|&&(x, _)| x == l).map(|&(_, c)| c).unwrap_or("??")
}

/// Letters of a text per script (the 8 suite scripts in `Script` order, then "other").
#[derive(Debug, Default, Clone, Copy)]
pub struct Letters {
    pub by_script: [usize; 9],
    pub total: usize,
}

const SCRIPTS: [Script; 8] = [
    Script::Latin,
    Script::Cyrillic,
    Script::Arabic,
    Script::Han,
    Script::Kana,
    Script::Hangul,
    Script::Bengali,
    Script::Thai,
];
const OTHER: usize = 8;

fn slot(s: Script) -> usize {
    SCRIPTS.iter().position(|&x| x == s).unwrap()
}

impl Letters {
    /// Count the letters of `text` (normalize it first with [`normalize`]).
    pub fn of(normalized: &str) -> Letters {
        let mut l = Letters::default();
        for c in normalized.chars() {
            let k = match script::of(c) {
                Some(s) => slot(s),
                None if c.is_alphabetic() => OTHER,
                None => continue,
            };
            l.by_script[k] += 1;
            l.total += 1;
        }
        l
    }

    pub fn get(&self, s: Script) -> usize {
        self.by_script[slot(s)]
    }

    fn share(&self, scripts: &[Script]) -> f64 {
        if self.total == 0 {
            return 1.0;
        }
        scripts.iter().map(|&s| self.get(s)).sum::<usize>() as f64 / self.total as f64
    }
}

/// The Latin-script part of a normalized text (other letters become spaces).
fn latin_part(normalized: &str) -> String {
    normalized
        .chars()
        .map(|c| if c.is_alphabetic() && script::of(c) != Some(Script::Latin) { ' ' } else { c })
        .collect()
}

/// lingua's confidence values for the Latin part of a normalized text, best first.
fn latin_confidences(normalized: &str) -> Vec<(&'static str, f64)> {
    latin_detector()
        .compute_language_confidence_values(latin_part(normalized))
        .into_iter()
        .map(|(l, c)| (code_of(l), c))
        .collect()
}

/// The language of `text` among the suite's 12 (see the module documentation); `None` for text
/// without letters, or mostly in a script outside the suite.
pub fn detect(text: &str) -> Option<Detected> {
    let norm = normalize(text);
    let l = Letters::of(&norm);
    if l.total == 0 {
        return None;
    }
    let cjk = l.get(Script::Han) + l.get(Script::Kana);
    let groups = [
        (l.get(Script::Latin), "latin"),
        (l.get(Script::Cyrillic), "ru"),
        (l.get(Script::Arabic), "ar"),
        (l.get(Script::Hangul), "ko"),
        (cjk, if l.get(Script::Kana) > 0 { "ja" } else { "zh" }),
        (l.get(Script::Bengali), "bn"),
        (l.get(Script::Thai), "th"),
        (l.by_script[OTHER], "other"),
    ];
    let &(n, which) = groups.iter().max_by_key(|(n, _)| *n).unwrap();
    let share = n as f64 / l.total as f64;
    match which {
        "other" => None,
        "latin" => {
            let conf = latin_confidences(&norm);
            let &(lang, c) = conf.first()?;
            (c > 0.0).then_some(Detected { lang, confidence: c * share })
        }
        lang => Some(Detected { lang, confidence: share }),
    }
}

/// True when `response` is reliably written in another language than `expected` (a suite
/// language code; unknown codes are never confused). See the module documentation.
pub fn is_confused(response: &str, expected: &str) -> bool {
    confused_normalized(&normalize(response), expected)
}

/// [`is_confused`] after removing from the response every word that also occurs in `prompt`.
pub fn is_confused_given_prompt(response: &str, expected: &str, prompt: &str) -> bool {
    let p = normalize(prompt);
    let seen: HashSet<&str> = split_words(&p).into_iter().collect();
    let r = normalize(response);
    let kept: Vec<&str> = split_words(&r).into_iter().filter(|w| !seen.contains(w)).collect();
    confused_normalized(&kept.join(" "), expected)
}

fn confused_normalized(norm: &str, expected: &str) -> bool {
    let Some(lang) = lang::get(expected) else { return false };
    let l = Letters::of(norm);
    if l.total < MIN_LETTERS {
        return false;
    }
    if !lang.is_latin() {
        let scripts = script::of_lang_script(&lang.script);
        if l.share(scripts) < 0.5 {
            return true;
        }
        let (han, kana) = (l.get(Script::Han), l.get(Script::Kana));
        return match expected {
            "ja" => kana == 0 && (han >= 20 || norm.chars().any(|c| SIMPLIFIED_ONLY.contains(c))),
            "zh" => kana >= 3 && kana * 10 >= han + kana,
            _ => false,
        };
    }
    let latin = l.get(Script::Latin);
    if (latin as f64) < 0.5 * l.total as f64 {
        return true;
    }
    if split_words(norm).iter().filter(|w| w.chars().any(char::is_alphabetic)).count() < MIN_LATIN_WORDS {
        return false;
    }
    let conf = latin_confidences(norm);
    let Some(&(top, c_top)) = conf.first() else { return false };
    let c_exp = conf.iter().find(|(c, _)| *c == expected).map_or(0.0, |&(_, c)| c);
    let (t_top, t_exp) = if latin < SHORT_LETTERS { (SHORT_TOP, SHORT_EXPECTED) } else { (LATIN_TOP, LATIN_EXPECTED) };
    top != expected && c_top >= t_top && c_exp < t_exp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_script() {
        let cases = [
            ("Сильный дождь прошёл в Казани в пятницу.", "ru"),
            ("هطلت أمطار غزيرة على دبي يوم الجمعة.", "ar"),
            ("금요일 부산에 폭우가 내렸다.", "ko"),
            ("金曜日に大阪で大雨が降った。", "ja"),
            ("ウィキペディア", "ja"),
            ("星期五广州下了大雨。", "zh"),
            ("শুক্রবার ঢাকায় ভারী বৃষ্টি হয়েছে।", "bn"),
            ("วันศุกร์ฝนตกหนักที่เชียงใหม่", "th"),
        ];
        for (t, want) in cases {
            let d = detect(t).unwrap();
            assert_eq!(d.lang, want, "{t}");
            assert!(d.confidence > 0.99, "{t}: {d:?}");
        }
        assert_eq!(detect("1234 !?"), None);
        assert_eq!(detect(""), None);
        assert_eq!(detect("Καλημέρα κόσμε"), None); // Greek: outside the suite
                                                    // Mixed: the majority script wins, confidence is its share.
        let d = detect("Москва Paris").unwrap();
        assert_eq!(d.lang, "ru");
        assert!((d.confidence - 6.0 / 11.0).abs() < 1e-9);
    }

    #[test]
    fn detects_latin_languages_with_lingua() {
        let cases = [
            ("Heavy rain hit the city on Friday and thousands of homes lost power.", "en"),
            ("Fuertes lluvias afectaron la ciudad el viernes y miles de casas se quedaron sin luz.", "es"),
            (
                "De fortes pluies ont touché la ville vendredi et des milliers de foyers ont été privés d'électricité.",
                "fr",
            ),
            ("Chuvas fortes atingiram a cidade na sexta-feira e milhares de casas ficaram sem energia.", "pt"),
            ("Mvua kubwa ilinyesha mjini siku ya Ijumaa na maelfu ya nyumba zilikosa umeme.", "sw"),
        ];
        for (t, want) in cases {
            let d = detect(t).unwrap();
            assert_eq!(d.lang, want, "{t}");
            assert!(d.confidence > 0.5, "{t}: {d:?}");
        }
    }

    #[test]
    fn confusion_examples_from_the_brief() {
        assert!(!is_confused("MARKET Goodbye", "en"));
        assert!(is_confused("La respuesta es 7.", "en"));
        assert!(!is_confused("The answer is 7.", "en"));
        assert!(!is_confused("La respuesta es 7.", "es"));
    }

    #[test]
    fn too_little_text_is_never_confused() {
        assert!(!is_confused("Hola", "en"));
        assert!(!is_confused("7 + 5 = 12", "ar"));
        assert!(!is_confused("OK, 42!", "ja"));
        assert!(!is_confused("", "ko"));
        assert!(!is_confused("Moscow", "ru")); // 6 letters
    }

    #[test]
    fn non_latin_languages_by_script() {
        assert!(is_confused("The answer is seven apples.", "ar"));
        assert!(!is_confused("الجواب هو ٧ تفاحات (apples).", "ar"));
        assert!(is_confused("Ответ: семь яблок.", "ko"));
        assert!(!is_confused("답은 사과 일곱 개입니다.", "ko"));
        assert!(is_confused("답은 사과 일곱 개입니다.", "ja"));
        assert!(is_confused("La respuesta es siete manzanas.", "ru"));
        assert!(!is_confused("Ответ: семь яблок.", "ru"));
        assert!(is_confused("উত্তর হলো সাতটি আপেল।", "th"));
        assert!(!is_confused("উত্তর হলো সাতটি আপেল।", "bn"));
        assert!(!is_confused("คำตอบคือแอปเปิลเจ็ดผล", "th"));
        // A Latin-script answer to a Latin prompt by script: Cyrillic text is confused.
        assert!(is_confused("Сильный дождь прошёл в Казани.", "fr"));
    }

    #[test]
    fn japanese_and_chinese() {
        let ja = "金曜日に大阪で大雨が降り、四百七十九戸が停電した。";
        let zh = "星期五广州下了大雨，四百七十九户人家停电，多条道路关闭。";
        assert!(!is_confused(ja, "ja"));
        assert!(!is_confused(zh, "zh"));
        assert!(is_confused(zh, "ja")); // 20+ Han, no Kana
        assert!(is_confused(ja, "zh")); // Kana
                                        // A short all-kanji Japanese answer is not called Chinese.
        assert!(!is_confused("東京都千代田区役所", "ja"));
    }

    #[test]
    fn latin_pairs() {
        let es = "Fuertes lluvias afectaron la ciudad el viernes y miles de casas se quedaron sin luz.";
        let en = "Heavy rain hit the city on Friday and thousands of homes lost power.";
        let sw = "Mvua kubwa ilinyesha mjini siku ya Ijumaa na maelfu ya nyumba zilikosa umeme.";
        assert!(is_confused(es, "en"));
        assert!(is_confused(en, "es"));
        assert!(is_confused(sw, "fr"));
        assert!(is_confused(en, "sw"));
        assert!(!is_confused(es, "es"));
        assert!(!is_confused(sw, "sw"));
    }

    #[test]
    fn ambiguous_latin_text_is_not_confused() {
        // lingua's best guess for these is English, but with little confidence.
        for (t, lang) in [("Le Racing Clairval a", "fr"), ("Uma ONG local", "pt")] {
            let conf = latin_confidences(&normalize(t));
            assert_eq!(conf[0].0, "en", "{t}: {conf:?}");
            assert!(conf[0].1 < SHORT_TOP, "{t}: {conf:?}");
            assert!(!is_confused(t, lang), "{t}");
        }
    }

    #[test]
    fn prompt_words_are_removed() {
        let prompt = "Write the word “market” in capital letters. End your answer with “Goodbye”.";
        assert!(!is_confused_given_prompt("MARKET Goodbye", "en", prompt));
        // Japanese prompt asking for an English word: the copied word is no evidence.
        let p = "「apple」という単語を3回繰り返してください。";
        assert!(is_confused("apple apple apple", "ja"));
        assert!(!is_confused_given_prompt("apple apple apple", "ja", p));
        // But the rest of the answer still counts.
        assert!(is_confused_given_prompt("apple apple apple, here you are my friend", "ja", p));
        assert!(is_confused_given_prompt(
            "La respuesta es siete.",
            "en",
            "Tom has 3 apples and 4 pears. How many fruits?"
        ));
    }
}

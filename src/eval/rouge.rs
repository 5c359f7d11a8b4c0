//! ROUGE-L F1 (longest common subsequence, β = 1) in words or in characters.
//!
//! # Tokens
//!
//! Both texts are normalized first: NFKC (full-width letters and digits become ASCII,
//! ligatures and presentation forms are unfolded), lower case, every decimal digit of
//! the systems in [`super::numbers::digit`] mapped to its ASCII digit (`٤٧٩` and `479` are the
//! same token: the number carries the content; the language check is separate), and the
//! zero-width joiners U+200C / U+200D, the soft hyphen and the Arabic tatweel `ـ` removed
//! (they change neither the word nor its meaning).
//!
//! * [`RougeUnit::Word`] (alphabetic scripts, Arabic, Korean, Bengali, ...): a token is a
//!   maximal run of letters, combining marks and digits (Unicode `Alphabetic`, `Numeric`,
//!   general category `M`), so Bengali vowel signs and viramas, Arabic harakat and Thai tone
//!   marks stay inside their word. Everything else (spaces, punctuation, symbols) separates
//!   tokens and is dropped, so `don't` is `don` + `t` and `3-1` is `3` + `1` in both texts.
//! * [`RougeUnit::Char`] (ja, zh, th): every letter or digit is a token: precisely, every
//!   extended grapheme cluster that starts with a letter or digit, so a Thai consonant with its
//!   above/below vowel and tone mark is one token (as a reader sees one character), while
//!   for Chinese and Japanese a cluster is one character. Spaces and punctuation are dropped.
//!
//! # Empty cases
//!
//! When either text has no token (empty, or only punctuation), the score is 0.0, even when
//! both are empty: a generation without words never earns credit (this is also what Google's
//! `rouge-score` package does). The suite's references always contain words.

use std::collections::HashMap;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

pub use crate::data::lang::RougeUnit;

/// The normalized form of `text` that tokens are taken from (see the module documentation).
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfkc() {
        if matches!(c, '\u{200C}' | '\u{200D}' | '\u{AD}' | '\u{640}') {
            continue;
        }
        if let Some((v, _)) = super::numbers::digit(c) {
            out.push(char::from_digit(v, 10).unwrap());
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// True for the characters that words are made of: letters, combining marks and digits.
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// The word tokens of an already [`normalize`]d text.
pub fn split_words(normalized: &str) -> Vec<&str> {
    normalized.split(|c: char| !is_word_char(c)).filter(|w| !w.is_empty()).collect()
}

/// The ROUGE tokens of `text` in `unit`.
pub fn tokens(text: &str, unit: RougeUnit) -> Vec<String> {
    let norm = normalize(text);
    match unit {
        RougeUnit::Word => split_words(&norm).into_iter().map(str::to_string).collect(),
        RougeUnit::Char => norm
            .graphemes(true)
            .filter(|g| g.chars().next().is_some_and(char::is_alphanumeric))
            .map(str::to_string)
            .collect(),
    }
}

/// Length of the longest common subsequence of two sequences (O(n·m) time, two rows).
pub fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let (a, b) = if a.len() < b.len() { (b, a) } else { (a, b) };
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { prev[j + 1].max(cur[j]) };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-L F1 of `candidate` against `reference` (β = 1), in [0, 1].
pub fn rouge_l(candidate: &str, reference: &str, unit: RougeUnit) -> f64 {
    let (c, r) = (tokens(candidate, unit), tokens(reference, unit));
    if c.is_empty() || r.is_empty() {
        return 0.0;
    }
    // Compare small integers rather than strings.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut ci = Vec::with_capacity(c.len());
    for t in &c {
        let next = ids.len() as u32;
        ci.push(*ids.entry(t.as_str()).or_insert(next));
    }
    let mut ri = Vec::with_capacity(r.len());
    for t in &r {
        let next = ids.len() as u32;
        ri.push(*ids.entry(t.as_str()).or_insert(next));
    }
    let lcs = lcs_len(&ci, &ri) as f64;
    if lcs == 0.0 {
        return 0.0;
    }
    let p = lcs / c.len() as f64;
    let rec = lcs / r.len() as f64;
    2.0 * p * rec / (p + rec)
}

#[cfg(test)]
mod tests {
    use super::RougeUnit::{Char, Word};
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn lcs_basics() {
        assert_eq!(lcs_len(&[1, 2, 3, 4], &[2, 4]), 2);
        assert_eq!(lcs_len(&[1, 3, 2, 4], &[1, 2, 3, 4]), 3);
        assert_eq!(lcs_len::<u8>(&[], &[1]), 0);
        assert_eq!(lcs_len(&"ABCBDAB".chars().collect::<Vec<_>>(), &"BDCABA".chars().collect::<Vec<_>>()), 4);
    }

    #[test]
    fn english_words() {
        let r = "Heavy rain in Glasgow on Friday cut power to 479 homes.";
        assert!(close(rouge_l(r, r, Word), 1.0));
        // Case and punctuation do not matter.
        assert!(close(rouge_l("heavy RAIN in glasgow, on friday cut power to 479 homes", r, Word), 1.0));
        // candidate 6 tokens, reference 11, LCS 5 (heavy rain glasgow friday homes).
        let s = rouge_l("Heavy rain hit Glasgow Friday homes", r, Word);
        let (p, rc) = (5.0 / 6.0, 5.0 / 11.0);
        assert!(close(s, 2.0 * p * rc / (p + rc)), "{s}");
        // Order matters (LCS, not bag of words): "b a" vs "a b" = 1 of 2.
        assert!(close(rouge_l("b a", "a b", Word), 0.5));
        assert!(close(rouge_l("something else entirely", r, Word), 0.0));
    }

    #[test]
    fn empty_cases() {
        assert_eq!(rouge_l("", "a b", Word), 0.0);
        assert_eq!(rouge_l("...", "a b", Word), 0.0);
        assert_eq!(rouge_l("a b", "", Word), 0.0);
        assert_eq!(rouge_l("", "", Word), 0.0);
        assert_eq!(rouge_l("。", "。", Char), 0.0);
    }

    #[test]
    fn arabic_words_with_marks_and_digits() {
        assert_eq!(tokens("ضرب المطرُ مدينةَ دبي، وانقطعت الكهرباء عن ٤٧٩ منزلاً.", Word).len(), 9);
        let t = tokens("مُحَمَّد", Word);
        assert_eq!(t, ["مُحَمَّد"]); // harakat stay inside the word
                                 // Tatweel and digit systems normalized.
        assert_eq!(tokens("كتـــاب ٤٧٩", Word), ["كتاب", "479"]);
        let r = "انقطعت الكهرباء عن ٤٧٩ منزلاً في دبي يوم الجمعة";
        let c = "انقطعت الكهرباء عن 479 منزلاً في دبي";
        // 7 of 7 candidate tokens, 7 of 9 reference tokens.
        let (p, rc) = (1.0, 7.0 / 9.0);
        assert!(close(rouge_l(c, r, Word), 2.0 * p * rc / (p + rc)));
    }

    #[test]
    fn bengali_vowel_signs_stay_in_words() {
        // কিনেছে = ক ি ন ে ছ ে: one word, not split at the vowel signs.
        assert_eq!(tokens("রিনা ১৮টি আপেল কিনেছে।", Word), ["রিনা", "18টি", "আপেল", "কিনেছে"]);
        assert_eq!(tokens("বৃষ্টিতে", Word), ["বৃষ্টিতে"]); // virama inside
        assert!(close(rouge_l("রিনা আপেল কিনেছে", "রিনা ১৮টি আপেল কিনেছে।", Word), 2.0 * 1.0 * 0.75 / 1.75));
    }

    #[test]
    fn cyrillic_and_korean() {
        assert_eq!(tokens("Сильный дождь в Казани оставил без света 479 домов.", Word).len(), 9);
        assert!(close(rouge_l("СИЛЬНЫЙ ДОЖДЬ", "сильный дождь", Word), 1.0));
        let r = "금요일 부산에 폭우가 내려 479가구가 정전되었다.";
        assert_eq!(tokens(r, Word), ["금요일", "부산에", "폭우가", "내려", "479가구가", "정전되었다"]);
        assert!(close(
            rouge_l("부산에 폭우가 내렸다", r, Word),
            2.0 * (2.0 / 3.0) * (2.0 / 6.0) / (2.0 / 3.0 + 2.0 / 6.0)
        ));
    }

    #[test]
    fn cjk_by_characters() {
        let r = "周五格拉斯哥大雨，479户停电。";
        // 周 五 格 拉 斯 哥 大 雨 4 7 9 户 停 电 = 14 tokens; punctuation dropped.
        assert_eq!(tokens(r, Char).len(), 14);
        assert!(close(rouge_l("大雨，479户停电", r, Char), 2.0 * 1.0 * (8.0 / 14.0) / (1.0 + 8.0 / 14.0)));
        // Japanese, with full-width digits normalized.
        let j = "金曜日の大雨で４７９戸が停電した。";
        assert_eq!(tokens(j, Char).len(), 16);
        assert!(close(rouge_l("金曜日の大雨で479戸が停電した", j, Char), 1.0));
        assert!(close(rouge_l("停電", j, Char), 2.0 * 1.0 * (2.0 / 16.0) / (1.0 + 2.0 / 16.0)));
    }

    #[test]
    fn thai_by_grapheme() {
        // ฝนตกหนัก: ฝ น ต ก ห นั ก -> 7 graphemes (นั is one cluster).
        assert_eq!(tokens("ฝนตกหนัก", Char).len(), 7);
        assert_eq!(tokens("บ้าน ๔๗๙ หลัง", Char), ["บ้", "า", "น", "4", "7", "9", "ห", "ลั", "ง"]);
        assert!(close(
            rouge_l("ฝนตกหนัก", "ฝนตกหนักที่เชียงใหม่", Char),
            {
                let rl = tokens("ฝนตกหนักที่เชียงใหม่", Char).len() as f64;
                2.0 * (7.0 / rl) / (1.0 + 7.0 / rl)
            }
        ));
    }

    #[test]
    fn french_and_spanish_accents() {
        // NFKC keeps accents: "été" is not "ete"; decomposed input equals composed.
        assert!(close(rouge_l("l'e\u{301}te\u{301}", "l'été", Word), 1.0));
        assert!(close(rouge_l("ete", "été", Word), 0.0));
        assert!(close(rouge_l("ﬁn", "fin", Word), 1.0)); // ligature unfolded
    }
}

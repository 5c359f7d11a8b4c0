//! Checks of the instruction-following constraints, and the IF score.
//!
//! Every check is lenient about what surrounds the answer (whitespace, trailing punctuation,
//! quotation marks around words) and strict about the constraint itself. Text is compared in
//! the normalized form of [`super::rouge::normalize`] (NFKC, lower case, ASCII digits), so
//! comparisons are case-insensitive except where case is the constraint ([`Constraint::Upper`]).
//! "Spaceless" languages are those scored by characters (ja, zh, th: `rouge = "char"`).
//!
//! * **Repeat** `{word, times}`: the word occurs exactly `times` times. In spaced languages it
//!   must occur as whole tokens (a multi-word phrase as a contiguous run of tokens), so
//!   `markets` is not `market`; in spaceless languages occurrences are counted in the text's
//!   letters and digits with everything else removed (`りんご、りんご` is two; a word inside a
//!   longer one, 本 in 日本, counts too: there is no word boundary to check). Other words may
//!   appear (the start / end modifiers add some).
//! * **List** `{n, vocab}`: exactly `n` numbered lines, numbered 1, 2, …, n in order, in any
//!   digit system, with the marker `1.` `1)` `1．` `1）` or `1、`; each line's item (after the
//!   marker, without surrounding quotes and trailing punctuation) is an item of `vocab`
//!   (normalized equality: `Apple.` names `apple`, `red apple` does not), and the items are
//!   distinct. Lines without a number (an introduction, the start / end word) are allowed.
//! * **Upper** `{word}`: the word in capitals occurs as whole tokens, and no letter of the
//!   answer is lower case — except in a word that a start / end constraint of the same
//!   example asks for (the suite's own reference for "uppercase + begin with Ready" is
//!   `Ready FRIEND`). [`check`], which sees one constraint, grants no such exception.
//! * **Start** / **End** `{word}`: the first / last word of the answer, ignoring quotes,
//!   punctuation, case-insensitively (a list number is a word: `1. apple` starts with `1`). Spaceless languages: the answer's letters
//!   begin / end with the word's.
//! * **Quote** `{open, close}`: after trimming whitespace and trailing punctuation, the answer
//!   starts with an opening mark and ends with the matching closing mark: the given pair or one
//!   of “” «» »« „“ „” ‘’ ‹› 「」 『』 "" '' ; the opening mark's quotation closes at the very end
//!   (`“a” and “b”` is not one quotation; nested pairs are fine), with a letter or digit inside.
//!
//! [`if_score`]: satisfied / total, or 0 when the answer is language-confused (an answer not in
//! the prompt's language scores 0, as in the paper). With no constraints the value is 1.0 (when
//! not confused).

use unicode_normalization::UnicodeNormalization;

use super::langid;
use super::rouge::{is_word_char, normalize, split_words};
use crate::data::lang::{self, RougeUnit};
use crate::data::Constraint;

/// The quotation-mark pairs accepted besides the one an instruction gives.
pub const QUOTE_PAIRS: [(&str, &str); 11] = [
    ("“", "”"),
    ("«", "»"),
    ("»", "«"),
    ("„", "“"),
    ("„", "”"),
    ("‘", "’"),
    ("「", "」"),
    ("『", "』"),
    ("\"", "\""),
    ("'", "'"),
    ("‹", "›"),
];

/// The result of the IF metric for one answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IfScore {
    pub satisfied: u32,
    pub total: u32,
    /// The answer is reliably in another language than the prompt's.
    pub confused: bool,
    /// 0 when confused, else satisfied / total (1.0 without constraints).
    pub value: f64,
}

fn spaceless(lang: &str) -> bool {
    lang::get(lang).is_some_and(|l| l.rouge == RougeUnit::Char)
}

/// Letters, marks and digits of the normalized text, everything else removed.
fn compact(text: &str) -> String {
    normalize(text).chars().filter(|&c| is_word_char(c)).collect()
}

fn is_quote_char(c: char) -> bool {
    QUOTE_PAIRS.iter().any(|(o, cl)| o.contains(c) || cl.contains(c))
}

/// Non-overlapping occurrences of `needle` as a contiguous run in `hay`.
fn count_runs<T: PartialEq>(hay: &[T], needle: &[T]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    let (mut i, mut n) = (0, 0);
    while i + needle.len() <= hay.len() {
        if hay[i..i + needle.len()] == *needle {
            n += 1;
            i += needle.len();
        } else {
            i += 1;
        }
    }
    n
}

/// Check one constraint on its own.
pub fn check(c: &Constraint, response: &str, lang: &str) -> bool {
    check_in(c, response, lang, &[])
}

/// Check one constraint of an example whose constraints are `all`.
fn check_in(c: &Constraint, response: &str, lang: &str, all: &[Constraint]) -> bool {
    match c {
        Constraint::Repeat { word, times } => repeat(word, *times, response, lang),
        Constraint::List { n, vocab } => list(*n, vocab, response),
        Constraint::Upper { word } => upper(word, response, all),
        Constraint::Start { word } => edge(word, response, lang, true),
        Constraint::End { word } => edge(word, response, lang, false),
        Constraint::Quote { open, close } => quote(open, close, response),
    }
}

fn repeat(word: &str, times: u32, response: &str, lang: &str) -> bool {
    let found = if spaceless(lang) {
        let (w, r) = (compact(word), compact(response));
        if w.is_empty() {
            return false;
        }
        r.matches(w.as_str()).count()
    } else {
        let (w, r) = (normalize(word), normalize(response));
        count_runs(&split_words(&r), &split_words(&w))
    };
    found == times as usize && times > 0
}

/// The number and item of a numbered line, if it is one.
fn numbered(line: &str) -> Option<(u64, &str)> {
    let line = line.trim().trim_start_matches(|c: char| is_quote_char(c) || c.is_whitespace());
    let mut n: u64 = 0;
    let mut system = None;
    let mut end = 0;
    for (i, c) in line.char_indices() {
        match super::numbers::digit(c) {
            Some((v, s)) if system.is_none_or(|x| x == s) => {
                system = Some(s);
                n = n.checked_mul(10)?.checked_add(v as u64)?;
                end = i + c.len_utf8();
            }
            Some(_) => return None,
            None => break,
        }
    }
    system?;
    let rest = &line[end..];
    let marker = rest.chars().next()?;
    if !matches!(marker, '.' | ')' | '．' | '）' | '、') {
        return None;
    }
    let item = rest[marker.len_utf8()..].trim();
    // "1.5 kg" is not a numbered line.
    if item.chars().next().is_some_and(|c| super::numbers::digit(c).is_some()) {
        return None;
    }
    let item = item
        .trim_end_matches(|c: char| !is_word_char(c))
        .trim_start_matches(|c: char| c.is_whitespace() || is_quote_char(c));
    Some((n, item))
}

fn list(n: u32, vocab: &[String], response: &str) -> bool {
    let vocab: Vec<String> = vocab.iter().map(|v| normalize(v.trim())).collect();
    let lines: Vec<(u64, &str)> = response.lines().filter_map(numbered).collect();
    if lines.len() != n as usize || n == 0 {
        return false;
    }
    let mut used = vec![false; vocab.len()];
    for (i, (num, item)) in lines.iter().enumerate() {
        if *num != i as u64 + 1 {
            return false;
        }
        let item = normalize(item);
        // Collapse inner whitespace ("ice  cream").
        let item = item.split_whitespace().collect::<Vec<_>>().join(" ");
        match vocab.iter().position(|v| *v == item) {
            Some(k) if !used[k] => used[k] = true,
            _ => return false,
        }
    }
    true
}

fn upper(word: &str, response: &str, all: &[Constraint]) -> bool {
    let resp: String = response.nfkc().collect();
    let want: String = word.nfkc().collect::<String>().to_uppercase();
    let tokens = split_words(&resp);
    let want_tokens = split_words(&want);
    if want_tokens.is_empty() || count_runs(&tokens, &want_tokens) == 0 {
        return false;
    }
    // Words that a start / end constraint asks for may keep their case.
    let exempt: Vec<String> = all
        .iter()
        .filter_map(|c| match c {
            Constraint::Start { word } | Constraint::End { word } => Some(word),
            _ => None,
        })
        .flat_map(|w| split_words(&normalize(w)).into_iter().map(str::to_string).collect::<Vec<_>>())
        .collect();
    tokens.iter().all(|t| !t.chars().any(char::is_lowercase) || exempt.contains(&normalize(t)))
}

fn edge(word: &str, response: &str, lang: &str, start: bool) -> bool {
    if spaceless(lang) {
        let (w, r) = (compact(word), compact(response));
        return !w.is_empty() && if start { r.starts_with(&w) } else { r.ends_with(&w) };
    }
    let (w, r) = (normalize(word), normalize(response));
    let (w, r) = (split_words(&w), split_words(&r));
    if w.is_empty() || r.len() < w.len() {
        return false;
    }
    if start {
        r[..w.len()] == w[..]
    } else {
        r[r.len() - w.len()..] == w[..]
    }
}

fn quote(open: &str, close: &str, response: &str) -> bool {
    let s = response
        .trim()
        .trim_end_matches(|c: char| c.is_whitespace() || !(is_word_char(c) || is_quote_char(c) || close.contains(c)));
    let mut pairs = vec![(open, close)];
    pairs.extend(QUOTE_PAIRS.iter().copied());
    pairs.iter().any(|&(o, c)| {
        if o.is_empty() || c.is_empty() || !s.starts_with(o) || !s.ends_with(c) || s.len() < o.len() + c.len() {
            return false;
        }
        let inner = &s[o.len()..s.len() - c.len()];
        if !inner.chars().any(is_word_char) {
            return false;
        }
        closes_at_end(inner, o, c)
    })
}

/// True when the quotation opened before `inner` is not closed inside it.
fn closes_at_end(inner: &str, open: &str, close: &str) -> bool {
    if open == close {
        // A straight apostrophe is also the apostrophe of "don't": do not look inside.
        return open == "'" || !inner.contains(close);
    }
    let mut depth = 1i32;
    let mut i = 0;
    while i < inner.len() {
        let rest = &inner[i..];
        if rest.starts_with(close) {
            depth -= 1;
            if depth == 0 {
                return false;
            }
            i += close.len();
        } else if rest.starts_with(open) {
            depth += 1;
            i += open.len();
        } else {
            i += rest.chars().next().unwrap().len_utf8();
        }
    }
    true
}

/// The IF score given the confusion verdict (for callers that have already judged it).
pub fn if_score_with(constraints: &[Constraint], response: &str, lang: &str, confused: bool) -> IfScore {
    let total = constraints.len() as u32;
    let satisfied = constraints.iter().filter(|c| check_in(c, response, lang, constraints)).count() as u32;
    let value = if confused {
        0.0
    } else if total == 0 {
        1.0
    } else {
        satisfied as f64 / total as f64
    };
    IfScore { satisfied, total, confused, value }
}

/// The IF score of an answer: share of constraints satisfied, 0 when language-confused
/// ([`langid::is_confused`]).
pub fn if_score(constraints: &[Constraint], response: &str, lang: &str) -> IfScore {
    if_score_with(constraints, response, lang, langid::is_confused(response, lang))
}

/// [`if_score`] with the confusion judged by [`langid::is_confused_given_prompt`].
pub fn if_score_given_prompt(constraints: &[Constraint], response: &str, lang: &str, prompt: &str) -> IfScore {
    if_score_with(constraints, response, lang, langid::is_confused_given_prompt(response, lang, prompt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Constraint::*;

    fn rep(w: &str, t: u32) -> Constraint {
        Repeat { word: w.into(), times: t }
    }
    fn lst(n: u32, v: &[&str]) -> Constraint {
        List { n, vocab: v.iter().map(|s| s.to_string()).collect() }
    }
    fn w(s: &str) -> String {
        s.to_string()
    }

    #[test]
    fn repeat_spaced() {
        let c = rep("market", 3);
        assert!(check(&c, "market market market", "en"));
        assert!(check(&c, "  Market, market, MARKET. ", "en"));
        assert!(check(&c, "“market market market”", "en"));
        assert!(check(&c, "Sure market market market", "en"));
        assert!(!check(&c, "market market", "en"));
        assert!(!check(&c, "market market market market", "en"));
        assert!(!check(&c, "markets market market", "en"));
        assert!(!check(&c, "marketmarketmarket", "en"));
        assert!(!check(&rep("market", 0), "", "en"));
        // Multi-word phrase.
        assert!(check(&rep("ice cream", 2), "ice cream ice cream", "en"));
        assert!(!check(&rep("ice cream", 2), "ice cream ice", "en"));
        // Russian, Arabic, Korean, Bengali.
        assert!(check(&rep("дом", 2), "Дом дом", "ru"));
        assert!(!check(&rep("дом", 2), "дом дома", "ru"));
        assert!(check(&rep("كتاب", 3), "كتاب، كتاب، كتاب", "ar"));
        assert!(check(&rep("사과", 2), "사과 사과", "ko"));
        assert!(!check(&rep("사과", 2), "사과를 사과", "ko"));
        assert!(check(&rep("বই", 4), "বই বই বই বই।", "bn"));
        assert!(!check(&rep("বই", 4), "বই বই বই বইটি।", "bn"));
    }

    #[test]
    fn repeat_spaceless() {
        assert!(check(&rep("りんご", 3), "りんご、りんご、りんご。", "ja"));
        assert!(check(&rep("りんご", 3), "りんごりんごりんご", "ja"));
        assert!(!check(&rep("りんご", 3), "りんごりんご", "ja"));
        assert!(check(&rep("苹果", 2), "苹果 苹果", "zh"));
        assert!(check(&rep("แมว", 3), "แมว แมว แมว", "th"));
        assert!(!check(&rep("แมว", 3), "แมว แมว", "th"));
    }

    #[test]
    fn list_lines() {
        let v = ["apple", "banana", "pear", "grape"];
        let c = lst(3, &v);
        assert!(check(&c, "1. apple\n2. pear\n3. grape", "en"));
        assert!(check(&c, "Here you go:\n1) Apple.\n2) PEAR\n3) grape", "en"));
        assert!(check(&c, "“1. apple\n2. pear\n3. grape”", "en"));
        assert!(check(&c, "Ready\n1. apple\n2. pear\n3. grape\nDone", "en"));
        assert!(!check(&c, "1. apple\n2. pear", "en")); // too few
        assert!(!check(&c, "1. apple\n2. pear\n3. grape\n4. banana", "en")); // too many
        assert!(!check(&c, "1. apple\n2. apple\n3. grape", "en")); // not distinct
        assert!(!check(&c, "1. apple\n2. pear\n3. mango", "en")); // not in vocab
        assert!(!check(&c, "1. apple\n3. pear\n2. grape", "en")); // numbering
        assert!(!check(&c, "- apple\n- pear\n- grape", "en")); // not numbered
        assert!(!check(&c, "1. apple 2. pear 3. grape", "en")); // one line
        assert!(!check(&c, "1. red apple\n2. pear\n3. grape", "en"));
        // Native digits and markers.
        let bn = lst(2, &["আপেল", "কলা", "আম"]);
        assert!(check(&bn, "১. আপেল\n২. আম", "bn"));
        assert!(!check(&bn, "১. আপেল\n৩. আম", "bn"));
        let ar = lst(2, &["تفاحة", "موز"]);
        assert!(check(&ar, "١. تفاحة\n٢. موز", "ar"));
        let ja = lst(3, &["りんご", "みかん", "ぶどう"]);
        assert!(check(&ja, "１．りんご\n２．ぶどう\n３．みかん", "ja"));
        assert!(check(&ja, "1、りんご。\n2、ぶどう。\n3、みかん。", "ja"));
        let th = lst(2, &["แมว", "หมา"]);
        assert!(check(&th, "๑. แมว\n๒. หมา", "th"));
    }

    #[test]
    fn upper_case() {
        let c = Upper { word: w("summer") };
        assert!(check(&c, "SUMMER", "en"));
        assert!(check(&c, " “SUMMER!” ", "en"));
        assert!(!check(&c, "Summer", "en"));
        assert!(!check(&c, "SUMMER is here", "en"));
        assert!(!check(&c, "WINTER", "en"));
        assert!(!check(&c, "SUMMERS", "en"));
        assert!(check(&Upper { word: w("été") }, "ÉTÉ", "fr"));
        assert!(!check(&Upper { word: w("été") }, "ÉTé", "fr"));
        assert!(check(&Upper { word: w("зима") }, "ЗИМА", "ru"));
        assert!(!check(&Upper { word: w("зима") }, "ЗИМа", "ru"));
        // The start / end word may keep its case, with if_score's view of all constraints.
        let all = [Upper { word: w("friend") }, Start { word: w("Ready") }];
        assert!(!check(&all[0], "Ready FRIEND", "en"));
        assert!(if_score(&all, "Ready FRIEND", "en").value == 1.0);
        assert!(if_score(&all, "READY FRIEND", "en").value == 1.0);
        assert_eq!(if_score(&all, "Ready Friend", "en").satisfied, 1);
    }

    #[test]
    fn start_and_end() {
        let s = Start { word: w("Ready") };
        let e = End { word: w("Done") };
        assert!(check(&s, "Ready FRIEND", "en"));
        assert!(check(&s, "“ready,” friend", "en"));
        assert!(check(&s, "Ready\n1. sheep\n2. lion", "en"));
        assert!(!check(&s, "Already friend", "en"));
        assert!(!check(&s, "Friend ready", "en"));
        assert!(check(&e, "music music Done.", "en"));
        assert!(check(&e, "1. dog\n2. horse\nDone", "en"));
        assert!(!check(&e, "Done music", "en"));
        assert!(!check(&e, "music Undone", "en"));
        assert!(check(&Start { word: w("Готово") }, "готово: дом дом", "ru"));
        assert!(check(&End { word: w("انتهى") }, "كتاب كتاب انتهى.", "ar"));
        assert!(check(&Start { word: w("좋아요") }, "좋아요, 사과 사과", "ko"));
        assert!(check(&End { word: w("শেষ") }, "বই বই শেষ।", "bn"));
        // Spaceless: prefix / suffix of the letters.
        assert!(check(&Start { word: w("はい") }, "「はい、りんごりんご」", "ja"));
        assert!(check(&End { word: w("完成") }, "苹果苹果完成。", "zh"));
        assert!(!check(&End { word: w("完成") }, "完成苹果苹果", "zh"));
        assert!(check(&End { word: w("เสร็จ") }, "แมว แมว เสร็จ", "th"));
    }

    #[test]
    fn quotes() {
        let q = Quote { open: w("“"), close: w("”") };
        assert!(check(&q, "“market market”", "en"));
        assert!(check(&q, "  “market market”.  ", "en"));
        assert!(check(&q, "«market»", "en"));
        assert!(check(&q, "\"market\"", "en"));
        assert!(check(&q, "'don't stop'", "en"));
        assert!(check(&q, "“He said “hi” to me”", "en"));
        assert!(!check(&q, "market market", "en"));
        assert!(!check(&q, "“market market", "en"));
        assert!(!check(&q, "“a” and “b”", "en"));
        assert!(!check(&q, "\"a\" and \"b\"", "en"));
        assert!(!check(&q, "“market»", "en"));
        assert!(!check(&q, "“”", "en"));
        assert!(!check(&q, "Sure: “market”", "en"));
        // Language-specific given pairs and the common ones.
        assert!(check(&Quote { open: w("«"), close: w("»") }, "« дом дом »", "ru"));
        assert!(check(&Quote { open: w("„"), close: w("“") }, "„Haus“", "en"));
        assert!(check(&Quote { open: w("「"), close: w("」") }, "「りんごりんご」。", "ja"));
        assert!(check(&Quote { open: w("『"), close: w("』") }, "『苹果』", "zh"));
        assert!(check(&Quote { open: w("“"), close: w("”") }, "“كتاب كتاب”", "ar"));
    }

    #[test]
    fn score_and_confusion() {
        let cs = [rep("market", 3), Quote { open: w("“"), close: w("”") }];
        let s = if_score(&cs, "“market market market”", "en");
        assert_eq!(s, IfScore { satisfied: 2, total: 2, confused: false, value: 1.0 });
        let s = if_score(&cs, "market market market", "en");
        assert_eq!((s.satisfied, s.value), (1, 0.5));
        // Same constraint satisfied, but the answer is in Spanish: 0.
        let s = if_score(&cs, "“market market market” es la respuesta que buscas, amigo mío", "en");
        assert!(s.confused && s.value == 0.0 && s.satisfied == 1);
        assert_eq!(if_score(&[], "anything", "en").value, 1.0);
    }
}

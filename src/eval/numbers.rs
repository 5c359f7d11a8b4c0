//! Numbers written in a generation, in any of the suite's digit systems, for MR accuracy.
//!
//! # What counts as a number
//!
//! * **Digits**: ASCII `0-9`, Arabic-Indic `٠-٩`, Persian `۰-۹`, Devanagari `०-९`, Bengali
//!   `০-৯`, Thai `๐-๙` and full-width `０-９`. One number is written in one system: a run that
//!   mixes systems (`1٢3`, or `1,٠٠٠`) is not a number at all (it is skipped, not split).
//!   Number words ("eighteen", 十八) and other digit-like characters (`²`, `①`) do not count.
//! * **Thousands separators**: `,` `.` `'` `٬` (U+066C), space, U+00A0, U+202F (and U+2009,
//!   thin space) group digits only when the first group has 1-3 digits and the separator is
//!   followed by *exactly* three digits of the same system; every separator of one number
//!   must be the same character. So `1,000` = `1 000` (narrow no-break space) = `1.000` = 1000
//!   in every language, `1,000,000` = 10⁶, `7, 8` and `7,8` (in English) are two numbers, and
//!   `2024,100` is not grouped. Because the suite's answers are integers, a separator followed
//!   by exactly three digits is read as grouping even where it is also the decimal mark
//!   (`1,500` in Spanish is 1500, not 1.5).
//! * **Bengali** (`bn`) also accepts Indian grouping with `,`: `১,০০,০০০` = 100000
//!   (1-2 digits, then groups of two, then a group of three).
//! * **Decimals**: a decimal mark followed by a digit starts a fractional part. `.` and `٫`
//!   (U+066B) are decimal marks in every language; `,` is one only in languages whose decimal
//!   mark is the comma (es, fr, pt, ru; elsewhere `3,5` is two numbers). A decimal number equals
//!   an integer only when its fraction is zero: `18.0` is 18, `3.5` is no integer at all, and
//!   `3.5` is never 35. [`numbers`] leaves non-integral decimals out; [`final_number`] returns
//!   `None` when the last number is a non-integral decimal (so `… 7 … 3.5` never scores as 7).
//! * **Signs**: `-` or `−` (U+2212) directly before the digits makes the number negative, unless
//!   the sign itself follows a letter or digit (`3-1` is a score: 3 and 1; `x-2` is a word).
//! * **Digits inside words**: digits glued to a preceding Latin or Cyrillic letter (`A4`,
//!   `COVID19`, `x2`) are part of a word and ignored. Digits glued to letters of other
//!   scripts count: Japanese, Chinese and Thai write numbers directly after words (`答えは18個`),
//!   Korean and Bengali attach counters and particles (`18개`, `১৮টি`), and digits followed
//!   by letters (`3rd`, `5kg`) count everywhere.
//!
//! The per-language facts (decimal mark, Indian grouping) are in [`decimal_comma`] and
//! [`indian_grouping`] and follow CLDR. The suite files' `[format]` sections define only how the
//! suite *writes* integers (`digits`, `group_sep`, `group_min`): U+00A0 for es and ru, U+202F
//! for fr, `.` for pt, `٬` with Arabic-Indic digits for ar, Bengali digits with `,` for bn,
//! `,` elsewhere. Every one of those is read in every language, since a model may write a
//! number the way another language does.

use crate::data::script::{self, Script};

/// A number found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Num {
    /// The integer part, with its sign (for a decimal, truncated toward zero).
    pub int: i64,
    /// False for a decimal with a non-zero fraction (`3.5`); true for `3`, `3.0`, `1,000`.
    pub integral: bool,
    /// Byte range of the number in the text (sign included).
    pub start: usize,
    pub end: usize,
}

/// The value and system (the code point of its zero) of a digit of a supported system.
pub fn digit(c: char) -> Option<(u32, u32)> {
    const ZEROS: [u32; 7] = [0x30, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0xFF10];
    let u = c as u32;
    ZEROS.iter().find(|&&z| (z..z + 10).contains(&u)).map(|&z| (u - z, z))
}

/// True when the language writes decimals with a comma (CLDR: es, fr, pt, ru).
pub fn decimal_comma(lang: &str) -> bool {
    matches!(lang, "es" | "fr" | "pt" | "ru")
}

/// True when the language groups digits the Indian way (`1,00,000`) as well (bn).
pub fn indian_grouping(lang: &str) -> bool {
    matches!(lang, "bn")
}

fn is_group_sep(c: char) -> bool {
    matches!(c, ',' | '.' | '\'' | '\u{66C}' | ' ' | '\u{A0}' | '\u{202F}' | '\u{2009}')
}

fn is_decimal_mark(c: char, lang: &str) -> bool {
    c == '.' || c == '\u{66B}' || (c == ',' && decimal_comma(lang))
}

/// A maximal run of digits of one system.
#[derive(Debug)]
struct Seg {
    /// Index (in chars) of the first digit and one past the last.
    from: usize,
    to: usize,
    /// The separator char before this segment (None for the first of a token).
    sep: Option<char>,
}

impl Seg {
    fn len(&self) -> usize {
        self.to - self.from
    }
}

/// All numbers of `text`, in order (see the module documentation for the rules).
pub fn scan(text: &str, lang: &str) -> Vec<Num> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let byte_at = |i: usize| if i < n { chars[i].0 } else { text.len() };
    let ch = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        if digit(chars[i].1).is_none() {
            i += 1;
            continue;
        }
        // A token: digit runs joined by single separator characters, and whether it is valid.
        let token_start = i;
        let mut segs: Vec<Seg> = Vec::new();
        let mut mixed = false;
        let mut sep = None;
        loop {
            let from = i;
            let system = digit(chars[i].1).unwrap().1;
            while i < n {
                match digit(chars[i].1) {
                    Some((_, s)) if s == system => i += 1,
                    Some(_) => {
                        mixed = true;
                        i += 1;
                    }
                    None => break,
                }
            }
            segs.push(Seg { from, to: i, sep });
            // Continue over one separator when a digit follows it (of another system: the
            // whole token is mixed and no number).
            match (ch(i), ch(i + 1).and_then(digit)) {
                (Some(c), Some((_, s))) if is_group_sep(c) || is_decimal_mark(c, lang) => {
                    mixed |= s != system;
                    sep = Some(c);
                    i += 1;
                }
                _ => break,
            }
        }
        let token_end = i;
        let prev = if token_start > 0 { ch(token_start - 1) } else { None };
        let in_word = prev.is_some_and(|p| matches!(script::of(p), Some(Script::Latin | Script::Cyrillic)));
        if mixed || in_word {
            continue;
        }
        // Interpret the segments greedily.
        let mut k = 0;
        while k < segs.len() {
            let first = k;
            let mut last = k; // last segment of the integer part
            let s0 = &segs[k];
            let mut grouped = false;
            if indian_grouping(lang) && s0.len() <= 2 {
                // d{1,2} (,dd)* ,ddd
                let mut j = k + 1;
                while j < segs.len() && segs[j].sep == Some(',') && segs[j].len() == 2 {
                    j += 1;
                }
                if j > k + 1 && j < segs.len() && segs[j].sep == Some(',') && segs[j].len() == 3 {
                    last = j;
                    grouped = true;
                }
            }
            if !grouped && s0.len() <= 3 {
                let mut group_sep = None;
                let mut j = k + 1;
                while j < segs.len() {
                    let c = segs[j].sep.unwrap();
                    if segs[j].len() == 3 && is_group_sep(c) && group_sep.is_none_or(|g| g == c) {
                        group_sep = Some(c);
                        last = j;
                        j += 1;
                    } else {
                        break;
                    }
                }
            }
            let group_char = if last > first { segs[last].sep } else { None };
            // Optional fraction.
            let mut frac = None;
            if last + 1 < segs.len() {
                let c = segs[last + 1].sep.unwrap();
                if is_decimal_mark(c, lang) && Some(c) != group_char {
                    frac = Some(last + 1);
                }
            }
            let end_seg = frac.unwrap_or(last);
            k = end_seg + 1;

            let mut int: Option<i64> = Some(0);
            for s in &segs[first..=last] {
                for &(_, c) in &chars[s.from..s.to] {
                    int = int.and_then(|v| v.checked_mul(10)).and_then(|v| v.checked_add(digit(c).unwrap().0 as i64));
                }
            }
            let Some(mut int) = int else { continue };
            let integral =
                frac.is_none_or(|f| chars[segs[f].from..segs[f].to].iter().all(|&(_, c)| digit(c).unwrap().0 == 0));
            let mut start = segs[first].from;
            if first == 0 {
                let sign = prev.is_some_and(|p| p == '-' || p == '\u{2212}');
                let before_sign = if token_start >= 2 { ch(token_start - 2) } else { None };
                if sign && !before_sign.is_some_and(|b| b.is_alphanumeric()) {
                    int = -int;
                    start -= 1;
                }
            }
            out.push(Num { int, integral, start: byte_at(start), end: byte_at(segs[end_seg].to) });
        }
        debug_assert!(i == token_end);
    }
    out
}

/// The integers written in `text`, in order (non-integral decimals are left out).
pub fn numbers(text: &str, lang: &str) -> Vec<i64> {
    scan(text, lang).into_iter().filter(|n| n.integral).map(|n| n.int).collect()
}

/// The last number of `text`: `None` when there is none, or when the last one is a decimal with
/// a non-zero fraction (a decimal answer never matches an integer unless it equals it).
pub fn final_number(text: &str, lang: &str) -> Option<i64> {
    scan(text, lang).last().filter(|n| n.integral).map(|n| n.int)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nums(t: &str, lang: &str) -> Vec<i64> {
        numbers(t, lang)
    }

    #[test]
    fn ascii_and_final() {
        assert_eq!(nums("9 × 2 = 18. The answer is 18.", "en"), [9, 2, 18, 18]);
        assert_eq!(final_number("9 + 4 = 13. The answer is 13.", "en"), Some(13));
        assert_eq!(final_number("I don't know.", "en"), None);
        assert_eq!(final_number("", "en"), None);
        assert_eq!(final_number("Answer: 007", "en"), Some(7));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(nums("It costs 1,000 coins.", "en"), [1000]);
        assert_eq!(nums("1,234,567 people", "en"), [1234567]);
        assert_eq!(nums("7, 8 and 9", "en"), [7, 8, 9]);
        assert_eq!(nums("7,8", "en"), [7, 8]);
        assert_eq!(nums("1,00", "en"), [1, 0]);
        assert_eq!(nums("1,0000", "en"), [1, 0]);
        assert_eq!(nums("2024,100", "en"), [2024, 100]);
        assert_eq!(nums("1'000 Franken", "en"), [1000]);
        // Separators must agree within a number.
        assert_eq!(nums("1,000 000", "en"), [1000, 0]);
        // French: narrow no-break space and no-break space.
        assert_eq!(nums("Il y a 1\u{202F}000 personnes.", "fr"), [1000]);
        assert_eq!(nums("12\u{A0}500 euros", "fr"), [12500]);
        assert_eq!(nums("1 250 000 habitants", "fr"), [1250000]);
        // Spanish / Portuguese dot grouping.
        assert_eq!(nums("Vinieron 2.500 personas.", "es"), [2500]);
        assert_eq!(nums("São 1.000.000 de reais.", "pt"), [1000000]);
        // Russian space grouping.
        assert_eq!(final_number("Ответ: 3 450.", "ru"), Some(3450));
    }

    #[test]
    fn decimals() {
        assert_eq!(scan("3.5", "en"), [Num { int: 3, integral: false, start: 0, end: 3 }]);
        assert_eq!(final_number("The answer is 3.5", "en"), None);
        assert_eq!(final_number("7 apples, that is 3.5 each", "en"), None);
        assert_eq!(final_number("The answer is 18.0", "en"), Some(18));
        assert_eq!(final_number("The answer is 18.", "en"), Some(18));
        assert_eq!(nums("2.5 and 4", "en"), [4]);
        // Comma decimals where the comma is the decimal mark.
        assert_eq!(final_number("La respuesta es 3,5.", "es"), None);
        assert_eq!(final_number("Ответ: 12,0", "ru"), Some(12));
        assert_eq!(nums("3,5", "en"), [3, 5]);
        // Grouping then a decimal of the other mark.
        assert_eq!(scan("1.000,5", "es")[0], Num { int: 1000, integral: false, start: 0, end: 7 });
        assert_eq!(nums("1,000.0", "en"), [1000]);
        assert_eq!(nums("1.000,5", "en"), [1000, 5]);
        // Arabic decimal separator.
        assert_eq!(final_number("الجواب ٣٫٥", "ar"), None);
        assert_eq!(final_number("الجواب ٣٫٠", "ar"), Some(3));
    }

    #[test]
    fn native_digits() {
        // Arabic-Indic digits with the Arabic thousands separator.
        assert_eq!(final_number("اشترت سارة ٢٬٤٠٠ تفاحة. الجواب هو ٢٬٤٠٠.", "ar"), Some(2400));
        assert_eq!(nums("٧ + ٥ = ١٢", "ar"), [7, 5, 12]);
        assert_eq!(nums("۱۲۳", "ar"), [123]);
        // Bengali, with Western and Indian grouping.
        assert_eq!(final_number("রিনার কাছে ১৮টি আপেল আছে। উত্তর হলো ১৮।", "bn"), Some(18));
        assert_eq!(nums("১,০০,০০০ টাকা", "bn"), [100000]);
        assert_eq!(nums("১২,৩৪,৫৬৭", "bn"), [1234567]);
        assert_eq!(nums("১,০০০", "bn"), [1000]);
        assert_eq!(nums("1,00,000", "en"), [1, 0]); // 1, then "00,000"
                                                    // Thai, Devanagari, full-width.
        assert_eq!(final_number("คำตอบคือ ๑๒๕", "th"), Some(125));
        assert_eq!(final_number("उत्तर ४२ है", "en"), Some(42));
        assert_eq!(final_number("答えは１８個です。", "ja"), Some(18));
        // CJK and Korean: digits glued to words and counters count.
        assert_eq!(final_number("答案是18。", "zh"), Some(18));
        assert_eq!(final_number("민수는 사과 18개를 샀습니다. 답은 18개입니다.", "ko"), Some(18));
    }

    #[test]
    fn mixed_systems_are_not_numbers() {
        assert_eq!(nums("1٢3", "ar"), Vec::<i64>::new());
        assert_eq!(nums("1,٠٠٠ and 5", "ar"), [5]);
        assert_eq!(final_number("answer ١2", "ar"), None);
    }

    #[test]
    fn signs_and_words() {
        assert_eq!(nums("It is -5 degrees, or −3.", "en"), [-5, -3]);
        assert_eq!(nums("They won 3-1.", "en"), [3, 1]);
        assert_eq!(nums("x-2", "en"), [2]);
        assert_eq!(nums("5 - 3 = 2", "en"), [5, 3, 2]);
        assert_eq!(nums("A4 paper, COVID19, Ж7", "en"), Vec::<i64>::new());
        assert_eq!(nums("the 3rd day, 5kg", "en"), [3, 5]);
        assert_eq!(final_number("Answer: 12 (page A4)", "en"), Some(12));
        assert_eq!(nums("99999999999999999999 and 4", "en"), [4]);
    }

    #[test]
    fn byte_ranges() {
        let t = "Всего -1 500 рублей";
        let n = scan(t, "ru");
        assert_eq!(n.len(), 1);
        assert_eq!(&t[n[0].start..n[0].end], "-1 500");
        assert_eq!(n[0].int, -1500);
    }
}

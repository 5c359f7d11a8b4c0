//! A small template language for the suite's data files.
//!
//! `{a}` a number; `{name}` an item of a list (its `base` attribute); `{obj.pl}` an attribute;
//! `{obj@a}` the item counted by number `a` (the attribute named by the plural category of `a`,
//! `{n}` inside it replaced by the number); `{obj@a:acc}` the same from `acc_<category>` first;
//! `|cap` (first letter upper case) and `|upper` filters; `{{` and `}}` are literal braces.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use crate::bail_input;

use super::lang::PluralRule;

/// How numbers and a few punctuation conventions are written in a language.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Format {
    /// The ten digits 0-9 as this language writes them.
    pub digits: String,
    /// Thousands separator.
    pub group_sep: String,
    /// Numbers with at least this many digits get thousands separators.
    pub group_min: usize,
    /// Between words (e.g. before an appended word); "" for scripts without spaces.
    pub word_sep: String,
    /// Between repetitions of a word in the repeat instruction.
    pub repeat_sep: String,
    /// Between sentences of a story or document.
    #[serde(default = "default_sent_sep")]
    pub sent_sep: String,
    /// Opening and closing quotation marks.
    pub quote: [String; 2],
    /// One numbered list line, with `{i}` and `{item}`.
    pub list_item: String,
    /// The plural rule (filled from langs.toml, not from the suite file).
    #[serde(skip, default = "default_plural")]
    pub plural: PluralRule,
}

fn default_sent_sep() -> String {
    " ".into()
}

fn default_plural() -> PluralRule {
    PluralRule::OneOther
}

impl Format {
    /// The language's digit characters, 0 to 9.
    pub fn digit_chars(&self) -> Vec<char> {
        self.digits.chars().collect()
    }

    /// Write an integer the way this language does.
    pub fn number(&self, n: i64) -> String {
        let digits = self.digit_chars();
        let raw = n.unsigned_abs().to_string();
        let mut out = String::new();
        if n < 0 {
            out.push('-');
        }
        let len = raw.len();
        for (i, ch) in raw.chars().enumerate() {
            if i > 0 && len >= self.group_min && (len - i) % 3 == 0 {
                out.push_str(&self.group_sep);
            }
            let d = ch.to_digit(10).unwrap() as usize;
            out.push(digits.get(d).copied().unwrap_or(ch));
        }
        out
    }
}

/// An attribute value of a list item.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum AttrValue {
    Str(String),
    List(Vec<String>),
}

/// One entry of a list: a plain string (its `base`) or a table of attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: Option<String>,
    pub attrs: BTreeMap<String, AttrValue>,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Plain(String),
            Table(BTreeMap<String, AttrValue>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Plain(s) => Item { id: None, attrs: BTreeMap::from([("base".to_string(), AttrValue::Str(s))]) },
            Raw::Table(mut t) => {
                let id = match t.remove("id") {
                    Some(AttrValue::Str(s)) => Some(s),
                    Some(AttrValue::List(_)) => return Err(serde::de::Error::custom("`id` must be a string")),
                    None => None,
                };
                Item { id, attrs: t }
            }
        })
    }
}

impl Item {
    pub fn str(&self, attr: &str) -> Option<&str> {
        match self.attrs.get(attr) {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn list(&self, attr: &str) -> Option<&[String]> {
        match self.attrs.get(attr) {
            Some(AttrValue::List(v)) => Some(v),
            _ => None,
        }
    }

    /// The split key component of this item: its id, else its base text.
    pub fn key(&self) -> &str {
        self.id.as_deref().or_else(|| self.str("base")).unwrap_or_default()
    }

    /// The counted form for a plural category, with optional form-set prefix.
    pub fn counted(&self, category: &str, form: Option<&str>) -> Option<&str> {
        let mut names = Vec::with_capacity(4);
        if let Some(f) = form {
            names.push(format!("{f}_{category}"));
            names.push(format!("{f}_other"));
        }
        names.push(category.to_string());
        names.push("other".to_string());
        names.iter().find_map(|n| self.str(n))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    None,
    Cap,
    Upper,
}

/// A reference inside a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// The slot's name as written (`name2`).
    pub name: String,
    /// `.attr`
    pub attr: Option<String>,
    /// `@num`
    pub count: Option<String>,
    /// `:form`
    pub form: Option<String>,
    pub filter: Filter,
}

impl Slot {
    /// The list a slot draws from: its name without trailing digits (`name2` -> `name`).
    pub fn list(&self) -> &str {
        self.name.trim_end_matches(|c: char| c.is_ascii_digit())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Slot(Slot),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parse `src`; `at` names the template's place for error messages (file and key path).
    pub fn parse(src: &str, at: &str) -> Result<Template> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = src.char_indices().peekable();
        while let Some((i, ch)) = chars.next() {
            match ch {
                '{' if matches!(chars.peek(), Some((_, '{'))) => {
                    chars.next();
                    lit.push('{');
                }
                '}' if matches!(chars.peek(), Some((_, '}'))) => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let rest = &src[i + 1..];
                    let Some(end) = rest.find('}') else {
                        bail_input!("{at}: unclosed '{{' at character {}", src[..i].chars().count() + 1);
                    };
                    let inner = &rest[..end];
                    for _ in 0..inner.chars().count() + 1 {
                        chars.next();
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Slot(parse_slot(inner, at)?));
                }
                '}' => bail_input!(
                    "{at}: stray '}}' at character {} (write '}}}}' for a brace)",
                    src[..i].chars().count() + 1
                ),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { source: src.to_string(), parts })
    }

    /// The slots this template refers to.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.parts.iter().filter_map(|p| match p {
            Part::Slot(s) => Some(s),
            Part::Lit(_) => None,
        })
    }

    /// Render with the values in `ctx`. Missing values are an error naming the slot.
    pub fn render(&self, ctx: &Ctx) -> Result<String> {
        let mut out = String::with_capacity(self.source.len() + 16);
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Slot(s) => {
                    let v = ctx.value(s).ok_or_else(|| {
                        crate::error::bad_input(format!("template {:?}: no value for {{{}}}", self.source, describe(s)))
                    })?;
                    apply_filter(&mut out, &v, s.filter);
                }
            }
        }
        Ok(out)
    }
}

fn describe(s: &Slot) -> String {
    let mut d = s.name.clone();
    if let Some(c) = &s.count {
        d.push('@');
        d.push_str(c);
    }
    if let Some(f) = &s.form {
        d.push(':');
        d.push_str(f);
    }
    if let Some(a) = &s.attr {
        d.push('.');
        d.push_str(a);
    }
    d
}

fn apply_filter(out: &mut String, v: &str, f: Filter) {
    match f {
        Filter::None => out.push_str(v),
        Filter::Upper => out.push_str(&v.to_uppercase()),
        Filter::Cap => {
            let mut cs = v.chars();
            if let Some(first) = cs.next() {
                out.extend(first.to_uppercase());
                out.push_str(cs.as_str());
            }
        }
    }
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_slot(inner: &str, at: &str) -> Result<Slot> {
    let (body, filter) = match inner.split_once('|') {
        Some((b, "cap")) => (b, Filter::Cap),
        Some((b, "upper")) => (b, Filter::Upper),
        Some((_, f)) => {
            bail_input!("{at}: unknown filter '|{f}' in {{{inner}}} (known: cap, upper)")
        }
        None => (inner, Filter::None),
    };
    let (body, attr) = match body.split_once('.') {
        Some((b, a)) => (b, Some(a.to_string())),
        None => (body, None),
    };
    let (name, count, form) = match body.split_once('@') {
        Some((n, rest)) => match rest.split_once(':') {
            Some((c, f)) => (n, Some(c.to_string()), Some(f.to_string())),
            None => (n, Some(rest.to_string()), None),
        },
        None => (body, None, None),
    };
    let all_ok = is_ident(name)
        && attr.as_deref().is_none_or(is_ident)
        && count.as_deref().is_none_or(is_ident)
        && form.as_deref().is_none_or(is_ident);
    if !all_ok {
        bail_input!("{at}: malformed slot {{{inner}}}");
    }
    if count.is_some() && attr.is_some() {
        bail_input!("{at}: slot {{{inner}}} has both a count and an attribute");
    }
    Ok(Slot { name: name.to_string(), attr, count, form, filter })
}

/// The values a template is rendered with.
pub struct Ctx<'a> {
    pub format: &'a Format,
    pub nums: Vec<(&'static str, i64)>,
    pub items: Vec<(String, &'a Item)>,
    pub strs: Vec<(&'static str, String)>,
}

impl<'a> Ctx<'a> {
    pub fn new(format: &'a Format) -> Self {
        Ctx { format, nums: Vec::new(), items: Vec::new(), strs: Vec::new() }
    }

    pub fn num(&self, name: &str) -> Option<i64> {
        self.nums.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    pub fn item(&self, name: &str) -> Option<&'a Item> {
        self.items.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    fn value(&self, s: &Slot) -> Option<String> {
        if s.attr.is_none() && s.count.is_none() {
            if let Some(n) = self.num(&s.name) {
                return Some(self.format.number(n));
            }
            if let Some((_, v)) = self.strs.iter().find(|(n, _)| *n == s.name) {
                return Some(v.clone());
            }
        }
        let item = self.item(&s.name)?;
        if let Some(c) = &s.count {
            let n = self.num(c)?;
            let cat = self.format.plural.category(n);
            let form = item.counted(cat, s.form.as_deref())?;
            return Some(form.replace("{n}", &self.format.number(n)));
        }
        item.str(s.attr.as_deref().unwrap_or("base")).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(digits: &str, plural: PluralRule) -> Format {
        Format {
            digits: digits.into(),
            group_sep: ",".into(),
            group_min: 4,
            word_sep: " ".into(),
            repeat_sep: " ".into(),
            sent_sep: " ".into(),
            quote: ["“".into(), "”".into()],
            list_item: "{i}. {item}".into(),
            plural,
        }
    }

    fn item(pairs: &[(&str, &str)]) -> Item {
        Item { id: None, attrs: pairs.iter().map(|(k, v)| (k.to_string(), AttrValue::Str(v.to_string()))).collect() }
    }

    #[test]
    fn numbers_use_native_digits_and_grouping() {
        let en = fmt("0123456789", PluralRule::OneOther);
        assert_eq!(en.number(7), "7");
        assert_eq!(en.number(1234), "1,234");
        assert_eq!(en.number(1234567), "1,234,567");
        assert_eq!(en.number(-50), "-50");
        let ar = fmt("٠١٢٣٤٥٦٧٨٩", PluralRule::Arabic);
        assert_eq!(ar.number(305), "٣٠٥");
        let bn = fmt("০১২৩৪৫৬৭৮৯", PluralRule::ZeroOneOther);
        assert_eq!(bn.number(42), "৪২");
    }

    #[test]
    fn counted_forms_follow_plural_rules() {
        let ru = fmt("0123456789", PluralRule::Slavic);
        let apple = item(&[
            ("base", "яблоко"),
            ("one", "{n} яблоко"),
            ("few", "{n} яблока"),
            ("many", "{n} яблок"),
            ("acc_one", "{n} яблоко"),
        ]);
        let t = Template::parse("У Ани {obj@a}.", "test").unwrap();
        let mut ctx = Ctx::new(&ru);
        ctx.items.push(("obj".into(), &apple));
        for (n, want) in [(1, "1 яблоко"), (3, "3 яблока"), (5, "5 яблок"), (21, "21 яблоко")] {
            ctx.nums = vec![("a", n)];
            assert_eq!(t.render(&ctx).unwrap(), format!("У Ани {want}."));
        }
    }

    #[test]
    fn attributes_filters_and_escapes() {
        let en = fmt("0123456789", PluralRule::OneOther);
        let org = item(&[("base", "the city council")]);
        let apple = item(&[("base", "apple"), ("pl", "apples")]);
        let t = Template::parse("{org|cap} counts {obj.pl} in {{braces}} {obj|upper}", "t").unwrap();
        let mut ctx = Ctx::new(&en);
        ctx.items.push(("org".into(), &org));
        ctx.items.push(("obj".into(), &apple));
        assert_eq!(t.render(&ctx).unwrap(), "The city council counts apples in {braces} APPLE");
    }

    #[test]
    fn bad_templates_name_the_problem() {
        for (src, want) in [
            ("{name", "unclosed"),
            ("a } b", "stray"),
            ("{obj|shout}", "unknown filter"),
            ("{obj@a.pl}", "both a count and an attribute"),
            ("{ob j}", "malformed"),
        ] {
            let e = Template::parse(src, "suite/xx.toml: mr.add[0].q").unwrap_err();
            let s = e.to_string();
            assert!(s.contains(want) && s.contains("mr.add[0].q"), "{src}: {s}");
        }
        let t = Template::parse("{missing}", "t").unwrap();
        let en = fmt("0123456789", PluralRule::OneOther);
        let e = t.render(&Ctx::new(&en)).unwrap_err().to_string();
        assert!(e.contains("{missing}"), "{e}");
    }

    #[test]
    fn slot_list_strips_digits() {
        let t = Template::parse("{name2} {obj}", "t").unwrap();
        let lists: Vec<_> = t.slots().map(|s| s.list().to_string()).collect();
        assert_eq!(lists, ["name", "obj"]);
    }
}

//! The built-in task suite: generated, verifiable MR / SM / IF examples and LM text in 12
//! languages, from the templates and vocabularies in `assets/suite/<lang>.toml`.
//!
//! Generation is random access: example `i` of (task, language, split) under a seed is the same
//! on every machine. Every example has a split key built from its content (numbers, aligned item
//! ids, words; never person names or phrasing), and a key belongs to the held-out partition or
//! to the train partition, the same in every language. So no held-out problem — in any
//! language, in any phrasing — is ever drawn for training.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use anyhow::Result;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::assets;
use super::example::{Constraint, Example, Meta, Task};
use super::lang::{self, Lang};
use super::template::{Ctx, Format, Item, Template};
use crate::bail_input;

/// One key in `HELDOUT_DEN` is held out.
const HELDOUT_DEN: u64 = 8;
/// The seed of the fixed held-out sets.
pub const HELDOUT_SEED: u64 = 0x6d69_7873_636f_7065;

/// Train or held-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Heldout,
}

/// The math families and the unit conversions of the `unit` family.
pub const MR_FAMILIES: [&str; 5] = ["add", "sub", "mul", "multi", "unit"];
const UNIT_PAIRS: [(&str, &str, i64); 8] = [
    ("hour", "minute", 60),
    ("minute", "second", 60),
    ("day", "hour", 24),
    ("week", "day", 7),
    ("year", "month", 12),
    ("meter", "centimeter", 100),
    ("kilogram", "gram", 1000),
    ("liter", "milliliter", 1000),
];

// ---------------------------------------------------------------------------------------------
// The file format (see assets/suite/README.md).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    lang: String,
    format: Format,
    lists: BTreeMap<String, Vec<Item>>,
    mr: RawMr,
    sm: RawSm,
    #[serde(rename = "if")]
    if_: RawIf,
    lm: RawLm,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMr {
    answer: BTreeMap<String, String>,
    add: Vec<RawMrTemplate>,
    sub: Vec<RawMrTemplate>,
    mul: Vec<RawMrTemplate>,
    multi: Vec<RawMrTemplate>,
    unit: Vec<RawMrTemplate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMrTemplate {
    q: String,
    s: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSm {
    prompt: Vec<String>,
    story: Vec<RawStory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStory {
    lead: Vec<String>,
    facts: Vec<Vec<String>>,
    extra: Vec<String>,
    summary: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIf {
    repeat: Vec<String>,
    list: Vec<String>,
    #[serde(default)]
    upper: Vec<String>,
    start: Vec<String>,
    end: Vec<String>,
    quote: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLm {
    facts: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// The compiled suite.

struct MrTemplate {
    q: Template,
    s: Template,
}

struct Story {
    lead: Vec<Template>,
    facts: Vec<Vec<Template>>,
    extra: Vec<Template>,
    summary: Template,
}

/// A drawn MR problem, before rendering.
struct MrProblem<'a> {
    ctx: Ctx<'a>,
    fam: &'static str,
    level: u8,
    template: &'a MrTemplate,
    answer: i64,
}

/// The kinds of passage of an LM document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LmPassage {
    Mr,
    Sm,
    If,
    Fact,
}

/// One passage of an LM document: its language, kind, text and split key (the tests read
/// them; the document is the texts).
#[cfg_attr(not(test), allow(dead_code))]
struct Passage<'s> {
    lang: &'s str,
    kind: LmPassage,
    text: String,
    key: u64,
}

/// A key of `split` derived from the hash `h` (for items whose split is chosen, not drawn).
fn key_in(split: Split, h: u64) -> u64 {
    let k = h - h % HELDOUT_DEN;
    match split {
        Split::Heldout => k,
        Split::Train => k + 1 + h % (HELDOUT_DEN - 1),
    }
}

/// One language's compiled templates and lists.
pub struct LangSuite {
    pub lang: &'static Lang,
    pub format: Format,
    pub lists: BTreeMap<String, Vec<Item>>,
    mr_answer: BTreeMap<String, Template>,
    mr: BTreeMap<String, Vec<MrTemplate>>,
    sm_prompt: Vec<Template>,
    stories: Vec<Story>,
    if_repeat: Vec<Template>,
    if_list: Vec<Template>,
    if_upper: Vec<Template>,
    if_start: Vec<Template>,
    if_end: Vec<Template>,
    if_quote: Vec<Template>,
    lm_facts: Vec<Template>,
    list_item: Template,
}

/// Options that shape generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenOptions {
    /// MR difficulty levels to draw from (1: one-digit operands, 2: two, 3: three).
    pub mr_levels: Vec<u8>,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { mr_levels: vec![1] }
    }
}

/// The whole suite. Each language file is read and checked the first time it is needed, so a
/// broken file only affects its own language.
pub struct Suite {
    langs: Vec<(&'static Lang, OnceLock<std::result::Result<LangSuite, String>>)>,
}

static SUITE: OnceLock<Suite> = OnceLock::new();

/// The suite built from the embedded (or `MIXSCOPE_ASSETS`) files.
pub fn suite() -> &'static Suite {
    SUITE.get_or_init(Suite::new)
}

/// Which numbers a template may use, by place in the file.
fn numbers_for(place: &str) -> &'static [&'static str] {
    match place {
        "add" | "sub" | "mul" | "lm" => &["a", "b", "r"],
        "multi" => &["a", "b", "c", "r"],
        "unit" => &["a", "f", "r"],
        "sm" => &["n", "m", "w", "l"],
        "if" => &["k"],
        _ => &[],
    }
}

/// The list a slot draws from (`big`/`small` are units).
fn list_of(slot_list: &str) -> &str {
    match slot_list {
        "big" | "small" => "unit",
        other => other,
    }
}

impl Default for Suite {
    fn default() -> Self {
        Suite::new()
    }
}

impl Suite {
    /// A suite whose language files are read on first use.
    pub fn new() -> Suite {
        Suite { langs: lang::all().iter().map(|l| (l, OnceLock::new())).collect() }
    }

    /// Read and check every language file now.
    pub fn load() -> Result<Suite> {
        let s = Suite::new();
        for l in lang::all() {
            s.lang(&l.code)?;
        }
        Ok(s)
    }

    /// One language's compiled file; a bad file is a [`crate::error::BadInput`] naming it.
    pub fn lang(&self, code: &str) -> Result<&LangSuite> {
        let Some((l, cell)) = self.langs.iter().find(|(l, _)| l.code == code) else {
            bail_input!("unknown language '{code}' (the suite has: {})", lang::codes().join(", "));
        };
        let r = cell.get_or_init(|| {
            let rel = format!("suite/{}.toml", l.code);
            assets::text(&rel).and_then(|(file, src)| LangSuite::parse(l, &file, &src)).map_err(|e| format!("{e:#}"))
        });
        match r {
            Ok(ls) => Ok(ls),
            Err(e) => Err(crate::error::bad_input(e.clone())),
        }
    }

    /// The languages whose files load, in suite order (errors are reported by [`Suite::lang`]).
    pub fn langs(&self) -> impl Iterator<Item = &LangSuite> {
        self.langs.iter().filter_map(|(l, _)| self.lang(&l.code).ok())
    }

    fn lang_or_err(&self, code: &str) -> Result<&LangSuite> {
        self.lang(code)
    }

    /// Example `index` of the train stream of (task, lang) under `seed`.
    pub fn train(&self, task: &Task, lang: &str, seed: u64, index: u64, opts: &GenOptions) -> Result<Example> {
        let l = self.lang_or_err(lang)?;
        Ok(l.generate_keyed(self, task, Split::Train, stream_seed(seed, task, lang, index), opts)?.0)
    }

    /// The fixed held-out set of (task, lang): `n` examples with distinct split keys.
    pub fn heldout(&self, task: &Task, lang: &str, n: usize, opts: &GenOptions) -> Result<Vec<Example>> {
        let l = self.lang_or_err(lang)?;
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(n);
        let mut i = 0u64;
        while out.len() < n {
            let (ex, key) =
                l.generate_keyed(self, task, Split::Heldout, stream_seed(HELDOUT_SEED, task, lang, i), opts)?;
            i += 1;
            if seen.insert(key) || i > 50 * n as u64 + 1000 {
                out.push(ex);
            }
        }
        Ok(out)
    }
}

/// A seed for example `index` of a (task, lang) stream.
fn stream_seed(seed: u64, task: &Task, lang: &str, index: u64) -> u64 {
    let mut h = Fnv::default();
    seed.hash(&mut h);
    task.as_str().hash(&mut h);
    lang.hash(&mut h);
    index.hash(&mut h);
    h.finish()
}

/// FNV-1a: a stable hash (std's SipHash keys are fixed too, but this one is documented stable).
#[derive(Clone)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        // A final avalanche so that low bits are well mixed.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The split a key belongs to.
pub fn split_of(key: u64) -> Split {
    if key % HELDOUT_DEN == 0 {
        Split::Heldout
    } else {
        Split::Train
    }
}

fn parse_all(v: &[String], at: &str) -> Result<Vec<Template>> {
    v.iter().enumerate().map(|(i, s)| Template::parse(s, &format!("{at}[{i}]"))).collect()
}

impl LangSuite {
    /// Parse and check one language file.
    pub fn parse(lang: &'static Lang, file: &str, src: &str) -> Result<LangSuite> {
        let raw: RawFile = toml::from_str(src).map_err(|e| crate::error::toml_error(file, src, &e))?;
        if raw.lang != lang.code {
            bail_input!("{file}: lang = \"{}\" but the file is for '{}'", raw.lang, lang.code);
        }
        let mut format = raw.format;
        format.plural = lang.plural;
        if format.digits.chars().count() != 10 {
            bail_input!("{file}: format.digits must have exactly 10 characters");
        }
        let at = |k: &str| format!("{file}: {k}");
        let mut mr = BTreeMap::new();
        for (fam, ts) in [
            ("add", &raw.mr.add),
            ("sub", &raw.mr.sub),
            ("mul", &raw.mr.mul),
            ("multi", &raw.mr.multi),
            ("unit", &raw.mr.unit),
        ] {
            let mut v = Vec::new();
            for (i, t) in ts.iter().enumerate() {
                v.push(MrTemplate {
                    q: Template::parse(&t.q, &at(&format!("mr.{fam}[{i}].q")))?,
                    s: Template::parse(&t.s, &at(&format!("mr.{fam}[{i}].s")))?,
                });
            }
            mr.insert(fam.to_string(), v);
        }
        let mut mr_answer = BTreeMap::new();
        for (fam, s) in &raw.mr.answer {
            if !MR_FAMILIES.contains(&fam.as_str()) {
                bail_input!("{file}: mr.answer.{fam}: unknown family (known: {})", MR_FAMILIES.join(", "));
            }
            mr_answer.insert(fam.clone(), Template::parse(s, &at(&format!("mr.answer.{fam}")))?);
        }
        let mut stories = Vec::new();
        for (i, s) in raw.sm.story.iter().enumerate() {
            let p = |k: &str| at(&format!("sm.story[{i}].{k}"));
            stories.push(Story {
                lead: parse_all(&s.lead, &p("lead"))?,
                facts: s
                    .facts
                    .iter()
                    .enumerate()
                    .map(|(j, f)| parse_all(f, &p(&format!("facts[{j}]"))))
                    .collect::<Result<_>>()?,
                extra: parse_all(&s.extra, &p("extra"))?,
                summary: Template::parse(&s.summary, &p("summary"))?,
            });
        }
        let list_item = Template::parse(&format.list_item, &at("format.list_item"))?;
        let suite = LangSuite {
            lang,
            lists: raw.lists,
            mr_answer,
            mr,
            sm_prompt: parse_all(&raw.sm.prompt, &at("sm.prompt"))?,
            stories,
            if_repeat: parse_all(&raw.if_.repeat, &at("if.repeat"))?,
            if_list: parse_all(&raw.if_.list, &at("if.list"))?,
            if_upper: parse_all(&raw.if_.upper, &at("if.upper"))?,
            if_start: parse_all(&raw.if_.start, &at("if.start"))?,
            if_end: parse_all(&raw.if_.end, &at("if.end"))?,
            if_quote: parse_all(&raw.if_.quote, &at("if.quote"))?,
            lm_facts: parse_all(&raw.lm.facts, &at("lm.facts"))?,
            list_item,
            format,
        };
        suite.check(file)?;
        Ok(suite)
    }

    /// Check that every template can render with every item of the lists it names.
    fn check(&self, file: &str) -> Result<()> {
        for fam in MR_FAMILIES {
            if self.mr[fam].is_empty() {
                bail_input!("{file}: mr.{fam} has no templates");
            }
            if !self.mr_answer.contains_key(fam) {
                bail_input!("{file}: mr.answer.{fam} is missing");
            }
        }
        for (what, v) in [
            ("sm.prompt", &self.sm_prompt),
            ("if.repeat", &self.if_repeat),
            ("if.list", &self.if_list),
            ("if.start", &self.if_start),
            ("if.end", &self.if_end),
            ("if.quote", &self.if_quote),
            ("lm.facts", &self.lm_facts),
        ] {
            if v.is_empty() {
                bail_input!("{file}: {what} has no templates");
            }
        }
        if self.stories.is_empty() {
            bail_input!("{file}: sm.story is empty");
        }
        if self.lang.cased == self.if_upper.is_empty() {
            if self.lang.cased {
                bail_input!("{file}: if.upper is required for a language written with case");
            } else {
                bail_input!("{file}: if.upper must be empty: {} has no letter case", self.lang.name);
            }
        }
        for (name, min) in [
            ("name", 8),
            ("word", 8),
            ("start", 2),
            ("end", 2),
            ("obj", 8),
            ("box", 2),
            ("day", 7),
            ("event", 4),
            ("cat", 3),
            ("place", 4),
            ("org", 4),
            ("team", 4),
        ] {
            let n = self.lists.get(name).map_or(0, Vec::len);
            if n < min {
                bail_input!("{file}: lists.{name} needs at least {min} entries (has {n})");
            }
        }
        for (big, small, _) in UNIT_PAIRS {
            for id in [big, small] {
                if !self.lists["unit"].iter().any(|u| u.id.as_deref() == Some(id)) {
                    bail_input!("{file}: lists.unit has no entry with id = \"{id}\"");
                }
            }
        }
        for c in &self.lists["cat"] {
            let items = c.list("items").map_or(0, |v| v.len());
            if items < 6 {
                bail_input!("{file}: lists.cat '{}' needs at least 6 items", c.key());
            }
        }
        for fam in MR_FAMILIES {
            for (i, t) in self.mr[fam].iter().enumerate() {
                self.check_template(&t.q, fam, &[], &format!("{file}: mr.{fam}[{i}].q"))?;
                self.check_template(&t.s, fam, &[], &format!("{file}: mr.{fam}[{i}].s"))?;
            }
            self.check_template(&self.mr_answer[fam], fam, &[], &format!("{file}: mr.answer.{fam}"))?;
        }
        for (i, t) in self.sm_prompt.iter().enumerate() {
            self.check_template(t, "sm", &["text"], &format!("{file}: sm.prompt[{i}]"))?;
        }
        for (i, s) in self.stories.iter().enumerate() {
            let all = s.lead.iter().chain(s.facts.iter().flatten()).chain(&s.extra).chain([&s.summary]);
            for t in all {
                self.check_template(t, "sm", &[], &format!("{file}: sm.story[{i}]"))?;
            }
        }
        for (what, v) in [
            ("repeat", &self.if_repeat),
            ("list", &self.if_list),
            ("upper", &self.if_upper),
            ("start", &self.if_start),
            ("end", &self.if_end),
            ("quote", &self.if_quote),
        ] {
            for (i, t) in v.iter().enumerate() {
                self.check_template(t, "if", &[], &format!("{file}: if.{what}[{i}]"))?;
            }
        }
        for (i, t) in self.lm_facts.iter().enumerate() {
            self.check_template(t, "lm", &[], &format!("{file}: lm.facts[{i}]"))?;
        }
        self.check_template(&self.list_item, "", &["i", "item"], &format!("{file}: format.list_item"))?;
        Ok(())
    }

    fn check_template(&self, t: &Template, place: &str, strs: &[&str], at: &str) -> Result<()> {
        let nums = numbers_for(place);
        for s in t.slots() {
            let plain = s.attr.is_none() && s.count.is_none();
            if plain && (nums.contains(&s.name.as_str()) || strs.contains(&s.name.as_str())) {
                continue;
            }
            let list = list_of(s.list());
            let Some(items) = self.lists.get(list) else {
                bail_input!(
                    "{at}: {{{}}} names no list and no number (numbers here: {}; lists: {})",
                    s.name,
                    nums.join(" "),
                    self.lists.keys().cloned().collect::<Vec<_>>().join(" ")
                );
            };
            if let Some(c) = &s.count {
                if !nums.contains(&c.as_str()) {
                    bail_input!(
                        "{at}: {{{}@{c}}} counts by '{c}', which is not a number here ({})",
                        s.name,
                        nums.join(" ")
                    );
                }
                for it in items {
                    if it.counted("other", s.form.as_deref()).is_none() {
                        bail_input!(
                            "{at}: lists.{list} entry '{}' has no 'other' form for {{{}@{c}}}",
                            it.key(),
                            s.name
                        );
                    }
                }
            } else {
                let attr = s.attr.as_deref().unwrap_or("base");
                for it in items {
                    if it.str(attr).is_none() {
                        bail_input!("{at}: lists.{list} entry '{}' has no attribute '{attr}'", it.key());
                    }
                }
            }
        }
        Ok(())
    }

    /// Draw candidates until one falls in `split`; return it with its split key. LM documents
    /// render some of their items in a second language too (`suite` holds the others).
    fn generate_keyed(
        &self,
        suite: &Suite,
        task: &Task,
        split: Split,
        seed: u64,
        opts: &GenOptions,
    ) -> Result<(Example, u64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..10_000 {
            let (ex, key) = match task {
                Task::Mr => self.gen_mr(&mut rng, opts)?,
                Task::Sm => self.gen_sm(&mut rng)?,
                Task::If => self.gen_if(&mut rng)?,
                Task::Lm => self.gen_lm(suite, split, &mut rng, opts)?,
                Task::User(name) => {
                    bail_input!("task '{name}' is not part of the built-in suite (tasks: mr, sm, if, lm)")
                }
            };
            if split_of(key) == split {
                return Ok((ex, key));
            }
        }
        anyhow::bail!("could not draw a {split:?} example of {task} in {}", self.lang.code)
    }

    /// Fill the list slots of `templates` with distinct random items (per list).
    fn fill<'a>(&'a self, rng: &mut ChaCha8Rng, ctx: &mut Ctx<'a>, templates: &[&Template]) {
        for t in templates {
            for s in t.slots() {
                if ctx.num(&s.name).is_some() || ctx.strs.iter().any(|(n, _)| *n == s.name) {
                    continue;
                }
                if ctx.item(&s.name).is_some() {
                    continue;
                }
                let list = list_of(s.list());
                let Some(items) = self.lists.get(list) else {
                    continue;
                };
                let taken: Vec<&Item> = ctx
                    .items
                    .iter()
                    .filter(|(n, _)| list_of(n.trim_end_matches(|c: char| c.is_ascii_digit())) == list)
                    .map(|(_, i)| *i)
                    .collect();
                let free: Vec<&Item> = items.iter().filter(|i| !taken.iter().any(|t| std::ptr::eq(*t, *i))).collect();
                let pick = free.choose(rng).copied().unwrap_or(&items[0]);
                ctx.items.push((s.name.clone(), pick));
            }
        }
    }

    /// Draw the numbers (and, for unit conversions, the units) of an MR problem into `ctx`;
    /// returns the result.
    fn mr_numbers<'a>(&'a self, fam: &str, level: u8, rng: &mut ChaCha8Rng, ctx: &mut Ctx<'a>) -> i64 {
        let (lo, hi) = match level {
            1 => (1, 9),
            2 => (10, 99),
            _ => (100, 999),
        };
        let (a, b) = (rng.random_range(lo..=hi), rng.random_range(lo..=hi));
        let r = match fam {
            "add" => {
                ctx.nums = vec![("a", a), ("b", b), ("r", a + b)];
                a + b
            }
            "sub" => {
                let a = rng.random_range((lo + 1)..=hi);
                let b = rng.random_range(lo.min(a - 1)..a);
                ctx.nums = vec![("a", a), ("b", b), ("r", a - b)];
                a - b
            }
            "mul" => {
                let (alo, ahi) = if level >= 3 { (10, 99) } else { (2, 9) };
                let (blo, bhi) = if level == 1 { (2, 9) } else { (10, 99) };
                let (a, b) = (rng.random_range(alo..=ahi), rng.random_range(blo..=bhi));
                ctx.nums = vec![("a", a), ("b", b), ("r", a * b)];
                a * b
            }
            "multi" => {
                let c = rng.random_range(1..(a + b));
                ctx.nums = vec![("a", a), ("b", b), ("c", c), ("r", a + b - c)];
                a + b - c
            }
            _ => {
                let (big, small, f) = *UNIT_PAIRS.choose(rng).unwrap();
                ctx.nums = vec![("a", a), ("f", f), ("r", a * f)];
                let units = &self.lists["unit"];
                let find = |id: &str| units.iter().find(|u| u.id.as_deref() == Some(id)).unwrap();
                ctx.items.push(("big".into(), find(big)));
                ctx.items.push(("small".into(), find(small)));
                a * f
            }
        };
        r
    }

    /// An MR problem: family and level, numbers, items and template drawn into a context.
    fn mr_problem<'a>(&'a self, rng: &mut ChaCha8Rng, opts: &GenOptions) -> MrProblem<'a> {
        let fam = *MR_FAMILIES.choose(rng).unwrap();
        let level = *opts.mr_levels.choose(rng).unwrap_or(&1);
        let mut ctx = Ctx::new(&self.format);
        let answer = self.mr_numbers(fam, level, rng, &mut ctx);
        let template = self.mr[fam].choose(rng).unwrap();
        self.fill(rng, &mut ctx, &[&template.q, &template.s, &self.mr_answer[fam]]);
        MrProblem { ctx, fam, level, template, answer }
    }

    fn gen_mr(&self, rng: &mut ChaCha8Rng, opts: &GenOptions) -> Result<(Example, u64)> {
        let p = self.mr_problem(rng, opts);
        let key = self.key(&["mr", p.fam], &p.ctx);
        let ex = Example {
            task: Task::Mr,
            lang: self.lang.code.clone(),
            prompt: p.template.q.render(&p.ctx)?,
            response: self.mr_answer[p.fam].render(&p.ctx)?,
            meta: Meta { family: Some(p.fam.into()), level: Some(p.level), answer: Some(p.answer), ..Meta::default() },
        };
        Ok((ex, key))
    }

    /// A story's text (lead, facts, one or two extras) and its summary.
    fn story(&self, rng: &mut ChaCha8Rng) -> Result<(String, String, u64)> {
        let si = rng.random_range(0..self.stories.len());
        let st = &self.stories[si];
        let w = rng.random_range(1..=7i64);
        let mut ctx = Ctx::new(&self.format);
        ctx.nums = vec![
            ("n", rng.random_range(12..=950)),
            ("m", rng.random_range(2..=9)),
            ("w", w),
            ("l", rng.random_range(0..w)),
        ];
        let lead = st.lead.choose(rng).unwrap();
        let facts: Vec<&Template> = st.facts.iter().map(|alts| alts.choose(rng).unwrap()).collect();
        let n_extra = rng.random_range(1..=2usize).min(st.extra.len());
        let extras: Vec<&Template> = st.extra.choose_multiple(rng, n_extra).collect();
        let mut all: Vec<&Template> = vec![lead];
        all.extend(&facts);
        all.extend(&extras);
        all.push(&st.summary);
        self.fill(rng, &mut ctx, &all);
        // Extras go anywhere after the lead.
        let mut body: Vec<&Template> = facts.clone();
        for e in extras {
            let at = rng.random_range(0..=body.len());
            body.insert(at, e);
        }
        let mut sents = vec![lead.render(&ctx)?];
        for t in body {
            sents.push(t.render(&ctx)?);
        }
        let text = sents.join(&self.format.sent_sep);
        let summary = st.summary.render(&ctx)?;
        let key = self.key(&["sm", &si.to_string()], &ctx);
        Ok((text, summary, key))
    }

    fn gen_sm(&self, rng: &mut ChaCha8Rng) -> Result<(Example, u64)> {
        let (text, summary, key) = self.story(rng)?;
        let p = self.sm_prompt.choose(rng).unwrap();
        let mut ctx = Ctx::new(&self.format);
        ctx.strs.push(("text", text));
        let ex = Example {
            task: Task::Sm,
            lang: self.lang.code.clone(),
            prompt: p.render(&ctx)?,
            response: summary,
            meta: Meta::default(),
        };
        Ok((ex, key))
    }

    fn gen_if(&self, rng: &mut ChaCha8Rng) -> Result<(Example, u64)> {
        let mut kinds = vec!["repeat", "list"];
        if !self.if_upper.is_empty() {
            kinds.push("upper");
        }
        let kind = *kinds.choose(rng).unwrap();
        let k = rng.random_range(2..=5i64);
        let mut ctx = Ctx::new(&self.format);
        ctx.nums = vec![("k", k)];
        let (main, mut content, multiline, mut constraints) = match kind {
            "repeat" => {
                let t = self.if_repeat.choose(rng).unwrap();
                self.fill(rng, &mut ctx, &[t]);
                let word = ctx.item("word").unwrap().str("base").unwrap().to_string();
                let content = vec![word.as_str(); k as usize].join(&self.format.repeat_sep);
                (t, content, false, vec![Constraint::Repeat { word, times: k as u32 }])
            }
            "list" => {
                let t = self.if_list.choose(rng).unwrap();
                self.fill(rng, &mut ctx, &[t]);
                let vocab = ctx.item("cat").unwrap().list("items").unwrap_or_default().to_vec();
                let picked: Vec<&String> = vocab.choose_multiple(rng, k as usize).collect();
                let mut lines = Vec::new();
                for (i, item) in picked.iter().enumerate() {
                    let mut lc = Ctx::new(&self.format);
                    lc.nums = vec![("i", i as i64 + 1)];
                    lc.strs.push(("item", item.to_string()));
                    lines.push(self.list_item.render(&lc)?);
                }
                (t, lines.join("\n"), true, vec![Constraint::List { n: k as u32, vocab }])
            }
            _ => {
                let t = self.if_upper.choose(rng).unwrap();
                self.fill(rng, &mut ctx, &[t]);
                let word = ctx.item("word").unwrap().str("base").unwrap().to_string();
                (t, word.to_uppercase(), false, vec![Constraint::Upper { word }])
            }
        };
        let mut prompt = main.render(&ctx)?;
        let modifier = *["none", "none", "start", "end", "quote"].choose(rng).unwrap();
        let key_parts = ["if".to_string(), kind.to_string(), modifier.to_string()];
        match modifier {
            "start" | "end" => {
                let ts = if modifier == "start" { &self.if_start } else { &self.if_end };
                let t = ts.choose(rng).unwrap();
                self.fill(rng, &mut ctx, &[t]);
                let mut word = ctx.item(modifier).unwrap().str("base").unwrap().to_string();
                // An all-capitals answer keeps its start / end word in capitals too.
                if kind == "upper" {
                    word = word.to_uppercase();
                }
                let sep = if multiline { "\n" } else { self.format.word_sep.as_str() };
                prompt = format!("{prompt}{}{}", self.format.sent_sep, t.render(&ctx)?);
                if modifier == "start" {
                    content = format!("{word}{sep}{content}");
                    constraints.push(Constraint::Start { word });
                } else {
                    content = format!("{content}{sep}{word}");
                    constraints.push(Constraint::End { word });
                }
            }
            "quote" => {
                let t = self.if_quote.choose(rng).unwrap();
                prompt = format!("{prompt}{}{}", self.format.sent_sep, t.render(&ctx)?);
                let [open, close] = self.format.quote.clone();
                content = format!("{open}{content}{close}");
                constraints.push(Constraint::Quote { open, close });
            }
            _ => {}
        }
        // The key holds what the example shows: the uppercase instruction has no count.
        if kind == "upper" {
            ctx.nums.clear();
        }
        let parts: Vec<&str> = key_parts.iter().map(String::as_str).collect();
        let key = self.key(&parts, &ctx);
        let ex = Example {
            task: Task::If,
            lang: self.lang.code.clone(),
            prompt,
            response: content,
            meta: Meta { constraints, ..Meta::default() },
        };
        Ok((ex, key))
    }

    /// A pretraining document: two to four passages that state what the tasks ask about. An
    /// MR problem told as a fact or asked as a question, with its worked equation; a news item
    /// (half the time inside the task's request) followed by the sentence that sums it up; an
    /// instruction followed by what it asks for; or an everyday
    /// sentence. Half of the task passages are followed by the same item (same numbers, same
    /// story, same instruction kind) in another of the suite's languages, so that languages
    /// share what the model learns of each item. A passage's content is of `split` in every
    /// language it is written in: no held-out problem is ever pretraining text.
    fn gen_lm(&self, suite: &Suite, split: Split, rng: &mut ChaCha8Rng, opts: &GenOptions) -> Result<(Example, u64)> {
        let passages = self.lm_passages(suite, split, rng, opts)?;
        let text = passages.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n");
        let mut h = Fnv::default();
        text.hash(&mut h);
        let ex = Example {
            task: Task::Lm,
            lang: self.lang.code.clone(),
            prompt: String::new(),
            response: text,
            meta: Meta::default(),
        };
        Ok((ex, key_in(split, h.finish())))
    }

    /// The passages of an LM document ([`LangSuite::gen_lm`]).
    fn lm_passages<'s>(
        &'s self,
        suite: &'s Suite,
        split: Split,
        rng: &mut ChaCha8Rng,
        opts: &GenOptions,
    ) -> Result<Vec<Passage<'s>>> {
        let others: Vec<&LangSuite> = suite.langs().filter(|l| l.lang.code != self.lang.code).collect();
        let n = rng.random_range(2..=4);
        let mut passages = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let kind = match rng.random_range(0..20) {
                0..=6 => LmPassage::Mr,
                7..=11 => LmPassage::Sm,
                12..=16 => LmPassage::If,
                _ => LmPassage::Fact,
            };
            // Draw until the item falls in the document's split (one in eight is held out).
            let mut drawn = None;
            for _ in 0..200 {
                let seed: u64 = rng.random();
                let (text, key) = self.lm_passage(kind, seed, opts)?;
                if split_of(key) == split {
                    drawn = Some((text, key, seed));
                    break;
                }
            }
            let Some((text, key, seed)) = drawn else { continue };
            passages.push(Passage { lang: &self.lang.code, kind, text, key });
            if kind != LmPassage::Fact && !others.is_empty() && rng.random_bool(0.5) {
                let other = others[rng.random_range(0..others.len())];
                let (text, key) = other.lm_passage(kind, seed, opts)?;
                if split_of(key) == split {
                    passages.push(Passage { lang: &other.lang.code, kind, text, key });
                }
            }
        }
        Ok(passages)
    }

    /// One passage of an LM document, drawn from `seed`, and its split key. The same seed
    /// draws the same numbers (and story, family, instruction kind) in every language.
    fn lm_passage(&self, kind: LmPassage, seed: u64, opts: &GenOptions) -> Result<(String, u64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sep = &self.format.sent_sep;
        Ok(match kind {
            LmPassage::Mr => {
                let p = self.mr_problem(&mut rng, opts);
                // As a told fact or as the question the task asks, each followed by its worked
                // answer in the same language.
                let told = if rng.random_bool(0.5) { &p.template.s } else { &p.template.q };
                let text = format!("{}{sep}{}", told.render(&p.ctx)?, self.mr_answer[p.fam].render(&p.ctx)?);
                (text, self.key(&["mr", p.fam], &p.ctx))
            }
            LmPassage::Sm => {
                let (text, summary, key) = self.story(&mut rng)?;
                // The item and the sentence that sums it up, half the time after the request
                // the task makes.
                if rng.random_bool(0.5) {
                    let mut ctx = Ctx::new(&self.format);
                    ctx.strs.push(("text", text));
                    let asked = self.sm_prompt.choose(&mut rng).unwrap().render(&ctx)?;
                    (format!("{asked}{sep}{summary}"), key)
                } else {
                    (format!("{text}{sep}{summary}"), key)
                }
            }
            LmPassage::If => {
                let (ex, key) = self.gen_if(&mut rng)?;
                (format!("{}{sep}{}", ex.prompt, ex.response), key)
            }
            LmPassage::Fact => {
                let t = self.lm_facts.choose(&mut rng).unwrap();
                let mut ctx = Ctx::new(&self.format);
                let (a, b) = (rng.random_range(1..=9i64), rng.random_range(1..=9i64));
                ctx.nums = vec![("a", a), ("b", b), ("r", a + b)];
                self.fill(&mut rng, &mut ctx, &[t]);
                let text = t.render(&ctx)?;
                let mut h = Fnv::default();
                text.hash(&mut h);
                (text, h.finish())
            }
        })
    }

    /// The split key: the parts, the numbers and every item except person names.
    fn key(&self, parts: &[&str], ctx: &Ctx) -> u64 {
        let mut h = Fnv::default();
        parts.hash(&mut h);
        let mut nums = ctx.nums.clone();
        nums.sort();
        nums.hash(&mut h);
        let mut items: Vec<(&str, &str)> = ctx
            .items
            .iter()
            .filter(|(n, _)| list_of(n.trim_end_matches(|c: char| c.is_ascii_digit())) != "name")
            .map(|(n, i)| (n.as_str(), i.key()))
            .collect();
        items.sort();
        items.hash(&mut h);
        h.finish()
    }
}

/// Check language files (all when `only` is empty): templates against lists, then the script
/// of the generated text. Every problem is listed, naming file and place.
pub fn check(only: &[String]) -> Result<()> {
    let s = Suite::new();
    let mut bad = Vec::new();
    for l in lang::all() {
        if !only.is_empty() && !only.contains(&l.code) {
            continue;
        }
        if let Err(e) = s.lang(&l.code) {
            bad.push(format!("{e:#}"));
        }
    }
    bad.extend(script_problems(&s, only));
    if !bad.is_empty() {
        bail_input!("{}", bad.join("\n"));
    }
    Ok(())
}

/// (task, language) pairs whose generated text is not written in the language's script: at
/// least 99.5 % of letters for Latin-script languages, 97 % for the others (a Latin unit symbol
/// or brand name may appear).
pub fn script_problems(s: &Suite, only: &[String]) -> Vec<String> {
    let o = GenOptions::default();
    let mut bad = Vec::new();
    for l in s.langs().filter(|l| only.is_empty() || only.contains(&l.lang.code)) {
        let scripts = super::script::of_lang_script(&l.lang.script);
        for t in Task::BUILTIN {
            let mut text = String::new();
            if t == Task::Lm {
                // An LM document renders some passages in a second language too: check the
                // language's own passages.
                for (i, kind) in
                    (0..40).zip([LmPassage::Mr, LmPassage::Sm, LmPassage::If, LmPassage::Fact].iter().cycle())
                {
                    match l.lm_passage(*kind, i, &o) {
                        Ok((p, _)) => text.push_str(&p),
                        Err(e) => bad.push(format!("{} {t}: {e:#}", l.lang.code)),
                    }
                }
            }
            for i in 0..if t == Task::Lm { 0 } else { 40 } {
                match s.train(&t, &l.lang.code, 5, i, &o) {
                    Ok(ex) => {
                        text.push_str(&ex.prompt);
                        text.push_str(&ex.response);
                    }
                    Err(e) => bad.push(format!("{} {t}: {e:#}", l.lang.code)),
                }
            }
            let share = super::script::share(&text, scripts);
            let min = if l.lang.is_latin() { 0.995 } else { 0.97 };
            if share < min {
                bad.push(format!("{} {t}: {:.1}% of letters in {} script", l.lang.code, share * 100.0, l.lang.script));
            }
        }
    }
    bad
}

/// The suite as a sampler source, with fixed generation options.
pub struct SuiteSource {
    pub opts: GenOptions,
}

impl super::sampler::Source for SuiteSource {
    fn train(&self, task: &Task, lang: &str, seed: u64, index: u64) -> Result<Example> {
        suite().train(task, lang, seed, index, &self.opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every language's generated text is written in its own script.
    #[test]
    fn every_language_is_written_in_its_script() {
        let bad = script_problems(suite(), &[]);
        assert!(Suite::load().is_ok());
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    /// Pretraining documents state the tasks' items in pairs of languages (the same numbers),
    /// and never a held-out item: every passage of a train document is of the train split,
    /// every passage of a held-out one of the held-out split.
    #[test]
    fn lm_documents_pair_languages_and_keep_heldout_items_out() {
        let s = suite();
        let o = GenOptions::default();
        let en = s.lang("en").unwrap();
        let (mut docs, mut paired, mut mr_pairs) = (0, 0, 0);
        for split in [Split::Train, Split::Heldout] {
            for seed in 0..150u64 {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let ps = en.lm_passages(s, split, &mut rng, &o).unwrap();
                assert!(!ps.is_empty());
                docs += 1;
                assert!(ps.iter().all(|p| split_of(p.key) == split), "a passage outside {split:?}");
                paired += ps.iter().any(|p| p.lang != "en") as usize;
                for w in ps.windows(2) {
                    let (a, b) = (&w[0], &w[1]);
                    if b.lang == "en" || a.kind != LmPassage::Mr || b.kind != LmPassage::Mr {
                        continue;
                    }
                    // The same problem: the same final number, in whatever digits each writes.
                    let answer = |p: &Passage| crate::eval::numbers::final_number(&p.text, p.lang);
                    assert!(answer(a).is_some(), "{}", a.text);
                    assert_eq!(answer(a), answer(b), "{}\n{}", a.text, b.text);
                    mr_pairs += 1;
                }
            }
        }
        assert!(paired * 3 > docs, "{paired} of {docs} documents pair two languages");
        assert!(mr_pairs > 20, "{mr_pairs} MR passages in pairs");
        // A train document is the same on every call (random access by seed).
        let a = s.train(&Task::Lm, "pt", 3, 17, &o).unwrap();
        assert_eq!(a, s.train(&Task::Lm, "pt", 3, 17, &o).unwrap());
    }

    /// No held-out example is ever drawn for training, in any language.
    #[test]
    fn heldout_examples_never_appear_in_training() {
        let s = suite();
        let o = GenOptions::default();
        for l in lang::all() {
            for t in [Task::Mr, Task::Sm, Task::If] {
                let held: HashSet<(String, String)> =
                    s.heldout(&t, &l.code, 200, &o).unwrap().into_iter().map(|e| (e.prompt, e.response)).collect();
                assert!(held.len() >= 150, "{} {t}: only {} distinct held-out examples", l.code, held.len());
                for i in 0..3000 {
                    let e = s.train(&t, &l.code, 11, i, &o).unwrap();
                    assert!(
                        !held.contains(&(e.prompt.clone(), e.response.clone())),
                        "{} {t}: {:?} leaked",
                        l.code,
                        e.prompt
                    );
                }
            }
        }
    }

    /// Each (task, language) can give at least 20 000 distinct training examples.
    #[test]
    fn twenty_thousand_distinct_training_examples() {
        let s = suite();
        let o = GenOptions::default();
        for l in lang::all() {
            for t in [Task::Mr, Task::Sm, Task::If] {
                let mut seen = HashSet::new();
                let mut i = 0;
                while seen.len() < 20_000 && i < 60_000 {
                    let e = s.train(&t, &l.code, 3, i, &o).unwrap();
                    seen.insert((e.prompt, e.response));
                    i += 1;
                }
                assert!(seen.len() >= 20_000, "{} {t}: {} distinct in {i} draws", l.code, seen.len());
            }
        }
    }

    #[test]
    fn english_examples_are_well_formed() {
        let s = suite();
        let o = GenOptions::default();
        for i in 0..50 {
            let ex = s.train(&Task::Mr, "en", 1, i, &o).unwrap();
            let ans = s.lang("en").unwrap().format.number(ex.meta.answer.unwrap());
            assert!(ex.response.ends_with(&format!("The answer is {ans}.")), "{ex:?}");
            assert!(!ex.prompt.contains('{'), "{}", ex.prompt);
        }
        let ex = s.train(&Task::Sm, "en", 1, 0, &o).unwrap();
        assert!(ex.prompt.len() > ex.response.len());
        let ex = s.train(&Task::If, "en", 1, 3, &o).unwrap();
        assert!(!ex.meta.constraints.is_empty());
    }

    #[test]
    fn random_access_is_deterministic() {
        let s = suite();
        let o = GenOptions::default();
        for t in Task::BUILTIN {
            let a = s.train(&t, "en", 7, 42, &o).unwrap();
            let b = s.train(&t, "en", 7, 42, &o).unwrap();
            assert_eq!(a, b);
            let c = s.train(&t, "en", 8, 42, &o).unwrap();
            assert_ne!(a, c, "{t}");
        }
    }
}

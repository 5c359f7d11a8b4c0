//! Mixtures: which (task, language) pairs a run trains on, and in what proportion or amount.
//!
//! The SPEC syntax:
//!
//! ```text
//! en=0.6,es=0.1,fr=0.1,ja=0.1,zh=0.1     weights, normalised
//! multilingual=0.4                        English 0.6, the rest uniform over the seen languages
//! multilingual=0.4,budget=4000            the same as a fixed budget of examples (per task)
//! en=1000,n=400                           additive: 1000 English examples, 400 per seen language
//! en=1000,n=400,ko=400                    additive, with Korean added to the seen languages
//! en=0.5,es=0.5,tasks=mr                  one task
//! multilingual=0.4,tasks=mr:2+sm+if       tasks weighted 2:1:1
//! ```
//! Counts (from `budget` or `n`) are examples per task and language: the run trains on a fixed
//! pool, epoch after epoch, as in the paper's additive design. Weights alone give an endless
//! stream of fresh generated examples.

use std::fmt;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::example::Task;
use super::lang;
use crate::bail_input;

/// One (task, language) component of a mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub task: Task,
    pub lang: String,
    /// Sampling weight; the weights of a mixture sum to 1.
    pub weight: f64,
    /// A fixed number of examples (a finite pool), or `None` for an endless stream.
    pub count: Option<u64>,
}

/// A resolved mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixture {
    /// Per-language weight (sums to 1), in suite order.
    pub langs: Vec<(String, f64)>,
    /// Per-language example count, when the mixture is a fixed pool.
    pub counts: Option<Vec<(String, u64)>>,
    /// Per-task weight (sums to 1).
    pub tasks: Vec<(Task, f64)>,
    /// The SPEC this mixture came from, normalised.
    pub spec: String,
}

/// What a SPEC is resolved against.
#[derive(Debug, Clone)]
pub struct SpecContext {
    /// The run's seen languages (for `multilingual=` and `n=`).
    pub seen: Vec<String>,
    /// The run's tasks when the SPEC names none.
    pub tasks: Vec<(Task, f64)>,
    /// Task names user data adds to the built-in ones.
    pub user_tasks: Vec<String>,
}

impl Default for SpecContext {
    fn default() -> Self {
        SpecContext {
            seen: lang::all().iter().filter(|l| l.group == lang::Group::Seen).map(|l| l.code.clone()).collect(),
            tasks: vec![(Task::Mr, 1.0 / 3.0), (Task::Sm, 1.0 / 3.0), (Task::If, 1.0 / 3.0)],
            user_tasks: Vec::new(),
        }
    }
}

fn err_at(spec: &str, col: usize, msg: impl fmt::Display) -> anyhow::Error {
    crate::error::bad_input(format!("mixture '{spec}', column {col}: {msg}"))
}

fn parse_number(spec: &str, col: usize, key: &str, v: &str) -> Result<f64> {
    let x: f64 = v.trim().parse().map_err(|_| err_at(spec, col, format!("{key}: '{v}' is not a number")))?;
    if !x.is_finite() {
        return Err(err_at(spec, col, format!("{key}: {v} is not a finite number")));
    }
    if x < 0.0 {
        return Err(err_at(spec, col, format!("{key}: weight {v} is negative")));
    }
    Ok(x)
}

/// The most examples a count may name: 2^53, the last integer an f64 holds exactly (`as u64`
/// would clamp a larger one, and sums of counts could overflow).
const MAX_COUNT: f64 = 9_007_199_254_740_992.0;

fn parse_count(spec: &str, col: usize, key: &str, v: &str) -> Result<u64> {
    let x = parse_number(spec, col, key, v)?;
    if x.fract() != 0.0 {
        return Err(err_at(spec, col, format!("{key}: {v} is not a whole number of examples")));
    }
    if x > MAX_COUNT {
        return Err(err_at(spec, col, format!("{key}: {v} is too many examples (at most 2^53)")));
    }
    Ok(x as u64)
}

fn parse_tasks(spec: &str, col: usize, v: &str, ctx: &SpecContext) -> Result<Vec<(Task, f64)>> {
    let mut out: Vec<(Task, f64)> = Vec::new();
    for part in v.split('+') {
        let (name, w) = match part.split_once(':') {
            Some((n, w)) => (n.trim(), parse_number(spec, col, &format!("tasks {n}"), w)?),
            None => (part.trim(), 1.0),
        };
        let task = Task::parse(name);
        if let Task::User(u) = &task {
            if !ctx.user_tasks.contains(u) {
                return Err(err_at(
                    spec,
                    col,
                    format!(
                        "unknown task '{name}' (known: mr, sm, if, lm{})",
                        ctx.user_tasks.iter().map(|t| format!(", {t}")).collect::<String>()
                    ),
                ));
            }
        }
        if out.iter().any(|(t, _)| *t == task) {
            return Err(err_at(spec, col, format!("task '{name}' is listed twice")));
        }
        out.push((task, w));
    }
    normalise(&mut out).map_err(|m| err_at(spec, col, format!("tasks: {m}")))?;
    Ok(out)
}

fn normalise<K>(v: &mut [(K, f64)]) -> std::result::Result<(), String> {
    let sum: f64 = v.iter().map(|(_, w)| *w).sum();
    if v.is_empty() || sum <= 0.0 {
        return Err("all weights are zero".into());
    }
    if !sum.is_finite() {
        return Err("the weights add up to more than a number can hold".into());
    }
    for (_, w) in v.iter_mut() {
        *w /= sum;
    }
    Ok(())
}

impl Mixture {
    /// Parse and resolve a SPEC.
    pub fn parse(spec: &str, ctx: &SpecContext) -> Result<Mixture> {
        let mut langs: Vec<(String, f64, usize)> = Vec::new();
        let mut multilingual: Option<(f64, usize)> = None;
        let mut budget: Option<(u64, usize)> = None;
        let mut n_per: Option<(u64, usize)> = None;
        let mut tasks: Option<Vec<(Task, f64)>> = None;
        if spec.trim().is_empty() {
            bail_input!("mixture: the SPEC is empty (example: en=0.6,es=0.1,fr=0.1,ja=0.1,zh=0.1)");
        }
        let mut col = 1;
        for item in spec.split(',') {
            let here = col;
            col += item.chars().count() + 1;
            let Some((k, v)) = item.split_once('=') else {
                return Err(err_at(spec, here, format!("'{item}' is not KEY=VALUE")));
            };
            let k = k.trim();
            match k {
                "multilingual" => {
                    let p = parse_number(spec, here, k, v)?;
                    if p > 1.0 {
                        return Err(err_at(spec, here, format!("multilingual={p} is more than 1")));
                    }
                    multilingual = Some((p, here));
                }
                "budget" => {
                    let b = parse_count(spec, here, k, v)?;
                    if b == 0 {
                        return Err(err_at(spec, here, "budget=0: a budget is at least 1 example"));
                    }
                    budget = Some((b, here))
                }
                "n" => n_per = Some((parse_count(spec, here, k, v)?, here)),
                "tasks" => tasks = Some(parse_tasks(spec, here, v, ctx)?),
                code => {
                    if lang::get(code).is_none() {
                        return Err(err_at(
                            spec,
                            here,
                            format!("unknown language '{code}' (known: {})", lang::codes().join(" ")),
                        ));
                    }
                    if langs.iter().any(|(c, _, _)| c == code) {
                        return Err(err_at(spec, here, format!("language '{code}' is listed twice")));
                    }
                    langs.push((code.to_string(), parse_number(spec, here, code, v)?, here));
                }
            }
        }
        let tasks = tasks.unwrap_or_else(|| ctx.tasks.clone());
        let mut weights: Vec<(String, f64)>;
        let mut counts: Option<Vec<(String, u64)>> = None;
        if let Some((p, at)) = multilingual {
            if let Some((_, _, c)) = langs.first() {
                return Err(err_at(spec, *c, "multilingual= cannot be combined with per-language weights"));
            }
            if n_per.is_some() {
                return Err(err_at(spec, at, "multilingual= cannot be combined with n="));
            }
            if p > 0.0 && ctx.seen.is_empty() {
                return Err(err_at(spec, at, "multilingual= needs seen languages, and the run has none"));
            }
            weights = vec![("en".to_string(), 1.0 - p)];
            for s in &ctx.seen {
                weights.push((s.clone(), p / ctx.seen.len() as f64));
            }
        } else if let Some((n, at)) = n_per {
            // Additive: every value is a count; seen languages not given get n.
            let Some((_, e, _)) = langs.iter().find(|(c, _, _)| c == "en") else {
                return Err(err_at(spec, at, "n= (additive design) needs the English count, e.g. en=1000,n=400"));
            };
            if budget.is_some() {
                return Err(err_at(spec, at, "n= cannot be combined with budget="));
            }
            let mut c: Vec<(String, u64)> = Vec::new();
            for (code, v, vat) in &langs {
                if v.fract() != 0.0 {
                    return Err(err_at(
                        spec,
                        *vat,
                        format!("{code}: {v} is not a whole number of examples (with n=, values are counts)"),
                    ));
                }
                if *v > MAX_COUNT {
                    return Err(err_at(spec, *vat, format!("{code}: {v} is too many examples (at most 2^53)")));
                }
                c.push((code.clone(), *v as u64));
            }
            let _ = e;
            for s in &ctx.seen {
                if !c.iter().any(|(code, _)| code == s) {
                    c.push((s.clone(), n));
                }
            }
            let Some(total) = c.iter().try_fold(0u64, |t, (_, k)| t.checked_add(*k)) else {
                return Err(err_at(spec, at, "the counts add up to more than 2^64"));
            };
            if total == 0 {
                return Err(err_at(spec, at, "all counts are zero"));
            }
            weights = c.iter().map(|(code, k)| (code.clone(), *k as f64 / total as f64)).collect();
            counts = Some(c);
        } else {
            weights = langs.iter().map(|(c, w, _)| (c.clone(), *w)).collect();
            normalise(&mut weights).map_err(|m| err_at(spec, 1, m))?;
        }
        if let Some((b, _)) = budget {
            counts = Some(apportion(&weights, b));
        }
        weights.retain(|(_, w)| *w > 0.0);
        weights.sort_by_key(|(c, _)| lang::order(c));
        if let Some(c) = &mut counts {
            c.retain(|(_, k)| *k > 0);
            c.sort_by_key(|(code, _)| lang::order(code));
        }
        let mut m = Mixture { langs: weights, counts, tasks, spec: String::new() };
        m.spec = m.canonical_spec();
        Ok(m)
    }

    /// The languages with weight > 0, English included.
    pub fn languages(&self) -> Vec<&str> {
        self.langs.iter().map(|(c, _)| c.as_str()).collect()
    }

    /// The seen languages: weight > 0, English excluded.
    pub fn seen(&self) -> Vec<&str> {
        self.languages().into_iter().filter(|c| *c != "en").collect()
    }

    /// Every (task, language) component with its weight and count.
    pub fn components(&self) -> Vec<Component> {
        let mut out = Vec::new();
        for (t, tw) in &self.tasks {
            for (l, lw) in &self.langs {
                let count = self.counts.as_ref().map(|c| c.iter().find(|(code, _)| code == l).map_or(0, |(_, k)| *k));
                out.push(Component { task: t.clone(), lang: l.clone(), weight: tw * lw, count });
            }
        }
        out
    }

    /// A SPEC that parses back to this mixture (in any context).
    pub fn canonical_spec(&self) -> String {
        let mut parts: Vec<String> = match &self.counts {
            Some(c) => {
                // Counts are written as an additive SPEC with n=0 so they stay counts.
                let mut v: Vec<String> = c.iter().map(|(l, k)| format!("{l}={k}")).collect();
                if !c.iter().any(|(l, _)| l == "en") {
                    v.insert(0, "en=0".into());
                }
                v.push("n=0".into());
                v
            }
            None => self.langs.iter().map(|(l, w)| format!("{l}={}", fmt_weight(*w))).collect(),
        };
        let default_tasks = SpecContext::default().tasks;
        let same_default = self.tasks.len() == default_tasks.len()
            && self.tasks.iter().zip(&default_tasks).all(|(a, b)| a.0 == b.0 && (a.1 - b.1).abs() < 1e-9);
        if !same_default {
            let t: Vec<String> = self.tasks.iter().map(|(t, w)| format!("{t}:{}", fmt_weight(*w))).collect();
            parts.push(format!("tasks={}", t.join("+")));
        }
        parts.join(",")
    }

    /// A short human summary: `EN 60 · es fr ja zh 10 each`, or counts for a pool.
    pub fn summary(&self) -> String {
        let pct = |w: f64| (w * 100.0).round() as i64;
        let mut out = String::new();
        let en = self.langs.iter().find(|(c, _)| c == "en");
        match &self.counts {
            Some(c) => {
                let en = c.iter().find(|(l, _)| l == "en").map_or(0, |(_, k)| *k);
                out.push_str(&format!("EN {en}"));
                let others: Vec<&(String, u64)> = c.iter().filter(|(l, _)| l != "en").collect();
                if !others.is_empty() {
                    let same = others.iter().all(|(_, k)| *k == others[0].1);
                    let names: Vec<&str> = others.iter().map(|(l, _)| l.as_str()).collect();
                    if same {
                        out.push_str(&format!(" · {} +{} each", names.join(" "), others[0].1));
                    } else {
                        let v: Vec<String> = others.iter().map(|(l, k)| format!("{l} +{k}")).collect();
                        out.push_str(&format!(" · {}", v.join(" ")));
                    }
                }
            }
            None => {
                out.push_str(&format!("EN {}", en.map_or(0, |(_, w)| pct(*w))));
                let others: Vec<&(String, f64)> = self.langs.iter().filter(|(l, _)| l != "en").collect();
                if !others.is_empty() {
                    let same = others.iter().all(|(_, w)| pct(*w) == pct(others[0].1));
                    let names: Vec<&str> = others.iter().map(|(l, _)| l.as_str()).collect();
                    if same && others.len() > 1 {
                        out.push_str(&format!(" · {} {} each", names.join(" "), pct(others[0].1)));
                    } else {
                        let v: Vec<String> = others.iter().map(|(l, w)| format!("{l} {}", pct(*w))).collect();
                        out.push_str(&format!(" · {}", v.join(" ")));
                    }
                }
            }
        }
        if self.tasks.len() < 3 || self.tasks.iter().any(|(t, _)| !matches!(t, Task::Mr | Task::Sm | Task::If)) {
            let t: Vec<&str> = self.tasks.iter().map(|(t, _)| t.as_str()).collect();
            out.push_str(&format!(" [{}]", t.join("+")));
        }
        out
    }
}

fn fmt_weight(w: f64) -> String {
    let s = format!("{w:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Split a budget by weights into whole counts that add up to the budget (largest remainder).
fn apportion(weights: &[(String, f64)], budget: u64) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64, f64)> = weights
        .iter()
        .map(|(l, w)| {
            let exact = w * budget as f64;
            (l.clone(), exact.floor() as u64, exact - exact.floor())
        })
        .collect();
    let mut left = budget.saturating_sub(out.iter().map(|(_, k, _)| k).sum());
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|&a, &b| out[b].2.total_cmp(&out[a].2).then(a.cmp(&b)));
    for i in order {
        if left == 0 {
            break;
        }
        out[i].1 += 1;
        left -= 1;
    }
    out.into_iter().map(|(l, k, _)| (l, k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Mixture> {
        Mixture::parse(s, &SpecContext::default())
    }

    #[test]
    fn weights_are_normalised() {
        let m = parse("en=6,es=1,fr=1,ja=1,zh=1").unwrap();
        assert_eq!(m.languages(), ["en", "es", "fr", "ja", "zh"]);
        assert!((m.langs[0].1 - 0.6).abs() < 1e-12);
        assert_eq!(m.summary(), "EN 60 · es fr ja zh 10 each");
        assert!(m.counts.is_none());
        assert_eq!(m.components().len(), 15);
    }

    #[test]
    fn multilingual_shorthand_uses_the_seen_languages() {
        let m = parse("multilingual=0.4").unwrap();
        assert_eq!(m.languages(), ["en", "es", "fr", "ja", "zh"]);
        assert!((m.langs[1].1 - 0.1).abs() < 1e-12);
        let en_only = parse("multilingual=0").unwrap();
        assert_eq!(en_only.languages(), ["en"]);
        let ctx = SpecContext { seen: vec!["ko".into()], ..SpecContext::default() };
        let m = Mixture::parse("multilingual=0.3", &ctx).unwrap();
        assert_eq!(m.languages(), ["en", "ko"]);
    }

    #[test]
    fn additive_and_budget_designs_give_counts() {
        let m = parse("en=1000,n=400").unwrap();
        assert_eq!(
            m.counts.as_ref().unwrap(),
            &[("en".into(), 1000), ("es".into(), 400), ("fr".into(), 400), ("ja".into(), 400), ("zh".into(), 400)]
        );
        let m = parse("en=1000,n=400,ko=100").unwrap();
        assert_eq!(m.counts.as_ref().unwrap().len(), 6);
        let m = parse("multilingual=0.4,budget=1001").unwrap();
        let c = m.counts.as_ref().unwrap();
        assert_eq!(c.iter().map(|(_, k)| k).sum::<u64>(), 1001);
        assert_eq!(c[0], ("en".to_string(), 601));
        assert_eq!(m.summary(), "EN 601 · es fr ja zh +100 each");
    }

    #[test]
    fn canonical_spec_round_trips() {
        for s in [
            "en=0.6,es=0.4",
            "multilingual=0.4,tasks=mr:2+sm",
            "en=1000,n=400",
            "multilingual=0.2,budget=500",
            "es=1,n=0,en=0",
        ] {
            let m = parse(s).unwrap();
            let again = parse(&m.spec).unwrap();
            assert_eq!(m.langs.len(), again.langs.len(), "{s} -> {}", m.spec);
            for (a, b) in m.langs.iter().zip(&again.langs) {
                assert_eq!(a.0, b.0);
                assert!((a.1 - b.1).abs() < 1e-6, "{s}");
            }
            assert_eq!(m.counts, again.counts, "{s} -> {}", m.spec);
            assert_eq!(m.tasks.len(), again.tasks.len());
        }
    }

    #[test]
    fn tasks_can_be_chosen_and_weighted() {
        let m = parse("en=1,tasks=mr").unwrap();
        assert_eq!(m.tasks, vec![(Task::Mr, 1.0)]);
        let m = parse("en=1,tasks=mr:2+sm+if").unwrap();
        assert!((m.tasks[0].1 - 0.5).abs() < 1e-12);
        assert_eq!(m.summary(), "EN 100");
    }

    #[test]
    fn bad_specs_name_the_problem_and_column() {
        for (spec, want) in [
            ("en=0.6,xx=0.4", "column 8: unknown language 'xx'"),
            ("en=0,es=0", "all weights are zero"),
            ("en=-1,es=2", "column 1: en: weight -1 is negative"),
            ("en=NaN", "not a finite number"),
            ("en=inf", "not a finite number"),
            ("en=0.5,en=0.5", "column 8: language 'en' is listed twice"),
            ("en=abc", "'abc' is not a number"),
            ("en", "'en' is not KEY=VALUE"),
            ("", "empty"),
            ("multilingual=1.5", "more than 1"),
            ("multilingual=0.4,es=0.1", "cannot be combined"),
            ("en=1,tasks=poetry", "unknown task 'poetry'"),
            ("en=1,tasks=mr+mr", "listed twice"),
            ("n=400", "needs the English count"),
            ("en=10.5,n=4", "not a whole number"),
            ("en=1,budget=2.5", "not a whole number"),
            ("en=1,budget=0", "column 6: budget=0"),
        ] {
            let e = parse(spec).unwrap_err();
            assert!(crate::error::is_bad_input(&e), "{spec}");
            let s = e.to_string();
            assert!(s.contains(want), "{spec}: {s}");
        }
    }
}

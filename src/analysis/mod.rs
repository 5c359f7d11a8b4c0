//! What the paper reads off a run: per-language scores at a step, and the aggregates — English,
//! seen average, unseen average, their gap, ratio to English, Latin vs non-Latin — at the
//! latest step and at the best held-out-loss checkpoint; and run-to-run comparisons.

pub mod stats;
pub mod sweep;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::data::lang;
use crate::runs::events::{Body, Event};
use stats::Est;

/// One (task, language) result at one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub group: String,
    pub metric: String,
    pub value: f64,
    pub loss: f64,
    pub n: u64,
    pub lang_ok: Option<f64>,
    /// The metric of each generated example, when the event carried them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<Vec<f64>>,
    /// The 95 % interval of `value`, when the event carried one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<[f64; 2]>,
}

impl Cell {
    /// The (task, language) and cell of an eval event; `None` for other kinds.
    pub fn of_eval(body: &Body) -> Option<((String, String), Cell)> {
        let Body::Eval { task, lang, group, loss, metric, value, n, lang_ok, scores, ci } = body else {
            return None;
        };
        let cell = Cell {
            group: group.clone(),
            metric: metric.clone(),
            value: *value,
            loss: *loss,
            n: *n,
            lang_ok: *lang_ok,
            scores: scores.clone(),
            ci: *ci,
        };
        Some(((task.clone(), lang.clone()), cell))
    }
}

/// All eval results of a run: step → (task, lang) → cell.
#[derive(Debug, Clone, Default)]
pub struct EvalTable {
    pub steps: BTreeMap<u64, BTreeMap<(String, String), Cell>>,
    /// The best held-out-loss checkpoint (from checkpoint events), if any.
    pub best_step: Option<u64>,
}

impl EvalTable {
    pub fn from_events(events: &[Event]) -> EvalTable {
        let mut t = EvalTable::default();
        let mut best: Option<(f64, u64)> = None;
        for e in events {
            match &e.body {
                Body::Eval { .. } => {
                    if let Some((key, cell)) = Cell::of_eval(&e.body) {
                        t.steps.entry(e.step).or_default().insert(key, cell);
                    }
                }
                Body::Checkpoint { eval_loss: Some(l), .. } if best.is_none_or(|(b, _)| *l < b) => {
                    best = Some((*l, e.step));
                }
                _ => {}
            }
        }
        t.best_step = best.map(|(_, s)| s);
        t
    }

    pub fn latest_step(&self) -> Option<u64> {
        self.steps.keys().next_back().copied()
    }

    /// The tasks evaluated, in order mr, sm, if, lm, then others.
    pub fn tasks(&self) -> Vec<String> {
        let mut v: Vec<String> = self.steps.values().flat_map(|m| m.keys().map(|(t, _)| t.clone())).collect();
        v.sort_by_key(|t| (task_order(t), t.clone()));
        v.dedup();
        v
    }

    pub fn at(&self, step: u64) -> Option<&BTreeMap<(String, String), Cell>> {
        self.steps.get(&step)
    }
}

pub fn task_order(t: &str) -> usize {
    ["mr", "sm", "if", "lm"].iter().position(|x| *x == t).unwrap_or(9)
}

/// The paper's aggregates of one task at one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Aggregates {
    pub english: Option<f64>,
    pub seen: Option<f64>,
    pub unseen: Option<f64>,
    /// seen − unseen
    pub gap: Option<f64>,
    /// mean of the non-English scores / English score
    pub ratio_to_english: Option<f64>,
    pub latin: Option<f64>,
    pub non_latin: Option<f64>,
}

pub fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Aggregate the cells of one task (values of its metric; loss when `use_loss`).
pub fn aggregate(cells: &BTreeMap<(String, String), Cell>, task: &str, use_loss: bool) -> Aggregates {
    let pick = |c: &Cell| if use_loss { c.loss } else { c.value };
    let of_task: Vec<(&String, &Cell)> = cells
        .iter()
        .filter(|((t, _), _)| t == task)
        .map(|((_, l), c)| (l, c))
        .filter(|(_, c)| pick(c).is_finite())
        .collect();
    let vals = |f: &dyn Fn(&String, &Cell) -> bool| -> Vec<f64> {
        of_task.iter().filter(|(l, c)| f(l, c)).map(|(_, c)| pick(c)).collect()
    };
    let english = of_task.iter().find(|(l, _)| l.as_str() == "en").map(|(_, c)| pick(c));
    let seen = mean(&vals(&|l, c| l != "en" && c.group == "seen"));
    let unseen = mean(&vals(&|l, c| l != "en" && c.group == "unseen"));
    let non_en = mean(&vals(&|l, _| l != "en"));
    let is_latin = |l: &String| lang::get(l).is_some_and(|x| x.is_latin());
    Aggregates {
        english,
        seen,
        unseen,
        gap: seen.zip(unseen).map(|(s, u)| s - u),
        ratio_to_english: non_en.zip(english).and_then(|(n, e)| (e != 0.0).then(|| n / e)),
        latin: mean(&vals(&|l, _| l != "en" && is_latin(l))),
        non_latin: mean(&vals(&|l, _| !is_latin(l))),
    }
}

/// The aggregates of one task's metric with their 95 % intervals, from the cells' intervals
/// (`stats::mean_of` for a group average, `stats::diff` for the gap). An aggregate is `None`
/// when any cell it averages has no interval: a mean without one is not shown as an estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AggregateCis {
    pub english: Option<Est>,
    pub seen: Option<Est>,
    pub unseen: Option<Est>,
    pub gap: Option<Est>,
    pub latin: Option<Est>,
    pub non_latin: Option<Est>,
}

/// A cell's value with its interval, when it has one.
pub fn cell_est(c: &Cell) -> Option<Est> {
    let [lo, hi] = c.ci?;
    (c.value.is_finite() && lo.is_finite() && hi.is_finite()).then_some(Est { value: c.value, lo, hi })
}

/// [`AggregateCis`] of one task's cells.
pub fn aggregate_cis(cells: &BTreeMap<(String, String), Cell>, task: &str) -> AggregateCis {
    let of_task: Vec<(&String, &Cell)> =
        cells.iter().filter(|((t, _), _)| t == task).map(|((_, l), c)| (l, c)).collect();
    let group = |f: &dyn Fn(&String, &Cell) -> bool| -> Option<Est> {
        let picked: Vec<Option<Est>> = of_task.iter().filter(|(l, c)| f(l, c)).map(|(_, c)| cell_est(c)).collect();
        picked.iter().all(Option::is_some).then(|| stats::mean_of(&picked.into_iter().flatten().collect::<Vec<_>>()))?
    };
    let is_latin = |l: &String| lang::get(l).is_some_and(|x| x.is_latin());
    let seen = group(&|l, c| l != "en" && c.group == "seen");
    let unseen = group(&|l, c| l != "en" && c.group == "unseen");
    AggregateCis {
        english: of_task.iter().find(|(l, _)| l.as_str() == "en").and_then(|(_, c)| cell_est(c)),
        seen,
        unseen,
        gap: seen.zip(unseen).map(|(s, u)| stats::diff(s, u)),
        latin: group(&|l, _| l != "en" && is_latin(l)),
        non_latin: group(&|l, _| !is_latin(l)),
    }
}

/// One row of a comparison: a language (or an aggregate) of a task. `latest_delta[i]` and
/// `best_delta[i]` are run i+1 minus run 0 with their 95 % intervals, where both sides have
/// one (`stats::diff`); a delta whose interval excludes zero is one the data supports.
#[derive(Debug, Clone, Serialize)]
pub struct CompareRow {
    pub task: String,
    pub metric: String,
    pub row: String,
    pub groups: Vec<Option<String>>,
    pub latest: Vec<Option<f64>>,
    pub best: Vec<Option<f64>>,
    pub latest_ci: Vec<Option<[f64; 2]>>,
    pub best_ci: Vec<Option<[f64; 2]>>,
    pub latest_delta: Vec<Option<Est>>,
    pub best_delta: Vec<Option<Est>>,
}

impl CompareRow {
    fn new(
        task: &str,
        metric: &str,
        row: &str,
        groups: Vec<Option<String>>,
        latest: Vec<Est2>,
        best: Vec<Est2>,
    ) -> Self {
        let ci = |v: &[Est2]| v.iter().map(|(_, e)| e.map(|e| [e.lo, e.hi])).collect();
        let deltas = |v: &[Est2]| -> Vec<Option<Est>> {
            v.iter().skip(1).map(|(_, e)| e.zip(v[0].1).map(|(b, a)| stats::diff(b, a))).collect()
        };
        CompareRow {
            task: task.to_string(),
            metric: metric.to_string(),
            row: row.to_string(),
            groups,
            latest_ci: ci(&latest),
            best_ci: ci(&best),
            latest_delta: deltas(&latest),
            best_delta: deltas(&best),
            latest: latest.iter().map(|(v, _)| *v).collect(),
            best: best.iter().map(|(v, _)| *v).collect(),
        }
    }
}

/// A value and, when known, its interval.
type Est2 = (Option<f64>, Option<Est>);

/// The cell of `key` in a run's cells at a step, if the run has that step.
fn cell_of<'m>(m: &'m Option<BTreeMap<(String, String), Cell>>, key: &(String, String)) -> Option<&'m Cell> {
    m.as_ref().and_then(|m| m.get(key))
}

/// Compare runs' eval tables at their latest and best steps. Rows: every language of every
/// task, then English / seen / unseen / gap / ratio to English / Latin / non-Latin.
pub fn compare(tables: &[&EvalTable]) -> Vec<CompareRow> {
    let mut tasks: Vec<String> = tables.iter().flat_map(|t| t.tasks()).collect();
    tasks.sort_by_key(|t| (task_order(t), t.clone()));
    tasks.dedup();
    let at = |t: &EvalTable, best: bool| -> Option<BTreeMap<(String, String), Cell>> {
        let step =
            if best { t.best_step.filter(|s| t.steps.contains_key(s)).or(t.latest_step()) } else { t.latest_step() };
        step.and_then(|s| t.at(s).cloned())
    };
    let latest: Vec<_> = tables.iter().map(|t| at(t, false)).collect();
    let best: Vec<_> = tables.iter().map(|t| at(t, true)).collect();
    let mut rows = Vec::new();
    for task in &tasks {
        let mut langs: Vec<String> =
            latest.iter().flatten().flat_map(|m| m.keys().filter(|(t, _)| t == task).map(|(_, l)| l.clone())).collect();
        langs.sort_by_key(|l| lang::order(l));
        langs.dedup();
        let metric = latest
            .iter()
            .flatten()
            .flat_map(|m| m.iter().filter(|((t, _), _)| t == task).map(|(_, c)| c.metric.clone()))
            .next()
            .unwrap_or_default();
        for l in &langs {
            let key = (task.clone(), l.clone());
            let est = |ms: &[Option<BTreeMap<(String, String), Cell>>]| -> Vec<Est2> {
                ms.iter().map(|m| cell_of(m, &key).map_or((None, None), |c| (Some(c.value), cell_est(c)))).collect()
            };
            rows.push(CompareRow::new(
                task,
                &metric,
                l,
                latest.iter().map(|m| cell_of(m, &key).map(|c| c.group.clone())).collect(),
                est(&latest),
                est(&best),
            ));
        }
        let ag = |ms: &[Option<BTreeMap<(String, String), Cell>>]| -> Vec<(Aggregates, AggregateCis)> {
            ms.iter()
                .map(|m| m.as_ref().map(|m| (aggregate(m, task, false), aggregate_cis(m, task))).unwrap_or_default())
                .collect()
        };
        let (ag_l, ag_b) = (ag(&latest), ag(&best));
        type Pick = fn(&Aggregates, &AggregateCis) -> Est2;
        let aggs: [(&str, Pick); 7] = [
            ("English", |a, c| (a.english, c.english)),
            ("seen avg", |a, c| (a.seen, c.seen)),
            ("unseen avg", |a, c| (a.unseen, c.unseen)),
            ("gap (seen−unseen)", |a, c| (a.gap, c.gap)),
            ("ratio to English", |a, _| (a.ratio_to_english, None)),
            ("Latin avg", |a, c| (a.latin, c.latin)),
            ("non-Latin avg", |a, c| (a.non_latin, c.non_latin)),
        ];
        for (name, f) in aggs {
            let pick = |v: &[(Aggregates, AggregateCis)]| v.iter().map(|(a, c)| f(a, c)).collect();
            rows.push(CompareRow::new(task, &metric, name, vec![None; tables.len()], pick(&ag_l), pick(&ag_b)));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(step: u64, task: &str, lang: &str, group: &str, value: f64) -> Event {
        Event::new(
            step,
            Body::Eval {
                task: task.into(),
                lang: lang.into(),
                group: group.into(),
                loss: 1.0 - value,
                metric: "accuracy".into(),
                value,
                n: 10,
                lang_ok: None,
                scores: None,
                ci: None,
            },
        )
    }

    #[test]
    fn aggregates_follow_the_paper() {
        let evs = vec![
            eval(10, "mr", "en", "anchor", 0.8),
            eval(10, "mr", "es", "seen", 0.6),
            eval(10, "mr", "ja", "seen", 0.4),
            eval(10, "mr", "pt", "unseen", 0.3),
            eval(10, "mr", "ko", "unseen", 0.1),
        ];
        let t = EvalTable::from_events(&evs);
        let a = aggregate(t.at(10).unwrap(), "mr", false);
        assert_eq!(a.english, Some(0.8));
        assert!((a.seen.unwrap() - 0.5).abs() < 1e-12);
        assert!((a.unseen.unwrap() - 0.2).abs() < 1e-12);
        assert!((a.gap.unwrap() - 0.3).abs() < 1e-12);
        assert!((a.ratio_to_english.unwrap() - (1.4 / 4.0) / 0.8).abs() < 1e-12);
        assert!((a.latin.unwrap() - 0.45).abs() < 1e-12);
        assert!((a.non_latin.unwrap() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn compare_uses_latest_and_best_steps() {
        let mut a = vec![eval(10, "mr", "en", "anchor", 0.5), eval(20, "mr", "en", "anchor", 0.7)];
        a.push(Event::new(10, Body::Checkpoint { path: "checkpoints/10".into(), eval_loss: Some(0.1) }));
        a.push(Event::new(20, Body::Checkpoint { path: "checkpoints/20".into(), eval_loss: Some(0.2) }));
        let b = vec![eval(20, "mr", "en", "anchor", 0.9)];
        let (ta, tb) = (EvalTable::from_events(&a), EvalTable::from_events(&b));
        assert_eq!(ta.best_step, Some(10));
        let rows = compare(&[&ta, &tb]);
        let en = rows.iter().find(|r| r.row == "en").unwrap();
        assert_eq!(en.latest, vec![Some(0.7), Some(0.9)]);
        assert_eq!(en.best, vec![Some(0.5), Some(0.9)]);
        assert!(rows.iter().any(|r| r.row == "ratio to English"));
    }
}

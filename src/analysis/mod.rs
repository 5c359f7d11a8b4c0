//! What the paper reads off a run: per-language scores at a step, and the aggregates — English,
//! seen average, unseen average, their gap, ratio to English, Latin vs non-Latin — at the
//! latest step and at the best held-out-loss checkpoint; and run-to-run comparisons.

pub mod stats;
pub mod sweep;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::data::lang;
use crate::runs::events::{Body, Event};
use stats::{Delta, Est};

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

/// One row of a comparison: a language (or an aggregate) of a task, for each side (a run, or a
/// group of runs that differ only in seed). For a group, a value is the members' mean and its
/// interval the t-interval over them (`stats::seed_mean`); for a run, its value with its
/// sampling interval. `latest_delta[i]` and `best_delta[i]` are side i+1 minus side 0
/// (`stats::delta`: Welch's t for two groups, MOVER for two runs); `*_marked[i]` says whether
/// the difference is supported: its p-value, Holm-adjusted over the rows of the task (its
/// languages and averages), is below 0.05.
#[derive(Debug, Clone, Serialize)]
pub struct CompareRow {
    pub task: String,
    pub metric: String,
    pub row: String,
    pub groups: Vec<Option<String>>,
    /// Members with a value, per side (1 for a run).
    pub k: Vec<usize>,
    /// Examples each member's value rests on (a language row's `n`).
    pub n: Vec<Option<u64>>,
    pub latest: Vec<Option<f64>>,
    pub best: Vec<Option<f64>>,
    pub latest_ci: Vec<Option<[f64; 2]>>,
    pub best_ci: Vec<Option<[f64; 2]>>,
    /// The members' standard deviation (seed to seed), for groups.
    pub latest_sd: Vec<Option<f64>>,
    pub best_sd: Vec<Option<f64>>,
    pub latest_delta: Vec<Option<Delta>>,
    pub best_delta: Vec<Option<Delta>>,
    /// The deltas' p-values after Holm's adjustment within the task.
    pub latest_p_adj: Vec<Option<f64>>,
    pub best_p_adj: Vec<Option<f64>>,
    pub latest_marked: Vec<bool>,
    pub best_marked: Vec<bool>,
}

/// What a compare row's value can be: a score (a language or a group average) in [0, 1], the
/// gap in [−1, 1], the ratio to English and any loss at least 0. A group's interval is kept
/// within it.
pub fn row_range(row: &str, loss: bool) -> (f64, f64) {
    match row {
        _ if loss => (0.0, f64::INFINITY),
        "gap (seen−unseen)" | "gap" => (-1.0, 1.0),
        "ratio to English" | "÷ English" => (0.0, f64::INFINITY),
        _ => (0.0, 1.0),
    }
}

/// The significance level of the marks.
pub const ALPHA: f64 = 0.05;

/// One side's values of one row at one step: each member's value and, for a run alone, its
/// interval, and the members' mean sampling variance (from their intervals).
#[derive(Debug, Clone, Default)]
struct SideValues {
    values: Vec<f64>,
    single: Option<Est>,
    floor: f64,
}

impl SideValues {
    fn of(picked: &[Option<(f64, Option<Est>)>]) -> SideValues {
        let have: Vec<(f64, Option<Est>)> = picked.iter().flatten().filter(|(v, _)| v.is_finite()).copied().collect();
        let var = |e: &Option<Est>| e.map(|e| ((e.hi - e.lo) / (2.0 * stats::Z95)).powi(2));
        let vars: Vec<f64> = have.iter().filter_map(|(_, e)| var(e)).collect();
        SideValues {
            values: have.iter().map(|(v, _)| *v).collect(),
            single: if have.len() == 1 { have[0].1 } else { None },
            floor: mean(&vars).unwrap_or(0.0),
        }
    }

    /// The side's value and interval: a run's own, or the group's mean and t-interval (within
    /// `range`, what the value can be).
    fn est(&self, range: (f64, f64)) -> (Option<f64>, Option<Est>) {
        match self.values.len() {
            0 => (None, None),
            1 => (Some(self.values[0]), self.single),
            _ => (mean(&self.values), stats::seed_mean(&self.values, self.floor).map(|e| e.within(range.0, range.1))),
        }
    }

    fn delta_from(&self, base: &SideValues) -> Option<Delta> {
        stats::delta((&self.values, self.single, self.floor), (&base.values, base.single, base.floor))
    }
}

/// One side's value and 95 % interval from its members' values, each with its sampling
/// interval where it has one: a run alone keeps its own; two members or more give their mean
/// with the across-seed t-interval (`stats::seed_mean`, the members' mean sampling variance as
/// its floor), kept within `range`. What [`compare`] computes for a side, for callers that
/// hold the values themselves (the report's figures, step by step).
pub fn side_estimate(picked: &[(f64, Option<Est>)], range: (f64, f64)) -> (Option<f64>, Option<Est>) {
    let v: Vec<Option<(f64, Option<Est>)>> = picked.iter().copied().map(Some).collect();
    SideValues::of(&v).est(range)
}

/// A side's cells at one step, one map per member.
type Cells = Vec<Option<BTreeMap<(String, String), Cell>>>;

/// The step a side is read at: a run's latest (or best) evaluation; for a group, the latest
/// evaluation every member has reached (each member's own best).
fn side_cells(members: &[&EvalTable], best: bool) -> Cells {
    let at = |t: &EvalTable, s: Option<u64>| s.and_then(|s| t.at(s).cloned());
    if best {
        return members
            .iter()
            .map(|t| at(t, t.best_step.filter(|s| t.steps.contains_key(s)).or(t.latest_step())))
            .collect();
    }
    if members.len() == 1 {
        return vec![at(members[0], members[0].latest_step())];
    }
    let common = members
        .first()
        .map(|t0| t0.steps.keys().rev().find(|s| members.iter().all(|t| t.steps.contains_key(s))).copied());
    members.iter().map(|t| at(t, common.flatten())).collect()
}

/// The first member's cell of `key` in a side's cells.
fn first_cell<'c>(cells: &'c Cells, key: &(String, String)) -> Option<&'c Cell> {
    cells.iter().flatten().find_map(|m| m.get(key))
}

/// Compare sides (each a run, or a group's members) at their latest and best steps. Rows:
/// every language of every task, then English / seen / unseen / gap / ratio to English /
/// Latin / non-Latin.
pub fn compare(sides: &[Vec<&EvalTable>]) -> Vec<CompareRow> {
    let mut tasks: Vec<String> = sides.iter().flatten().flat_map(|t| t.tasks()).collect();
    tasks.sort_by_key(|t| (task_order(t), t.clone()));
    tasks.dedup();
    let latest: Vec<Cells> = sides.iter().map(|m| side_cells(m, false)).collect();
    let best: Vec<Cells> = sides.iter().map(|m| side_cells(m, true)).collect();
    let mut rows = Vec::new();
    for task in &tasks {
        let first = rows.len();
        let mut langs: Vec<String> = latest
            .iter()
            .flatten()
            .flatten()
            .flat_map(|m| m.keys().filter(|(t, _)| t == task).map(|(_, l)| l.clone()))
            .collect();
        langs.sort_by_key(|l| lang::order(l));
        langs.dedup();
        let metric = latest
            .iter()
            .flatten()
            .flatten()
            .flat_map(|m| m.iter().filter(|((t, _), _)| t == task).map(|(_, c)| c.metric.clone()))
            .next()
            .unwrap_or_default();
        for l in &langs {
            let key = (task.clone(), l.clone());
            let pick = |cells: &Cells| -> SideValues {
                let v: Vec<_> = cells
                    .iter()
                    .map(|m| m.as_ref().and_then(|m| m.get(&key)).map(|c| (c.value, cell_est(c))))
                    .collect();
                SideValues::of(&v)
            };
            let mut row = CompareRow::new(
                task,
                &metric,
                l,
                latest.iter().map(|c| first_cell(c, &key).map(|c| c.group.clone())).collect(),
                latest.iter().map(pick).collect(),
                best.iter().map(pick).collect(),
            );
            row.n = latest.iter().map(|c| first_cell(c, &key).map(|c| c.n)).collect();
            rows.push(row);
        }
        type Pick = fn(&Aggregates, &AggregateCis) -> (Option<f64>, Option<Est>);
        let aggs: [(&str, Pick); 7] = [
            ("English", |a, c| (a.english, c.english)),
            ("seen avg", |a, c| (a.seen, c.seen)),
            ("unseen avg", |a, c| (a.unseen, c.unseen)),
            ("gap (seen−unseen)", |a, c| (a.gap, c.gap)),
            ("ratio to English", |a, _| (a.ratio_to_english, None)),
            ("Latin avg", |a, c| (a.latin, c.latin)),
            ("non-Latin avg", |a, c| (a.non_latin, c.non_latin)),
        ];
        let of_side = |cells: &Cells| -> Vec<Option<(Aggregates, AggregateCis)>> {
            cells.iter().map(|m| m.as_ref().map(|m| (aggregate(m, task, false), aggregate_cis(m, task)))).collect()
        };
        let (ag_l, ag_b): (Vec<_>, Vec<_>) = (latest.iter().map(of_side).collect(), best.iter().map(of_side).collect());
        for (name, f) in aggs {
            let pick = |side: &Vec<Option<(Aggregates, AggregateCis)>>| -> SideValues {
                let v: Vec<_> =
                    side.iter().map(|m| m.as_ref().and_then(|(a, c)| f(a, c).0.map(|v| (v, f(a, c).1)))).collect();
                SideValues::of(&v)
            };
            rows.push(CompareRow::new(
                task,
                &metric,
                name,
                vec![None; sides.len()],
                ag_l.iter().map(pick).collect(),
                ag_b.iter().map(pick).collect(),
            ));
        }
        mark(&mut rows[first..]);
    }
    rows
}

impl CompareRow {
    fn new(
        task: &str,
        metric: &str,
        row: &str,
        groups: Vec<Option<String>>,
        latest: Vec<SideValues>,
        best: Vec<SideValues>,
    ) -> Self {
        let range = row_range(row, metric == "loss");
        let ci = |v: &[SideValues]| v.iter().map(|s| s.est(range).1.map(|e| [e.lo, e.hi])).collect();
        let value = |v: &[SideValues]| v.iter().map(|s| s.est(range).0).collect();
        let sd = |v: &[SideValues]| v.iter().map(|s| stats::sd(&s.values)).collect();
        let deltas = |v: &[SideValues]| -> Vec<Option<Delta>> {
            v.iter().skip(1).map(|s| v.first().and_then(|b| s.delta_from(b))).collect()
        };
        let others = latest.len().saturating_sub(1);
        CompareRow {
            task: task.to_string(),
            metric: metric.to_string(),
            row: row.to_string(),
            groups,
            k: latest.iter().map(|s| s.values.len()).collect(),
            n: vec![None; latest.len()],
            latest: value(&latest),
            best: value(&best),
            latest_ci: ci(&latest),
            best_ci: ci(&best),
            latest_sd: sd(&latest),
            best_sd: sd(&best),
            latest_delta: deltas(&latest),
            best_delta: deltas(&best),
            latest_p_adj: vec![None; others],
            best_p_adj: vec![None; others],
            latest_marked: vec![false; others],
            best_marked: vec![false; others],
        }
    }

    /// Whether the row is a group average (its values derive from the language rows).
    pub fn is_aggregate(&self) -> bool {
        lang::get(&self.row).is_none()
    }
}

/// Holm's adjustment over one task's rows, for each delta column at the latest and the best
/// step: the languages and the averages are one family. The English row repeats the `en` row
/// and is not a test of its own (it takes `en`'s mark); the ratio to English has no interval.
fn mark(rows: &mut [CompareRow]) {
    let cols = rows.first().map_or(0, |r| r.latest_delta.len());
    let tested = |r: &CompareRow| r.row != "English";
    for col in 0..cols {
        for best in [false, true] {
            let p: Vec<Option<f64>> = rows
                .iter()
                .map(|r| {
                    let d = if best { &r.best_delta } else { &r.latest_delta };
                    d[col].filter(|_| tested(r)).map(|d| d.p)
                })
                .collect();
            let adj = stats::holm(&p);
            let en = rows.iter().position(|r| r.row == "en").and_then(|i| adj[i]);
            for (r, a) in rows.iter_mut().zip(adj) {
                let a = if r.row == "English" { en } else { a };
                let (p_adj, marked) = if best {
                    (&mut r.best_p_adj, &mut r.best_marked)
                } else {
                    (&mut r.latest_p_adj, &mut r.latest_marked)
                };
                p_adj[col] = a;
                marked[col] = a.is_some_and(|a| a < ALPHA);
            }
        }
    }
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
        a.push(Event::new(
            10,
            Body::Checkpoint { path: "checkpoints/10".into(), eval_loss: Some(0.1), best: None, warnings: 0 },
        ));
        a.push(Event::new(
            20,
            Body::Checkpoint { path: "checkpoints/20".into(), eval_loss: Some(0.2), best: None, warnings: 0 },
        ));
        let b = vec![eval(20, "mr", "en", "anchor", 0.9)];
        let (ta, tb) = (EvalTable::from_events(&a), EvalTable::from_events(&b));
        assert_eq!(ta.best_step, Some(10));
        let rows = compare(&[vec![&ta], vec![&tb]]);
        let en = rows.iter().find(|r| r.row == "en").unwrap();
        assert_eq!(en.latest, vec![Some(0.7), Some(0.9)]);
        assert_eq!(en.best, vec![Some(0.5), Some(0.9)]);
        assert!(rows.iter().any(|r| r.row == "ratio to English"));
    }
}

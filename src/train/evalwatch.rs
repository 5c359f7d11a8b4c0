//! Watches a run's evaluations for one that falls: a (task, language) value, or a task's seen
//! or unseen average, below the previous evaluation's by more than the difference's 95 %
//! interval. The rule is the compare view's: the difference new − previous with its MOVER
//! interval (`stats::delta` of two single evaluations), its p-value Holm-adjusted over the
//! task's rows (its languages and the two averages); a row falls when that adjusted p is below
//! 0.05 and the difference goes the bad way (down for a score; the held-out loss sets carry no
//! interval and are not watched). One evaluation writes at most one warning, naming every row
//! that fell.

use std::collections::BTreeMap;

use crate::analysis::stats::{self, Est};
use crate::analysis::{aggregate_cis, cell_est, task_order, Cell};
use crate::runs::events::{Body, Event};

/// The cells of one evaluation: (task, lang) → cell.
pub type Round = BTreeMap<(String, String), Cell>;

/// How many fallen rows a warning lists by name (the rest are counted).
const LISTED: usize = 6;
/// The family-wise error rate of the Holm-adjusted test.
const ALPHA: f64 = 0.05;

/// One row that fell.
#[derive(Debug, Clone, PartialEq)]
pub struct Fall {
    pub task: String,
    /// A language code, or `seen avg` / `unseen avg`.
    pub row: String,
    pub metric: String,
    pub before: Est,
    pub after: Est,
    /// after − before, with its 95 % interval.
    pub delta: Est,
    /// Holm-adjusted over the task's rows.
    pub p_adjusted: f64,
}

/// The previous evaluation, and what a new one is compared with.
#[derive(Debug, Clone, Default)]
pub struct EvalWatch {
    prev: Option<(u64, Round)>,
}

/// The cells of an evaluation's results.
pub fn round_of(results: &[super::evaluate::EvalResult]) -> Round {
    results
        .iter()
        .map(|r| {
            let cell = Cell {
                group: r.group.clone(),
                metric: r.metric.clone(),
                value: r.value,
                loss: r.loss,
                n: r.n,
                lang_ok: r.lang_ok,
                scores: None,
                ci: r.ci,
            };
            ((r.task.clone(), r.lang.clone()), cell)
        })
        .collect()
}

/// Whether higher values of a metric are better (scores), or lower (a loss).
pub fn higher_is_better(metric: &str) -> bool {
    metric != "loss"
}

impl EvalWatch {
    /// A watch whose previous evaluation is `prev` (a resumed run's last, a fork's parent's at
    /// the fork step), or none.
    pub fn new(prev: Option<(u64, Round)>) -> EvalWatch {
        EvalWatch { prev: prev.filter(|(_, r)| !r.is_empty()) }
    }

    /// The last evaluation in `events` at or before `step` (a run resumed from an earlier
    /// checkpoint redid the steps after it), its events' last value of each cell.
    pub fn last_round(events: &[Event], step: u64) -> Option<(u64, Round)> {
        let at =
            events.iter().filter(|e| e.step <= step && matches!(e.body, Body::Eval { .. })).map(|e| e.step).max()?;
        let mut round = Round::new();
        for e in events.iter().filter(|e| e.step == at) {
            if let Some((k, c)) = Cell::of_eval(&e.body) {
                round.insert(k, c);
            }
        }
        Some((at, round))
    }

    /// Fold in the evaluation at `step`: the rows that fell since the previous one (none for
    /// the first), in task order, the largest fall first within a task.
    pub fn observe(&mut self, step: u64, round: Round) -> Vec<Fall> {
        let prev = self.prev.replace((step, round));
        let (Some((_, before)), Some((_, after))) = (prev.as_ref(), self.prev.as_ref()) else { return Vec::new() };
        let mut tasks: Vec<&String> = after.keys().map(|(t, _)| t).collect();
        tasks.sort_by_key(|t| (task_order(t), t.to_string()));
        tasks.dedup();
        let mut out = Vec::new();
        for task in tasks {
            out.extend(falls_of_task(task, before, after));
        }
        out
    }

    /// [`EvalWatch::observe`], as the warning it calls for: its message and value (the new
    /// value of the largest fall), or none.
    pub fn warn(&mut self, step: u64, round: Round) -> Option<(String, f64)> {
        let prev_step = self.prev.as_ref().map(|(s, _)| *s);
        let falls = self.observe(step, round);
        let prev_step = prev_step?;
        message(prev_step, step, &falls)
    }
}

/// The rows of one task that fell between two evaluations.
fn falls_of_task(task: &str, before: &Round, after: &Round) -> Vec<Fall> {
    // The task's rows with an interval at both: its languages, then its seen and unseen averages.
    let mut rows: Vec<(String, String, Est, Est)> = Vec::new();
    for ((t, l), c) in after.iter().filter(|((t, _), _)| t == task) {
        let Some(old) = before.get(&(t.clone(), l.clone())) else { continue };
        if old.metric != c.metric {
            continue;
        }
        if let (Some(a), Some(b)) = (cell_est(old), cell_est(c)) {
            rows.push((l.clone(), c.metric.clone(), a, b));
        }
    }
    let metric = rows.first().map(|r| r.1.clone()).unwrap_or_default();
    // An average only when it averages the same languages at both (a fork that moves a
    // language into the mixture changes what its seen average is).
    let members = |r: &Round, group: &str| -> Vec<String> {
        r.iter().filter(|((t, l), c)| t == task && l != "en" && c.group == group).map(|((_, l), _)| l.clone()).collect()
    };
    let (ca, cb) = (aggregate_cis(before, task), aggregate_cis(after, task));
    for (group, a, b) in [("seen", ca.seen, cb.seen), ("unseen", ca.unseen, cb.unseen)] {
        if let (Some(a), Some(b)) = (a, b) {
            if members(before, group) == members(after, group) {
                rows.push((format!("{group} avg"), metric.clone(), a, b));
            }
        }
    }
    let deltas: Vec<Option<stats::Delta>> = rows
        .iter()
        .map(|(_, _, a, b)| stats::delta((&[b.value], Some(*b), 0.0), (&[a.value], Some(*a), 0.0)))
        .collect();
    let adjusted = stats::holm(&deltas.iter().map(|d| d.map(|d| d.p)).collect::<Vec<_>>());
    let mut out: Vec<Fall> = Vec::new();
    for (((row, metric, a, b), d), p) in rows.into_iter().zip(deltas).zip(adjusted) {
        let (Some(d), Some(p)) = (d, p) else { continue };
        let worse = if higher_is_better(&metric) { d.est.hi < 0.0 } else { d.est.lo > 0.0 };
        if worse && p < ALPHA {
            out.push(Fall { task: task.to_string(), row, metric, before: a, after: b, delta: d.est, p_adjusted: p });
        }
    }
    out.sort_by(|x, y| x.delta.value.abs().total_cmp(&y.delta.value.abs()).reverse());
    out
}

fn est(e: Est) -> String {
    format!("{:.3} [{:.3}, {:.3}]", e.value, e.lo, e.hi)
}

/// The warning of an evaluation at `step` whose rows `falls` fell since `prev`: every fall
/// named (task, row, metric, both steps' values with their intervals, the difference with its
/// interval), the first [`LISTED`] in full, the rest counted.
pub fn message(prev: u64, step: u64, falls: &[Fall]) -> Option<(String, f64)> {
    let worst = falls.iter().max_by(|a, b| a.delta.value.abs().total_cmp(&b.delta.value.abs()))?;
    let listed: Vec<String> = falls
        .iter()
        .take(LISTED)
        .map(|f| {
            format!(
                "{} {} {} {} at {prev} → {} at {step}, Δ {:+.3} [{:+.3}, {:+.3}]",
                f.task.to_uppercase(),
                f.row,
                f.metric,
                est(f.before),
                est(f.after),
                f.delta.value,
                f.delta.lo,
                f.delta.hi
            )
        })
        .collect();
    let more = match falls.len().saturating_sub(LISTED) {
        0 => String::new(),
        k => format!("; and {k} more"),
    };
    let msg = format!(
        "the evaluation at step {step} fell below step {prev}'s in {} row{} (95% interval of the difference below 0, Holm-adjusted over each task's rows): {}{more}",
        falls.len(),
        if falls.len() == 1 { "" } else { "s" },
        listed.join("; ")
    );
    Some((msg, worst.after.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cell of `k` passes in `n` with its Wilson interval, as the trainer writes it.
    fn cell(group: &str, k: u64, n: u64) -> Cell {
        let (lo, hi) = stats::wilson(k, n).unwrap();
        Cell {
            group: group.into(),
            metric: "accuracy".into(),
            value: k as f64 / n as f64,
            loss: 1.0,
            n,
            lang_ok: Some(1.0),
            scores: None,
            ci: Some([lo, hi]),
        }
    }

    fn round(cells: &[(&str, &str, &str, u64)]) -> Round {
        cells.iter().map(|(t, l, g, k)| ((t.to_string(), l.to_string()), cell(g, *k, 64))).collect()
    }

    const LANGS: [(&str, &str); 5] =
        [("en", "anchor"), ("es", "seen"), ("ja", "seen"), ("ko", "unseen"), ("pt", "unseen")];

    fn mr(ks: [u64; 5]) -> Round {
        round(&LANGS.iter().zip(ks).map(|((l, g), k)| ("mr", *l, *g, k)).collect::<Vec<_>>())
    }

    /// Noise within the intervals warns of nothing; the first evaluation has nothing to fall from.
    #[test]
    fn wobbles_within_the_intervals_warn_of_nothing() {
        let mut w = EvalWatch::default();
        assert_eq!(w.warn(10, mr([40, 30, 30, 20, 20])), None);
        assert_eq!(w.warn(20, mr([36, 26, 33, 16, 22])), None);
        assert_eq!(w.warn(30, mr([44, 31, 28, 21, 18])), None);
        // Rises, however large, are not falls.
        assert_eq!(w.warn(40, mr([64, 60, 60, 50, 50])), None);
    }

    /// A language that falls far, and a seen average that falls with it, make one warning
    /// naming both steps, both values with their intervals and the difference's.
    #[test]
    fn a_fall_beyond_the_interval_warns_once_naming_steps_values_and_intervals() {
        let mut w = EvalWatch::new(Some((300, mr([50, 40, 40, 20, 20]))));
        let (msg, value) = w.warn(400, mr([50, 5, 40, 20, 20])).expect("es fell from 40/64 to 5/64");
        assert!((value - 5.0 / 64.0).abs() < 1e-12);
        assert!(msg.starts_with("the evaluation at step 400 fell below step 300's in 2 rows"), "{msg}");
        let es = msg.split("; ").find(|p| p.contains("MR es")).unwrap();
        let (lo, hi) = stats::wilson(40, 64).unwrap();
        assert!(es.contains(&format!("accuracy 0.625 [{lo:.3}, {hi:.3}] at 300 → 0.078")), "{es}");
        assert!(es.contains("at 400, Δ -0.547 ["), "{es}");
        assert!(msg.contains("MR seen avg accuracy"), "{msg}");
        assert!(!msg.contains("MR ja") && !msg.contains("unseen"), "{msg}");
        // The next evaluation is compared with this one: holding at the low level is no fall.
        assert_eq!(w.warn(500, mr([50, 6, 40, 20, 20])), None);
    }

    /// A small fall that one row alone would mark is not marked among many rows (Holm), as
    /// the compare view would not mark it.
    #[test]
    fn falls_are_holm_adjusted_over_the_tasks_rows() {
        let f = |before: Round, after: Round| EvalWatch::new(Some((1, before))).observe(2, after);
        // es 40 → 25 of 64: the difference's own interval is just below 0 …
        let before = mr([40, 40, 40, 40, 40]);
        let after = mr([40, 25, 40, 40, 40]);
        let (a, b) = (
            cell_est(&before[&("mr".into(), "es".into())]).unwrap(),
            cell_est(&after[&("mr".into(), "es".into())]).unwrap(),
        );
        assert!(stats::diff(b, a).hi < 0.0);
        // … but adjusted over the task's seven rows it is not supported.
        assert!(f(before, after).is_empty());
    }

    /// Loss sets (no interval) are not watched; a loss that rises is a fall for a lower-is-
    /// better metric.
    #[test]
    fn directions_and_sets_without_intervals() {
        assert!(higher_is_better("accuracy") && higher_is_better("rouge_l") && !higher_is_better("loss"));
        let mut lm = Round::new();
        let c = Cell {
            group: "anchor".into(),
            metric: "loss".into(),
            value: 2.0,
            loss: 2.0,
            n: 32,
            lang_ok: None,
            scores: None,
            ci: None,
        };
        lm.insert(("lm".into(), "en".into()), c.clone());
        let mut worse = lm.clone();
        worse.get_mut(&("lm".into(), "en".into())).unwrap().value = 9.0;
        assert!(EvalWatch::new(Some((1, lm.clone()))).observe(2, worse).is_empty());
        // With an interval, a loss that rises beyond it falls.
        let with = |v: f64| {
            let mut r = Round::new();
            r.insert(("lm".into(), "en".into()), Cell { value: v, ci: Some([v - 0.1, v + 0.1]), ..c.clone() });
            r
        };
        let falls = EvalWatch::new(Some((1, with(2.0)))).observe(2, with(3.0));
        assert_eq!(falls.len(), 1);
        assert!(EvalWatch::new(Some((1, with(3.0)))).observe(2, with(2.0)).is_empty());
    }

    /// An average of other languages is not compared: a fork that moves Korean into the
    /// mixture (seen) changes what the seen average is.
    #[test]
    fn averages_of_other_languages_are_not_compared() {
        let before = mr([40, 50, 50, 20, 20]);
        let mut after = mr([40, 50, 50, 20, 20]);
        after.get_mut(&("mr".into(), "ko".into())).unwrap().group = "seen".into();
        let falls = EvalWatch::new(Some((1, before))).observe(2, after);
        assert!(falls.is_empty(), "{falls:?}");
    }

    /// Many falls: the warning lists six and counts the rest.
    #[test]
    fn a_warning_lists_six_falls_and_counts_the_rest() {
        let mut before = mr([60, 60, 60, 60, 60]);
        before.extend(round(&LANGS.iter().map(|(l, g)| ("sm", *l, *g, 60)).collect::<Vec<_>>()));
        let mut after = mr([2, 2, 2, 2, 2]);
        after.extend(round(&LANGS.iter().map(|(l, g)| ("sm", *l, *g, 2)).collect::<Vec<_>>()));
        let (msg, _) = EvalWatch::new(Some((5, before))).warn(6, after).unwrap();
        assert!(msg.contains("in 14 rows"), "{msg}");
        assert!(msg.ends_with("; and 8 more"), "{msg}");
        assert!(msg.find("MR en").unwrap() < msg.find("MR es").unwrap());
    }

    /// The previous round of a run's events: the last at or before a step, the last value of
    /// each cell.
    #[test]
    fn the_last_round_of_a_runs_events() {
        let ev = |step: u64, lang: &str, value: f64| {
            Event::new(
                step,
                Body::Eval {
                    task: "mr".into(),
                    lang: lang.into(),
                    group: "seen".into(),
                    loss: 1.0,
                    metric: "accuracy".into(),
                    value,
                    n: 8,
                    lang_ok: None,
                    scores: None,
                    ci: Some([0.0, 1.0]),
                },
            )
        };
        let events =
            vec![ev(10, "en", 0.1), ev(10, "es", 0.2), ev(20, "en", 0.3), ev(20, "en", 0.4), ev(30, "en", 0.9)];
        let (step, r) = EvalWatch::last_round(&events, 25).unwrap();
        assert_eq!((step, r.len()), (20, 1));
        assert_eq!(r[&("mr".into(), "en".into())].value, 0.4);
        assert_eq!(EvalWatch::last_round(&events, 5), None);
    }
}

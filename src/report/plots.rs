//! What the report's figures show, built from runs read off disk: one function per kind of
//! figure (loss, a run's or a group's languages, a comparison, a sweep), shared by `mixscope
//! report` and the TUI's export key (`export.rs`), so the key writes the figure the report
//! would draw for the same selection.
//!
//! Every value carries its interval as the TUI and `analysis/` give it: a run alone its
//! evaluation's sampling interval ("sampling only"), a group of seeds its members' mean with
//! the across-seed t-interval (`analysis::side_estimate`). A fine-tuning run or a fork is drawn
//! over its own steps, its parent's last steps dashed before them as context.

use std::collections::BTreeMap;

use crate::analysis::stats::Est;
use crate::analysis::sweep::{CurvePoint, SweepAnalysis};
use crate::analysis::{cell_est, mean, side_estimate, task_order, EvalTable};
use crate::data::lang;
use crate::runs::events::{Body, Event};

use super::figures::{self, Figure, Intervals, Line, Panel, XAxis};

/// At most this many points per line in a figure (evenly picked; the ends kept).
const MAX_POINTS: usize = 1500;

/// The train loss's smoothing: a debiased exponential moving average.
const EMA: f64 = 0.9;

/// The share of the x axis a parent's steps take before a fork's own, as context.
const CONTEXT: f64 = 0.08;

/// One run as the figures read it.
#[derive(Debug, Clone)]
pub struct RunCurves {
    pub id: String,
    /// Its name, else its id.
    pub label: String,
    pub mixture: String,
    /// The run it was forked (or fine-tuned) from, and at which of its steps.
    pub parent: Option<String>,
    pub fork_step: Option<u64>,
    /// The train loss at each step.
    pub train: Vec<(u64, f64)>,
    pub table: EvalTable,
}

impl RunCurves {
    pub fn new(
        id: &str,
        label: &str,
        mixture: &str,
        lineage: Option<(&str, u64)>,
        events: &[Event],
        table: EvalTable,
    ) -> RunCurves {
        let train = events
            .iter()
            .filter_map(|e| match e.body {
                Body::Train { loss, .. } if loss.is_finite() => Some((e.step, loss)),
                _ => None,
            })
            .collect();
        RunCurves {
            id: id.to_string(),
            label: label.to_string(),
            mixture: mixture.to_string(),
            parent: lineage.map(|(p, _)| p.to_string()),
            fork_step: lineage.map(|(_, s)| s),
            train,
            table,
        }
    }

    /// The first step of its own: its fork step, else its first train or eval step.
    pub fn first_step(&self) -> Option<u64> {
        self.fork_step.or_else(|| {
            let t = self.train.first().map(|p| p.0);
            let e = self.table.steps.keys().next().copied();
            t.into_iter().chain(e).min()
        })
    }

    pub fn last_step(&self) -> Option<u64> {
        let t = self.train.last().map(|p| p.0);
        t.into_iter().chain(self.table.latest_step()).max()
    }

    /// The smoothed train loss (EMA 0.9, debiased, as the TUI draws it).
    fn smoothed(&self) -> Vec<(u64, f64)> {
        let (mut ema, mut w) = (0.0, 0.0);
        self.train
            .iter()
            .map(|&(s, l)| {
                ema = EMA * ema + (1.0 - EMA) * l;
                w = EMA * w + (1.0 - EMA);
                (s, ema / w)
            })
            .collect()
    }

    /// The held-out loss at each evaluation: the mean over its tasks and languages.
    fn held_out(&self) -> Vec<(u64, f64)> {
        self.table
            .steps
            .iter()
            .filter_map(|(s, cells)| {
                let l: Vec<f64> = cells.values().map(|c| c.loss).filter(|x| x.is_finite()).collect();
                mean(&l).map(|m| (*s, m))
            })
            .collect()
    }
}

/// What a figure is of: a run alone, or a group's members (runs that differ only in seed).
#[derive(Debug, Clone)]
pub struct Side<'a> {
    /// The run's label, or the group's (`name ×K`).
    pub label: String,
    pub runs: Vec<&'a RunCurves>,
}

impl Side<'_> {
    fn is_group(&self) -> bool {
        self.runs.len() > 1
    }

    /// Its mixture (its members share one).
    fn mixture(&self) -> &str {
        self.runs.first().map_or("", |r| r.mixture.as_str())
    }

    /// Where its runs came from: `parent @ step`, each distinct one.
    pub fn lineage(&self, label_of: &dyn Fn(&str) -> String) -> Vec<String> {
        let mut v: Vec<String> = self
            .runs
            .iter()
            .filter_map(|r| Some(format!("{} @ {}", label_of(r.parent.as_deref()?), r.fork_step?)))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// What the intervals of a side's values are, in words.
pub fn interval_words(side: &Side) -> String {
    if side.is_group() {
        format!("across seeds (95 % t over K = {} runs)", side.runs.len())
    } else {
        "sampling only (1 seed)".into()
    }
}

fn thin<T: Copy>(v: Vec<T>) -> Vec<T> {
    if v.len() <= MAX_POINTS {
        return v;
    }
    let k = v.len() as f64 / MAX_POINTS as f64;
    let mut out: Vec<T> = (0..MAX_POINTS).map(|i| v[(i as f64 * k) as usize]).collect();
    out.push(*v.last().expect("non-empty"));
    out
}

/// A side's curve from its members' curves: at each step any member has a value at, the
/// side's value and, where it has one, its interval (`analysis::side_estimate`: a run's own
/// interval, a group's across-seed t-interval), within `range`.
fn combine(members: &[Vec<(u64, f64, Option<Est>)>], range: (f64, f64)) -> (Vec<(f64, f64)>, Intervals) {
    let mut at: BTreeMap<u64, Vec<(f64, Option<Est>)>> = BTreeMap::new();
    for m in members {
        for &(s, v, e) in m {
            at.entry(s).or_default().push((v, e));
        }
    }
    let steps: Vec<u64> = thin(at.keys().copied().collect());
    let (mut pts, mut iv) = (Vec::new(), Vec::new());
    for s in steps {
        let (Some(v), e) = side_estimate(&at[&s], range) else { continue };
        pts.push((s as f64, v));
        iv.push(e.map(|e| (e.lo, e.hi)));
    }
    (pts, iv)
}

const LOSS_RANGE: (f64, f64) = (0.0, f64::INFINITY);

/// A side's first own step and last step.
fn span(s: &Side) -> Option<(u64, u64)> {
    let f = s.runs.iter().filter_map(|r| r.first_step()).min();
    let l = s.runs.iter().filter_map(|r| r.last_step()).max();
    f.zip(l)
}

/// The loss figure's x range (`None`: the data's) and which sides it shows: the sides' own
/// steps, from the first step of those that are no other side's parents, with a stub before
/// it when they were forked; a side whose steps lie before that (a base the others were
/// fine-tuned from) is left out, drawn as context only.
fn loss_span(sides: &[Side]) -> (Option<(f64, f64)>, Vec<bool>) {
    let is_parent = |s: &Side| {
        sides.iter().flat_map(|o| &o.runs).any(|r| s.runs.iter().any(|m| r.parent.as_deref() == Some(m.id.as_str())))
    };
    let lo = sides.iter().filter(|s| !is_parent(s)).filter_map(span).map(|(f, _)| f).min();
    let hi = sides.iter().filter_map(span).map(|(_, l)| l).max();
    let forked = sides.iter().flat_map(|s| &s.runs).any(|r| r.parent.is_some());
    let x_range = match (lo, hi) {
        (Some(lo), Some(hi)) if forked && lo > 0 => {
            let stub = (hi.saturating_sub(lo) as f64 * CONTEXT).max(1.0);
            Some(((lo as f64 - stub).max(0.0), (hi as f64).max(lo as f64 + 1.0)))
        }
        _ => None,
    };
    let shown = sides.iter().map(|s| x_range.is_none_or(|(a, _)| span(s).is_none_or(|(f, _)| f as f64 >= a))).collect();
    (x_range, shown)
}

/// The sides (their places) that [`loss_figure`] leaves out of its axis and draws as context
/// only: each deserves a loss figure of its own.
pub fn loss_context_only(sides: &[Side]) -> Vec<usize> {
    loss_span(sides).1.iter().enumerate().filter(|(_, s)| !**s).map(|(i, _)| i).collect()
}

/// The loss figure of some sides (runs or groups): the train loss and the held-out loss, each
/// side one colour, a group's mean with its across-seed interval shaded. The x axis spans the
/// sides' own steps: a side whose runs are the parents of another's is left out when its steps
/// lie before them (it is then context), and the parents of the sides (found by `lookup`) are
/// drawn dashed over the first few steps, so a fine-tuning run's 1,500 steps fill the axis
/// rather than the last fifth after its base's 6,000.
pub fn loss_figure(sides: &[Side], lookup: &dyn Fn(&str) -> Option<RunCurves>) -> Figure {
    let (x_range, shown) = loss_span(sides);
    let shown: Vec<&Side> = sides.iter().zip(shown).filter(|(_, s)| *s).map(|(s, _)| s).collect();
    let mut train = Panel::new("train loss (EMA 0.9, debiased)", "step", "loss");
    let mut held = Panel::new("held-out loss (mean over tasks and languages)", "step", "loss");
    for (i, s) in shown.iter().enumerate() {
        let color = figures::run_color(i);
        let label = if i < 24 { s.label.clone() } else { String::new() };
        let of = |f: &dyn Fn(&RunCurves) -> Vec<(u64, f64)>| -> Vec<Vec<(u64, f64, Option<Est>)>> {
            s.runs.iter().map(|r| f(r).into_iter().map(|(st, v)| (st, v, None)).collect()).collect()
        };
        let (pts, iv) = combine(&of(&|r| r.smoothed()), LOSS_RANGE);
        let band = s.is_group().then_some(iv);
        train.lines.push(Line { label: label.clone(), color, points: pts, band, ..Line::default() });
        let (pts, iv) = combine(&of(&|r| r.held_out()), LOSS_RANGE);
        let band = s.is_group().then_some(iv);
        held.lines.push(Line { label, color, points: pts, band, markers: true, ..Line::default() });
    }
    // The parents: dashed, up to the step their child was forked at.
    let mut notes = Vec::new();
    let mut parents: Vec<(String, u64)> = shown
        .iter()
        .flat_map(|s| &s.runs)
        .filter_map(|r| Some((r.parent.clone()?, r.fork_step?)))
        .filter(|(p, _)| !shown.iter().any(|s| s.runs.iter().any(|r| r.id == *p)))
        .collect();
    parents.sort();
    parents.dedup_by(|a, b| a.0 == b.0);
    let mut said: Vec<String> = Vec::new();
    for (p, at) in &parents {
        let Some(run) = lookup(p) else {
            said.push(format!("{p} @ {at}"));
            continue;
        };
        let label = format!("{} (parent, context)", run.label);
        said.push(format!("{} @ {at}", run.label));
        let upto = |v: Vec<(u64, f64)>| -> Vec<(f64, f64)> {
            thin(v.into_iter().filter(|(s, _)| *s <= *at).map(|(s, v)| (s as f64, v)).collect())
        };
        let grey = (110, 110, 110);
        train.lines.push(Line {
            label: label.clone(),
            color: grey,
            points: upto(run.smoothed()),
            dashed: true,
            ..Line::default()
        });
        held.lines.push(Line { label, color: grey, points: upto(run.held_out()), dashed: true, ..Line::default() });
    }
    said.sort();
    said.dedup();
    if !said.is_empty() {
        notes.push(format!(
            "Forked or fine-tuned from {}: the axis spans the runs' own steps; dashed, the parent's last steps before \
             them, as context.",
            said.join(", ")
        ));
    }
    let mut steps: Vec<u64> = parents.iter().map(|(_, s)| *s).collect();
    steps.sort_unstable();
    steps.dedup();
    for p in [&mut train, &mut held] {
        p.x_range = x_range;
        p.marks = steps.iter().map(|s| (*s as f64, format!("fork @ {s}"))).collect();
    }
    notes.push(if shown.iter().any(|s| s.is_group()) {
        "Groups of seeds: the mean over their runs, shaded its 95 % t-interval across seeds; a run alone: its own \
         curve (no interval: one training run)."
            .into()
    } else {
        "One training run per line: the loss has no interval (another seed would draw another curve).".into()
    });
    Figure { title: "Loss".into(), notes, panels: vec![train, held], cols: 2, panel_size: (640, 420) }
}

/// The (task, language) values of a side's members, each with its sampling interval.
type Values = Vec<(u64, f64, Option<Est>)>;

fn values(r: &RunCurves, task: &str, l: &str) -> Values {
    let key = (task.to_string(), l.to_string());
    r.table.steps.iter().filter_map(|(s, m)| m.get(&key).map(|c| (*s, c.value, cell_est(c)))).collect()
}

/// A task's languages (with their group) among a side's runs, its metric, and the examples
/// each value rests on (the smallest and largest n).
struct TaskLangs {
    langs: Vec<(String, String)>,
    metric: String,
    n: Option<(u64, u64)>,
}

fn task_langs(side: &Side, task: &str) -> TaskLangs {
    let cells: Vec<(&(String, String), &crate::analysis::Cell)> = side
        .runs
        .iter()
        .flat_map(|r| r.table.steps.values())
        .flat_map(|m| m.iter())
        .filter(|((t, _), _)| t == task)
        .collect();
    let mut langs: Vec<(String, String)> = cells.iter().map(|((_, l), c)| (l.clone(), c.group.clone())).collect();
    langs.sort_by_key(|(l, _)| lang::order(l));
    langs.dedup_by(|a, b| a.0 == b.0);
    let metric = cells.first().map(|(_, c)| c.metric.clone()).unwrap_or_default();
    let n = cells
        .iter()
        .map(|(_, c)| c.n)
        .fold(None, |acc: Option<(u64, u64)>, n| Some(acc.map_or((n, n), |(a, b)| (a.min(n), b.max(n)))));
    TaskLangs { langs, metric, n }
}

/// The tasks of some sides, in the suite's order.
fn tasks_of(sides: &[&Side]) -> Vec<String> {
    let mut tasks: Vec<String> = sides.iter().flat_map(|s| &s.runs).flat_map(|r| r.table.tasks()).collect();
    tasks.sort_by_key(|t| (task_order(t), t.clone()));
    tasks.dedup();
    tasks
}

/// One task's panel of a side: a line per language, coloured by its group (English, seen,
/// unseen), its interval shaded.
fn task_panel(side: &Side, task: &str) -> Panel {
    let TaskLangs { langs, metric, .. } = task_langs(side, task);
    let range = if metric == "loss" { LOSS_RANGE } else { (0.0, 1.0) };
    let mut p = Panel::new(format!("{} — {metric}", task.to_uppercase()), "step", metric.clone());
    p.y_from_zero = metric != "loss";
    for (l, group) in &langs {
        let members: Vec<&String> = langs.iter().filter(|(_, g)| g == group).map(|(x, _)| x).collect();
        let i = members.iter().position(|x| *x == l).unwrap_or(0);
        let per_run: Vec<Values> = side.runs.iter().map(|r| values(r, task, l)).collect();
        let (points, iv) = combine(&per_run, range);
        p.lines.push(Line {
            label: format!("{l} ({group})"),
            color: figures::shade(figures::group_color(group), i, members.len()),
            points,
            band: Some(iv),
            markers: true,
            ..Line::default()
        });
    }
    p
}

/// The examples behind each value, in words (`n = 64 per language`).
fn n_words(sides: &[&Side], tasks: &[String]) -> String {
    let (lo, hi) = sides
        .iter()
        .flat_map(|s| tasks.iter().filter_map(move |t| task_langs(s, t).n))
        .fold((u64::MAX, 0), |(a, b), (l, h)| (a.min(l), b.max(h)));
    match (lo, hi) {
        (u64::MAX, _) => String::new(),
        (a, b) if a == b => format!("n = {a} examples per language and evaluation"),
        (a, b) => format!("n = {a}–{b} examples per language and evaluation"),
    }
}

/// What the shading of a side's language curves is.
fn band_words(side: &Side) -> String {
    if side.is_group() {
        format!(
            "Lines: the mean of {} seeds; shaded: its 95 % t-interval across seeds (K − 1 degrees of freedom), \
             which covers the training's own randomness.",
            side.runs.len()
        )
    } else {
        "Shaded: each evaluation's 95 % interval, sampling only (1 seed: Wilson's for pass/fail scores, the \
         bootstrap otherwise); another training run may land outside it."
            .into()
    }
}

/// The languages figure of a run or a group: a panel per task, a line per language with its
/// interval shaded. `None` before any evaluation.
pub fn langs_figure(side: &Side, lineage: &[String]) -> Option<Figure> {
    let tasks = tasks_of(&[side]);
    if tasks.is_empty() {
        return None;
    }
    let panels: Vec<Panel> = tasks.iter().map(|t| task_panel(side, t)).collect();
    let mut notes = vec![format!("{}  {}", band_words(side), n_words(&[side], &tasks))];
    if !lineage.is_empty() {
        notes.push(format!("Forked or fine-tuned from {}; its own steps are drawn.", lineage.join(", ")));
    }
    Some(Figure {
        title: format!("{}   {}", side.label, side.mixture()),
        notes,
        cols: panels.len().min(3),
        panels,
        panel_size: (520, 380),
    })
}

/// The comparison of sides (runs or groups): a row per task, a column per side, each panel a
/// side's language curves with their intervals, on identical axes (the x axis over every
/// panel, the y axis over a task's row). `None` before any evaluation.
pub fn compare_figure(sides: &[Side]) -> Option<Figure> {
    let refs: Vec<&Side> = sides.iter().collect();
    let tasks = tasks_of(&refs);
    if tasks.is_empty() || sides.is_empty() {
        return None;
    }
    let mut panels = Vec::new();
    for task in &tasks {
        let row: Vec<Panel> = sides
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut p = task_panel(s, task);
                p.title = format!("{} {} — {}", (b'A' + (i % 26) as u8) as char, s.label, p.title);
                p
            })
            .collect();
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for l in row.iter().flat_map(|p| &p.lines) {
            for (i, &(_, y)) in l.points.iter().enumerate() {
                let (lo, hi) = l.band.as_ref().and_then(|b| b.get(i).copied().flatten()).unwrap_or((y, y));
                (y0, y1) = (y0.min(lo.min(y)), y1.max(hi.max(y)));
            }
        }
        let loss = row.first().is_some_and(|p| !p.y_from_zero);
        let y = y0.is_finite().then(|| {
            let lo = if loss { y0 } else { y0.min(0.0) };
            let pad = ((y1 - lo) * 0.06).max(1e-3);
            (if loss { lo - pad } else { lo }, y1 + pad)
        });
        panels.extend(row.into_iter().map(|mut p| {
            p.y_range = y;
            p
        }));
    }
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in &panels {
        for &(x, _) in p.lines.iter().flat_map(|l| &l.points) {
            (x0, x1) = (x0.min(x), x1.max(x));
        }
    }
    for p in &mut panels {
        p.x_range = x0.is_finite().then_some((x0, x1));
    }
    let mut notes: Vec<String> = sides
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{} = {}: {}; intervals {}",
                (b'A' + (i % 26) as u8) as char,
                s.label,
                s.mixture(),
                interval_words(s)
            )
        })
        .collect();
    notes.push(format!(
        "Shaded: 95 % intervals (a group's across its seeds, a run's sampling only).  {}",
        n_words(&refs, &tasks)
    ));
    Some(Figure {
        title: format!("Compare: {}", sides.iter().map(|s| s.label.as_str()).collect::<Vec<_>>().join(" vs ")),
        notes,
        cols: sides.len(),
        panels,
        panel_size: (480, 340),
    })
}

fn group_name(g: &str) -> &str {
    match g {
        "english" => "English",
        "non_latin" => "non-Latin",
        "latin" => "Latin",
        other => other,
    }
}

/// A sweep's figure: per series and task, the chosen groups' scores against the x variable
/// with their 95 % intervals as error bars.
pub fn sweep_figure(a: &SweepAnalysis, groups: &[&str], what: &str) -> Figure {
    let x_label = match &a.x_var {
        Some(x) if x == "n" => "N examples per language (n)".to_string(),
        Some(x) => x.clone(),
        None => "point".into(),
    };
    let mut tasks: Vec<String> = a.curves.iter().map(|c| c.task.clone()).collect();
    tasks.sort_by_key(|t| (task_order(t), t.clone()));
    tasks.dedup();
    let mut series: Vec<String> = a.curves.iter().map(|c| c.series.clone()).collect();
    series.sort();
    series.dedup();
    let mut panels = Vec::new();
    for s in &series {
        for t in &tasks {
            let metric = a.curves.iter().find(|c| c.task == *t).map(|c| c.metric.clone()).unwrap_or_default();
            let mut lines = Vec::new();
            for g in groups {
                let pts: Vec<&CurvePoint> =
                    a.curves.iter().filter(|c| c.task == *t && c.series == *s && c.group == *g).collect();
                if pts.is_empty() {
                    continue;
                }
                let xi = |x: &str| a.x_values.iter().position(|v| v == x).unwrap_or(0) as f64;
                lines.push(Line {
                    label: group_name(g).to_string(),
                    color: figures::group_color(g),
                    points: pts.iter().map(|c| (xi(&c.x), c.mean)).collect(),
                    err: Some(pts.iter().map(|c| c.lo.zip(c.hi)).collect()),
                    markers: true,
                    ..Line::default()
                });
            }
            if lines.is_empty() {
                continue;
            }
            let title = if s.is_empty() { t.to_uppercase() } else { format!("{}   {s}", t.to_uppercase()) };
            let mut p = Panel::new(title, x_label.clone(), metric.clone());
            p.x = XAxis::Categories(a.x_values.clone());
            p.lines = lines;
            p.y_from_zero = metric != "loss";
            panels.push(p);
        }
    }
    Figure {
        title: format!("Sweep {} ({}){what}: best held-out-loss checkpoint", a.name, a.id),
        notes: vec![
            "Error bars: 95 % intervals; where a point has several seeds the t-interval across them, else the \
             held-out sets' sampling error (interval = seeds / sampling in the CSV)."
                .into(),
        ],
        cols: tasks.len().clamp(1, 3),
        panels,
        panel_size: (480, 360),
    }
}

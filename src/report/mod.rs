//! `mixscope report`: what a runs root holds, as files a paper can use.
//!
//! - `metrics.csv`: every per-language eval result of every run and step, with the examples of
//!   that language seen by then (the paper's x-axis) and whether the step is the run's best;
//! - `runs.csv`: per run and task, the paper's aggregates at the best and the latest step;
//! - `groups.csv`: per group of runs that differ only in seed, each row's mean over the seeds
//!   with its 95 % interval over them (K, seed-to-seed sd; a run alone: its sampling interval);
//! - per sweep: `sweep-<id>.csv` (score vs the x variable per task, group and series, with
//!   95 % intervals), `sweep-<id>-stats.csv` (Spearman seen vs unseen, plateau points,
//!   oscillation, spread between seeds), figures `sweep-<id>.svg/.png` and
//!   `sweep-<id>-scripts.svg/.png`;
//! - figures `loss.svg/.png` and `run-<id>.svg/.png`; `report.json` (the sweep analyses);
//! - `index.html`, which shows all of it in a browser.

pub mod figures;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::analysis::sweep::{analyse_sweep, SweepAnalysis, GROUPS};
use crate::analysis::{aggregate, EvalTable};
use crate::bail_input;
use crate::data::lang;
use crate::runs::events::{read_all, Body, Event};
use crate::supervisor::RunStatus;
use figures::{Figure, Line, Panel, XAxis};

/// What a report wrote.
#[derive(Debug)]
pub struct Written {
    pub runs: usize,
    pub sweeps: usize,
    pub files: Vec<String>,
    /// What each sweep says, a line per task and series (for the terminal).
    pub summary: Vec<String>,
}

/// A sweep's findings in a few lines: per task and series, Spearman's rho of seen vs unseen and
/// the plateau points.
pub fn summary(a: &SweepAnalysis) -> Vec<String> {
    let mut out = vec![format!(
        "sweep {} ({}): {} runs, x = {}, plateau = gains < {}",
        a.id,
        a.name,
        a.runs.len(),
        a.x_var.as_deref().unwrap_or("-"),
        a.plateau_threshold
    )];
    for s in &a.stats {
        let pl = |g: &str| match s.plateau.get(g) {
            Some(Some(x)) => format!("{x}"),
            Some(None) => "not reached".into(),
            None => "-".into(),
        };
        let series = if s.series.is_empty() { String::new() } else { format!(" {}", s.series) };
        out.push(format!(
            "  {} ({}){series}: seen~unseen rho {} over {} runs; plateau English {}, seen {}, unseen {}",
            s.task.to_uppercase(),
            s.metric,
            s.spearman_seen_unseen.map_or("-".into(), |r| format!("{r:.2}")),
            s.pairs,
            pl("english"),
            pl("seen"),
            pl("unseen"),
        ));
    }
    out
}

/// One run's data for the report.
struct ReportRun {
    st: RunStatus,
    events: Vec<Event>,
    table: EvalTable,
    /// What a person wrote about the run (`runs::notes`).
    notes: crate::runs::notes::Notes,
}

impl ReportRun {
    fn label(&self) -> String {
        self.st.name.clone().unwrap_or_else(|| self.st.id.clone())
    }
    fn point(&self) -> String {
        self.st
            .sweep
            .as_ref()
            .map(|t| t.point.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    }
    /// The columns that say which run a CSV row is of: run, name, sweep, point.
    fn id_cells(&self) -> Vec<String> {
        vec![self.st.id.clone(), self.st.name.clone().unwrap_or_default(), self.sweep_id(), self.point()]
    }
    fn sweep_id(&self) -> String {
        self.st.sweep.as_ref().map(|t| t.id.clone()).unwrap_or_default()
    }
}

/// Find a sweep by id, unique id prefix, or name (the most recent of that name).
pub fn resolve_sweep(all: &[RunStatus], spec: &str) -> Result<String> {
    let sweeps = crate::sweep::sweeps_of(all);
    if sweeps.contains_key(spec) {
        return Ok(spec.to_string());
    }
    let pre: Vec<&String> = sweeps.keys().filter(|k| k.starts_with(spec)).collect();
    if pre.len() == 1 {
        return Ok(pre[0].clone());
    }
    let named: Vec<(&String, f64)> = sweeps
        .iter()
        .filter(|(_, (n, _))| n == spec)
        .map(|(k, (_, ids))| {
            let t = all
                .iter()
                .filter(|s| ids.contains(&s.id))
                .filter_map(|s| s.queued_at.or(s.started))
                .fold(0.0, f64::max);
            (k, t)
        })
        .collect();
    if let Some((k, _)) = named.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        return Ok((*k).clone());
    }
    if pre.len() > 1 {
        bail_input!("sweep '{spec}' is ambiguous: {}", pre.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "));
    }
    let known = sweeps.keys().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    bail_input!("no sweep '{spec}' (sweeps: {})", if known.is_empty() { "none" } else { &known })
}

/// Write the report of a runs root (or of one sweep, or of the runs and groups `specs` name)
/// into `out`.
pub fn write(root: &Path, out: &Path, sweep: Option<&str>, specs: &[String]) -> Result<Written> {
    let all = crate::supervisor::list(root)?;
    let only = sweep.map(|s| resolve_sweep(&all, s)).transpose()?;
    let mut picked: Vec<String> = Vec::new();
    for spec in specs {
        picked.extend(crate::runs::select(root, spec)?.runs.iter().map(|r| r.id()));
    }
    let statuses: Vec<RunStatus> = all
        .into_iter()
        .filter(|s| only.as_ref().is_none_or(|id| s.sweep.as_ref().is_some_and(|t| t.id == *id)))
        .filter(|s| picked.is_empty() || picked.contains(&s.id))
        .collect();
    if statuses.is_empty() {
        bail_input!("no runs in {}: nothing to report", root.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut runs = Vec::new();
    let mut notes_errors = Vec::new();
    for st in statuses {
        let (events, _, _) = read_all(&st.dir.join("events.jsonl"))?;
        let table = EvalTable::from_events(&events);
        let notes = crate::runs::notes::read(&st.dir).unwrap_or_else(|e| {
            notes_errors.push(format!("run {}: its note and tags are left out: {e:#}", st.id));
            Default::default()
        });
        runs.push(ReportRun { st, events, table, notes });
    }
    let mut files = Vec::new();
    let mut put = |name: &str, text: String| -> Result<()> {
        crate::util::write_atomic(&out.join(name), text.as_bytes())?;
        files.push(name.to_string());
        Ok(())
    };
    let pairs: Vec<(&str, &crate::config::RunConfig)> =
        runs.iter().filter_map(|r| Some((r.st.id.as_str(), r.st.config.as_ref()?))).collect();
    let groups = crate::runs::group::groups(&pairs);
    put("metrics.csv", metrics_csv(&runs))?;
    put("runs.csv", runs_csv(&runs, &groups))?;
    put("groups.csv", groups_csv(&runs, &groups))?;
    let mut sweep_ids: Vec<String> = runs.iter().map(|r| r.sweep_id()).filter(|s| !s.is_empty()).collect();
    sweep_ids.sort();
    sweep_ids.dedup();
    let mut analyses = Vec::new();
    for id in &sweep_ids {
        let a = analyse_sweep(root, id)?;
        put(&format!("sweep-{id}.csv"), sweep_csv(&a))?;
        put(&format!("sweep-{id}-stats.csv"), stats_csv(&a))?;
        analyses.push(a);
    }
    put("report.json", serde_json::to_string_pretty(&analyses)?)?;
    files.extend(loss_figure(&runs).save(out, "loss")?);
    for r in &runs {
        if let Some(f) = run_figure(r) {
            files.extend(f.save(out, &format!("run-{}", r.st.id))?);
        }
    }
    for a in &analyses {
        files.extend(sweep_figure(a, &["english", "seen", "unseen"], "").save(out, &format!("sweep-{}", a.id))?);
        files.extend(
            sweep_figure(a, &["english", "latin", "non_latin"], " — Latin vs non-Latin")
                .save(out, &format!("sweep-{}-scripts", a.id))?,
        );
    }
    let html = index_html(&runs, &analyses, &files);
    crate::util::write_atomic(&out.join("index.html"), html.as_bytes())?;
    files.push("index.html".into());
    let mut summary: Vec<String> = runs
        .iter()
        .filter(|r| r.st.config.is_none())
        .map(|r| format!("run {}: {}", r.st.id, r.st.message.as_deref().unwrap_or("damaged")))
        .collect();
    summary.extend(notes_errors);
    summary.extend(analyses.iter().flat_map(self::summary));
    Ok(Written { runs: runs.len(), sweeps: analyses.len(), files, summary })
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A number as the shortest text that reads back to the same f64 (empty for none / NaN).
fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => String::new(),
    }
}

fn row(out: &mut String, cells: &[String]) {
    out.push_str(&cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
    out.push('\n');
}

/// The column names of `metrics.csv`.
pub const METRICS_COLUMNS: [&str; 17] = [
    "run",
    "name",
    "sweep",
    "point",
    "step",
    "task",
    "lang",
    "group",
    "script",
    "metric",
    "value",
    "loss",
    "n",
    "lang_ok",
    "examples_lang",
    "tokens",
    "is_best",
];

fn metrics_csv(runs: &[ReportRun]) -> String {
    let mut out = String::new();
    row(&mut out, &METRICS_COLUMNS.map(String::from));
    for r in runs {
        // Examples and tokens seen by each step: from the last train event at or before it.
        let mut seen: BTreeMap<u64, (BTreeMap<String, u64>, u64)> = BTreeMap::new();
        for e in &r.events {
            if let Body::Train { examples, tokens, .. } = &e.body {
                seen.insert(e.step, (examples.lang.clone(), *tokens));
            }
        }
        for (step, cells) in &r.table.steps {
            let by_then = seen.range(..=*step).next_back().map(|(_, v)| v);
            for ((task, l), c) in cells {
                let script = lang::get(l).map_or("", |x| if x.is_latin() { "latin" } else { "non_latin" });
                let mut cells = r.id_cells();
                cells.extend([
                    step.to_string(),
                    task.clone(),
                    l.clone(),
                    c.group.clone(),
                    script.to_string(),
                    c.metric.clone(),
                    num(Some(c.value)),
                    num(Some(c.loss)),
                    c.n.to_string(),
                    num(c.lang_ok),
                    by_then.map(|(ex, _)| ex.get(l).copied().unwrap_or(0).to_string()).unwrap_or_default(),
                    by_then.map(|(_, t)| t.to_string()).unwrap_or_default(),
                    (r.table.best_step == Some(*step)).to_string(),
                ]);
                row(&mut out, &cells);
            }
        }
    }
    out
}

/// Per group (runs that differ only in seed; a run alone is a group of one), task, row
/// (language or average) and step (best, latest): the mean over the members with its 95 %
/// interval: over seeds (t, K − 1 degrees of freedom) when K ≥ 2, else the run's sampling
/// interval; the seed-to-seed standard deviation; the examples per member.
fn groups_csv(runs: &[ReportRun], groups: &[crate::runs::group::Group]) -> String {
    let mut out = String::new();
    row(
        &mut out,
        &[
            "group", "name", "k", "seeds", "runs", "task", "metric", "row", "at", "mean", "ci95_lo", "ci95_hi",
            "seed_sd", "n", "interval",
        ]
        .map(String::from),
    );
    for g in groups {
        let members: Vec<&EvalTable> =
            g.runs.iter().filter_map(|id| runs.iter().find(|r| r.st.id == *id)).map(|r| &r.table).collect();
        let join = |v: Vec<String>| v.join(" ");
        for r in crate::analysis::compare(&[members]) {
            for (at, value, ci, sd) in [
                ("best", r.best[0], r.best_ci[0], r.best_sd[0]),
                ("latest", r.latest[0], r.latest_ci[0], r.latest_sd[0]),
            ] {
                if value.is_none() {
                    continue;
                }
                row(
                    &mut out,
                    &[
                        g.id.clone(),
                        g.name.clone().unwrap_or_default(),
                        r.k[0].to_string(),
                        join(g.seeds.iter().map(|s| s.to_string()).collect()),
                        join(g.runs.clone()),
                        r.task.clone(),
                        r.metric.clone(),
                        r.row.clone(),
                        at.to_string(),
                        num(value),
                        num(ci.map(|c| c[0])),
                        num(ci.map(|c| c[1])),
                        num(sd),
                        r.n[0].map(|n| n.to_string()).unwrap_or_default(),
                        if r.k[0] > 1 { "seeds" } else { "sampling" }.to_string(),
                    ],
                );
            }
        }
    }
    out
}

fn runs_csv(runs: &[ReportRun], groups: &[crate::runs::group::Group]) -> String {
    let mut out = String::new();
    row(
        &mut out,
        &[
            "run",
            "name",
            "sweep",
            "point",
            "state",
            "step",
            "max_steps",
            "at",
            "at_step",
            "task",
            "metric",
            "english",
            "seen",
            "unseen",
            "gap",
            "ratio_to_english",
            "latin",
            "non_latin",
            "group",
            "group_size",
            "tags",
            "note",
        ]
        .map(String::from),
    );
    for r in runs {
        let group = groups.iter().find(|g| g.runs.contains(&r.st.id));
        let t = &r.table;
        let best = t.best_step.filter(|s| t.steps.contains_key(s));
        for (at, step) in [("best", best), ("latest", t.latest_step())] {
            let Some(step) = step else { continue };
            let cells = t.at(step).expect("a step of the table");
            for task in t.tasks() {
                let Some(metric) = cells.iter().find(|((tk, _), _)| *tk == task).map(|(_, c)| c.metric.clone()) else {
                    continue;
                };
                let a = aggregate(cells, &task, false);
                let mut cells = r.id_cells();
                cells.extend([
                    r.st.state.as_str().to_string(),
                    r.st.step.to_string(),
                    r.st.max_steps.to_string(),
                    at.to_string(),
                    step.to_string(),
                    task.clone(),
                    metric,
                    num(a.english),
                    num(a.seen),
                    num(a.unseen),
                    num(a.gap),
                    num(a.ratio_to_english),
                    num(a.latin),
                    num(a.non_latin),
                    group.map(|g| g.id.clone()).unwrap_or_default(),
                    group.map_or(1, |g| g.runs.len()).to_string(),
                    r.notes.tags.join(" "),
                    r.notes.note.clone(),
                ]);
                row(&mut out, &cells);
            }
        }
    }
    out
}

fn sweep_csv(a: &SweepAnalysis) -> String {
    let mut out = String::new();
    let x = a.x_var.clone().unwrap_or_else(|| "x".into());
    row(
        &mut out,
        &[
            "sweep",
            "task",
            "metric",
            "series",
            "group",
            x.as_str(),
            "mean",
            "ci95_lo",
            "ci95_hi",
            "k",
            "seed_sd",
            "interval",
        ]
        .map(String::from),
    );
    for c in &a.curves {
        row(
            &mut out,
            &[
                a.id.clone(),
                c.task.clone(),
                c.metric.clone(),
                c.series.clone(),
                c.group.clone(),
                c.x.clone(),
                num(Some(c.mean)),
                num(c.lo),
                num(c.hi),
                c.runs.to_string(),
                num(c.run_sd),
                c.interval.to_string(),
            ],
        );
    }
    out
}

fn stats_csv(a: &SweepAnalysis) -> String {
    let mut out = String::new();
    let mut head: Vec<String> =
        ["sweep", "task", "metric", "series", "multi_task", "spearman_seen_unseen", "pairs", "plateau_threshold"]
            .map(String::from)
            .to_vec();
    for g in GROUPS {
        head.push(format!("plateau_{g}"));
    }
    for g in GROUPS {
        head.push(format!("oscillation_{g}"));
    }
    for g in GROUPS {
        head.push(format!("run_sd_{g}"));
    }
    row(&mut out, &head);
    for s in &a.stats {
        let mut cells = vec![
            a.id.clone(),
            s.task.clone(),
            s.metric.clone(),
            s.series.clone(),
            s.multi_task.to_string(),
            num(s.spearman_seen_unseen),
            s.pairs.to_string(),
            num(Some(a.plateau_threshold)),
        ];
        for g in GROUPS {
            cells.push(match s.plateau.get(g) {
                Some(Some(x)) => num(Some(*x)),
                Some(None) => "not reached".into(),
                None => String::new(),
            });
        }
        for g in GROUPS {
            cells.push(num(s.oscillation.get(g).copied().flatten()));
        }
        for g in GROUPS {
            cells.push(num(s.mean_run_sd.get(g).copied().flatten()));
        }
        row(&mut out, &cells);
    }
    out
}

/// At most this many points per line in a figure (evenly picked; the ends kept).
const MAX_POINTS: usize = 1500;

fn thin(v: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if v.len() <= MAX_POINTS {
        return v;
    }
    let k = v.len() as f64 / MAX_POINTS as f64;
    let mut out: Vec<(f64, f64)> = (0..MAX_POINTS).map(|i| v[(i as f64 * k) as usize]).collect();
    out.push(*v.last().expect("non-empty"));
    out
}

fn loss_figure(runs: &[ReportRun]) -> Figure {
    let mut train = Vec::new();
    let mut held = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let color = figures::run_color(i);
        let label = if i < 12 { r.label() } else { String::new() };
        // Debiased exponential moving average (as the TUI draws it).
        let (mut ema, mut w) = (0.0, 0.0);
        let beta = 0.9;
        let mut pts = Vec::new();
        for e in &r.events {
            if let Body::Train { loss, .. } = e.body {
                if loss.is_finite() {
                    ema = beta * ema + (1.0 - beta) * loss;
                    w = beta * w + (1.0 - beta);
                    pts.push((e.step as f64, ema / w));
                }
            }
        }
        if !pts.is_empty() {
            train.push(Line { label: label.clone(), color, points: thin(pts), err: None, markers: false });
        }
        let ev: Vec<(f64, f64)> = r
            .table
            .steps
            .iter()
            .filter_map(|(s, cells)| {
                let l: Vec<f64> = cells.values().map(|c| c.loss).filter(|x| x.is_finite()).collect();
                crate::analysis::mean(&l).map(|m| (*s as f64, m))
            })
            .collect();
        if !ev.is_empty() {
            held.push(Line { label, color, points: ev, err: None, markers: true });
        }
    }
    let panel = |title: &str, lines| Panel {
        title: title.into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        x: XAxis::Numeric,
        lines,
        y_from_zero: false,
    };
    Figure {
        title: "Loss".into(),
        panels: vec![
            panel("train loss (EMA 0.9, debiased)", train),
            panel("held-out loss (mean over tasks and languages)", held),
        ],
        cols: 2,
        panel_size: (640, 420),
    }
}

fn run_figure(r: &ReportRun) -> Option<Figure> {
    let tasks = r.table.tasks();
    if tasks.is_empty() {
        return None;
    }
    let mut panels = Vec::new();
    for task in &tasks {
        let mut langs: Vec<(String, String)> = r
            .table
            .steps
            .values()
            .flat_map(|m| m.iter().filter(|((t, _), _)| t == task).map(|((_, l), c)| (l.clone(), c.group.clone())))
            .collect();
        langs.sort_by_key(|(l, _)| lang::order(l));
        langs.dedup_by(|a, b| a.0 == b.0);
        let metric = r
            .table
            .steps
            .values()
            .flat_map(|m| m.iter().filter(|((t, _), _)| t == task).map(|(_, c)| c.metric.clone()))
            .next()
            .unwrap_or_default();
        let mut lines = Vec::new();
        for (l, group) in &langs {
            let members: Vec<&String> = langs.iter().filter(|(_, g)| g == group).map(|(x, _)| x).collect();
            let i = members.iter().position(|x| *x == l).unwrap_or(0);
            let points: Vec<(f64, f64)> = r
                .table
                .steps
                .iter()
                .filter_map(|(s, m)| m.get(&(task.clone(), l.clone())).map(|c| (*s as f64, c.value)))
                .collect();
            lines.push(Line {
                label: format!("{l} ({group})"),
                color: figures::shade(figures::group_color(group), i, members.len()),
                points,
                err: None,
                markers: true,
            });
        }
        panels.push(Panel {
            title: format!("{} — {metric}", task.to_uppercase()),
            x_label: "step".into(),
            y_label: metric.clone(),
            x: XAxis::Numeric,
            lines,
            y_from_zero: metric != "loss",
        });
    }
    Some(Figure {
        title: format!("{}   {}", r.label(), r.st.mixture),
        cols: panels.len().min(3),
        panels,
        panel_size: (520, 380),
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

fn sweep_figure(a: &SweepAnalysis, groups: &[&str], what: &str) -> Figure {
    let x_label = match &a.x_var {
        Some(x) if x == "n" => "N examples per language (n)".to_string(),
        Some(x) => x.clone(),
        None => "point".into(),
    };
    let mut tasks: Vec<String> = a.curves.iter().map(|c| c.task.clone()).collect();
    tasks.sort_by_key(|t| (crate::analysis::task_order(t), t.clone()));
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
                let pts: Vec<&crate::analysis::sweep::CurvePoint> =
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
                });
            }
            if lines.is_empty() {
                continue;
            }
            let title = if s.is_empty() { t.to_uppercase() } else { format!("{}   {s}", t.to_uppercase()) };
            panels.push(Panel {
                title,
                x_label: x_label.clone(),
                y_label: metric.clone(),
                x: XAxis::Categories(a.x_values.clone()),
                lines,
                y_from_zero: metric != "loss",
            });
        }
    }
    Figure {
        title: format!("Sweep {} ({}){what}: best held-out-loss checkpoint, 95% intervals", a.name, a.id),
        cols: tasks.len().clamp(1, 3),
        panels,
        panel_size: (480, 360),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn cell(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map_or("–".into(), |x| format!("{x:.3}"))
}

/// A run's tags and note under its name in the runs table.
fn notes_html(n: &crate::runs::notes::Notes) -> String {
    let mut h = String::new();
    if !n.tags.is_empty() {
        let tags: Vec<String> = n.tags.iter().map(|t| format!("<code>{}</code>", esc(t))).collect();
        let _ = write!(h, "<br><small>{}</small>", tags.join(" "));
    }
    if !n.note.trim().is_empty() {
        let _ = write!(h, "<br><small><em>{}</em></small>", esc(n.note.trim()).replace('\n', "<br>"));
    }
    h
}

fn index_html(runs: &[ReportRun], analyses: &[SweepAnalysis], files: &[String]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mixscope report</title>\n<style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}}\
         table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}\
         th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}img{{max-width:100%;border:1px solid #eee}}\
         code{{background:#f4f4f4;padding:0 .2em}}</style></head><body>\n<h1>mixscope report</h1>\n<p>{} runs, {} sweeps. \
         Data: <a href=\"metrics.csv\">metrics.csv</a> (every per-language result per run and step), \
         <a href=\"runs.csv\">runs.csv</a> (aggregates at the best and latest step), \
         <a href=\"groups.csv\">groups.csv</a> (per group of seeds: means with intervals over seeds, K, seed sd), \
         <a href=\"report.json\">report.json</a>.</p>\n",
        runs.len(),
        analyses.len()
    );
    for a in analyses {
        let _ = write!(
            h,
            "<h2>Sweep {} <code>{}</code></h2>\n<p>{} runs; x = <code>{}</code>; each run read at its best held-out-loss \
             checkpoint. Error bars: 95 % intervals; where a point has several seeds, the t-interval over them (it \
             covers the training's own randomness: <code>interval = seeds</code> in the CSV), else the held-out sets' \
             sampling error (binomial for accuracy and pass rate, bootstrap for ROUGE-L; <code>interval = sampling</code>). \
             Tables: \
             <a href=\"sweep-{id}.csv\">sweep-{id}.csv</a>, <a href=\"sweep-{id}-stats.csv\">sweep-{id}-stats.csv</a>.</p>\n\
             <img src=\"sweep-{id}.svg\" alt=\"sweep figure\"><br><img src=\"sweep-{id}-scripts.svg\" alt=\"Latin vs non-Latin\">\n",
            esc(&a.name),
            esc(&a.id),
            a.runs.len(),
            esc(a.x_var.as_deref().unwrap_or("-")),
            id = esc(&a.id)
        );
        h.push_str(
            "<table><tr><th>task</th><th>series</th><th>Spearman seen~unseen</th><th>pairs</th>\
             <th>plateau English</th><th>plateau seen</th><th>plateau unseen</th><th>oscillation seen</th>\
             <th>oscillation unseen</th><th>seed sd seen</th></tr>\n",
        );
        for s in &a.stats {
            let pl = |g: &str| match s.plateau.get(g) {
                Some(Some(x)) => format!("{x}"),
                Some(None) => "not reached".into(),
                None => "–".into(),
            };
            let _ = writeln!(
                h,
                "<tr><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.task.to_uppercase()),
                esc(&s.metric),
                esc(if s.series.is_empty() { "–" } else { &s.series }),
                cell(s.spearman_seen_unseen),
                s.pairs,
                pl("english"),
                pl("seen"),
                pl("unseen"),
                cell(s.oscillation.get("seen").copied().flatten()),
                cell(s.oscillation.get("unseen").copied().flatten()),
                cell(s.mean_run_sd.get("seen").copied().flatten()),
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Loss</h2>\n<img src=\"loss.svg\" alt=\"loss curves\">\n<h2>Runs</h2>\n<table><tr><th>run</th><th>state</th><th>step</th><th>best step</th><th>mixture</th><th>task</th><th>English</th><th>seen</th><th>unseen</th><th>ratio to English</th></tr>\n");
    for r in runs {
        let t = &r.table;
        let step = t.best_step.filter(|s| t.steps.contains_key(s)).or(t.latest_step());
        let cells = step.and_then(|s| t.at(s));
        let tasks = t.tasks();
        if tasks.is_empty() || cells.is_none() {
            let _ = writeln!(
                h,
                "<tr><td>{}{}</td><td>{}</td><td>{}/{}</td><td>–</td><td>{}</td><td colspan=5>no eval yet</td></tr>",
                esc(&r.label()),
                notes_html(&r.notes),
                r.st.state.as_str(),
                r.st.step,
                r.st.max_steps,
                esc(&r.st.mixture)
            );
            continue;
        }
        for (i, task) in tasks.iter().enumerate() {
            let a = aggregate(cells.expect("checked"), task, false);
            let head = if i == 0 {
                let fig = format!("run-{}.svg", r.st.id);
                let name = if files.contains(&fig) {
                    format!("<a href=\"{}\">{}</a>", esc(&fig), esc(&r.label()))
                } else {
                    esc(&r.label())
                };
                format!(
                    "<td rowspan={n}>{name}{}</td><td rowspan={n}>{}</td><td rowspan={n}>{}/{}</td><td rowspan={n}>{}</td><td rowspan={n}>{}</td>",
                    notes_html(&r.notes),
                    r.st.state.as_str(),
                    r.st.step,
                    r.st.max_steps,
                    step.map_or("–".into(), |s| s.to_string()),
                    esc(&r.st.mixture),
                    n = tasks.len()
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                h,
                "<tr>{head}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&task.to_uppercase()),
                cell(a.english),
                cell(a.seen),
                cell(a.unseen),
                cell(a.ratio_to_english)
            );
        }
    }
    h.push_str("</table>\n");
    // Runs whose run.toml cannot be read: their events are in the tables above; why they are
    // damaged is said here.
    let damaged: Vec<&ReportRun> = runs.iter().filter(|r| r.st.config.is_none()).collect();
    if !damaged.is_empty() {
        h.push_str("<h2>Damaged runs</h2>\n<ul>\n");
        for r in damaged {
            let _ = writeln!(h, "<li>{}: {}</li>", esc(&r.st.id), esc(r.st.message.as_deref().unwrap_or("damaged")));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

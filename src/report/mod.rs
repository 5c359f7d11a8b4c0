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
//! - figures (`plots.rs` says what they show, `figures.rs` draws them): `loss.svg/.png` (every
//!   group of seeds and run alone over their own steps; a parent drawn there as context only
//!   also gets `loss-<id>.svg/.png` of its own), `run-<id>.svg/.png` (a run's languages with
//!   their sampling intervals), `group-<id>.svg/.png` (a group's means with their across-seed
//!   intervals), `compare.svg/.png` when two or more runs or groups are named;
//!   `report.json` (the sweep analyses);
//! - `index.html`, which shows all of it in a browser (`html.rs`).
//!
//! `export.rs` writes one of these figures for the TUI's selection (its export key).

mod csv;
pub mod export;
pub mod figures;
mod html;
pub mod plots;

use std::path::Path;

use anyhow::{Context, Result};

use crate::analysis::sweep::{analyse_sweep, SweepAnalysis};
use crate::analysis::EvalTable;
use crate::bail_input;
use crate::runs::events::{read_all, Event};
use crate::runs::group::Group;
use crate::supervisor::RunStatus;
use csv::{groups_csv, metrics_csv, runs_csv, stats_csv, sweep_csv};
use plots::{RunCurves, Side};

pub use csv::METRICS_COLUMNS;

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
    curves: RunCurves,
    /// What a person wrote about the run (`runs::notes`).
    notes: crate::runs::notes::Notes,
}

impl ReportRun {
    fn new(st: RunStatus, events: Vec<Event>, notes: crate::runs::notes::Notes) -> ReportRun {
        let table = EvalTable::from_events(&events);
        let name = st.name.clone().unwrap_or_else(|| st.id.clone());
        let lineage = st.parent.as_deref().zip(st.fork_step);
        let curves = RunCurves::new(&st.id, &name, &st.mixture, lineage, &events, table);
        ReportRun { st, events, curves, notes }
    }
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

/// A side of the report: a group of seeds (its members) or a run alone, and the stem of its
/// languages figure.
struct ReportSide {
    label: String,
    /// The members' places in the report's runs.
    runs: Vec<usize>,
    figure: Option<String>,
}

impl ReportSide {
    fn side<'a>(&self, runs: &'a [ReportRun]) -> Side<'a> {
        Side { label: self.label.clone(), runs: self.runs.iter().map(|&i| &runs[i].curves).collect() }
    }
}

/// The report's sides: each group of two runs or more, then each run alone, in the order of
/// their first runs.
fn sides_of(runs: &[ReportRun], groups: &[Group]) -> Vec<ReportSide> {
    let at = |id: &str| runs.iter().position(|r| r.st.id == id);
    let mut sides: Vec<ReportSide> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        if sides.iter().any(|s| s.runs.contains(&i)) {
            continue;
        }
        match groups.iter().find(|g| g.runs.len() > 1 && g.runs.contains(&r.st.id)) {
            Some(g) => sides.push(ReportSide {
                label: g.label(),
                runs: g.runs.iter().filter_map(|id| at(id)).collect(),
                figure: Some(format!("group-{}", g.id.trim_start_matches(crate::runs::group::ID_PREFIX))),
            }),
            None => {
                sides.push(ReportSide { label: r.label(), runs: vec![i], figure: Some(format!("run-{}", r.st.id)) })
            }
        }
    }
    sides
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
    // Every run's config, so that group ids are resolved against the whole root (as `ls` does).
    let context: Vec<(String, crate::config::RunConfig)> =
        all.iter().filter_map(|s| Some((s.id.clone(), s.config.clone()?))).collect();
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
        let notes = crate::runs::notes::read(&st.dir).unwrap_or_else(|e| {
            notes_errors.push(format!("run {}: its note and tags are left out: {e:#}", st.id));
            Default::default()
        });
        runs.push(ReportRun::new(st, events, notes));
    }
    let mut files = Vec::new();
    let mut put = |name: &str, text: String| -> Result<()> {
        crate::util::write_atomic(&out.join(name), text.as_bytes())?;
        files.push(name.to_string());
        Ok(())
    };
    let pairs: Vec<(&str, &crate::config::RunConfig)> =
        runs.iter().filter_map(|r| Some((r.st.id.as_str(), r.st.config.as_ref()?))).collect();
    let context: Vec<(&str, &crate::config::RunConfig)> = context.iter().map(|(id, c)| (id.as_str(), c)).collect();
    let groups = crate::runs::group::groups_among(&pairs, &context);
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
    let sides = sides_of(&runs, &groups);
    let all: Vec<Side> = sides.iter().map(|s| s.side(&runs)).collect();
    // A parent is found among the report's runs, else read from the root.
    let lookup = |id: &str| -> Option<RunCurves> {
        runs.iter().find(|r| r.st.id == id).map(|r| r.curves.clone()).or_else(|| export::read_run(root, id).ok())
    };
    let loss = plots::loss_figure(&all, &lookup);
    files.extend(loss.save(out, "loss")?);
    // The sides the loss figure shows as context only (parents whose steps lie before their
    // children's): each gets a loss figure of its own steps.
    let mut context = Vec::new();
    for i in plots::loss_context_only(&all) {
        let stem = format!("loss-{}", sides[i].figure.as_deref().unwrap_or_default());
        files.extend(plots::loss_figure(std::slice::from_ref(&all[i]), &lookup).save(out, &stem)?);
        context.push((stem, all[i].label.clone()));
    }
    for (s, rs) in all.iter().zip(&sides) {
        let label_of = |id: &str| runs.iter().find(|r| r.st.id == id).map_or(id.to_string(), |r| r.label());
        if let (Some(f), Some(stem)) = (plots::langs_figure(s, &s.lineage(&label_of)), &rs.figure) {
            files.extend(f.save(out, stem)?);
        }
    }
    // The members of a group: each one's own languages figure too.
    for s in sides.iter().filter(|s| s.runs.len() > 1) {
        for &i in &s.runs {
            let r = &runs[i];
            let one = Side { label: r.label(), runs: vec![&r.curves] };
            if let Some(f) = plots::langs_figure(&one, &[]) {
                files.extend(f.save(out, &format!("run-{}", r.st.id))?);
            }
        }
    }
    for a in &analyses {
        let seen = plots::sweep_figure(a, &["english", "seen", "unseen"], "");
        files.extend(seen.save(out, &format!("sweep-{}", a.id))?);
        let scripts = plots::sweep_figure(a, &["english", "latin", "non_latin"], " — Latin vs non-Latin");
        files.extend(scripts.save(out, &format!("sweep-{}-scripts", a.id))?);
    }
    // Two or more runs or groups named: their comparison.
    if specs.len() >= 2 {
        let mut named = Vec::new();
        for spec in specs {
            let sel = crate::runs::select(root, spec)?;
            let members: Vec<&RunCurves> =
                sel.runs.iter().filter_map(|d| runs.iter().find(|r| r.st.id == d.id())).map(|r| &r.curves).collect();
            let label = if members.len() == 1 { members[0].label.clone() } else { sel.label.clone() };
            named.push(Side { label, runs: members });
        }
        if let Some(f) = plots::compare_figure(&named) {
            files.extend(f.save(out, "compare")?);
        }
    }
    let html = html::index_html(&runs, &sides, &analyses, &files, &context);
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

//! The report's tables: `metrics.csv`, `runs.csv`, `groups.csv`, and per sweep
//! `sweep-<id>.csv` and `sweep-<id>-stats.csv` (see the module above for what each holds).

use std::collections::BTreeMap;

use crate::analysis::sweep::{SweepAnalysis, GROUPS};
use crate::analysis::{aggregate, EvalTable};
use crate::data::lang;
use crate::runs::events::Body;

use super::ReportRun;

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A number as the shortest text that reads back to the same f64 (empty for none / NaN).
pub(super) fn num(v: Option<f64>) -> String {
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

pub(super) fn metrics_csv(runs: &[ReportRun]) -> String {
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
        for (step, cells) in &r.curves.table.steps {
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
                    (r.curves.table.best_step == Some(*step)).to_string(),
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
pub(super) fn groups_csv(runs: &[ReportRun], groups: &[crate::runs::group::Group]) -> String {
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
            g.runs.iter().filter_map(|id| runs.iter().find(|r| r.st.id == *id)).map(|r| &r.curves.table).collect();
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

pub(super) fn runs_csv(runs: &[ReportRun], groups: &[crate::runs::group::Group]) -> String {
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
        let t = &r.curves.table;
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

pub(super) fn sweep_csv(a: &SweepAnalysis) -> String {
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

pub(super) fn stats_csv(a: &SweepAnalysis) -> String {
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

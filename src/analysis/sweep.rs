//! A sweep read as the paper reads it: each run at its best held-out-loss checkpoint; per task
//! and language group, the score against the x variable (N examples per language) with 95 %
//! error bars; Spearman's correlation of seen vs unseen averages across the sweep's runs; the
//! plateau point of each curve; how much curves go back and forth (and how far runs of the same
//! point differ).

use std::collections::BTreeMap;

use serde::Serialize;

use super::stats;
use super::{task_order, Cell, EvalTable};
use crate::data::lang;
use crate::runs::events::State;

/// The groups a sweep figure draws, in order.
pub const GROUPS: [&str; 5] = ["english", "seen", "unseen", "latin", "non_latin"];

/// One run of a sweep, read at the step the analysis uses.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRun {
    pub id: String,
    pub name: Option<String>,
    pub state: State,
    pub point: BTreeMap<String, String>,
    /// The step read: the best held-out-loss checkpoint with eval results, else the latest eval.
    pub step: Option<u64>,
    pub best: bool,
    /// task → group → (mean score, its sampling variance)
    #[serde(skip)]
    pub groups: BTreeMap<String, BTreeMap<&'static str, (f64, Option<f64>)>>,
    #[serde(skip)]
    pub metrics: BTreeMap<String, String>,
}

/// One point of a sweep curve: a task, a group, a series (the grid variables other than x and
/// seed), an x value; the mean over the runs there and its 95 % interval.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    pub task: String,
    pub metric: String,
    pub group: String,
    pub series: String,
    pub x: String,
    pub x_num: Option<f64>,
    pub mean: f64,
    /// Half-width of the 95 % interval: with two or more runs (seeds) at the point, the
    /// t-interval over their values (`stats::seed_mean`: it covers the training's own
    /// randomness); with one, the held-out sets' sampling error (binomial for pass/fail
    /// metrics, bootstrap for graded ones). `None` when unknown (a loss of one run).
    pub ci95: Option<f64>,
    /// The interval's ends, kept within the metric's range (scores in [0, 1]).
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    /// Runs (seeds) at this point: K.
    pub runs: usize,
    /// Standard deviation between the runs at this point (seeds), with two or more.
    pub run_sd: Option<f64>,
    /// What the interval covers: `seeds` (K ≥ 2) or `sampling` (one run).
    pub interval: &'static str,
}

/// Per task and series: what the sweep says about transfer.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesStats {
    pub task: String,
    pub metric: String,
    pub series: String,
    /// Whether the runs of this series train on more than one task.
    pub multi_task: bool,
    /// Spearman's rho of the seen vs the unseen average over the series' runs.
    pub spearman_seen_unseen: Option<f64>,
    pub pairs: usize,
    /// group → plateau x (`None`: still gaining at the grid's end).
    pub plateau: BTreeMap<String, Option<f64>>,
    /// group → total variation minus net change of the curve.
    pub oscillation: BTreeMap<String, Option<f64>>,
    /// group → mean standard deviation between runs of the same point.
    pub mean_run_sd: BTreeMap<String, Option<f64>>,
}

/// The analysis of one sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepAnalysis {
    pub id: String,
    pub name: String,
    pub x_var: Option<String>,
    pub plateau_threshold: f64,
    pub runs: Vec<SweepRun>,
    pub curves: Vec<CurvePoint>,
    pub stats: Vec<SeriesStats>,
    /// x values in grid order (the figure's categories).
    pub x_values: Vec<String>,
}

/// Whether larger is better for a metric (not for a loss).
pub fn higher_is_better(metric: &str) -> bool {
    metric != "loss"
}

fn is_latin(code: &str) -> bool {
    lang::get(code).is_some_and(|l| l.is_latin())
}

/// Group means and variances of one task's cells: English, seen, unseen (the run's own groups),
/// Latin and non-Latin (non-English).
fn group_scores(
    cells: &BTreeMap<(String, String), Cell>,
    task: &str,
    seed: u64,
) -> BTreeMap<&'static str, (f64, Option<f64>)> {
    let mut members: BTreeMap<&'static str, Vec<(f64, Option<f64>)>> = BTreeMap::new();
    for ((t, l), c) in cells {
        if t != task || !c.value.is_finite() {
            continue;
        }
        let var = stats::score_var(
            &c.metric,
            c.value,
            c.n,
            c.scores.as_deref(),
            seed ^ l.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)),
        );
        let mut put = |g: &'static str| members.entry(g).or_default().push((c.value, var));
        if l == "en" {
            put("english");
            continue;
        }
        match c.group.as_str() {
            "seen" => put("seen"),
            "unseen" => put("unseen"),
            _ => {}
        }
        put(if is_latin(l) { "latin" } else { "non_latin" });
    }
    members
        .into_iter()
        .map(|(g, v)| {
            let k = v.len() as f64;
            let mean = v.iter().map(|x| x.0).sum::<f64>() / k;
            // The mean of independent estimates: the variances add, over k².
            let var = v.iter().map(|x| x.1).sum::<Option<f64>>().map(|s| s / (k * k));
            (g, (mean, var))
        })
        .collect()
}

/// Read one run for a sweep.
pub fn read_run(
    id: &str,
    name: Option<String>,
    state: State,
    point: BTreeMap<String, String>,
    table: &EvalTable,
) -> SweepRun {
    let best = table.best_step.filter(|s| table.steps.contains_key(s));
    let step = best.or(table.latest_step());
    let mut groups = BTreeMap::new();
    let mut metrics = BTreeMap::new();
    if let Some(cells) = step.and_then(|s| table.at(s)) {
        for task in table.tasks() {
            if let Some(c) = cells.iter().find(|((t, _), _)| *t == task).map(|(_, c)| c) {
                metrics.insert(task.clone(), c.metric.clone());
            }
            let g = group_scores(cells, &task, 0x5eed);
            if !g.is_empty() {
                groups.insert(task, g);
            }
        }
    }
    SweepRun { id: id.to_string(), name, state, point, step, best: best.is_some(), groups, metrics }
}

/// Analyse a sweep's runs. `grid` gives the variables in order with their values (for the x
/// categories); `x_var` the x-axis variable.
pub fn analyse(
    id: &str,
    name: &str,
    grid: &[(String, Vec<String>)],
    x_var: Option<&str>,
    plateau_threshold: f64,
    runs: Vec<SweepRun>,
) -> SweepAnalysis {
    let x_var = x_var.map(str::to_string).or_else(|| grid.first().map(|(k, _)| k.clone()));
    let x_of = |r: &SweepRun| x_var.as_ref().and_then(|x| r.point.get(x)).cloned().unwrap_or_default();
    let series_of = |r: &SweepRun| {
        r.point
            .iter()
            .filter(|(k, _)| Some(*k) != x_var.as_ref() && k.as_str() != "seed")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut x_values: Vec<String> =
        grid.iter().find(|(k, _)| Some(k) == x_var.as_ref()).map(|(_, v)| v.clone()).unwrap_or_default();
    for r in &runs {
        let x = x_of(r);
        if !x_values.contains(&x) {
            x_values.push(x);
        }
    }
    // Runs in grid order: by x, then the other variables.
    let mut runs = runs;
    runs.sort_by(|a, b| {
        let xi = |r: &SweepRun| x_values.iter().position(|v| *v == x_of(r)).unwrap_or(usize::MAX);
        xi(a).cmp(&xi(b)).then_with(|| a.point.cmp(&b.point)).then_with(|| a.id.cmp(&b.id))
    });
    let mut tasks: Vec<String> = runs.iter().flat_map(|r| r.groups.keys().cloned()).collect();
    tasks.sort_by_key(|t| (task_order(t), t.clone()));
    tasks.dedup();
    let mut series: Vec<String> = runs.iter().map(series_of).collect();
    series.sort();
    series.dedup();

    let mut curves = Vec::new();
    let mut all_stats = Vec::new();
    for task in &tasks {
        let metric = runs.iter().find_map(|r| r.metrics.get(task)).cloned().unwrap_or_default();
        for s in &series {
            let members: Vec<&SweepRun> =
                runs.iter().filter(|r| series_of(r) == *s && r.groups.contains_key(task)).collect();
            if members.is_empty() {
                continue;
            }
            let mut st = SeriesStats {
                task: task.clone(),
                metric: metric.clone(),
                series: s.clone(),
                multi_task: members.iter().any(|r| r.point.get("tasks").is_some_and(|t| t.contains('+'))),
                spearman_seen_unseen: None,
                pairs: 0,
                plateau: BTreeMap::new(),
                oscillation: BTreeMap::new(),
                mean_run_sd: BTreeMap::new(),
            };
            let pairs: Vec<(f64, f64)> = members
                .iter()
                .filter_map(|r| {
                    let g = &r.groups[task];
                    Some((g.get("seen")?.0, g.get("unseen")?.0))
                })
                .collect();
            st.pairs = pairs.len();
            st.spearman_seen_unseen = stats::spearman(&pairs);
            for group in GROUPS {
                let mut curve: Vec<(f64, f64)> = Vec::new();
                let mut sds: Vec<f64> = Vec::new();
                for (xi, x) in x_values.iter().enumerate() {
                    let at: Vec<(f64, Option<f64>)> = members
                        .iter()
                        .filter(|r| x_of(r) == *x)
                        .filter_map(|r| r.groups[task].get(group).copied())
                        .collect();
                    if at.is_empty() {
                        continue;
                    }
                    let k = at.len() as f64;
                    let values: Vec<f64> = at.iter().map(|a| a.0).collect();
                    let mean = values.iter().sum::<f64>() / k;
                    let run_sd = stats::sd(&values);
                    if let Some(d) = run_sd {
                        sds.push(d);
                    }
                    let x_num = x.parse::<f64>().ok();
                    // Several seeds: the t-interval over them (each run's sampling variance
                    // stands in when they agree exactly); one run: its sampling interval.
                    let floor = super::mean(&at.iter().filter_map(|a| a.1).collect::<Vec<_>>()).unwrap_or(0.0);
                    let ci95 = match stats::seed_mean(&values, floor) {
                        Some(e) => Some(e.hi - e.value),
                        None => at[0].1.map(|v| stats::Z95 * v.sqrt()),
                    };
                    let (lo, hi) = match ci95 {
                        Some(h) if higher_is_better(&metric) => {
                            (Some((mean - h).max(0.0)), Some((mean + h).min(1.0f64.max(mean))))
                        }
                        Some(h) => (Some(mean - h), Some(mean + h)),
                        None => (None, None),
                    };
                    curve.push((x_num.unwrap_or(xi as f64), mean));
                    curves.push(CurvePoint {
                        task: task.clone(),
                        metric: metric.clone(),
                        group: group.to_string(),
                        series: s.clone(),
                        x: x.clone(),
                        x_num,
                        mean,
                        ci95,
                        lo,
                        hi,
                        runs: at.len(),
                        run_sd,
                        interval: if at.len() > 1 { "seeds" } else { "sampling" },
                    });
                }
                if curve.is_empty() {
                    continue;
                }
                st.plateau
                    .insert(group.to_string(), stats::plateau(&curve, plateau_threshold, higher_is_better(&metric)));
                st.oscillation
                    .insert(group.to_string(), stats::oscillation(&curve.iter().map(|c| c.1).collect::<Vec<_>>()));
                st.mean_run_sd.insert(group.to_string(), super::mean(&sds));
            }
            all_stats.push(st);
        }
    }
    SweepAnalysis {
        id: id.to_string(),
        name: name.to_string(),
        x_var,
        plateau_threshold,
        runs,
        curves,
        stats: all_stats,
        x_values,
    }
}

/// Analyse a sweep of a runs root by id: its runs from their `[sweep]` tags, the grid and
/// options from its record (or from the tags when the record is missing).
pub fn analyse_sweep(root: &std::path::Path, id: &str) -> anyhow::Result<SweepAnalysis> {
    let all = crate::runs::summary::list(root)?;
    let members: Vec<&crate::runs::summary::Summary> =
        all.iter().filter(|s| s.sweep.as_ref().is_some_and(|t| t.id == id)).collect();
    let record = crate::sweep::read_record(root, id);
    let name = record
        .as_ref()
        .map(|r| r.name.clone())
        .or_else(|| members.first().and_then(|s| s.sweep.as_ref()).map(|t| t.name.clone()))
        .unwrap_or_else(|| id.to_string());
    let (grid, x_var, plateau) = match &record {
        Some(r) => (
            r.spec.grid.iter().map(|(k, v)| (k.clone(), v.iter().map(|g| g.text.clone()).collect())).collect(),
            r.spec.x_var(),
            r.spec.analysis.plateau,
        ),
        None => {
            let mut grid: Vec<(String, Vec<String>)> = Vec::new();
            for s in &members {
                for (k, v) in &s.sweep.as_ref().expect("filtered").point {
                    match grid.iter_mut().find(|(g, _)| g == k) {
                        Some((_, vals)) if !vals.contains(v) => vals.push(v.clone()),
                        Some(_) => {}
                        None => grid.push((k.clone(), vec![v.clone()])),
                    }
                }
            }
            let x = grid.iter().find(|(_, v)| v.iter().all(|x| x.parse::<f64>().is_ok())).map(|(k, _)| k.clone());
            (grid, x, crate::sweep::AnalysisOptions::default().plateau)
        }
    };
    let mut runs = Vec::new();
    for s in members {
        let (events, _, _) = crate::runs::events::read_all(&s.dir.join("events.jsonl"))?;
        let table = EvalTable::from_events(&events);
        let point = s.sweep.as_ref().map(|t| t.point.clone()).unwrap_or_default();
        runs.push(read_run(&s.id, s.name.clone(), s.state, point, &table));
    }
    // Numeric x values in numeric order.
    let mut grid = grid;
    if let Some(x) = &x_var {
        if let Some((_, vals)) = grid.iter_mut().find(|(k, _)| k == x) {
            if vals.iter().all(|v| v.parse::<f64>().is_ok()) {
                vals.sort_by(|a, b| a.parse::<f64>().unwrap_or(0.0).total_cmp(&b.parse::<f64>().unwrap_or(0.0)));
            }
        }
    }
    Ok(analyse(id, &name, &grid, x_var.as_deref(), plateau, runs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::events::{Body, Event};

    fn run(n: &str, seed: &str, vals: &[(&str, &str, f64)]) -> SweepRun {
        let evs: Vec<Event> = vals
            .iter()
            .map(|(l, g, v)| {
                Event::new(
                    10,
                    Body::Eval {
                        task: "mr".into(),
                        lang: l.to_string(),
                        group: g.to_string(),
                        loss: 1.0,
                        metric: "accuracy".into(),
                        value: *v,
                        n: 100,
                        lang_ok: None,
                        scores: None,
                        ci: None,
                    },
                )
            })
            .collect();
        let point = [("n".to_string(), n.to_string()), ("seed".to_string(), seed.to_string())].into();
        read_run(&format!("r{n}-{seed}"), None, State::Finished, point, &EvalTable::from_events(&evs))
    }

    #[test]
    fn curves_average_seeds_with_error_bars_and_stats() {
        let runs = vec![
            run("0", "0", &[("en", "anchor", 0.8), ("es", "seen", 0.2), ("ko", "unseen", 0.1)]),
            run("0", "1", &[("en", "anchor", 0.8), ("es", "seen", 0.4), ("ko", "unseen", 0.1)]),
            run("100", "0", &[("en", "anchor", 0.8), ("es", "seen", 0.6), ("ko", "unseen", 0.3)]),
            run("400", "0", &[("en", "anchor", 0.8), ("es", "seen", 0.7), ("ko", "unseen", 0.35)]),
        ];
        let grid = vec![("n".to_string(), vec!["0".into(), "100".into(), "400".into()]), ("seed".into(), vec![])];
        let a = analyse("s", "s", &grid, Some("n"), 0.15, runs);
        let seen: Vec<&CurvePoint> = a.curves.iter().filter(|c| c.group == "seen").collect();
        assert_eq!(seen.len(), 3);
        assert!((seen[0].mean - 0.3).abs() < 1e-12, "two seeds averaged");
        assert_eq!(seen[0].runs, 2);
        assert!((seen[0].run_sd.unwrap() - 0.02f64.sqrt()).abs() < 1e-12);
        // Two seeds: the t-interval over them (1 degree of freedom), not their sampling error.
        let want = stats::t_quantile(0.975, 1.0) * 0.02f64.sqrt() / 2f64.sqrt();
        assert!((seen[0].ci95.unwrap() - want).abs() < 1e-9, "{:?}", seen[0]);
        assert_eq!(seen[0].interval, "seeds");
        let st = &a.stats[0];
        assert_eq!(st.pairs, 4);
        assert!(st.spearman_seen_unseen.unwrap() > 0.9);
        assert_eq!(st.plateau["seen"], Some(100.0), "0.6 → 0.7 gains less than 0.15");
        assert_eq!(st.plateau["english"], Some(0.0), "flat from the start");
        assert_eq!(st.oscillation["seen"], Some(0.0));
        assert!(!st.multi_task);
    }
}

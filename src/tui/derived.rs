//! What the panes show that is computed from the store rather than read from it: the compare
//! view's delta table and config keys that differ, the sweep view's analysis and a selected
//! group's languages table.
//! `view::Ui::derive` recomputes them when the data or the selection changed (and only then),
//! so drawing a frame computes nothing. (A group's curves are kept apart, in `tui::groups`, and
//! updated from the members' new points.)

use std::collections::BTreeMap;

use crate::analysis::stats::{self, Est, Z95};
use crate::analysis::sweep::{analyse, read_run, SweepAnalysis};
use crate::analysis::{aggregate, aggregate_cis, cell_est, Cell, CompareRow, EvalTable};
use crate::data::lang;
use crate::tui::state::{Scripts, View};
use crate::tui::store::RunData;

/// The derived data and what it was derived from.
#[derive(Debug, Default)]
pub struct Derived {
    pub key: Option<Key>,
    /// The compare view's rows (every task) for the compared runs and groups, in their order.
    pub compare: Vec<CompareRow>,
    /// The config keys whose values differ between the compared sides (`runs::diff`); `None`
    /// when a side's run.toml cannot be read.
    pub config_diff: Option<Vec<ConfigDiff>>,
    /// The selected sweep's analysis.
    pub sweep: Option<SweepAnalysis>,
    /// The selected group's languages table.
    pub group_table: Option<GroupTable>,
}

/// What derived data depends on: the store's data generation, the view, the charted runs (per
/// compared side), and for a group's table the languages pane's task and filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub data: u64,
    pub view: View,
    pub sides: Vec<Vec<String>>,
    pub table: Option<(String, bool, Scripts, String)>,
}

/// A selected group's languages table: at the latest evaluation of the task that the most
/// members have reached, each language's mean over the members with its across-seed 95 %
/// t-interval (`stats::seed_mean`, the members' sampling variance as its floor), K and n; then
/// the averages of the run's table, each the members' mean with its interval likewise.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupTable {
    pub step: Option<u64>,
    /// Members with a value at that step.
    pub k: usize,
    /// Members of the group.
    pub members: usize,
    pub rows: Vec<GroupRow>,
}

/// One row of a [`GroupTable`].
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub row: String,
    /// A language's group (anchor / seen / unseen); `None` for an average.
    pub lang_group: Option<String>,
    pub value: Option<f64>,
    /// Two members or more: the across-seed interval; one: its own sampling interval.
    pub ci: Option<Est>,
    pub k: usize,
    pub n: Option<u64>,
}

/// A config key whose values differ between the compared sides: each side's values (a
/// group's members may hold several, its seeds).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDiff {
    pub key: String,
    pub values: Vec<Vec<String>>,
}

/// The keys that differ between the first side and any other (`runs::diff::diff`, as `mixscope
/// diff A B` lists them), with every side's values; `None` when a side has a run whose config
/// is unknown (a damaged run).
pub fn config_diff(sides: &[&[&RunData]]) -> Option<Vec<ConfigDiff>> {
    let configs: Vec<Vec<&crate::config::RunConfig>> =
        sides.iter().map(|s| s.iter().map(|r| r.cfg.as_ref()).collect::<Option<Vec<_>>>()).collect::<Option<_>>()?;
    let (first, rest) = configs.split_first()?;
    let pairs: Vec<Vec<crate::runs::diff::Row>> = rest.iter().map(|c| crate::runs::diff::diff(first, c)).collect();
    let mut keys: Vec<&String> = pairs.iter().flatten().map(|r| &r.key).collect();
    keys.sort();
    keys.dedup();
    Some(
        keys.into_iter()
            .map(|k| {
                let a = pairs.iter().flatten().find(|r| &r.key == k).map(|r| r.a.clone()).unwrap_or_default();
                let mut values = vec![a.clone()];
                for p in &pairs {
                    values.push(p.iter().find(|r| &r.key == k).map_or_else(|| a.clone(), |r| r.b.clone()));
                }
                ConfigDiff { key: k.clone(), values }
            })
            .collect(),
    )
}

/// The members' values of one row: their mean and interval (see [`GroupTable`]).
fn combine(picked: &[(f64, Option<Est>)], range: (f64, f64)) -> (Option<f64>, Option<Est>) {
    let values: Vec<f64> = picked.iter().map(|(v, _)| *v).filter(|v| v.is_finite()).collect();
    let vars: Vec<f64> = picked.iter().filter_map(|(_, e)| e.map(|e| ((e.hi - e.lo) / (2.0 * Z95)).powi(2))).collect();
    match values.len() {
        0 => (None, None),
        1 => (Some(values[0]), picked.iter().find_map(|(_, e)| *e)),
        _ => {
            let floor = crate::analysis::mean(&vars).unwrap_or(0.0);
            let e = stats::seed_mean(&values, floor).map(|e| e.within(range.0, range.1));
            (e.map(|e| e.value), e)
        }
    }
}

/// See [`GroupTable`].
pub fn group_table(members: &[&RunData], task: &str, show_loss: bool, visible: &dyn Fn(&str) -> bool) -> GroupTable {
    let mut count: BTreeMap<u64, usize> = BTreeMap::new();
    for r in members {
        let mut steps: Vec<u64> =
            r.evals.iter().filter(|((t, _), _)| t == task).flat_map(|(_, c)| c.value.steps.iter()).collect();
        steps.sort_unstable();
        steps.dedup();
        for s in steps {
            *count.entry(s).or_default() += 1;
        }
    }
    let most = count.values().copied().max().unwrap_or(0);
    let Some(step) = count.iter().rev().find(|(_, n)| **n == most).map(|(s, _)| *s) else {
        return GroupTable { members: members.len(), ..GroupTable::default() };
    };
    // Each member's cells of the task's shown languages at that step.
    let cells: Vec<BTreeMap<(String, String), Cell>> = members
        .iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            for ((t, l), c) in r.evals.iter().filter(|((t, l), _)| t == task && visible(l)) {
                let Some(i) = c.value.steps.position(step) else { continue };
                m.insert(
                    (t.clone(), l.clone()),
                    Cell {
                        group: c.group.clone(),
                        metric: c.metric.clone(),
                        value: c.value.ys[i] as f64,
                        loss: c.loss.at(step).map_or(f64::NAN, |v| v as f64),
                        n: c.n,
                        lang_ok: c.lang_ok.map(|x| x as f64),
                        scores: None,
                        ci: c.ci_at(step).map(|(lo, hi)| [lo, hi]),
                    },
                );
            }
            m
        })
        .filter(|m| !m.is_empty())
        .collect();
    let mut langs: Vec<&(String, String)> = cells.iter().flat_map(|m| m.keys()).collect();
    langs.sort_by_key(|(_, l)| lang::order(l));
    langs.dedup();
    let mut rows = Vec::new();
    for key in langs {
        let of: Vec<&Cell> = cells.iter().filter_map(|m| m.get(key)).collect();
        let picked: Vec<(f64, Option<Est>)> =
            of.iter().map(|c| if show_loss { (c.loss, None) } else { (c.value, cell_est(c)) }).collect();
        let (value, ci) = combine(&picked, if show_loss { (0.0, f64::INFINITY) } else { (0.0, 1.0) });
        rows.push(GroupRow {
            row: key.1.clone(),
            lang_group: of.first().map(|c| c.group.clone()),
            value,
            ci,
            k: of.len(),
            n: of.first().map(|c| c.n),
        });
    }
    let ags: Vec<_> =
        cells.iter().map(|m| (aggregate(m, task, show_loss), (!show_loss).then(|| aggregate_cis(m, task)))).collect();
    type Pick = fn(&crate::analysis::Aggregates, Option<&crate::analysis::AggregateCis>) -> (Option<f64>, Option<Est>);
    let names: [(&str, Pick); 6] = [
        ("seen avg", |a, c| (a.seen, c.and_then(|c| c.seen))),
        ("unseen avg", |a, c| (a.unseen, c.and_then(|c| c.unseen))),
        ("gap", |a, c| (a.gap, c.and_then(|c| c.gap))),
        ("÷ English", |a, _| (a.ratio_to_english, None)),
        ("Latin", |a, c| (a.latin, c.and_then(|c| c.latin))),
        ("non-Latin", |a, c| (a.non_latin, c.and_then(|c| c.non_latin))),
    ];
    for (name, f) in names {
        let picked: Vec<(f64, Option<Est>)> = ags
            .iter()
            .filter_map(|(a, c)| {
                let (v, e) = f(a, c.as_ref());
                v.map(|v| (v, e))
            })
            .collect();
        let (value, ci) = combine(&picked, if show_loss { (0.0, f64::INFINITY) } else { (0.0, 1.0) });
        rows.push(GroupRow { row: name.into(), lang_group: None, value, ci, k: picked.len(), n: None });
    }
    GroupTable { step: Some(step), k: cells.len(), members: members.len(), rows }
}

/// The store's curves of a run as an analysis table (for deltas at latest and best steps).
pub fn eval_table(r: &RunData) -> EvalTable {
    let mut t = EvalTable::default();
    for ((task, lang), c) in &r.evals {
        for (i, s) in c.value.steps.iter().enumerate() {
            let loss = c.loss.at(s).unwrap_or(f32::NAN);
            t.steps.entry(s).or_default().insert(
                (task.clone(), lang.clone()),
                crate::analysis::Cell {
                    group: c.group.clone(),
                    metric: c.metric.clone(),
                    value: c.value.ys[i] as f64,
                    loss: loss as f64,
                    n: c.n,
                    lang_ok: None,
                    scores: None,
                    ci: c
                        .ci
                        .get(i)
                        .filter(|(lo, hi)| lo.is_finite() && hi.is_finite())
                        .map(|&(lo, hi)| [lo as f64, hi as f64]),
                },
            );
        }
    }
    t.best_step = r.best.map(|(_, s)| s);
    t
}

/// The analysis of a sweep from the TUI's store (no file reads).
pub fn sweep_analysis(
    id: &str,
    runs: &[&RunData],
    record: Option<&crate::sweep::SweepRecord>,
) -> Option<SweepAnalysis> {
    let first = runs.first()?.cfg.as_ref()?.sweep.clone()?;
    let mut grid: Vec<(String, Vec<String>)> = match &record {
        Some(r) => r.spec.grid.iter().map(|(k, v)| (k.clone(), v.iter().map(|g| g.text.clone()).collect())).collect(),
        None => first.point.keys().map(|k| (k.clone(), Vec::new())).collect(),
    };
    let x = record
        .as_ref()
        .and_then(|r| r.spec.x_var())
        .or_else(|| first.point.iter().find(|(_, v)| v.parse::<f64>().is_ok()).map(|(k, _)| k.clone()));
    if let Some((_, vals)) = grid.iter_mut().find(|(k, _)| Some(k) == x.as_ref()) {
        if vals.iter().all(|v| v.parse::<f64>().is_ok()) {
            vals.sort_by(|a, b| a.parse::<f64>().unwrap_or(0.0).total_cmp(&b.parse::<f64>().unwrap_or(0.0)));
        }
    }
    let plateau = record.as_ref().map_or(0.02, |r| r.spec.analysis.plateau);
    let read: Vec<_> = runs
        .iter()
        .map(|r| {
            let point = r.cfg.as_ref().and_then(|c| c.sweep.as_ref()).map(|t| t.point.clone()).unwrap_or_default();
            read_run(&r.id, r.name.clone(), r.state, point, &eval_table(r))
        })
        .collect();
    Some(analyse(id, &first.name, &grid, x.as_deref(), plateau, read))
}

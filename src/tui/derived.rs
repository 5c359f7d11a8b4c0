//! What the panes show that is computed from the store rather than read from it: the compare
//! view's delta table and the sweep view's analysis. [`App::derive`] recomputes them when the
//! data or the selection changed (and only then), so drawing a frame computes nothing.

use crate::analysis::sweep::{analyse, read_run, SweepAnalysis};
use crate::analysis::{compare, CompareRow, EvalTable};
use crate::tui::app::App;
use crate::tui::store::RunData;
use crate::tui::ui::View;

/// The derived data and what it was derived from.
#[derive(Debug, Default)]
pub struct Derived {
    key: Option<Key>,
    /// The compare view's rows (every task) for the charted runs, in their order.
    pub compare: Vec<CompareRow>,
    /// The selected sweep's analysis.
    pub sweep: Option<SweepAnalysis>,
}

/// What derived data depends on: the store's data generation, the view, the charted runs.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    data: u64,
    view: View,
    charted: Vec<String>,
}

fn key_of(app: &App) -> Key {
    Key {
        data: app.data_gen,
        view: crate::tui::ui::view(app),
        charted: app.charted().iter().map(|r| r.id.clone()).collect(),
    }
}

impl Derived {
    /// Whether the derived data matches the app's data and selection.
    pub fn is_fresh(&self, app: &App) -> bool {
        self.key.as_ref() == Some(&key_of(app))
    }

    /// Recompute, when stale, what the current view shows.
    pub fn refresh(app: &App, old: Derived) -> Derived {
        let key = key_of(app);
        if old.key.as_ref() == Some(&key) {
            return old;
        }
        let mut d = Derived::default();
        match &key.view {
            View::Compare => {
                let tables: Vec<EvalTable> = app.charted().iter().map(|r| eval_table(r)).collect();
                let refs: Vec<Vec<&EvalTable>> = tables.iter().map(|t| vec![t]).collect();
                d.compare = compare(&refs);
            }
            View::Sweep(id) => d.sweep = sweep_analysis(app, id),
            View::Main => {}
        }
        d.key = Some(key);
        d
    }
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
fn sweep_analysis(app: &App, id: &str) -> Option<SweepAnalysis> {
    let runs = app.sweep_runs(id);
    let first = runs.first()?.cfg.as_ref()?.sweep.clone()?;
    let record = app.store.sweep_record(id);
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

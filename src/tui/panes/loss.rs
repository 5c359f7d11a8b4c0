//! The loss pane: train loss (raw and debiased-EMA smoothed), held-out loss, on the chosen x
//! axis; a fork is drawn continuing its parent's curve from the fork step. In compare mode,
//! one colour per marked run on shared axes.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::chart::{self, Curve, XMap};
use super::{block, dim};
use crate::tui::app::{App, Focus};
use crate::tui::series::Series;
use crate::tui::store::{RunData, XAxis};

/// A run and its ancestors, root first: (run, first step shown, last step shown, time origin).
pub fn lineage<'a>(app: &'a App, r: &'a RunData) -> Vec<(&'a RunData, u64, u64, f64)> {
    let anc = app.ancestors(r);
    let mut chain: Vec<(&RunData, u64)> = anc.iter().rev().map(|(p, _)| (*p, 0)).collect();
    chain.push((r, 0));
    // The step each member is shown up to: the next member's fork step.
    let mut out = Vec::new();
    let mut t0 = chain[0].0.first_time.unwrap_or(0.0);
    let mut lo = 0u64;
    for (i, (run, _)) in chain.iter().enumerate() {
        let hi = if i + 1 < chain.len() { chain[i + 1].0.fork_step.unwrap_or(u64::MAX) } else { u64::MAX };
        if i > 0 {
            // Continue the parent's clock: its x at the fork step becomes this run's origin.
            let (parent, _, _, pt0) = out[i - 1];
            let at = run.fork_step.unwrap_or(0);
            let px = XMap { run: parent, axis: XAxis::Time, lang: None, t0: pt0 }.x(at).unwrap_or(0.0);
            t0 = run.first_time.unwrap_or(0.0) - px;
        }
        out.push((*run, lo, hi, t0));
        lo = hi.saturating_add(1);
    }
    out
}

/// Mean held-out loss per eval step over English and the seen languages (the checkpoint
/// selection loss).
pub fn heldout_loss(r: &RunData) -> Series {
    let mut by_step: std::collections::BTreeMap<u64, (f64, usize)> = std::collections::BTreeMap::new();
    for c in r.evals.values().filter(|c| c.group != "unseen") {
        for (s, y) in c.loss.steps.iter().zip(&c.loss.ys) {
            if y.is_finite() {
                let e = by_step.entry(s).or_insert((0.0, 0));
                e.0 += *y as f64;
                e.1 += 1;
            }
        }
    }
    let mut out = Series::default();
    for (s, (sum, n)) in by_step {
        out.push(s, (sum / n as f64) as f32);
    }
    out
}

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let th = app.theme.clone();
    let log = app.view.log_y;
    let ty = move |y: f32| -> Option<f64> {
        if !y.is_finite() {
            return None;
        }
        if log {
            (y > 0.0).then(|| (y as f64).log10())
        } else {
            Some(y as f64)
        }
    };
    let width = (area.width.saturating_sub(10) as usize) * 2;
    let mut curves: Vec<Curve> = Vec::new();
    let mut x_ext: Option<(f64, f64)> = None;
    let title_runs: String;
    if app.view.compare {
        let runs = app.charted();
        title_runs = format!("{} runs", runs.len());
        // Shared x extent across runs.
        let mut ext = (f64::INFINITY, f64::NEG_INFINITY);
        let maps: Vec<XMap> = runs
            .iter()
            .map(|r| XMap { run: r, axis: app.view.x_axis, lang: None, t0: r.first_time.unwrap_or(0.0) })
            .collect();
        for (r, m) in runs.iter().zip(&maps) {
            if let Some((a, b)) = chart::x_extent(&r.loss, m, 0, u64::MAX) {
                ext = (ext.0.min(a), ext.1.max(b));
            }
        }
        x_ext = Some(ext);
        for (i, (r, m)) in runs.iter().zip(&maps).enumerate() {
            let s = if app.view.smoothing > 0.0 { &r.smooth } else { &r.loss };
            curves.push(Curve {
                label: r.display_name().to_string(),
                color: th.run(i),
                points: chart::plot(s, m, 0, u64::MAX, ext.0, ext.1, width, &ty),
                dim: false,
                sparse: false,
            });
        }
    } else if let Some(r) = app.selected_run() {
        title_runs = r.display_name().to_string();
        let segs = lineage(app, r);
        let mut ext = (f64::INFINITY, f64::NEG_INFINITY);
        for (run, lo, hi, t0) in &segs {
            let m = XMap { run, axis: app.view.x_axis, lang: None, t0: *t0 };
            if let Some((a, b)) = chart::x_extent(&run.loss, &m, *lo, *hi) {
                ext = (ext.0.min(a), ext.1.max(b));
            }
        }
        x_ext = Some(ext);
        let n = segs.len();
        for (k, (run, lo, hi, t0)) in segs.iter().enumerate() {
            let own = k + 1 == n;
            let m = XMap { run, axis: app.view.x_axis, lang: None, t0: *t0 };
            curves.push(Curve {
                label: "train".into(),
                color: th.train,
                points: chart::plot(&run.loss, &m, *lo, *hi, ext.0, ext.1, width, &ty),
                dim: true,
                sparse: false,
            });
            if app.view.smoothing > 0.0 {
                curves.push(Curve {
                    label: "smoothed".into(),
                    color: th.smooth,
                    points: chart::plot(&run.smooth, &m, *lo, *hi, ext.0, ext.1, width, &ty),
                    dim: !own,
                    sparse: false,
                });
            }
            let held = heldout_loss(run);
            curves.push(Curve {
                label: "held-out".into(),
                color: th.eval,
                points: chart::plot(&held, &m, *lo, *hi, ext.0, ext.1, width, &ty),
                dim: !own,
                sparse: true,
            });
        }
    } else {
        title_runs = String::new();
    }
    let mut spans = vec![Span::styled(" Loss ", th.title()), dim(format!("{title_runs} "), &th)];
    if !app.view.compare {
        spans.push(Span::styled("━ train ", Style::default().fg(th.train)));
        if app.view.smoothing > 0.0 {
            spans.push(Span::styled(format!("━ ema {:.1} ", app.view.smoothing), Style::default().fg(th.smooth)));
        }
        spans.push(Span::styled("━ held-out ", Style::default().fg(th.eval)));
    } else {
        for (i, r) in app.charted().iter().enumerate() {
            spans.push(Span::styled(
                format!("━ {} ", super::clip(r.display_name(), 16)),
                Style::default().fg(th.run(i)),
            ));
        }
    }
    if app.view.log_y {
        spans.push(dim("log ", &th));
    }
    let blk = block(Line::from(spans), app.view.focus == Focus::Loss, &th);
    let xb = x_ext.filter(|(a, b)| a.is_finite() && b.is_finite() && b > a);
    chart::draw(f, area, blk, &curves, app.view.x_axis.label(), app.view.log_y, xb, None, &th, "no train events yet");
}

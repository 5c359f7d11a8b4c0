//! The loss pane: train loss (raw and debiased-EMA smoothed), held-out loss, on the chosen x
//! axis; a fork is drawn continuing its parent's curve from the fork step. A group: the mean
//! over its members with the across-seed 95 % interval shaded under it (and, on a key, the
//! members as thin lines). In compare mode, one colour per marked run or group on shared axes.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::{block, dim};
use crate::tui::chart::{self, Band, Curve, XMap};
use crate::tui::groups::BandSeries;
use crate::tui::series::Series;
use crate::tui::state::{Focus, XRange};
use crate::tui::store::{RunData, XAxis};
use crate::tui::view::Ui;

/// A run and its ancestors, root first: (run, first step shown, last step shown, time origin).
pub fn lineage<'a>(app: &Ui<'a>, r: &'a RunData) -> Vec<(&'a RunData, u64, u64, f64)> {
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

pub fn draw(f: &mut Frame, area: Rect, app: &Ui) {
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
    let mut bands: Vec<Band> = Vec::new();
    let mut x_ext: Option<(f64, f64)> = None;
    let title_runs: String;
    let smoothed = app.view.smoothing > 0.0;
    let mut group_k: Option<usize> = None;
    if app.view.compare {
        let sides = app.compare_sides();
        let any_group = sides.iter().any(|s| s.group.is_some());
        title_runs = format!("{} {}", sides.len(), if any_group { "sides" } else { "runs" });
        // Shared x extent across sides: a run's own timeline, a group's reference member's.
        let mut ext = (f64::INFINITY, f64::NEG_INFINITY);
        let mut plots: Vec<(XMap, u64, &Series, Option<&BandSeries>)> = Vec::new();
        for s in &sides {
            let agg = s.group.and_then(|g| app.group_aggs.get(&g.id));
            let (r, series, band) = match agg {
                Some(a) => {
                    let r = s.runs.iter().find(|r| r.id == a.reference).copied().unwrap_or(s.runs[0]);
                    (r, &a.loss.mean, Some(&a.loss))
                }
                None => {
                    let r = s.runs[0];
                    (r, if smoothed { &r.smooth } else { &r.loss }, None)
                }
            };
            let m = XMap { run: r, axis: app.view.x_axis, lang: None, t0: r.first_time.unwrap_or(0.0) };
            let lo = app.view.x_range.from_step(r);
            if let Some((a, b)) = chart::x_extent(series, &m, lo, u64::MAX) {
                ext = (ext.0.min(a), ext.1.max(b));
            }
            plots.push((m, lo, series, band));
        }
        x_ext = Some(ext);
        for (i, (m, lo, series, band)) in plots.iter().enumerate() {
            if let Some(b) = band {
                bands.push(Band {
                    color: th.run(i),
                    points: chart::band(&b.lo, &b.hi, m, *lo, u64::MAX, ext.0, ext.1, width, &ty),
                });
            }
            curves.push(Curve {
                label: sides[i].label.clone(),
                color: th.run(i),
                points: chart::plot(series, m, *lo, u64::MAX, ext.0, ext.1, width, &ty),
                dim: false,
                sparse: false,
            });
        }
    } else if let Some((g, agg)) = app.selected_group().and_then(|g| Some((g, app.group_aggs.get(&g.id)?))) {
        // A group: the members' mean (of the smoothed loss while the view smooths), the
        // across-seed interval shaded under it, the members as thin lines on a key.
        title_runs = g.label();
        let members = app.members(g);
        group_k = Some(members.len());
        let r = members.iter().find(|r| r.id == agg.reference).copied().or(members.first().copied());
        if let Some(r) = r {
            let m = XMap { run: r, axis: app.view.x_axis, lang: None, t0: r.first_time.unwrap_or(0.0) };
            let lo = app.view.x_range.from_step(r);
            let ext = chart::x_extent(&agg.loss.mean, &m, lo, u64::MAX).unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
            x_ext = Some(ext);
            let color = if smoothed { th.smooth } else { th.train };
            if app.view.members {
                for mr in &members {
                    let mm = XMap { run: mr, axis: app.view.x_axis, lang: None, t0: mr.first_time.unwrap_or(0.0) };
                    curves.push(Curve {
                        label: mr.id.clone(),
                        color: th.train,
                        points: chart::plot(
                            if smoothed { &mr.smooth } else { &mr.loss },
                            &mm,
                            app.view.x_range.from_step(mr),
                            u64::MAX,
                            ext.0,
                            ext.1,
                            width,
                            &ty,
                        ),
                        dim: true,
                        sparse: false,
                    });
                }
            }
            bands.push(Band {
                color,
                points: chart::band(&agg.loss.lo, &agg.loss.hi, &m, lo, u64::MAX, ext.0, ext.1, width, &ty),
            });
            curves.push(Curve {
                label: "mean".into(),
                color,
                points: chart::plot(&agg.loss.mean, &m, lo, u64::MAX, ext.0, ext.1, width, &ty),
                dim: false,
                sparse: false,
            });
            curves.push(Curve {
                label: "held-out".into(),
                color: th.eval,
                points: chart::plot(&agg.heldout.mean, &m, lo, u64::MAX, ext.0, ext.1, width, &ty),
                dim: false,
                sparse: true,
            });
        }
    } else if let Some(r) = app.selected_run() {
        title_runs = r.display_name().to_string();
        // The lineage, or (another x range) the run's own steps from the range's first.
        let mut segs = lineage(app, r);
        if app.view.x_range != XRange::Lineage {
            let from = app.view.x_range.from_step(r);
            segs.drain(..segs.len() - 1);
            if let Some(own) = segs.last_mut() {
                own.1 = own.1.max(from);
            }
        }
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
            let held = run.heldout_loss();
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
    if let Some(k) = group_k {
        let color = if smoothed { th.smooth } else { th.train };
        let what = if smoothed { format!("ema {:.1}", app.view.smoothing) } else { "train".into() };
        spans.push(Span::styled(format!("━ mean of {k} ({what}) "), Style::default().fg(color)));
        spans.push(Span::styled("⢕ 95% across seeds ", Style::default().fg(color).add_modifier(Modifier::DIM)));
        spans.push(Span::styled("━ held-out ", Style::default().fg(th.eval)));
    } else if !app.view.compare {
        spans.push(Span::styled("━ train ", Style::default().fg(th.train)));
        if app.view.smoothing > 0.0 {
            spans.push(Span::styled(format!("━ ema {:.1} ", app.view.smoothing), Style::default().fg(th.smooth)));
        }
        spans.push(Span::styled("━ held-out ", Style::default().fg(th.eval)));
    } else {
        for (i, s) in app.compare_sides().iter().enumerate() {
            spans.push(Span::styled(format!("━ {} ", super::clip(&s.label, 16)), Style::default().fg(th.run(i))));
        }
    }
    if app.view.log_y {
        spans.push(dim("log ", &th));
    }
    let blk = block(Line::from(spans), app.view.focus == Focus::Loss, &th);
    let xb = x_ext.filter(|(a, b)| a.is_finite() && b.is_finite() && b > a);
    chart::draw_bands(
        f,
        area,
        blk,
        &curves,
        &bands,
        app.view.x_axis.label(),
        app.view.log_y,
        xb,
        None,
        &th,
        "no train events yet",
    );
}

//! Line charts of decimated series on any x axis.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use crate::tui::series::Series;
use crate::tui::store::{RunData, XAxis};
use crate::tui::theme::Theme;

/// A curve ready to draw.
#[derive(Debug, Clone)]
pub struct Curve {
    pub label: String,
    pub color: Color,
    pub points: Vec<(f64, f64)>,
    pub dim: bool,
    /// Few points (evals): draw markers as well.
    pub sparse: bool,
}

/// How a run's steps map to the x axis: the run's timeline, and for the time axis an offset so
/// that a fork continues its parent's clock.
#[derive(Clone, Copy)]
pub struct XMap<'a> {
    pub run: &'a RunData,
    pub axis: XAxis,
    pub lang: Option<&'a str>,
    pub t0: f64,
}

impl XMap<'_> {
    pub fn x(&self, step: u64) -> Option<f64> {
        self.run
            .timeline
            .x_of(step, self.axis, self.lang, self.t0)
            .or((self.axis == XAxis::Step).then_some(step as f64))
    }
    pub fn step_at(&self, x: f64) -> u64 {
        self.run.timeline.step_at_x(x, self.axis, self.lang, self.t0)
    }
}

/// The x extent of a series (steps in `[lo, hi]`) on an axis.
pub fn x_extent(s: &Series, m: &XMap, lo: u64, hi: u64) -> Option<(f64, f64)> {
    let a = s.steps.partition_point(|x| x < lo);
    let b = s.steps.partition_point(|x| x <= hi);
    if a >= b {
        return None;
    }
    Some((m.x(s.steps.at(a))?, m.x(s.steps.at(b - 1))?))
}

/// Decimate a series (its steps in `[lo, hi]`) to `width` buckets over `[x0, x1]`; y values go
/// through `ty` (log scale). Each bucket becomes its extremes in drawing order.
#[allow(clippy::too_many_arguments)]
pub fn plot(
    s: &Series,
    m: &XMap,
    lo: u64,
    hi: u64,
    x0: f64,
    x1: f64,
    width: usize,
    ty: &dyn Fn(f32) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    if s.is_empty() || width == 0 || x1 <= x0 {
        if let (Some((st, y)), true) = (s.last(), x1 <= x0) {
            if let (Some(x), Some(y)) = (m.x(st), ty(y)) {
                out.push((x, y));
            }
        }
        return out;
    }
    // Few points: draw them all.
    let a = s.steps.partition_point(|x| x < lo);
    let b = s.steps.partition_point(|x| x <= hi);
    if b - a <= width * 2 {
        for i in a..b {
            if let (Some(x), Some(y)) = (m.x(s.steps.at(i)), ty(s.ys[i])) {
                out.push((x, y));
            }
        }
        return out;
    }
    let dx = (x1 - x0) / width as f64;
    let mut bounds: Vec<u64> = (0..=width).map(|i| m.step_at(x0 + dx * i as f64).max(lo)).collect();
    if let Some(l) = bounds.last_mut() {
        *l = hi.saturating_add(1);
    }
    for (i, bk) in s.decimate(&bounds).into_iter().enumerate() {
        let Some(bk) = bk else { continue };
        let x = x0 + dx * (i as f64 + 0.5);
        let (lo_y, hi_y) = if bk.first <= bk.last { (bk.min, bk.max) } else { (bk.max, bk.min) };
        if let Some(y) = ty(lo_y) {
            out.push((x, y));
        }
        if bk.min != bk.max {
            if let Some(y) = ty(hi_y) {
                out.push((x, y));
            }
        }
    }
    out
}

/// A short number for axis labels.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Draw curves in a block. `log_y`: the y values are log10 and labels show 10^y.
#[allow(clippy::too_many_arguments)]
pub fn draw(
    f: &mut Frame,
    area: Rect,
    block: Block,
    curves: &[Curve],
    x_label: &str,
    log_y: bool,
    x_bounds: Option<(f64, f64)>,
    y_bounds: Option<(f64, f64)>,
    theme: &Theme,
    empty_msg: &str,
) {
    let inner = block.inner(area);
    let have = curves.iter().any(|c| !c.points.is_empty());
    if !have || inner.height < 3 || inner.width < 10 {
        f.render_widget(
            Paragraph::new(Line::from(Span::styled(empty_msg.to_string(), theme.dimmed()))).block(block),
            area,
        );
        return;
    }
    let (mut x0, mut x1) = x_bounds.unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
    let (mut y0, mut y1) = y_bounds.unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
    if x_bounds.is_none() || y_bounds.is_none() {
        for c in curves {
            for &(x, y) in &c.points {
                if x_bounds.is_none() {
                    x0 = x0.min(x);
                    x1 = x1.max(x);
                }
                if y_bounds.is_none() && y.is_finite() {
                    y0 = y0.min(y);
                    y1 = y1.max(y);
                }
            }
        }
        if y_bounds.is_none() {
            let pad = ((y1 - y0) * 0.05).max(1e-6);
            // Losses and scores are never negative: the padding must not put the axis below 0.
            let floor = if !log_y && y0 >= 0.0 { 0.0 } else { f64::NEG_INFINITY };
            y0 = (y0 - pad).max(floor);
            y1 += pad;
        }
    }
    if x1 <= x0 {
        // One x value (e.g. a single eval): centre it.
        x0 -= 1.0;
        x1 = x0 + 2.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let ylab = |v: f64| if log_y { fmt_num(10f64.powf(v)) } else { fmt_num(v) };
    let datasets: Vec<Dataset> = curves
        .iter()
        .map(|c| {
            let mut st = Style::default().fg(c.color);
            if c.dim {
                st = st.add_modifier(Modifier::DIM);
            }
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(if c.points.len() == 1 { GraphType::Scatter } else { GraphType::Line })
                .style(st)
                .data(&c.points)
        })
        .collect();
    let axis_style = Style::default().fg(theme.dim);
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(None)
        .x_axis(
            Axis::default()
                .title(Span::styled(x_label.to_string(), axis_style))
                .style(axis_style)
                .bounds([x0, x1])
                .labels([fmt_num(x0), fmt_num((x0 + x1) / 2.0), fmt_num(x1)]),
        )
        .y_axis(Axis::default().style(axis_style).bounds([y0, y1]).labels([ylab(y0), ylab((y0 + y1) / 2.0), ylab(y1)]));
    f.render_widget(chart, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y_labels(points: Vec<(f64, f64)>, log_y: bool) -> String {
        let backend = ratatui::backend::TestBackend::new(60, 16);
        let mut term = ratatui::Terminal::new(backend).unwrap();
        let curve = Curve { label: "loss".into(), color: Color::White, points, dim: false, sparse: false };
        let th = Theme::dark();
        term.draw(|f| draw(f, f.area(), Block::bordered(), &[curve], "step", log_y, None, None, &th, "-")).unwrap();
        let buf = term.backend().buffer().clone();
        (0..buf.area.height)
            .map(|y| (0..8).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_loss_near_zero_does_not_put_the_axis_below_zero() {
        let s = y_labels((0..50).map(|i| (i as f64, 6.0 / (1.0 + i as f64))).collect(), false);
        assert!(!s.contains('-'), "{s}");
        assert!(s.contains('0'), "{s}");
        // On a log axis (log10 values) negative values are real and stay.
        let s = y_labels((0..50).map(|i| (i as f64, -1.0 + i as f64 * 0.01)).collect(), true);
        assert!(s.contains("0.0"), "{s}");
    }
}

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

/// A shaded band under the curves: at each x, the interval from `lo` to `hi` (a group's
/// across-seed interval). Points are in drawing order; a NaN point breaks the band.
#[derive(Debug, Clone)]
pub struct Band {
    pub color: Color,
    /// (x, lo, hi), y values already on the chart's scale.
    pub points: Vec<(f64, f64, f64)>,
}

/// A band's points from its `lo` and `hi` series (same steps; NaN where there is no band),
/// steps in `[lo_step, hi_step]`: every point when there are few, else `width` buckets over
/// `[x0, x1]`, each the least `lo` and the greatest `hi` in it.
#[allow(clippy::too_many_arguments)]
pub fn band(
    lo: &Series,
    hi: &Series,
    m: &XMap,
    lo_step: u64,
    hi_step: u64,
    x0: f64,
    x1: f64,
    width: usize,
    ty: &dyn Fn(f32) -> Option<f64>,
) -> Vec<(f64, f64, f64)> {
    let mut out = Vec::new();
    let a = lo.steps.partition_point(|x| x < lo_step);
    let b = lo.steps.partition_point(|x| x <= hi_step);
    let nan = (f64::NAN, f64::NAN);
    if b <= a || width == 0 || x1 <= x0 || b - a <= width * 2 {
        for i in a..b {
            let Some(x) = m.x(lo.steps.at(i)) else { continue };
            let (l, h) = ty(lo.ys[i]).zip(hi.ys.get(i).and_then(|&h| ty(h))).unwrap_or(nan);
            out.push((x, l, h));
        }
        return out;
    }
    let dx = (x1 - x0) / width as f64;
    let mut bounds: Vec<u64> = (0..=width).map(|i| m.step_at(x0 + dx * i as f64).max(lo_step)).collect();
    if let Some(l) = bounds.last_mut() {
        *l = hi_step.saturating_add(1);
    }
    for (i, (bl, bh)) in lo.decimate(&bounds).into_iter().zip(hi.decimate(&bounds)).enumerate() {
        let x = x0 + dx * (i as f64 + 0.5);
        match (bl, bh) {
            (Some(bl), Some(bh)) => {
                let (l, h) = ty(bl.min).zip(ty(bh.max)).unwrap_or(nan);
                out.push((x, l, h));
            }
            (None, None) => {}
            _ => out.push((x, f64::NAN, f64::NAN)),
        }
    }
    out
}

/// Where ratatui's `Chart` puts its graph (the cells inside the axes) in `inner` (the area
/// inside its block), for y labels of `y_labels` and a first x label `first_x`: as
/// ratatui-widgets 0.3 `Chart::layout` computes it, with no legend (a test checks it against a
/// drawn chart's axes).
pub fn graph_area(inner: Rect, y_labels: &[String], first_x: &str) -> Option<Rect> {
    if inner.height == 0 || inner.width == 0 {
        return None;
    }
    let (mut x, mut y) = (inner.left(), inner.bottom() - 1);
    if y > inner.top() {
        y -= 1; // x labels
    }
    let widest = y_labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u16;
    x += widest.max((first_x.chars().count() as u16).saturating_sub(1)).min(inner.width / 3);
    if y > inner.top() {
        y -= 1; // the x axis
    }
    if x + 1 < inner.right() {
        x += 1; // the y axis
    }
    let (w, h) = (inner.right().saturating_sub(x), y.saturating_sub(inner.top()) + 1);
    (w > 0 && h > 0).then(|| Rect::new(x, inner.top(), w, h))
}

/// The braille dots of a band's shading in a cell's dot row `r` (0–3): a checkerboard, so that
/// the band reads as a shade under the curves' solid dots.
fn checker(r: usize) -> u8 {
    [0x01, 0x10, 0x04, 0x80][r]
}

/// The band's (lo, hi) at `x`: between two points, interpolated; within half a column of a lone
/// point, that point's.
fn band_at(points: &[(f64, f64, f64)], x: f64, half: f64) -> Option<(f64, f64)> {
    let i = points.partition_point(|p| p.0 <= x);
    let ok = |p: &(f64, f64, f64)| p.1.is_finite() && p.2.is_finite();
    if i > 0 && i < points.len() {
        let (a, b) = (points[i - 1], points[i]);
        if ok(&a) && ok(&b) && b.0 > a.0 {
            let t = (x - a.0) / (b.0 - a.0);
            return Some((a.1 + t * (b.1 - a.1), a.2 + t * (b.2 - a.2)));
        }
    }
    [i.checked_sub(1), Some(i)]
        .into_iter()
        .flatten()
        .filter_map(|j| points.get(j))
        .find(|p| ok(p) && (p.0 - x).abs() <= half)
        .map(|p| (p.1, p.2))
}

/// The background a band's colour tints: the theme's own, or (a terminal's default) dark
/// under a light text colour and light under a dark one.
fn band_bg(theme: &Theme) -> (u8, u8, u8) {
    match (theme.bg, theme.fg) {
        (Color::Rgb(r, g, b), _) => (r, g, b),
        (_, Color::Rgb(r, g, b)) if (r as u32 + g as u32 + b as u32) < 384 => (255, 255, 255),
        _ => (0, 0, 0),
    }
}

/// A band's cell background: its colour at a quarter over the background (none for a colour
/// given by name or index, which cannot be mixed).
fn tint(c: Color, bg: (u8, u8, u8)) -> Option<Color> {
    let Color::Rgb(r, g, b) = c else { return None };
    let mix = |a: u8, b: u8| ((a as u32 + 3 * b as u32) / 4) as u8;
    Some(Color::Rgb(mix(r, bg.0), mix(g, bg.1), mix(b, bg.2)))
}

/// Shade the bands: every cell the band covers at least half of gets the band's tint as its
/// background (under the curves drawn there too), and an empty cell wholly inside it the
/// shading glyph `⢕` (so that the band shows without colours as well).
fn paint_bands(
    buf: &mut ratatui::buffer::Buffer,
    graph: Rect,
    xb: (f64, f64),
    yb: (f64, f64),
    bands: &[Band],
    theme: &Theme,
) {
    let (w, h) = (graph.width as usize, graph.height as usize);
    let rows = (h * 4) as f64;
    let half = (xb.1 - xb.0) / w as f64 / 2.0;
    let to_row = |y: f64| (yb.1 - y) / (yb.1 - yb.0) * rows;
    let bg = band_bg(theme);
    // Each cell once: the first band over it gives its tint.
    let mut done = vec![false; w * h];
    for b in bands {
        let glyph_style = Style::default().fg(b.color).add_modifier(Modifier::DIM);
        let tint = tint(b.color, bg);
        for col in 0..w {
            let x = xb.0 + (col as f64 + 0.5) / w as f64 * (xb.1 - xb.0);
            let Some((lo, hi)) = band_at(&b.points, x, half) else { continue };
            let (top, bottom) = (to_row(hi.max(lo)).max(0.0), to_row(lo.min(hi)).min(rows));
            let (r0, r1) = (top.round() as usize, bottom.round() as usize);
            if r1 <= r0 {
                continue;
            }
            for cell_row in r0 / 4..=(r1 - 1) / 4 {
                let covered = (0..4).filter(|d| (r0..r1).contains(&(cell_row * 4 + d))).count();
                let i = cell_row * w + col;
                if covered < 2 || done[i] {
                    continue;
                }
                done[i] = true;
                let cell = &mut buf[(graph.x + col as u16, graph.y + cell_row as u16)];
                if covered == 4 && cell.symbol() == " " {
                    let bits = (0..4).fold(0u8, |a, d| a | checker(d));
                    cell.set_char(char::from_u32(0x2800 + bits as u32).unwrap_or(' ')).set_style(glyph_style);
                }
                if let Some(t) = tint {
                    cell.set_bg(t);
                }
            }
        }
    }
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
    draw_bands(f, area, block, curves, &[], x_label, log_y, x_bounds, y_bounds, theme, empty_msg)
}

/// [`draw`], with bands shaded under the curves (the axes are the curves'; a band beyond them
/// is cut at the pane's edge).
#[allow(clippy::too_many_arguments)]
pub fn draw_bands(
    f: &mut Frame,
    area: Rect,
    block: Block,
    curves: &[Curve],
    bands: &[Band],
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
    let y_labels = [ylab(y0), ylab((y0 + y1) / 2.0), ylab(y1)];
    let x_labels = [fmt_num(x0), fmt_num((x0 + x1) / 2.0), fmt_num(x1)];
    let graph = graph_area(inner, &y_labels, &x_labels[0]);
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
                .labels(x_labels),
        )
        .y_axis(Axis::default().style(axis_style).bounds([y0, y1]).labels(y_labels));
    f.render_widget(chart, area);
    if let (Some(g), false) = (graph, bands.is_empty()) {
        paint_bands(f.buffer_mut(), g, (x0, x1), (y0, y1), bands, theme);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The graph area as computed here is where ratatui draws the graph: just right of the y
    /// axis, just above the x axis (their corner `└` at its bottom-left, outside it).
    #[test]
    fn the_graph_area_is_where_ratatui_draws_the_graph() {
        for (w, h, ys, x0) in
            [(60u16, 16u16, (0.0, 1.0), 0.0), (40, 10, (1.2, 6.4), 1200.0), (90, 30, (0.0, 0.004), 1e6)]
        {
            let backend = ratatui::backend::TestBackend::new(w, h);
            let mut term = ratatui::Terminal::new(backend).unwrap();
            let pts: Vec<(f64, f64)> =
                (0..20).map(|i| (x0 + i as f64, ys.0 + (ys.1 - ys.0) * i as f64 / 19.0)).collect();
            let curve = Curve { label: "a".into(), color: Color::White, points: pts, dim: false, sparse: false };
            let th = Theme::dark();
            let band = Band { color: Color::Red, points: vec![(x0, ys.0, ys.1), (x0 + 19.0, ys.0, ys.1)] };
            term.draw(|f| {
                draw_bands(f, f.area(), Block::bordered(), &[curve], &[band], "step", false, None, Some(ys), &th, "-")
            })
            .unwrap();
            let buf = term.backend().buffer().clone();
            let corner = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).find(|&(x, y)| buf[(x, y)].symbol() == "└");
            let (cx, cy) = corner.expect("an axes corner");
            let inner = Block::bordered().inner(Rect::new(0, 0, w, h));
            let lab = |v: f64| fmt_num(v);
            let g = graph_area(inner, &[lab(ys.0), lab((ys.0 + ys.1) / 2.0), lab(ys.1)], &fmt_num(x0)).unwrap();
            assert_eq!((g.x - 1, g.bottom()), (cx, cy), "{w}x{h}");
            assert_eq!(g.right(), inner.right());
            // The band fills the graph's empty cells with its shade, and nothing outside it.
            let shaded: Vec<(u16, u16)> = (0..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .filter(|&(x, y)| buf[(x, y)].symbol() == "⢕")
                .collect();
            assert!(shaded.len() > (g.width as usize * g.height as usize) / 2, "{w}x{h}: {}", shaded.len());
            assert!(shaded.iter().all(|&(x, y)| g.contains(ratatui::layout::Position::new(x, y))));
        }
    }

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

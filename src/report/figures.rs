//! Report figures: small multiples of line charts, drawn once through plotters into SVG (text as
//! text, for papers and browsers) and into an RGB buffer encoded as PNG. Text uses the embedded
//! DejaVu Sans, so figures look the same on every machine.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();
const FAMILY: &str = "sans-serif";

fn register_font() {
    REGISTER.call_once(|| {
        // The embedded font is valid: a failure here is a build defect, and text would be missing.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Colour-blind-safe group colours (Okabe–Ito): English, seen, unseen, Latin, non-Latin.
pub fn group_color(group: &str) -> (u8, u8, u8) {
    match group {
        "anchor" | "english" => (0, 0, 0),
        "seen" => (0, 114, 178),
        "unseen" => (213, 94, 0),
        "latin" => (0, 158, 115),
        "non_latin" => (204, 121, 167),
        _ => (120, 120, 120),
    }
}

/// A palette for runs (Okabe–Ito, then Tableau).
pub fn run_color(i: usize) -> (u8, u8, u8) {
    const P: [(u8, u8, u8); 12] = [
        (0, 114, 178),
        (213, 94, 0),
        (0, 158, 115),
        (204, 121, 167),
        (230, 159, 0),
        (86, 180, 233),
        (0, 0, 0),
        (240, 228, 66),
        (148, 103, 189),
        (140, 86, 75),
        (127, 127, 127),
        (188, 189, 34),
    ];
    P[i % P.len()]
}

/// A lighter or darker shade of a colour: `i` of `k` members of a group.
pub fn shade(c: (u8, u8, u8), i: usize, k: usize) -> (u8, u8, u8) {
    if k <= 1 {
        return c;
    }
    let t = i as f64 / (k - 1) as f64; // 0 → darker, 1 → lighter
    let f = |v: u8| {
        let v = v as f64;
        let out = if t < 0.5 { v * (0.6 + 0.8 * t) } else { v + (255.0 - v) * (t - 0.5) * 0.9 };
        out.round().clamp(0.0, 255.0) as u8
    };
    (f(c.0), f(c.1), f(c.2))
}

/// A 95 % interval per point of a line (`None`: no interval at that point).
pub type Intervals = Vec<Option<(f64, f64)>>;

/// One line of a panel.
#[derive(Debug, Clone, Default)]
pub struct Line {
    pub label: String,
    pub color: (u8, u8, u8),
    pub points: Vec<(f64, f64)>,
    /// Error bars (low, high), one per point.
    pub err: Option<Intervals>,
    /// A shaded band (low, high), one per point; a point without one breaks the band, and a
    /// band of one point is drawn as an error bar.
    pub band: Option<Intervals>,
    pub markers: bool,
    /// Drawn thin and dashed: context (a parent's steps before a fork), not a result.
    pub dashed: bool,
}

/// The x-axis of a panel.
#[derive(Debug, Clone)]
pub enum XAxis {
    Numeric,
    /// Evenly spaced categories; a point's x is its category index.
    Categories(Vec<String>),
}

/// One chart of a figure.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: XAxis,
    pub lines: Vec<Line>,
    /// Start the y-axis at 0 (scores), else at the data.
    pub y_from_zero: bool,
    /// The x range to show (else the data's): points outside it are left out.
    pub x_range: Option<(f64, f64)>,
    /// The y range to show (else the data's, with its intervals): panels that are compared
    /// share one.
    pub y_range: Option<(f64, f64)>,
    /// Vertical marks: (x, text), e.g. the step a run was forked from its parent.
    pub marks: Vec<(f64, String)>,
}

impl Panel {
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Panel {
        Panel {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x: XAxis::Numeric,
            lines: Vec::new(),
            y_from_zero: false,
            x_range: None,
            y_range: None,
            marks: Vec::new(),
        }
    }
}

/// A figure: panels in a grid of `cols` columns, a title, lines of notes under it (what the
/// intervals are, what is context), and one legend for all panels to the right of them.
#[derive(Debug, Clone)]
pub struct Figure {
    pub title: String,
    pub notes: Vec<String>,
    pub panels: Vec<Panel>,
    pub cols: usize,
    pub panel_size: (u32, u32),
}

/// One legend entry: the lines of every panel that share a label.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    label: String,
    color: (u8, u8, u8),
    dashed: bool,
    markers: bool,
    band: bool,
}

const TITLE_H: u32 = 34;
const NOTE_H: u32 = 17;
const ENTRY_H: u32 = 18;
/// The legend's text size and an upper bound of DejaVu Sans' advance per character at it.
const LEGEND_FONT: u32 = 12;
const CHAR_W: u32 = 7;

impl Figure {
    fn grid(&self) -> (usize, usize) {
        let cols = self.cols.clamp(1, self.panels.len().max(1));
        (cols, self.panels.len().div_ceil(cols).max(1))
    }

    fn entries(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for l in self.panels.iter().flat_map(|p| &p.lines).filter(|l| !l.label.is_empty()) {
            let band = l.band.as_ref().is_some_and(|b| b.iter().any(Option::is_some))
                || l.err.as_ref().is_some_and(|b| b.iter().any(Option::is_some));
            match out.iter_mut().find(|e| e.label == l.label) {
                Some(e) => e.band |= band,
                None => out.push(Entry {
                    label: l.label.clone(),
                    color: l.color,
                    dashed: l.dashed,
                    markers: l.markers,
                    band,
                }),
            }
        }
        out
    }

    fn header_h(&self) -> u32 {
        let n = self.note_lines().len() as u32;
        TITLE_H + NOTE_H * n + if n == 0 { 0 } else { 6 }
    }

    /// The figure's width: its panels and the legend (at least 640 pixels).
    fn width(&self) -> u32 {
        let (cols, rows) = self.grid();
        let (_, _, legend_w) = self.legend_layout(self.panel_size.1 * rows as u32);
        (self.panel_size.0 * cols as u32 + legend_w).max(640)
    }

    /// The notes, each wrapped at word boundaries to the figure's width.
    fn note_lines(&self) -> Vec<String> {
        let max = (self.width().saturating_sub(32) / CHAR_W).max(20) as usize;
        let mut out = Vec::new();
        for note in &self.notes {
            let mut line = String::new();
            for word in note.split(' ') {
                if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > max {
                    out.push(std::mem::take(&mut line));
                }
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
            }
            out.push(line);
        }
        out
    }

    /// The legend's columns and width: entries stacked down the panels' height, in as many
    /// columns as they need.
    fn legend_layout(&self, body_h: u32) -> (usize, u32, u32) {
        let entries = self.entries();
        if entries.is_empty() {
            return (0, 0, 0);
        }
        let per_col = ((body_h.saturating_sub(40)) / ENTRY_H).max(1) as usize;
        let cols = entries.len().div_ceil(per_col);
        let widest = entries.iter().map(|e| e.label.chars().count() as u32).max().unwrap_or(0);
        let col_w = (widest * CHAR_W + 40).clamp(80, 320);
        (per_col, col_w, col_w * cols as u32 + 16)
    }

    /// The figure's size in pixels: the panels, the legend beside them, the title and notes.
    pub fn size(&self) -> (u32, u32) {
        let (_, rows) = self.grid();
        (self.width(), self.panel_size.1 * rows as u32 + self.header_h())
    }

    /// The figure as SVG text and as PNG bytes.
    pub fn render(&self) -> Result<(String, Vec<u8>)> {
        register_font();
        let (w, h) = self.size();
        let mut svg = String::new();
        {
            let area = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            self.draw(&area)?;
            area.present().map_err(|e| anyhow!("drawing the SVG: {e:?}"))?;
        }
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        {
            let area = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            self.draw(&area)?;
            area.present().map_err(|e| anyhow!("drawing the PNG: {e:?}"))?;
        }
        Ok((svg, encode_png(&rgb, w, h)?))
    }

    /// Write `<stem>.svg` and `<stem>.png` into `dir` (each atomically); returns their file
    /// names.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<Vec<String>> {
        let (svg, png) = self.render().with_context(|| format!("drawing {stem}"))?;
        let svg_name = format!("{stem}.svg");
        let png_name = format!("{stem}.png");
        crate::util::write_atomic(&dir.join(&svg_name), svg.as_bytes())?;
        crate::util::write_atomic(&dir.join(&png_name), &png)?;
        Ok(vec![svg_name, png_name])
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e:?}");
        root.fill(&WHITE).map_err(err)?;
        let (w, _) = root.dim_in_pixel();
        let (header, body) = root.split_vertically(self.header_h());
        let title = TextStyle::from((FAMILY, 20).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        header.draw(&Text::new(self.title.clone(), (w as i32 / 2, 8), title)).map_err(err)?;
        let note = TextStyle::from((FAMILY, 12).into_font()).color(&RGBColor(80, 80, 80));
        for (i, n) in self.note_lines().into_iter().enumerate() {
            let y = (TITLE_H + NOTE_H * i as u32) as i32;
            header.draw(&Text::new(n, (16, y), note.clone())).map_err(err)?;
        }
        let (cols, rows) = self.grid();
        let body_w = self.panel_size.0 * cols as u32;
        let (panels, legend) = body.split_horizontally(body_w);
        let areas = panels.split_evenly((rows, cols));
        for (area, p) in areas.iter().zip(&self.panels) {
            draw_panel(area, p)?;
        }
        self.draw_legend(&legend)
    }

    /// The legend, outside every panel's data: a sample of each line (dashed, with its marker,
    /// over a tint where it has an interval) and its label.
    fn draw_legend<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing the legend: {e:?}");
        let (_, h) = area.dim_in_pixel();
        let (per_col, col_w, _) = self.legend_layout(h);
        let text = TextStyle::from((FAMILY, LEGEND_FONT).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for (i, e) in self.entries().iter().enumerate() {
            let x = 8 + (i / per_col) as i32 * col_w as i32;
            let y = 40 + (i % per_col) as i32 * ENTRY_H as i32;
            let c = RGBColor(e.color.0, e.color.1, e.color.2);
            if e.band {
                area.draw(&Rectangle::new([(x, y - 6), (x + 24, y + 6)], c.mix(0.18).filled())).map_err(err)?;
            }
            if e.dashed {
                area.draw(&DashedPathElement::new(vec![(x, y), (x + 24, y)], 4, 3, c.stroke_width(1))).map_err(err)?;
            } else {
                area.draw(&PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2))).map_err(err)?;
            }
            if e.markers {
                area.draw(&Circle::new((x + 12, y), 3, c.filled())).map_err(err)?;
            }
            area.draw(&Text::new(e.label.clone(), (x + 30, y), text.clone())).map_err(err)?;
        }
        Ok(())
    }
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header()?;
        wr.write_image_data(rgb)?;
    }
    Ok(out)
}

/// Whether a point lies in the panel's x range.
fn in_x(p: &Panel, x: f64) -> bool {
    p.x_range.is_none_or(|(a, b)| x >= a - 1e-9 && x <= b + 1e-9)
}

fn bounds(p: &Panel) -> ((f64, f64), (f64, f64)) {
    let pts = p.lines.iter().flat_map(|l| {
        l.points.iter().enumerate().map(move |(i, &(x, y))| {
            let iv = |e: &Option<Intervals>| e.as_ref().and_then(|e| e.get(i).copied().flatten());
            let (lo, hi) =
                [iv(&l.err), iv(&l.band)].into_iter().flatten().fold((y, y), |(a, b), (lo, hi)| (a.min(lo), b.max(hi)));
            (x, lo, hi)
        })
    });
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, lo, hi) in pts.filter(|(x, lo, hi)| x.is_finite() && lo.is_finite() && hi.is_finite() && in_x(p, *x)) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(lo);
        y1 = y1.max(hi);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if let XAxis::Categories(c) = &p.x {
        (x0, x1) = (-0.5, c.len().max(1) as f64 - 0.5);
    } else if let Some(r) = p.x_range {
        (x0, x1) = r;
    }
    if x0 >= x1 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    if let Some(r) = p.y_range {
        return ((x0, x1), r);
    }
    if p.y_from_zero && y0 > 0.0 {
        y0 = 0.0;
    }
    if y1 - y0 < 1e-9 {
        (y0, y1) = if p.y_from_zero && y0 == 0.0 { (0.0, 1.0) } else { (y0 - 0.5, y1 + 0.5) };
    }
    let pad = (y1 - y0) * 0.06;
    let y0 = if p.y_from_zero && y0 >= 0.0 { y0 } else { y0 - pad };
    ((x0, x1), (y0, y1 + pad))
}

fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a < 1e-9 {
        "0".into()
    } else if a >= 10.0 {
        format!("{:.0}", v)
    } else if a >= 1.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.2}", v)
    }
}

/// The stretches of a line where every point has an interval: (x, lo, hi) each.
fn stretches(l: &Line, iv: &Intervals, p: &Panel) -> Vec<Vec<(f64, f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new()];
    for (&(x, _), e) in l.points.iter().zip(iv) {
        match e {
            Some((lo, hi)) if x.is_finite() && lo.is_finite() && hi.is_finite() && in_x(p, x) => {
                out.last_mut().expect("one").push((x, *lo, *hi))
            }
            _ => out.push(Vec::new()),
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing panel '{}': {e:?}", p.title);
    let ((x0, x1), (y0, y1)) = bounds(p);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FAMILY, 15))
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(48)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let cats = match &p.x {
        XAxis::Categories(c) => Some(c.clone()),
        XAxis::Numeric => None,
    };
    let n_x = cats.as_ref().map_or(6, |c| c.len().max(1));
    let x_fmt = move |x: &f64| match &cats {
        Some(c) => {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < c.len() {
                c[i as usize].clone()
            } else {
                String::new()
            }
        }
        None => fmt_tick(*x),
    };
    chart
        .configure_mesh()
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .x_labels(n_x)
        .y_labels(6)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&|y| fmt_tick(*y))
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(err)?;
    let cap = (x1 - x0) * 0.012;
    let bar = |x: f64, lo: f64, hi: f64, c: ShapeStyle| {
        [
            PathElement::new(vec![(x, lo), (x, hi)], c),
            PathElement::new(vec![(x - cap, lo), (x + cap, lo)], c),
            PathElement::new(vec![(x - cap, hi), (x + cap, hi)], c),
        ]
    };
    // Bands first, under every line.
    for l in &p.lines {
        let Some(band) = &l.band else { continue };
        let c = RGBColor(l.color.0, l.color.1, l.color.2);
        for s in stretches(l, band, p) {
            if s.len() == 1 {
                let (x, lo, hi) = s[0];
                chart.draw_series(bar(x, lo, hi, c.mix(0.6).stroke_width(1))).map_err(err)?;
                continue;
            }
            let outline: Vec<(f64, f64)> =
                s.iter().map(|&(x, _, hi)| (x, hi)).chain(s.iter().rev().map(|&(x, lo, _)| (x, lo))).collect();
            chart.draw_series(std::iter::once(Polygon::new(outline, c.mix(0.16).filled()))).map_err(err)?;
        }
    }
    let grey = RGBColor(150, 150, 150);
    for (x, text) in p.marks.iter().filter(|(x, _)| *x >= x0 && *x <= x1) {
        chart.draw_series(DashedLineSeries::new(vec![(*x, y0), (*x, y1)], 3, 3, grey.stroke_width(1))).map_err(err)?;
        let style = TextStyle::from((FAMILY, 11).into_font()).color(&RGBColor(90, 90, 90));
        chart.draw_series(std::iter::once(Text::new(format!(" {text}"), (*x, y1), style))).map_err(err)?;
    }
    for l in &p.lines {
        let c = RGBColor(l.color.0, l.color.1, l.color.2);
        let pts: Vec<(f64, f64)> =
            l.points.iter().copied().filter(|&(x, y)| x.is_finite() && y.is_finite() && in_x(p, x)).collect();
        if pts.is_empty() {
            continue;
        }
        if l.dashed {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 5, 3, c.stroke_width(1))).map_err(err)?;
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2))).map_err(err)?;
        }
        if l.markers {
            chart.draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 3, c.filled()))).map_err(err)?;
        }
        if let Some(e) = &l.err {
            for s in stretches(l, e, p) {
                chart.draw_series(s.iter().flat_map(|&(x, lo, hi)| bar(x, lo, hi, c.stroke_width(1)))).map_err(err)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A figure is valid SVG with its words as text and a PNG of its size; the legend sits
    /// right of the panels, outside every data area.
    #[test]
    fn a_figure_writes_valid_svg_and_png_with_the_legend_outside() {
        let dir = tempfile::tempdir().unwrap();
        let mut mr = Panel::new("MR", "N", "accuracy");
        mr.x = XAxis::Categories(vec!["0".into(), "100".into()]);
        mr.y_from_zero = true;
        mr.lines.push(Line {
            label: "seen".into(),
            color: group_color("seen"),
            points: vec![(0.0, 0.1), (1.0, 0.4)],
            err: Some(vec![Some((0.05, 0.15)), None]),
            markers: true,
            ..Line::default()
        });
        let mut loss = Panel::new("loss", "step", "loss");
        loss.lines.push(Line {
            label: "run".into(),
            color: run_color(0),
            points: vec![(10.0, 2.0), (20.0, 1.5), (30.0, 1.2)],
            band: Some(vec![Some((1.8, 2.2)), Some((1.3, 1.7)), None]),
            ..Line::default()
        });
        loss.lines.push(Line {
            label: "parent".into(),
            color: (110, 110, 110),
            points: vec![(0.0, 3.0), (10.0, 2.1)],
            dashed: true,
            ..Line::default()
        });
        loss.x_range = Some((5.0, 30.0));
        loss.marks = vec![(10.0, "fork @ 10".into())];
        let f = Figure {
            title: "t".into(),
            notes: vec!["a note".into()],
            cols: 2,
            panel_size: (300, 200),
            panels: vec![mr, loss],
        };
        let files = f.save(dir.path(), "fig").unwrap();
        assert_eq!(files, ["fig.svg", "fig.png"]);
        let svg = std::fs::read_to_string(dir.path().join("fig.svg")).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts: Vec<(&str, f64)> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| Some((n.text()?.trim(), n.attribute("x")?.parse().ok()?)))
            .collect();
        for want in ["seen", "100", "a note", "fork @ 10", "parent"] {
            assert!(texts.iter().any(|(t, _)| t.contains(want)), "{want} in {texts:?}");
        }
        for label in ["seen", "run", "parent"] {
            let x = texts.iter().find(|(t, _)| *t == label).unwrap().1;
            assert!(x > 600.0, "the legend's {label} is right of the panels (x = {x})");
        }
        let (w, h) = f.size();
        assert!(w > 600 && h > 200 + TITLE_H, "{w}×{h}");
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(dir.path().join("fig.png")).unwrap()));
        let r = dec.read_info().unwrap();
        assert_eq!((r.info().width, r.info().height), (w, h));
    }
}

//! Report figures: small multiples of line charts, drawn once through plotters into SVG (text as
//! text, for papers and browsers) and into an RGB buffer encoded as PNG. Text uses the embedded
//! DejaVu Sans, so figures look the same on every machine.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

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

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub color: (u8, u8, u8),
    pub points: Vec<(f64, f64)>,
    /// Error bars (low, high), one per point.
    pub err: Option<Vec<Option<(f64, f64)>>>,
    pub markers: bool,
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
}

/// A figure: panels in a grid of `cols` columns.
#[derive(Debug, Clone)]
pub struct Figure {
    pub title: String,
    pub panels: Vec<Panel>,
    pub cols: usize,
    pub panel_size: (u32, u32),
}

impl Figure {
    fn size(&self) -> (u32, u32) {
        let cols = self.cols.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().div_ceil(cols).max(1);
        (self.panel_size.0 * cols as u32, self.panel_size.1 * rows as u32 + 40)
    }

    /// Write `<stem>.svg` and `<stem>.png` into `dir`; returns their file names.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<Vec<String>> {
        register_font();
        let (w, h) = self.size();
        let mut svg = String::new();
        {
            let area = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            self.draw(&area)?;
            area.present().map_err(|e| anyhow!("drawing {stem}.svg: {e:?}"))?;
        }
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        {
            let area = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            self.draw(&area)?;
            area.present().map_err(|e| anyhow!("drawing {stem}.png: {e:?}"))?;
        }
        let svg_name = format!("{stem}.svg");
        let png_name = format!("{stem}.png");
        crate::util::write_atomic(&dir.join(&svg_name), svg.as_bytes())?;
        crate::util::write_atomic(&dir.join(&png_name), &encode_png(&rgb, w, h)?)?;
        Ok(vec![svg_name, png_name])
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e:?}");
        root.fill(&WHITE).map_err(err)?;
        let body = root.titled(&self.title, (FAMILY, 20)).map_err(err)?;
        let cols = self.cols.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().div_ceil(cols).max(1);
        let areas = body.split_evenly((rows, cols));
        for (area, p) in areas.iter().zip(&self.panels) {
            draw_panel(area, p)?;
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

fn bounds(p: &Panel) -> ((f64, f64), (f64, f64)) {
    let pts = p.lines.iter().flat_map(|l| {
        l.points.iter().enumerate().map(move |(i, &(x, y))| {
            let (lo, hi) = l.err.as_ref().and_then(|e| e.get(i).copied().flatten()).unwrap_or((y, y));
            (x, lo.min(y), hi.max(y))
        })
    });
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, lo, hi) in pts.filter(|(x, lo, hi)| x.is_finite() && lo.is_finite() && hi.is_finite()) {
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
    } else if x0 == x1 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
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
    let mut labelled = false;
    for l in &p.lines {
        let c = RGBColor(l.color.0, l.color.1, l.color.2);
        let pts: Vec<(f64, f64)> = l.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        if pts.is_empty() {
            continue;
        }
        let series = chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2))).map_err(err)?;
        if !l.label.is_empty() {
            labelled = true;
            series
                .label(l.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        if l.markers {
            chart.draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 3, c.filled()))).map_err(err)?;
        }
        if let Some(e) = &l.err {
            let bars: Vec<(f64, f64, f64)> = l
                .points
                .iter()
                .zip(e)
                .filter_map(|(&(x, _), e)| e.map(|(lo, hi)| (x, lo, hi)))
                .filter(|(x, lo, hi)| x.is_finite() && lo.is_finite() && hi.is_finite())
                .collect();
            let cap = (x1 - x0) * 0.012;
            chart
                .draw_series(bars.iter().flat_map(|&(x, lo, hi)| {
                    [
                        PathElement::new(vec![(x, lo), (x, hi)], c.stroke_width(1)),
                        PathElement::new(vec![(x - cap, lo), (x + cap, lo)], c.stroke_width(1)),
                        PathElement::new(vec![(x - cap, hi), (x + cap, hi)], c.stroke_width(1)),
                    ]
                }))
                .map_err(err)?;
        }
    }
    if labelled {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font((FAMILY, 11))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_writes_valid_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let f = Figure {
            title: "t".into(),
            cols: 2,
            panel_size: (300, 200),
            panels: vec![
                Panel {
                    title: "MR".into(),
                    x_label: "N".into(),
                    y_label: "accuracy".into(),
                    x: XAxis::Categories(vec!["0".into(), "100".into()]),
                    lines: vec![Line {
                        label: "seen".into(),
                        color: group_color("seen"),
                        points: vec![(0.0, 0.1), (1.0, 0.4)],
                        err: Some(vec![Some((0.05, 0.15)), None]),
                        markers: true,
                    }],
                    y_from_zero: true,
                },
                Panel {
                    title: "loss".into(),
                    x_label: "step".into(),
                    y_label: "loss".into(),
                    x: XAxis::Numeric,
                    lines: vec![],
                    y_from_zero: false,
                },
            ],
        };
        let files = f.save(dir.path(), "fig").unwrap();
        assert_eq!(files, ["fig.svg", "fig.png"]);
        let svg = std::fs::read_to_string(dir.path().join("fig.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("\nseen\n") && svg.contains("\n100\n"), "legend and category labels are text");
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(dir.path().join("fig.png")).unwrap()));
        let r = dec.read_info().unwrap();
        assert_eq!((r.info().width, r.info().height), (600, 240));
    }
}

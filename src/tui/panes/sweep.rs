//! The Sweep view (a sweep's row selected in the run tree): the sweep figure, live — per task,
//! English / seen / unseen scores against the sweep's x variable (N examples per language), each
//! run read at its best held-out-loss checkpoint — and below it the numbers, Spearman's rho of
//! seen vs unseen and the plateau points.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Row, Table};
use ratatui::Frame;

use super::{block, dim};
use crate::analysis::sweep::{higher_is_better, SweepAnalysis};
use crate::tui::chart::fmt_num;
use crate::tui::state::Focus;
use crate::tui::view::Ui;

const GROUPS: [(&str, &str); 3] = [("english", "EN"), ("seen", "seen"), ("unseen", "unseen")];

pub fn draw(f: &mut Frame, area: Rect, app: &Ui, id: &str) {
    let th = app.theme.clone();
    let Some(a) = app.derived.sweep.as_ref().filter(|a| a.id == id) else {
        f.render_widget(block(" Sweep ", false, &th), area);
        return;
    };
    let finished = a.runs.iter().filter(|r| r.state == crate::runs::events::State::Finished).count();
    let read = a.runs.iter().filter(|r| r.step.is_some()).count();
    let blk = block(
        Line::from(vec![
            Span::styled(format!(" Sweep {} ", a.name), th.title()),
            dim(
                format!(
                    "x = {} · {} runs, {finished} finished, {read} with evals · mean ± 95% CI, each run at its best held-out-loss checkpoint · {} ",
                    a.x_var.as_deref().unwrap_or("-"),
                    a.runs.len(),
                    a.id,
                ),
                &th,
            ),
        ]),
        app.view.focus != Focus::Runs,
        &th,
    );
    let inner = blk.inner(area);
    f.render_widget(blk, area);
    let mut tasks: Vec<String> = a.curves.iter().map(|c| c.task.clone()).collect();
    tasks.sort_by_key(|t| (crate::analysis::task_order(t), t.clone()));
    tasks.dedup();
    if tasks.is_empty() {
        f.render_widget(Paragraph::new(dim("no eval results yet: curves appear as the runs evaluate", &th)), inner);
        return;
    }
    // Per task one series (the grid variables other than x and seed, e.g. tasks=mr vs
    // tasks=mr+sm+if) at a time: `t` steps through them.
    let chosen = chosen_series(a, &tasks, app.view.sweep_series);
    let table_rows = a.x_values.len() + 4;
    let table_h = (table_rows as u16).min(inner.height / 2).max(4);
    let [charts, table] = Layout::vertical([Constraint::Min(6), Constraint::Length(table_h)]).areas(inner);
    let shown: Vec<&String> = tasks.iter().take(3).collect();
    let cols = Layout::horizontal(shown.iter().map(|_| Constraint::Ratio(1, shown.len() as u32))).split(charts);
    let k = a.x_values.len().max(1);
    for (task, col) in shown.iter().zip(cols.iter()) {
        let shown_series = chosen.iter().find(|(t, _)| t == *task).map(|(_, s)| s.clone()).unwrap_or_default();
        let metric = a.curves.iter().find(|c| c.task == **task).map(|c| c.metric.clone()).unwrap_or_default();
        let mut data: Vec<(Vec<(f64, f64)>, ratatui::style::Color)> = Vec::new();
        // Each point's 95 % interval, drawn as a vertical bar.
        let mut bars: Vec<([(f64, f64); 2], ratatui::style::Color)> = Vec::new();
        let mut y1: f64 = if higher_is_better(&metric) { 0.05 } else { f64::NEG_INFINITY };
        let mut y0: f64 = if higher_is_better(&metric) { 0.0 } else { f64::INFINITY };
        for (g, _) in GROUPS {
            let color = th.lang(if g == "english" { "anchor" } else { g }, 0);
            let mut pts = Vec::new();
            for c in a.curves.iter().filter(|c| c.task == **task && c.group == g && c.series == shown_series) {
                let Some(x) = a.x_values.iter().position(|x| *x == c.x) else { continue };
                let x = x as f64;
                pts.push((x, c.mean));
                y1 = y1.max(c.hi.unwrap_or(c.mean));
                y0 = y0.min(c.lo.unwrap_or(c.mean));
                if let (Some(lo), Some(hi)) = (c.lo, c.hi) {
                    bars.push(([(x, lo), (x, hi)], color));
                }
            }
            data.push((pts, color));
        }
        if !(y0.is_finite() && y1.is_finite()) || y1 <= y0 {
            (y0, y1) = (0.0, 1.0);
        }
        let pad = (y1 - y0) * 0.08;
        let (y0, y1) = (if higher_is_better(&metric) { y0 } else { y0 - pad }, y1 + pad);
        let bar_sets = bars.iter().map(|(ends, color)| {
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::default().fg(*color).add_modifier(Modifier::DIM))
                .data(ends)
        });
        let datasets: Vec<Dataset> = bar_sets
            .chain(data.iter().flat_map(|(pts, color)| {
                [
                    Dataset::default()
                        .marker(Marker::Braille)
                        .graph_type(GraphType::Line)
                        .style(Style::default().fg(*color))
                        .data(pts),
                    Dataset::default()
                        .marker(Marker::Dot)
                        .graph_type(GraphType::Scatter)
                        .style(Style::default().fg(*color).add_modifier(Modifier::BOLD))
                        .data(pts),
                ]
            }))
            .collect();
        let (x0, x1) = if k == 1 { (-1.0, 1.0) } else { (0.0, (k - 1) as f64) };
        let labels: Vec<String> =
            if k == 1 { vec![String::new(), a.x_values[0].clone(), String::new()] } else { a.x_values.clone() };
        let axis = Style::default().fg(th.dim);
        let title = Line::from(vec![
            Span::styled(format!(" {} ", task.to_uppercase()), th.title()),
            dim(
                if shown_series.is_empty() { format!("{metric} ") } else { format!("{metric} · {shown_series} ") },
                &th,
            ),
        ]);
        let chart = Chart::new(datasets)
            .block(block(title, false, &th))
            .legend_position(None)
            .x_axis(Axis::default().style(axis).bounds([x0, x1]).labels(labels))
            .y_axis(Axis::default().style(axis).bounds([y0, y1]).labels([
                fmt_num(y0),
                fmt_num((y0 + y1) / 2.0),
                fmt_num(y1),
            ]));
        f.render_widget(chart, *col);
    }
    draw_table(f, table, app, a, &chosen);
}

/// For each task, the series shown: the `pick`-th (cyclically) of those with curves of it.
pub fn chosen_series(a: &SweepAnalysis, tasks: &[String], pick: usize) -> Vec<(String, String)> {
    tasks
        .iter()
        .map(|t| {
            let mut s: Vec<&String> = a.curves.iter().filter(|c| c.task == *t).map(|c| &c.series).collect();
            s.sort();
            s.dedup();
            (t.clone(), s.get(pick % s.len().max(1)).map(|x| x.to_string()).unwrap_or_default())
        })
        .collect()
}

fn draw_table(f: &mut Frame, area: Rect, app: &Ui, a: &SweepAnalysis, chosen: &[(String, String)]) {
    let th = &app.theme;
    let shown: Vec<&(String, String)> = chosen.iter().take(3).collect();
    let fmt = |v: Option<f64>| v.filter(|x| x.is_finite()).map_or("-".to_string(), |x| format!("{x:.3}"));
    // The first column never truncates an x value; narrow panes get short row labels.
    let wide = area.width >= 70;
    let x_w = a.x_values.iter().map(|x| x.chars().count()).max().unwrap_or(1);
    let first_w = if wide { x_w.max(14) } else { x_w.max(7) } as u16;
    let ncols = (shown.len() * GROUPS.len()).max(1) as u16;
    let col_w = area.width.saturating_sub(first_w + ncols) / ncols;
    // Too narrow for `0.53±.07`: scores in percent, `53±7`, so that no mean loses its interval.
    let percent = col_w < 8;
    let x_label = a.x_var.clone().unwrap_or_else(|| "point".into());
    let mut header = vec![ratatui::widgets::Cell::from(Span::styled(
        if percent { format!("{x_label} (%)") } else { x_label },
        Style::default().fg(th.dim),
    ))];
    for (t, _) in &shown {
        for (g, label) in GROUPS {
            let c = th.lang(if g == "english" { "anchor" } else { g }, 0);
            header.push(ratatui::widgets::Cell::from(Span::styled(
                format!("{} {label}", t.to_uppercase()),
                Style::default().fg(c).add_modifier(Modifier::BOLD),
            )));
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    for x in &a.x_values {
        let mut cells = vec![ratatui::widgets::Cell::from(x.clone())];
        for (t, s) in &shown {
            for (g, _) in GROUPS {
                let c = a.curves.iter().find(|c| c.task == *t && c.group == g && c.series == *s && c.x == *x);
                let text = match c {
                    Some(c) => {
                        let v = if percent && higher_is_better(&c.metric) {
                            percent_ci(c.mean, c.ci95)
                        } else {
                            mean_ci(c.mean, c.ci95, col_w as usize)
                        };
                        if c.runs > 1 && v.chars().count() + 3 <= col_w as usize {
                            format!("{v} ×{}", c.runs)
                        } else {
                            v
                        }
                    }
                    None => "-".into(),
                };
                cells.push(ratatui::widgets::Cell::from(text));
            }
        }
        rows.push(Row::new(cells));
    }
    let (rho_label, plat_label) = if wide {
        ("ρ seen~unseen".to_string(), format!("plateau <{}", fmt_num(a.plateau_threshold)))
    } else {
        ("ρ s~u".to_string(), "plateau".to_string())
    };
    let mut rho = vec![ratatui::widgets::Cell::from(Span::styled(rho_label, Style::default().fg(th.dim)))];
    let mut plat = vec![ratatui::widgets::Cell::from(Span::styled(plat_label, Style::default().fg(th.dim)))];
    for (t, s) in &shown {
        let st = a.stats.iter().find(|x| x.task == *t && x.series == *s);
        rho.push(ratatui::widgets::Cell::from(fmt(st.and_then(|s| s.spearman_seen_unseen))));
        rho.push(ratatui::widgets::Cell::from(st.map_or(String::new(), |s| format!("n={}", s.pairs))));
        rho.push(ratatui::widgets::Cell::from(""));
        for (g, _) in GROUPS {
            let p = st.and_then(|s| s.plateau.get(g)).map(|p| match p {
                Some(x) => fmt_num(*x),
                None => {
                    if wide {
                        "none yet".into()
                    } else {
                        "none".into()
                    }
                }
            });
            plat.push(ratatui::widgets::Cell::from(p.unwrap_or_else(|| "-".into())));
        }
    }
    rows.push(Row::new(rho));
    rows.push(Row::new(plat));
    let mut widths = vec![Constraint::Length(first_w)];
    widths.extend(std::iter::repeat_n(Constraint::Fill(1), shown.len() * GROUPS.len()));
    let table = Table::new(rows, widths).header(Row::new(header)).column_spacing(1);
    f.render_widget(table, area);
}

/// A mean with its 95 % half-width, as wide as the column allows: `0.531 ±0.071`, `0.53±0.07`,
/// `0.53±.07`, or the mean alone.
pub fn mean_ci(mean: f64, half: Option<f64>, width: usize) -> String {
    if !mean.is_finite() {
        return "-".into();
    }
    let Some(h) = half.filter(|h| h.is_finite()) else { return format!("{mean:.3}") };
    let candidates = [
        format!("{mean:.3} ±{h:.3}"),
        format!("{mean:.2}±{h:.2}"),
        format!("{mean:.2}±{}", format!("{h:.2}").trim_start_matches('0')),
    ];
    candidates.into_iter().find(|c| c.chars().count() <= width).unwrap_or_else(|| format!("{mean:.3}"))
}

/// A score in [0, 1] and its 95 % half-width in percent: `53±7`.
pub fn percent_ci(mean: f64, half: Option<f64>) -> String {
    match half.filter(|h| h.is_finite()) {
        _ if !mean.is_finite() => "-".into(),
        Some(h) => format!("{:.0}±{:.0}", mean * 100.0, h * 100.0),
        None => format!("{:.0}", mean * 100.0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_mean_keeps_its_interval_as_long_as_the_column_allows() {
        use super::mean_ci;
        assert_eq!(mean_ci(0.5312, Some(0.0714), 12), "0.531 ±0.071");
        assert_eq!(mean_ci(0.5312, Some(0.0714), 10), "0.53±0.07");
        assert_eq!(mean_ci(0.5312, Some(0.0714), 8), "0.53±.07");
        assert_eq!(mean_ci(0.5312, Some(0.0714), 6), "0.531");
        assert_eq!(mean_ci(0.5312, None, 12), "0.531");
        assert_eq!(super::percent_ci(0.5312, Some(0.0714)), "53±7");
        assert_eq!(super::percent_ci(0.5312, None), "53");
    }
}

//! Compare view (`c` with two or more runs marked): the runs' mixtures, their language curves
//! side by side on identical axes, and a per-language delta table at the latest and best step.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::chart::{self, Curve, XMap};
use super::langs::{lang_color, lang_curves};
use super::{block, clip, dim};
use crate::tui::app::{App, Focus};
use crate::tui::store::RunData;

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let th = app.theme.clone();
    let runs: Vec<&RunData> = app.charted();
    let blk = block(
        Line::from(vec![
            Span::styled(" Compare ", th.title()),
            dim(
                format!(
                    "{} · {} · identical axes · Δ*: 95% CI excludes 0 ",
                    app.view.task.to_uppercase(),
                    if app.view.show_loss { "held-out loss" } else { "metric" }
                ),
                &th,
            ),
        ]),
        app.view.focus == Focus::Langs,
        &th,
    );
    let inner = blk.inner(area);
    f.render_widget(blk, area);
    if runs.len() < 2 {
        f.render_widget(Paragraph::new(dim("mark two or more runs to compare", &th)), inner);
        return;
    }
    // The delta table gets what it needs (languages + aggregates), the charts keep 6 rows.
    let all_rows = &app.derived.compare;
    let want = all_rows.iter().filter(|r| r.task == app.view.task).count() as u16 + 1;
    let table_h = want.min(inner.height.saturating_sub(6)).max(3);
    let [charts_area, table_area] = Layout::vertical([Constraint::Min(5), Constraint::Length(table_h)]).areas(inner);
    // Shared axes across every run's curves.
    let ty = |y: f32| y.is_finite().then_some(y as f64);
    let mut ext = (f64::INFINITY, f64::NEG_INFINITY);
    let mut yr = (f64::INFINITY, f64::NEG_INFINITY);
    for r in &runs {
        let t0 = r.first_time.unwrap_or(0.0);
        for (l, c) in lang_curves(app, r) {
            let s = if app.view.show_loss { &c.loss } else { &c.value };
            let m = XMap { run: r, axis: app.view.x_axis, lang: Some(l.as_str()), t0 };
            if let Some((a, b)) = chart::x_extent(s, &m, 0, u64::MAX) {
                ext = (ext.0.min(a), ext.1.max(b));
            }
            if let Some((a, b)) = s.range(0, u64::MAX) {
                yr = (yr.0.min(a as f64), yr.1.max(b as f64));
            }
        }
    }
    let yb = if yr.0.is_finite() {
        let pad = ((yr.1 - yr.0) * 0.05).max(1e-3);
        Some((yr.0 - pad, yr.1 + pad))
    } else {
        None
    };
    let xb = ext.0.is_finite().then_some(ext);
    let cols = Layout::horizontal(vec![Constraint::Ratio(1, runs.len() as u32); runs.len()]).split(charts_area);
    for (i, (r, ca)) in runs.iter().zip(cols.iter()).enumerate() {
        let t0 = r.first_time.unwrap_or(0.0);
        let width = (ca.width as usize).saturating_sub(8) * 2;
        let curves: Vec<Curve> = lang_curves(app, r)
            .into_iter()
            .map(|(l, c)| {
                let s = if app.view.show_loss { &c.loss } else { &c.value };
                let m = XMap { run: r, axis: app.view.x_axis, lang: Some(l.as_str()), t0 };
                Curve {
                    label: l.clone(),
                    color: lang_color(&th, r, l, &c.group),
                    points: chart::plot(s, &m, 0, u64::MAX, ext.0, ext.1, width, &ty),
                    dim: false,
                    sparse: true,
                }
            })
            .collect();
        let letter = (b'A' + i as u8) as char;
        let title = Line::from(vec![
            Span::styled(
                format!("{letter} {} ", clip(r.display_name(), 18)),
                Style::default().fg(th.run(i)).add_modifier(Modifier::BOLD),
            ),
            dim(clip(&r.mixture, (ca.width as usize).saturating_sub(22)), &th),
        ]);
        chart::draw(
            f,
            *ca,
            Block::default().title(title),
            &curves,
            app.view.x_axis.label(),
            false,
            xb,
            yb,
            &th,
            "no eval results yet",
        );
    }
    // Delta table: latest and best step.
    let rows_data: Vec<_> = all_rows
        .iter()
        .filter(|r| r.task == app.view.task && (lang_row(&r.row).is_none_or(|l| app.lang_visible(l))))
        .collect();
    let n = runs.len();
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
    // A delta is coloured (better / worse) only when its 95 % interval excludes zero; the rest,
    // and deltas without intervals (held-out loss, events written before intervals), are grey.
    let delta = |d: Option<f64>, significant: bool| -> Cell {
        let Some(d) = d else { return Cell::from("-") };
        let better = if app.view.show_loss { d < 0.0 } else { d > 0.0 };
        let style = if !significant {
            Style::default().fg(th.dim)
        } else if better {
            Style::default().fg(th.state(crate::runs::events::State::Running)).add_modifier(Modifier::BOLD)
        } else {
            Style::default().fg(th.error).add_modifier(Modifier::BOLD)
        };
        Cell::from(Span::styled(format!("{d:+.3}{}", if significant { "*" } else { "" }), style))
    };
    let mut header: Vec<Cell> = vec![Cell::from("")];
    for i in 0..n {
        header.push(Cell::from(Span::styled(format!("{}", (b'A' + i as u8) as char), Style::default().fg(th.run(i)))));
    }
    for i in 1..n {
        header.push(Cell::from(format!("Δ{}", (b'A' + i as u8) as char)));
    }
    header.push(Cell::from("│best"));
    for i in 0..n {
        header.push(Cell::from(format!("{}", (b'A' + i as u8) as char)));
    }
    for i in 1..n {
        header.push(Cell::from(format!("Δ{}", (b'A' + i as u8) as char)));
    }
    let mut rows = Vec::new();
    for rd in &rows_data {
        let label = match lang_row(&rd.row) {
            Some(_) => Span::styled(rd.row.clone(), Style::default().fg(th.fg).add_modifier(Modifier::BOLD)),
            None => Span::styled(rd.row.clone(), Style::default().fg(th.accent)),
        };
        let mut cells = vec![Cell::from(label)];
        for v in &rd.latest {
            cells.push(Cell::from(fmt(*v)));
        }
        for (v, m) in rd.latest[1..].iter().zip(&rd.latest_marked) {
            cells.push(delta(v.zip(rd.latest[0]).map(|(b, a)| b - a), *m));
        }
        cells.push(Cell::from("│"));
        for v in &rd.best {
            cells.push(Cell::from(fmt(*v)));
        }
        for (v, m) in rd.best[1..].iter().zip(&rd.best_marked) {
            cells.push(delta(v.zip(rd.best[0]).map(|(b, a)| b - a), *m));
        }
        rows.push(Row::new(cells));
    }
    let mut widths = vec![Constraint::Length(17)];
    widths.extend(std::iter::repeat_n(Constraint::Length(6), n));
    widths.extend(std::iter::repeat_n(Constraint::Length(7), n - 1));
    widths.push(Constraint::Length(5));
    widths.extend(std::iter::repeat_n(Constraint::Length(6), n));
    widths.extend(std::iter::repeat_n(Constraint::Length(7), n - 1));
    let t = Table::new(rows, widths).header(Row::new(header).style(th.dimmed().add_modifier(Modifier::UNDERLINED)));
    f.render_widget(t, table_area);
}

fn lang_row(row: &str) -> Option<&str> {
    crate::data::lang::get(row).map(|l| l.code.as_str())
}

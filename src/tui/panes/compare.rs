//! Compare view (`c` with two or more runs or groups marked): the config keys whose values
//! differ between the sides (as `mixscope diff` lists them), each side's mixture, its language
//! curves side by side on identical axes (a group's: its members' means, with the across-seed
//! interval shaded), and a per-language delta table at the latest and best step. A delta is
//! marked when its p-value, Holm-adjusted over the task's rows, is below 0.05 (across seeds when
//! a side is a group; sampling only between two single runs); a key shows each delta's own
//! interval instead.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::{block, clip, cursor, dim, lang_color, row_style};
use crate::analysis::stats::Delta;
use crate::tui::chart::{self, Band, Curve, XMap};
use crate::tui::groups::BandSeries;
use crate::tui::series::Series;
use crate::tui::state::{Focus, Side};
use crate::tui::store::RunData;
use crate::tui::view::Ui;

/// What the compare view's marks mean: Holm-adjusted over the task's rows by default, each
/// delta's own interval on a key; across seeds when a side is a group, else sampling only.
pub fn marks_legend(app: &Ui, sides: &[Side]) -> String {
    let seeds = if sides.iter().any(|s| s.group.is_some()) { "across seeds" } else { "sampling only (1 seed each)" };
    if app.view.unadjusted {
        format!("Δ*: own 95% CI excludes 0, unadjusted, {seeds}")
    } else {
        format!("Δ*: Holm-adjusted p<0.05 over the task's rows, {seeds}")
    }
}

pub fn draw(f: &mut Frame, area: Rect, app: &Ui) {
    let th = app.theme.clone();
    let sides: Vec<Side> = app.compare_sides();
    let blk = block(
        Line::from(vec![
            Span::styled(" Compare ", th.title()),
            dim(
                format!(
                    "{} · {} · identical axes ",
                    app.view.task.to_uppercase(),
                    if app.view.show_loss { "held-out loss" } else { "metric" },
                ),
                &th,
            ),
        ]),
        app.view.focus == Focus::Langs,
        &th,
    )
    // What a mark means, under the delta table.
    .title_bottom(Line::from(dim(format!(" {} ", marks_legend(app, &sides)), &th)));
    let inner = blk.inner(area);
    f.render_widget(blk, area);
    if sides.len() < 2 {
        f.render_widget(Paragraph::new(dim("mark two or more runs or groups to compare", &th)), inner);
        return;
    }
    // What differs between the configs on top (a few lines), the delta table under the charts
    // with what it needs (languages + aggregates); the charts keep 6 rows.
    let diff_cap = (inner.height / 6).clamp(1, 6) as usize;
    let diff_h = app.derived.config_diff.as_ref().map_or(1, |d| d.len().max(1)).min(diff_cap) as u16;
    let all_rows = &app.derived.compare;
    let want = all_rows.iter().filter(|r| r.task == app.view.task).count() as u16 + 1;
    let table_h = want.min(inner.height.saturating_sub(6 + diff_h)).max(3);
    let [diff_area, charts_area, table_area] =
        Layout::vertical([Constraint::Length(diff_h), Constraint::Min(5), Constraint::Length(table_h)]).areas(inner);
    f.render_widget(Paragraph::new(diff_lines(app, sides.len(), diff_area)), diff_area);
    // Shared axes across every run's curves.
    let ty = |y: f32| y.is_finite().then_some(y as f64);
    let mut ext = (f64::INFINITY, f64::NEG_INFINITY);
    let mut yr = (f64::INFINITY, f64::NEG_INFINITY);
    let shown = side_curves(app, &sides);
    for (r, curves) in &shown {
        let t0 = r.first_time.unwrap_or(0.0);
        let lo = app.view.x_range.from_step(r);
        for (l, s, _, _) in curves {
            let m = XMap { run: r, axis: app.view.x_axis, lang: Some(l.as_str()), t0 };
            if let Some((a, b)) = chart::x_extent(s, &m, lo, u64::MAX) {
                ext = (ext.0.min(a), ext.1.max(b));
            }
            if let Some((a, b)) = s.range(lo, u64::MAX) {
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
    let n = sides.len();
    let cols = Layout::horizontal(vec![Constraint::Ratio(1, n as u32); n]).split(charts_area);
    for (i, ((side, (r, shown)), ca)) in sides.iter().zip(&shown).zip(cols.iter()).enumerate() {
        let t0 = r.first_time.unwrap_or(0.0);
        let lo = app.view.x_range.from_step(r);
        let width = (ca.width as usize).saturating_sub(8) * 2;
        let (mut curves, mut bands) = (Vec::new(), Vec::new());
        for (l, s, band, group) in shown {
            let m = XMap { run: r, axis: app.view.x_axis, lang: Some(l.as_str()), t0 };
            let color = lang_color(&th, r, l, group);
            if let Some(b) = band {
                bands.push(Band {
                    color,
                    points: chart::band(&b.lo, &b.hi, &m, lo, u64::MAX, ext.0, ext.1, width, &ty),
                });
            }
            curves.push(Curve {
                label: l.clone(),
                color,
                points: chart::plot(s, &m, lo, u64::MAX, ext.0, ext.1, width, &ty),
                dim: false,
                sparse: true,
            });
        }
        let letter = (b'A' + i as u8) as char;
        let title = Line::from(vec![
            Span::styled(
                format!("{letter} {} ", clip(&side.label, 18)),
                Style::default().fg(th.run(i)).add_modifier(Modifier::BOLD),
            ),
            dim(clip(&r.mixture, (ca.width as usize).saturating_sub(22)), &th),
        ]);
        chart::draw_bands(
            f,
            *ca,
            Block::default().title(title),
            &curves,
            &bands,
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
    // A group's column says how many seeds it holds.
    let head = |i: usize| match sides[i].group {
        Some(g) => format!("{} K={}", (b'A' + i as u8) as char, g.runs.len()),
        None => format!("{}", (b'A' + i as u8) as char),
    };
    let mut header: Vec<Cell> = vec![Cell::from("")];
    for i in 0..n {
        header.push(Cell::from(Span::styled(head(i), Style::default().fg(th.run(i)))));
    }
    for i in 1..n {
        header.push(Cell::from(format!("Δ{}", (b'A' + i as u8) as char)));
    }
    header.push(Cell::from("│best"));
    for i in 0..n {
        header.push(Cell::from(head(i)));
    }
    for i in 1..n {
        header.push(Cell::from(format!("Δ{}", (b'A' + i as u8) as char)));
    }
    // Holm's marks, or on a key each delta's own interval.
    let mark = |holm: bool, d: &Option<Delta>| {
        if app.view.unadjusted {
            d.is_some_and(|d| d.est.excludes_zero())
        } else {
            holm
        }
    };
    let mut rows = Vec::new();
    let cursor = cursor(app);
    for rd in &rows_data {
        let label = match lang_row(&rd.row) {
            Some(_) => Span::styled(rd.row.clone(), Style::default().fg(th.fg).add_modifier(Modifier::BOLD)),
            None => Span::styled(rd.row.clone(), Style::default().fg(th.accent)),
        };
        let mut cells = vec![Cell::from(label)];
        for v in &rd.latest {
            cells.push(Cell::from(fmt(*v)));
        }
        for ((v, m), d) in rd.latest[1..].iter().zip(&rd.latest_marked).zip(&rd.latest_delta) {
            cells.push(delta(v.zip(rd.latest[0]).map(|(b, a)| b - a), mark(*m, d)));
        }
        cells.push(Cell::from("│"));
        for v in &rd.best {
            cells.push(Cell::from(fmt(*v)));
        }
        for ((v, m), d) in rd.best[1..].iter().zip(&rd.best_marked).zip(&rd.best_delta) {
            cells.push(delta(v.zip(rd.best[0]).map(|(b, a)| b - a), mark(*m, d)));
        }
        let on = lang_row(&rd.row).is_some() && cursor.as_deref() == Some(rd.row.as_str());
        rows.push(Row::new(cells).style(row_style(&th, on)));
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

/// The config keys that differ between the sides, a line each (`≠ key  A value  B value`), as
/// many as fit; the last says how many more there are.
fn diff_lines(app: &Ui, n: usize, area: Rect) -> Vec<Line<'static>> {
    let th = app.theme;
    let Some(rows) = &app.derived.config_diff else {
        return vec![Line::from(dim("config: a side's run.toml cannot be read", th))];
    };
    if rows.is_empty() {
        return vec![Line::from(dim("config: the same", th))];
    }
    let h = area.height as usize;
    let shown = if rows.len() > h { h.saturating_sub(1) } else { rows.len() };
    let key_w = rows.iter().take(shown).map(|r| r.key.chars().count()).max().unwrap_or(0).min(22);
    let side_w = (area.width as usize).saturating_sub(key_w + 3) / n.max(1);
    let mut lines: Vec<Line> = rows
        .iter()
        .take(shown)
        .map(|r| {
            let mut spans = vec![
                dim("≠ ", th),
                Span::styled(format!("{:<key_w$}", clip(&r.key, key_w)), Style::default().fg(th.fg)),
            ];
            for (i, v) in r.values.iter().enumerate() {
                let letter = (b'A' + i as u8) as char;
                spans.push(Span::styled(format!(" {letter} "), Style::default().fg(th.run(i))));
                let text = clip(&v.join(","), side_w.saturating_sub(3));
                spans.push(Span::raw(format!("{text:<w$}", w = side_w.saturating_sub(3))));
            }
            Line::from(spans)
        })
        .collect();
    if shown < rows.len() {
        let more = rows.len() - shown;
        let keys: Vec<&str> = rows[shown..].iter().map(|r| r.key.as_str()).collect();
        let head = if shown == 0 { format!("{more} keys differ") } else { format!("+{more} more") };
        lines.push(Line::from(dim(clip(&format!("≠ {head}: {}", keys.join(" ")), area.width as usize), th)));
    }
    lines
}

/// Each side's language curves of the pane's task, with the run that places them on the x
/// axis: a run's own; a group's members' means (and bands), placed by its reference member.
#[allow(clippy::type_complexity)]
fn side_curves<'a>(
    app: &Ui<'a>,
    sides: &[Side<'a>],
) -> Vec<(&'a RunData, Vec<(String, &'a Series, Option<&'a BandSeries>, String)>)> {
    sides
        .iter()
        .map(|side| {
            if let Some(agg) = side.group.and_then(|g| app.group_aggs.get(&g.id)) {
                let r = side.runs.iter().find(|r| r.id == agg.reference).copied().unwrap_or(side.runs[0]);
                let mut v: Vec<(String, &Series, Option<&BandSeries>, String)> = agg
                    .evals
                    .iter()
                    .filter(|((t, l), _)| *t == app.view.task && app.lang_visible(l))
                    .map(|((_, l), e)| {
                        let b = if app.view.show_loss { &e.loss } else { &e.value };
                        (l.clone(), &b.mean, Some(b), e.group.clone())
                    })
                    .collect();
                v.sort_by_key(|(l, ..)| crate::data::lang::order(l));
                return (r, v);
            }
            let r = side.runs[0];
            let v = app
                .lang_curves(r)
                .into_iter()
                .map(|(l, c)| (l.clone(), if app.view.show_loss { &c.loss } else { &c.value }, None, c.group.clone()))
                .collect();
            (r, v)
        })
        .collect()
}

fn lang_row(row: &str) -> Option<&str> {
    crate::data::lang::get(row).map(|l| l.code.as_str())
}

//! The languages pane: per-language eval curves of one task (its metric, or held-out loss),
//! coloured by group (English, seen, unseen); overlay or small multiples; a live table with the
//! latest value per language and the paper's aggregates. A run's intervals are its evaluation's
//! sampling error ("1 seed"); a group's curves are its members' means with the across-seed
//! interval shaded, its table their means with the t-interval, K and n.

use std::collections::BTreeMap;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row, Table};
use ratatui::Frame;

use super::{block, cursor, dim, lang_color, row_style};
use crate::analysis::stats::Est;
use crate::analysis::{aggregate, aggregate_cis, cell_est, Aggregates};
use crate::data::lang;
use crate::runs::group::Group;
use crate::tui::chart::{self, Band, Curve, XMap};
use crate::tui::derived::GroupTable;
use crate::tui::groups::{BandSeries, EvalBand, GroupAgg};
use crate::tui::state::Focus;
use crate::tui::store::{EvalCurve, RunData};
use crate::tui::view::Ui;

/// The metric name shown for the pane.
pub fn metric_name(app: &Ui, r: &RunData) -> String {
    if app.view.show_loss {
        return "held-out loss".into();
    }
    r.evals.iter().find(|((t, _), _)| *t == app.view.task).map(|(_, c)| c.metric.clone()).unwrap_or_default()
}

/// Latest cells of the pane's task (for the table and the aggregates).
pub fn latest_cells(app: &Ui, r: &RunData) -> BTreeMap<(String, String), crate::analysis::Cell> {
    let mut m = BTreeMap::new();
    for (l, c) in app.lang_curves(r) {
        let (Some((step, v)), Some((_, loss))) = (c.value.last(), c.loss.last()) else { continue };
        m.insert(
            (app.view.task.clone(), l.clone()),
            crate::analysis::Cell {
                group: c.group.clone(),
                metric: c.metric.clone(),
                value: v as f64,
                loss: loss as f64,
                n: c.n,
                lang_ok: c.lang_ok.map(|x| x as f64),
                scores: None,
                ci: c.ci_at(step).map(|(lo, hi)| [lo, hi]),
            },
        );
    }
    m
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| if x.abs() >= 10.0 { format!("{x:.1}") } else { format!("{x:.3}") })
}

pub fn draw(f: &mut Frame, area: Rect, app: &Ui) {
    let th = app.theme.clone();
    if let Some(g) = app.selected_group() {
        draw_group(f, area, app, g);
        return;
    }
    let Some(r) = app.selected_run() else {
        f.render_widget(
            block(Line::from(Span::styled(" Languages ", th.title())), app.view.focus == Focus::Langs, &th),
            area,
        );
        return;
    };
    let metric = metric_name(app, r);
    let title = Line::from(vec![
        Span::styled(" Languages ", th.title()),
        Span::styled(
            format!("{} ", app.view.task.to_uppercase()),
            Style::default().fg(th.fg).add_modifier(Modifier::BOLD),
        ),
        dim(
            format!("{metric} · {} · {} ", if app.view.grid { "grid" } else { "overlay" }, app.view.scripts.label()),
            &th,
        ),
        Span::styled("━ English ", Style::default().fg(th.lang("anchor", 0))),
        Span::styled("━ seen ", Style::default().fg(th.lang("seen", 0))),
        Span::styled("━ unseen ", Style::default().fg(th.lang("unseen", 0))),
    ]);
    let blk = block(title, app.view.focus == Focus::Langs, &th);
    let inner = blk.inner(area);
    f.render_widget(blk, area);
    let table_w = if inner.width >= 90 { 45 } else { 26 };
    let [chart_area, table_area] =
        Layout::horizontal([Constraint::Min(10), Constraint::Length(table_w)]).spacing(1).areas(inner);
    draw_curves(f, chart_area, app, r);
    // Under the table: what its intervals are.
    let [table_area, note_area] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(table_area);
    draw_table(f, table_area, app, r);
    f.render_widget(ratatui::widgets::Paragraph::new(dim("1 seed: sampling-only CIs", &th)), note_area);
}

fn draw_curves(f: &mut Frame, area: Rect, app: &Ui, r: &RunData) {
    let th = &app.theme;
    let curves = app.lang_curves(r);
    if curves.is_empty() {
        let msg = if r.evals.is_empty() {
            "no eval results yet"
        } else if r.evals.keys().any(|(t, _)| *t == app.view.task) {
            "no language matches the filter"
        } else {
            "no eval results for this task"
        };
        chart::draw(f, area, Block::default(), &[], "", false, None, None, th, msg);
        return;
    }
    let t0 = r.first_time.unwrap_or(0.0);
    let lo = app.view.x_range.from_step(r);
    let series = |c: &EvalCurve| -> crate::tui::series::Series {
        if app.view.show_loss {
            c.loss.clone()
        } else {
            c.value.clone()
        }
    };
    let ty = |y: f32| y.is_finite().then_some(y as f64);
    // Shared axes: x over all curves, y over all values (metrics in [0, 1] stay there).
    let mut ext = (f64::INFINITY, f64::NEG_INFINITY);
    for (l, c) in &curves {
        let m = XMap { run: r, axis: app.view.x_axis, lang: Some(l.as_str()), t0 };
        if let Some((a, b)) = chart::x_extent(&series(c), &m, lo, u64::MAX) {
            ext = (ext.0.min(a), ext.1.max(b));
        }
    }
    // One eval so far (a fresh fork): span the run's trained steps rather than ±1 around it.
    if ext.1 <= ext.0 {
        if let Some((l, _)) = curves.first() {
            let m = XMap { run: r, axis: app.view.x_axis, lang: Some(l.as_str()), t0 };
            if let Some((a, b)) = chart::x_extent(&r.loss, &m, lo, u64::MAX) {
                ext = (ext.0.min(a), ext.1.max(b));
            }
        }
    }
    let unit = !app.view.show_loss
        && curves.iter().all(|(_, c)| c.value.range(0, u64::MAX).is_none_or(|(a, b)| a >= 0.0 && b <= 1.0));
    let yb = unit.then_some((0.0, 1.0));
    if app.view.grid {
        let n = curves.len();
        let cols = ((n as f64).sqrt().ceil() as usize).max(1);
        let rows = n.div_ceil(cols);
        let row_areas = Layout::vertical(vec![Constraint::Ratio(1, rows as u32); rows]).split(area);
        for (ri, ra) in row_areas.iter().enumerate() {
            let cells = Layout::horizontal(vec![Constraint::Ratio(1, cols as u32); cols]).split(*ra);
            for (ci, ca) in cells.iter().enumerate() {
                let k = ri * cols + ci;
                let Some((l, c)) = curves.get(k) else { continue };
                let m = XMap { run: r, axis: app.view.x_axis, lang: Some(l.as_str()), t0 };
                let color = lang_color(th, r, l, &c.group);
                let s = series(c);
                let pts =
                    chart::plot(&s, &m, lo, u64::MAX, ext.0, ext.1, (ca.width as usize).saturating_sub(8) * 2, &ty);
                let last = s.last().map_or("-".into(), |(_, v)| format!("{v:.2}"));
                let b = Block::default().title(Line::from(vec![
                    Span::styled(format!("{l} "), Style::default().fg(color).add_modifier(Modifier::BOLD)),
                    dim(last, th),
                ]));
                chart::draw(
                    f,
                    *ca,
                    b,
                    &[Curve { label: l.to_string(), color, points: pts, dim: false, sparse: true }],
                    "",
                    false,
                    Some(ext),
                    yb,
                    th,
                    "",
                );
            }
        }
        return;
    }
    let width = (area.width as usize).saturating_sub(8) * 2;
    let out: Vec<Curve> = curves
        .iter()
        .map(|(l, c)| {
            let m = XMap { run: r, axis: app.view.x_axis, lang: Some(l.as_str()), t0 };
            Curve {
                label: l.to_string(),
                color: lang_color(th, r, l, &c.group),
                points: chart::plot(&series(c), &m, lo, u64::MAX, ext.0, ext.1, width, &ty),
                dim: false,
                sparse: true,
            }
        })
        .collect();
    chart::draw(f, area, Block::default(), &out, app.view.x_axis.label(), false, Some(ext), yb, th, "");
}

/// An interval as `lo–hi` with two decimals and no leading zero (`.42–.64`, `-.16–.02`;
/// at most 8 columns for values in (-1, 1)).
pub fn fmt_ci(lo: f64, hi: f64) -> String {
    let short = |x: f64| {
        let t = format!("{x:.2}");
        if let Some(r) = t.strip_prefix("0.") {
            format!(".{r}")
        } else if let Some(r) = t.strip_prefix("-0.") {
            format!("-.{r}")
        } else {
            t
        }
    };
    format!("{}–{}", short(lo), short(hi))
}

fn draw_table(f: &mut Frame, area: Rect, app: &Ui, r: &RunData) {
    let th = &app.theme;
    let cells = latest_cells(app, r);
    let wide = area.width >= 42;
    let mut order: Vec<(&(String, String), &crate::analysis::Cell)> = cells.iter().collect();
    order.sort_by_key(|((_, l), _)| lang::order(l));
    let mut rows: Vec<Row> = Vec::new();
    let ci_text =
        |e: Option<Est>| if app.view.show_loss { String::new() } else { e.map_or("-".into(), |e| fmt_ci(e.lo, e.hi)) };
    let cursor = cursor(app);
    for ((_, l), c) in order {
        let color = lang_color(th, r, l, &c.group);
        let v = if app.view.show_loss { c.loss } else { c.value };
        let ok = c.lang_ok.map_or(String::new(), |x| format!("{:.0}%", x * 100.0));
        let mut cols =
            vec![Cell::from(Span::styled(l.clone(), Style::default().fg(color).add_modifier(Modifier::BOLD)))];
        if wide {
            cols.push(Cell::from(dim(c.group.clone(), th)));
        }
        cols.push(Cell::from(fmt(Some(v))));
        cols.push(Cell::from(dim(ci_text(cell_est(c)), th)));
        if wide {
            cols.push(Cell::from(dim(c.n.to_string(), th)));
            cols.push(Cell::from(dim(ok, th)));
        }
        rows.push(Row::new(cols).style(row_style(th, cursor.as_deref() == Some(l.as_str()))));
    }
    let a: Aggregates = aggregate(&cells, &app.view.task, app.view.show_loss);
    let cis = aggregate_cis(&cells, &app.view.task);
    let sep = Style::default().fg(th.accent);
    for (name, v, e) in [
        ("seen avg", a.seen, cis.seen),
        ("unseen avg", a.unseen, cis.unseen),
        ("gap", a.gap, cis.gap),
        ("÷ English", a.ratio_to_english, None),
        ("Latin", a.latin, cis.latin),
        ("non-Latin", a.non_latin, cis.non_latin),
    ] {
        let mut cols = vec![Cell::from(Span::styled(name, sep))];
        if wide {
            cols.push(Cell::from(""));
        }
        cols.push(Cell::from(fmt(v)));
        if v.is_some() {
            cols.push(Cell::from(dim(ci_text(e), th)));
        }
        rows.push(Row::new(cols));
    }
    // Narrow: no n column, so the header says the examples behind every value.
    let (n_lo, n_hi) = cells.values().fold((u64::MAX, 0), |(a, b), c| (a.min(c.n), b.max(c.n)));
    let lang_head = match (n_lo, n_hi) {
        (u64::MAX, _) => "lang".to_string(),
        (a, b) if a == b => format!("lang n={a}"),
        (a, b) => format!("n={a}–{b}"),
    };
    let (header, widths): (Vec<&str>, Vec<Constraint>) = if wide {
        (
            vec!["lang", "group", "value", "95% CI", "n", "in-lang"],
            vec![
                Constraint::Length(10),
                Constraint::Length(6),
                Constraint::Length(5),
                Constraint::Length(8),
                Constraint::Length(4),
                Constraint::Length(4),
            ],
        )
    } else {
        (
            vec![&lang_head, "value", "95% CI"],
            vec![Constraint::Length(10), Constraint::Length(6), Constraint::Length(8)],
        )
    };
    let t = Table::new(rows, widths).header(Row::new(header).style(th.dimmed().add_modifier(Modifier::UNDERLINED)));
    f.render_widget(t, area);
}

/// A group's languages pane: per language the members' mean with the across-seed 95 %
/// interval shaded under it (and the members as thin lines on a key), and the table of
/// means with their intervals, K and n (derived when the data or the selection change).
fn draw_group(f: &mut Frame, area: Rect, app: &Ui, g: &Group) {
    let th = &app.theme;
    let members = app.members(g);
    let agg = app.group_aggs.get(&g.id);
    let reference = agg.and_then(|a| members.iter().find(|r| r.id == a.reference)).or(members.first()).copied();
    let metric = reference.map(|r| metric_name(app, r)).unwrap_or_default();
    let title = Line::from(vec![
        Span::styled(" Languages ", th.title()),
        Span::styled(
            format!("{} ", app.view.task.to_uppercase()),
            Style::default().fg(th.fg).add_modifier(Modifier::BOLD),
        ),
        dim(format!("{metric} · mean of {} seeds ", members.len()), th),
        Span::styled("⢕ 95% across seeds ", th.dimmed()),
        dim(format!("· {} · {} ", if app.view.grid { "grid" } else { "overlay" }, app.view.scripts.label()), th),
        Span::styled("━ English ", Style::default().fg(th.lang("anchor", 0))),
        Span::styled("━ seen ", Style::default().fg(th.lang("seen", 0))),
        Span::styled("━ unseen ", Style::default().fg(th.lang("unseen", 0))),
    ]);
    let blk = block(title, app.view.focus == Focus::Langs, th);
    let inner = blk.inner(area);
    f.render_widget(blk, area);
    let (Some(agg), Some(r)) = (agg, reference) else { return };
    let table_w = if inner.width >= 90 { 45 } else { 26 };
    let [chart_area, table_area] =
        Layout::horizontal([Constraint::Min(10), Constraint::Length(table_w)]).spacing(1).areas(inner);
    draw_group_curves(f, chart_area, app, &members, agg, r);
    let [table_area, note_area] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(table_area);
    if let Some(t) = &app.derived.group_table {
        draw_group_table(f, table_area, app, r, t);
        // Under the table: what its intervals are, and the step it reads.
        let at = t.step.map_or(String::new(), |s| format!(" @{s}"));
        let note = if t.k < t.members {
            format!("K={} of {}{at}, t-interval", t.k, t.members)
        } else {
            format!("K={}{at}, t-interval", t.k)
        };
        f.render_widget(ratatui::widgets::Paragraph::new(dim(note, th)), note_area);
    }
}

fn draw_group_curves(f: &mut Frame, area: Rect, app: &Ui, members: &[&RunData], agg: &GroupAgg, r: &RunData) {
    let th = &app.theme;
    let mut langs: Vec<(&String, &EvalBand)> = agg
        .evals
        .iter()
        .filter(|((t, l), _)| *t == app.view.task && app.lang_visible(l))
        .map(|((_, l), e)| (l, e))
        .collect();
    langs.sort_by_key(|(l, _)| lang::order(l));
    if langs.is_empty() {
        chart::draw(f, area, Block::default(), &[], "", false, None, None, th, "no eval results for this task yet");
        return;
    }
    let t0 = r.first_time.unwrap_or(0.0);
    let lo = app.view.x_range.from_step(r);
    let loss = app.view.show_loss;
    fn pick(e: &EvalBand, loss: bool) -> &BandSeries {
        if loss {
            &e.loss
        } else {
            &e.value
        }
    }
    fn member_series<'a>(m: &'a RunData, task: &str, l: &str, loss: bool) -> Option<&'a crate::tui::series::Series> {
        m.evals.get(&(task.to_string(), l.to_string())).map(|c| if loss { &c.loss } else { &c.value })
    }
    let ty = |y: f32| y.is_finite().then_some(y as f64);
    let mut ext = (f64::INFINITY, f64::NEG_INFINITY);
    for (l, e) in &langs {
        let m = XMap { run: r, axis: app.view.x_axis, lang: Some(l.as_str()), t0 };
        if let Some((a, b)) = chart::x_extent(&pick(e, loss).mean, &m, lo, u64::MAX) {
            ext = (ext.0.min(a), ext.1.max(b));
        }
    }
    if ext.1 <= ext.0 {
        let m = XMap { run: r, axis: app.view.x_axis, lang: None, t0 };
        if let Some((a, b)) = chart::x_extent(&r.loss, &m, lo, u64::MAX) {
            ext = (ext.0.min(a), ext.1.max(b));
        }
    }
    let unit = !app.view.show_loss
        && langs.iter().all(|(_, e)| e.value.mean.range(0, u64::MAX).is_none_or(|(a, b)| a >= 0.0 && b <= 1.0));
    let yb = unit.then_some((0.0, 1.0));
    // One language's curves: its members (thin), its mean; and its band.
    let of = |l: &str, e: &EvalBand, width: usize| -> (Vec<Curve>, Band) {
        let m = XMap { run: r, axis: app.view.x_axis, lang: Some(l), t0 };
        let color = lang_color(th, r, l, &e.group);
        let mut curves = Vec::new();
        if app.view.members {
            for mr in members {
                let Some(s) = member_series(mr, &app.view.task, l, loss) else { continue };
                let mm = XMap { run: mr, axis: app.view.x_axis, lang: Some(l), t0: mr.first_time.unwrap_or(0.0) };
                curves.push(Curve {
                    label: format!("{l} {}", mr.id),
                    color,
                    points: chart::plot(s, &mm, app.view.x_range.from_step(mr), u64::MAX, ext.0, ext.1, width, &ty),
                    dim: true,
                    sparse: false,
                });
            }
        }
        let b = pick(e, loss);
        curves.push(Curve {
            label: l.to_string(),
            color,
            points: chart::plot(&b.mean, &m, lo, u64::MAX, ext.0, ext.1, width, &ty),
            dim: false,
            sparse: true,
        });
        (curves, Band { color, points: chart::band(&b.lo, &b.hi, &m, lo, u64::MAX, ext.0, ext.1, width, &ty) })
    };
    if app.view.grid {
        let n = langs.len();
        let cols = ((n as f64).sqrt().ceil() as usize).max(1);
        let rows = n.div_ceil(cols);
        let row_areas = Layout::vertical(vec![Constraint::Ratio(1, rows as u32); rows]).split(area);
        for (ri, ra) in row_areas.iter().enumerate() {
            let cells = Layout::horizontal(vec![Constraint::Ratio(1, cols as u32); cols]).split(*ra);
            for (ci, ca) in cells.iter().enumerate() {
                let Some((l, e)) = langs.get(ri * cols + ci) else { continue };
                let (curves, band) = of(l, e, (ca.width as usize).saturating_sub(8) * 2);
                let color = lang_color(th, r, l, &e.group);
                let last = pick(e, loss).mean.last().map_or("-".into(), |(_, v)| format!("{v:.2}"));
                let b = Block::default().title(Line::from(vec![
                    Span::styled(format!("{l} "), Style::default().fg(color).add_modifier(Modifier::BOLD)),
                    dim(last, th),
                ]));
                chart::draw_bands(f, *ca, b, &curves, &[band], "", false, Some(ext), yb, th, "");
            }
        }
        return;
    }
    let width = (area.width as usize).saturating_sub(8) * 2;
    let (mut curves, mut bands) = (Vec::new(), Vec::new());
    for (l, e) in &langs {
        let (c, b) = of(l, e, width);
        curves.extend(c);
        bands.push(b);
    }
    chart::draw_bands(
        f,
        area,
        Block::default(),
        &curves,
        &bands,
        app.view.x_axis.label(),
        false,
        Some(ext),
        yb,
        th,
        "",
    );
}

fn draw_group_table(f: &mut Frame, area: Rect, app: &Ui, r: &RunData, t: &GroupTable) {
    let th = &app.theme;
    let wide = area.width >= 42;
    let ci_text = |e: Option<Est>| e.map_or("-".into(), |e| fmt_ci(e.lo, e.hi));
    let sep = Style::default().fg(th.accent);
    let mut rows: Vec<Row> = Vec::new();
    let cursor = cursor(app);
    for row in &t.rows {
        let label = match &row.lang_group {
            Some(g) => Span::styled(
                row.row.clone(),
                Style::default().fg(lang_color(th, r, &row.row, g)).add_modifier(Modifier::BOLD),
            ),
            None => Span::styled(row.row.clone(), sep),
        };
        let mut cols = vec![Cell::from(label)];
        if wide {
            cols.push(Cell::from(dim(row.lang_group.clone().unwrap_or_default(), th)));
        }
        cols.push(Cell::from(fmt(row.value)));
        if row.value.is_some() {
            cols.push(Cell::from(dim(ci_text(row.ci), th)));
            if wide {
                cols.push(Cell::from(dim(row.k.to_string(), th)));
                cols.push(Cell::from(dim(row.n.map_or(String::new(), |n| n.to_string()), th)));
            }
        }
        let on = row.lang_group.is_some() && cursor.as_deref() == Some(row.row.as_str());
        rows.push(Row::new(cols).style(row_style(th, on)));
    }
    // Narrow: K and n in the header (when every row has the same).
    let ks: Vec<usize> = t.rows.iter().filter(|r| r.lang_group.is_some()).map(|r| r.k).collect();
    let ns: Vec<u64> = t.rows.iter().filter_map(|r| r.n).collect();
    let same = |v: &[u64]| v.first().filter(|a| v.iter().all(|b| b == *a)).copied();
    let k = same(&ks.iter().map(|k| *k as u64).collect::<Vec<_>>());
    let lang_head = match (k, same(&ns)) {
        (Some(k), Some(n)) => format!("K={k} n={n}"),
        (Some(k), None) => format!("lang K={k}"),
        _ => "lang".into(),
    };
    let (header, widths): (Vec<String>, Vec<Constraint>) = if wide {
        (
            ["lang", "group", "mean", "95% CI", "K", "n"].map(String::from).to_vec(),
            vec![
                Constraint::Length(10),
                Constraint::Length(6),
                Constraint::Length(5),
                Constraint::Length(8),
                Constraint::Length(2),
                Constraint::Length(4),
            ],
        )
    } else {
        (
            vec![lang_head, "mean".into(), "95% CI".into()],
            vec![Constraint::Length(10), Constraint::Length(6), Constraint::Length(8)],
        )
    };
    let table = Table::new(rows, widths).header(Row::new(header).style(th.dimmed().add_modifier(Modifier::UNDERLINED)));
    f.render_widget(table, area);
}

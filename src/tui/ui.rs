//! The frame layout: title, runs tree, loss and languages panes (or compare view), the system
//! and log strips, and popups on top.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::app::App;
use super::panes::{self, dim};

/// The smallest terminal mixscope draws in.
pub const MIN_W: u16 = 60;
pub const MIN_H: u16 = 16;

pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let th = app.theme.clone();
    f.render_widget(ratatui::widgets::Block::default().style(th.base()), area);
    if area.width < MIN_W || area.height < MIN_H {
        let msg = vec![
            Line::from(Span::styled(
                "terminal too small",
                Style::default().fg(th.warning).add_modifier(Modifier::BOLD),
            )),
            Line::from(format!("{}×{} — mixscope needs {MIN_W}×{MIN_H}", area.width, area.height)),
        ];
        let h = 2.min(area.height);
        let r = Rect { x: area.x, y: area.y + area.height.saturating_sub(h) / 2, width: area.width, height: h };
        f.render_widget(Paragraph::new(msg).alignment(ratatui::layout::Alignment::Center), r);
        return;
    }
    for r in &mut app.store.runs {
        r.update_smooth(app.smoothing);
    }
    let log_h = if area.height >= 30 { 5 } else { 3 };
    let [title, body, sys, log] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(8), Constraint::Length(1), Constraint::Length(log_h)])
            .areas(area);
    draw_title(f, title, app);
    let runs_w = (area.width * 36 / 100).clamp(28, 48);
    let [left, right] = Layout::horizontal([Constraint::Length(runs_w), Constraint::Min(20)]).areas(body);
    panes::runs::draw(f, left, app);
    if let (false, Some(sw)) = (app.compare, app.selected_sweep().map(str::to_string)) {
        panes::sweep::draw(f, right, app, &sw);
    } else if app.compare {
        let [lo, cmp] = Layout::vertical([Constraint::Percentage(34), Constraint::Percentage(66)]).areas(right);
        panes::loss::draw(f, lo, app);
        panes::compare::draw(f, cmp, app);
    } else {
        let [lo, la] = Layout::vertical([Constraint::Percentage(42), Constraint::Percentage(58)]).areas(right);
        panes::loss::draw(f, lo, app);
        panes::langs::draw(f, la, app);
    }
    panes::strips::system(f, sys, app);
    panes::strips::log(f, log, app);
    panes::dialogs::draw(f, app);
}

fn draw_title(f: &mut Frame, area: Rect, app: &App) {
    let th = &app.theme;
    let mut spans = vec![
        Span::styled(" mixscope ", Style::default().fg(th.bg).bg(th.accent).add_modifier(Modifier::BOLD)),
        Span::raw(" "),
        Span::styled(app.store.root.display().to_string(), Style::default().fg(th.fg)),
        dim(format!("  x: {}", app.x_axis.label()), th),
        dim(format!("  smooth {:.1}", app.smoothing), th),
    ];
    if app.log_y {
        spans.push(dim("  log-y", th));
    }
    if !app.filter_text.is_empty() {
        spans.push(Span::styled(format!("  /{}", app.filter_text), Style::default().fg(th.warning)));
    }
    if app.compare {
        spans.push(Span::styled("  COMPARE", Style::default().fg(th.accent).add_modifier(Modifier::BOLD)));
    }
    let right = format!("{} help ", app.keymap.label(super::action::Action::Help));
    let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let pad = (area.width as usize).saturating_sub(used + right.chars().count());
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(dim(right, th));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

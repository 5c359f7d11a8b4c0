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

/// What the right side of the screen shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// Loss over the languages pane.
    Main,
    /// Loss over the compare view of the marked runs.
    Compare,
    /// The selected sweep's view (its id).
    Sweep(String),
}

/// Where each pane goes: a pure function of the terminal's size and the app's view, used by
/// drawing and by mouse clicks alike.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Areas {
    /// The whole screen; empty when it is below the minimum size.
    pub screen: Rect,
    pub title: Rect,
    /// The run tree's list (with its border) and the selected run's details below it.
    pub runs: Rect,
    pub detail: Rect,
    /// The loss pane (in the sweep view: the whole right side).
    pub loss: Rect,
    /// The languages pane or the compare view (in the sweep view: the whole right side).
    pub langs: Rect,
    pub sys: Rect,
    pub log: Rect,
}

/// The view the right side shows.
pub fn view(app: &App) -> View {
    match (app.view.compare, app.selected_sweep()) {
        (false, Some(sw)) => View::Sweep(sw.to_string()),
        (true, _) => View::Compare,
        (false, None) => View::Main,
    }
}

/// The panes' areas on a screen of `area`.
pub fn layout(area: Rect, view: &View) -> Areas {
    if area.width < MIN_W || area.height < MIN_H {
        return Areas::default();
    }
    let log_h = if area.height >= 30 { 5 } else { 3 };
    let [title, body, sys, log] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(8), Constraint::Length(1), Constraint::Length(log_h)])
            .areas(area);
    let runs_w = (area.width * 36 / 100).clamp(28, 48);
    let [left, right] = Layout::horizontal([Constraint::Length(runs_w), Constraint::Min(20)]).areas(body);
    let detail_h = if left.height >= 24 { 9 } else { 0 };
    let [runs, detail] = Layout::vertical([Constraint::Min(3), Constraint::Length(detail_h)]).areas(left);
    let (loss, langs) = match view {
        View::Sweep(_) => (right, right),
        View::Compare => {
            let [lo, cmp] = Layout::vertical([Constraint::Percentage(34), Constraint::Percentage(66)]).areas(right);
            (lo, cmp)
        }
        View::Main => {
            let [lo, la] = Layout::vertical([Constraint::Percentage(42), Constraint::Percentage(58)]).areas(right);
            (lo, la)
        }
    };
    Areas { screen: area, title, runs, detail, loss, langs, sys, log }
}

/// Draw a frame. Reads the app only: what panes show is derived when the data or the
/// selection changes ([`App::on_data`] and the actions), not here.
pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let th = &app.theme;
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
    debug_assert!(app.derived.is_fresh(app), "App::derive must run before a frame is drawn");
    let view = view(app);
    let a = layout(area, &view);
    draw_title(f, a.title, app);
    panes::runs::draw(f, a.runs, a.detail, app);
    match &view {
        View::Sweep(sw) => panes::sweep::draw(f, a.langs, app, sw),
        View::Compare => {
            panes::loss::draw(f, a.loss, app);
            panes::compare::draw(f, a.langs, app);
        }
        View::Main => {
            panes::loss::draw(f, a.loss, app);
            panes::langs::draw(f, a.langs, app);
        }
    }
    panes::strips::system(f, a.sys, app);
    panes::strips::log(f, a.log, app);
    panes::dialogs::draw(f, app);
}

fn draw_title(f: &mut Frame, area: Rect, app: &App) {
    let th = &app.theme;
    let mut spans = vec![
        Span::styled(" mixscope ", Style::default().fg(th.bg).bg(th.accent).add_modifier(Modifier::BOLD)),
        Span::raw(" "),
        Span::styled(app.store.root.display().to_string(), Style::default().fg(th.fg)),
        dim(format!("  x: {}", app.view.x_axis.label()), th),
        dim(format!("  smooth {:.1}", app.view.smoothing), th),
    ];
    if app.view.log_y {
        spans.push(dim("  log-y", th));
    }
    if !app.sel.filter_text.is_empty() {
        spans.push(Span::styled(format!("  /{}", app.sel.filter_text), Style::default().fg(th.warning)));
    }
    if app.view.compare {
        spans.push(Span::styled("  COMPARE", Style::default().fg(th.accent).add_modifier(Modifier::BOLD)));
    }
    let right = format!("{} help ", app.keymap.label(super::action::Action::Help));
    let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let pad = (area.width as usize).saturating_sub(used + right.chars().count());
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(dim(right, th));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

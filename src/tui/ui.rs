//! Drawing a frame: title, runs tree, loss and languages panes (or compare view), the system
//! and log strips, and the open dialog on top. Panes draw from the app's read-only view.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::app::App;
pub use super::layout::{layout, Areas, MIN_H, MIN_W};
use super::panes::{self, dim};
pub use super::state::{View, XRange};
use super::view::Ui;

/// Draw a frame. Reads the app only, through its read-only view: what panes show is derived
/// when the data or the selection changes ([`App::derive`]), not here.
pub fn draw(f: &mut Frame, app: &App) {
    let ui = app.ui();
    let area = f.area();
    let th = ui.theme;
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
    debug_assert!(ui.derived_fresh(), "App::derive must run before a frame is drawn");
    let view = ui.right();
    let a = layout(area, &view);
    draw_title(f, a.title, &ui);
    panes::runs::draw(f, a.runs, a.detail, &ui);
    match &view {
        View::Sweep(sw) => panes::sweep::draw(f, a.langs, &ui, sw),
        View::Compare => {
            panes::loss::draw(f, a.loss, &ui);
            panes::compare::draw(f, a.langs, &ui);
        }
        View::Main => {
            panes::loss::draw(f, a.loss, &ui);
            panes::langs::draw(f, a.langs, &ui);
        }
    }
    panes::strips::system(f, a.sys, &ui);
    panes::strips::log(f, a.log, &ui);
    if let Some(d) = &app.dialog {
        d.draw(f, app.env(), &ui);
    }
}

fn draw_title(f: &mut Frame, area: Rect, app: &Ui) {
    let th = app.theme;
    let mut spans = vec![
        Span::styled(" mixscope ", Style::default().fg(th.bg).bg(th.accent).add_modifier(Modifier::BOLD)),
        Span::raw(" "),
        Span::styled(app.store.root.display().to_string(), Style::default().fg(th.fg)),
        dim(format!("  x: {}", app.view.x_axis.label()), th),
        // The x range, when it is not the default (the whole lineage).
        dim(
            match app.view.x_range {
                XRange::Lineage => String::new(),
                r => format!(" · {}", r.label()),
            },
            th,
        ),
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

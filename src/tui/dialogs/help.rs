//! The help screen, generated from the keymap: the main screen's keys in a grid (two columns
//! when there is room), then one wrapped line per overlay or dialog. It scrolls when it is
//! taller than the screen.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::text::centered;
use super::text::{Env, Reply};
use crate::tui::action::Action;
use crate::tui::keymap::{Context, Keymap};
use crate::tui::panes::{block, clip, dim};
use crate::tui::theme::Theme;

/// The help's first line shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Help {
    pub scroll: u16,
}

/// The help screen's text for a screen `area`, its box width, and its height in wrapped lines.
fn help_text(keymap: &Keymap, th: &Theme, area: Rect) -> (Paragraph<'static>, u16, u16) {
    let sections = keymap.help();
    let width = area.width.min(110);
    let inner = width.saturating_sub(2) as usize;
    let key_style = Style::default().fg(th.accent).add_modifier(Modifier::BOLD);
    // The main screen's keys in file order (their contexts only group the file).
    let main: Vec<(String, String)> = keymap
        .bindings
        .iter()
        .filter(|b| b.context.is_main() && !b.labels.is_empty())
        .map(|b| (b.labels.join(" "), b.help.clone()))
        .collect();
    let kw = main.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(4) + 2;
    let longest = main.iter().map(|(_, w)| w.chars().count()).max().unwrap_or(0);
    // The dialogs' keys, one wrapped line each, and the mouse.
    let mut tail: Vec<Line> = Vec::new();
    for s in sections.iter().filter(|s| !s.context.is_main()) {
        let mut spans = vec![Span::styled(format!("{}: ", s.context.title()), th.title())];
        for (i, (k, what)) in s.lines.iter().enumerate() {
            if i > 0 {
                spans.push(dim(" · ", th));
            }
            spans.push(Span::styled(k.clone(), key_style));
            spans.push(Span::raw(format!(" {what}")));
        }
        tail.push(Line::from(spans));
    }
    tail.push(Line::from(dim("mouse: click a run or a pane; wheel moves the selection", th)));
    // One column when it fits the screen's height; else two, side by side, clipped if needed.
    let others = Paragraph::new(tail.clone()).wrap(Wrap { trim: false }).line_count(inner as u16);
    let fits_tall = main.len() + others + 2 <= area.height as usize;
    let cols = if !fits_tall && inner >= 2 * (kw + 24) || inner >= 2 * (kw + longest + 2) { 2 } else { 1 };
    let cell = inner / cols;
    let rows = main.len().div_ceil(cols);
    let mut lines: Vec<Line> = Vec::new();
    for r in 0..rows {
        let mut spans = Vec::new();
        for c in 0..cols {
            // Column-major, so that each column reads down in file order.
            let Some((k, what)) = main.get(c * rows + r) else { continue };
            // Side by side, a text is clipped to its cell; alone on its line it wraps (so every
            // key's text can be read on a narrow screen, scrolling).
            let what = if cols > 1 { clip(what, cell.saturating_sub(kw + 1)) } else { what.clone() };
            let pad = cell.saturating_sub(kw + what.chars().count());
            spans.push(Span::styled(format!("{k:<kw$}"), key_style));
            spans.push(Span::raw(format!("{what}{}", " ".repeat(if c + 1 < cols { pad } else { 0 }))));
        }
        lines.push(Line::from(spans));
    }
    lines.extend(tail);
    let para = Paragraph::new(lines).wrap(Wrap { trim: false });
    let total = para.line_count(inner as u16) as u16;
    (para, width, total)
}

/// How far the help screen scrolls on a screen `area`: its lines beyond the box's height, and
/// the box's inner height (a page).
pub fn scroll_range(keymap: &Keymap, th: &Theme, area: Rect) -> (u16, u16) {
    let (_, _, total) = help_text(keymap, th, area);
    let page = area.height.saturating_sub(2).max(1);
    (total.saturating_sub(page), page)
}

impl Help {
    pub fn key(&mut self, action: Option<Action>, env: Env) -> Reply {
        let (max, page) = scroll_range(env.keymap, env.theme, env.screen);
        let at = self.scroll.min(max);
        let step = page.saturating_sub(1).max(1);
        self.scroll = match action {
            Some(Action::Close) => return Reply::close(),
            Some(Action::Down) => (at + 1).min(max),
            Some(Action::Up) => at.saturating_sub(1),
            Some(Action::PageDown) => (at + step).min(max),
            Some(Action::PageUp) => at.saturating_sub(step),
            _ => at,
        };
        Reply::keep()
    }

    /// The help screen, generated from the keymap: the main screen's keys in a grid (two columns
    /// when there is room), then one wrapped line per overlay or dialog. When it is taller than
    /// the screen it scrolls (`App::help_scroll`), and its title says so.
    pub fn draw(&self, f: &mut Frame, env: Env) {
        let (area, th) = (f.area(), env.theme);
        let (para, width, total) = help_text(env.keymap, th, area);
        let h = (total + 2).min(area.height);
        let r = centered(area, width, h);
        let (max, _) = scroll_range(env.keymap, th, area);
        let scroll = self.scroll.min(max);
        let label = |a| env.keymap.label_in(Context::Help, a);
        let close = label(Action::Close);
        let title = if max > 0 {
            let page = h.saturating_sub(2);
            format!(
                " Keys · {close} closes · {}/{} scroll · {}–{} of {total} ",
                label(Action::Up),
                label(Action::Down),
                scroll + 1,
                (scroll + page).min(total)
            )
        } else {
            format!(" Keys · {close} closes ")
        };
        let title = Line::from(Span::styled(title, th.title()));
        f.render_widget(Clear, r);
        f.render_widget(para.scroll((scroll, 0)).block(block(title, true, th)), r);
    }
}

//! One file per pane. Each draws from the read-only view (`view::Ui`), imports neither the
//! app nor another pane, and reads no file. The dialogs draw themselves (`dialogs/`).

pub mod compare;
pub mod langs;
pub mod loss;
pub mod runs;
pub mod strips;
pub mod sweep;

use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Block, BorderType};

use super::store::RunData;
use super::theme::Theme;
use crate::data::lang;

/// A pane's block: rounded borders, highlighted when focused.
pub fn block<'a>(title: impl Into<ratatui::text::Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::default().fg(if focused { theme.border_focus } else { theme.border }))
        .title(title)
}

/// A dim span.
pub fn dim(s: impl Into<String>, theme: &Theme) -> Span<'static> {
    Span::styled(s.into(), theme.dimmed())
}

/// Shorten to at most `n` characters, with an ellipsis.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else if n == 0 {
        String::new()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// A compact duration: 45s, 12m, 3h05, 2d.
pub fn fmt_dur(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    let s = secs as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h{:02}", s / 3600, (s % 3600) / 60),
        _ => format!("{}d", s / 86_400),
    }
}

/// A stable colour per language: by its run group, indexed within the group.
pub fn lang_color(th: &Theme, r: &RunData, code: &str, group: &str) -> ratatui::style::Color {
    let same: Vec<&String> = {
        let mut v: Vec<&String> = r.evals.iter().filter(|(_, c)| c.group == group).map(|((_, l), _)| l).collect();
        v.sort_by_key(|l| lang::order(l));
        v.dedup();
        v
    };
    th.lang(group, same.iter().position(|l| *l == code).unwrap_or(0))
}

/// The languages table's cursor, while its pane has the focus (enter opens its samples).
pub fn cursor(app: &super::view::Ui) -> Option<String> {
    (app.view.focus == super::state::Focus::Langs).then(|| app.lang_cursor()).flatten()
}

/// A table row's style: the cursor's row highlighted.
pub fn row_style(th: &Theme, on: bool) -> Style {
    if on {
        Style::default().bg(th.selection_bg).add_modifier(ratatui::style::Modifier::BOLD)
    } else {
        Style::default()
    }
}

//! Where each pane goes: a pure function of the terminal's size and what the right side
//! shows, used by drawing and by mouse clicks alike.

use ratatui::layout::{Constraint, Layout, Rect};

use super::state::View;

/// The smallest terminal mixscope draws in.
pub const MIN_W: u16 = 60;
pub const MIN_H: u16 = 16;

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
            // The compare view holds the config keys that differ, its charts and its table: it
            // takes more of the height than the languages pane (the loss keeps 6 rows).
            let [lo, cmp] = Layout::vertical([Constraint::Min(6), Constraint::Percentage(72)]).areas(right);
            (lo, cmp)
        }
        View::Main => {
            let [lo, la] = Layout::vertical([Constraint::Percentage(42), Constraint::Percentage(58)]).areas(right);
            (lo, la)
        }
    };
    Areas { screen: area, title, runs, detail, loss, langs, sys, log }
}

//! What the dialogs share: how a key is answered ([`Reply`], [`Effect`]), what a key may need
//! ([`Env`]), a one-line text field, and how a dialog is placed and hinted.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::tui::action::Action;
use crate::tui::keymap::{Context, Keymap};
use crate::tui::panes::dim;
use crate::tui::state::Request;
use crate::tui::theme::Theme;

/// What the app must do after a dialog's key.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Request(Request),
    Log(String, bool),
    /// The run filter's text changed (empty: no filter).
    Filter(String),
    /// The run tree is to be rebuilt (the filter was kept).
    Rebuild,
    Quit,
}

/// A dialog's answer to a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The dialog stays open.
    pub open: bool,
    pub effects: Vec<Effect>,
}

impl Reply {
    pub fn keep() -> Reply {
        Reply { open: true, effects: Vec::new() }
    }
    pub fn close() -> Reply {
        Reply { open: false, effects: Vec::new() }
    }
    pub fn and(mut self, e: Effect) -> Reply {
        self.effects.push(e);
        self
    }
}

/// What a dialog's key may need besides its own state: the keymap, the theme, the screen (the
/// help scrolls by the screen's height) and the answers the samples view shows.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub keymap: &'a Keymap,
    pub theme: &'a Theme,
    pub screen: Rect,
    /// The stored answers the samples view shows, once read.
    pub answers: Option<&'a crate::tui::collect::answers::Answers>,
}

/// A one-line text field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextInput {
    pub text: String,
    /// Cursor position in characters.
    pub cursor: usize,
}

impl TextInput {
    pub fn new(s: &str) -> TextInput {
        TextInput { text: s.to_string(), cursor: s.chars().count() }
    }

    /// Whether a key edits text (typing, deleting, moving the cursor): a text field takes
    /// these before the dialog's bindings.
    pub fn edits(k: &KeyEvent) -> bool {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Char('u') => true,
            KeyCode::Char(_) => !ctrl,
            KeyCode::Backspace | KeyCode::Delete | KeyCode::Left | KeyCode::Right | KeyCode::Home | KeyCode::End => {
                true
            }
            _ => false,
        }
    }

    /// Edit with a key; returns whether the text changed.
    pub fn key(&mut self, k: &KeyEvent) -> bool {
        let n = self.text.chars().count();
        let byte = |t: &str, c: usize| t.char_indices().nth(c).map_or(t.len(), |(i, _)| i);
        match k.code {
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                let at = byte(&self.text, self.cursor);
                self.text.insert(at, c);
                self.cursor += 1;
                true
            }
            KeyCode::Char('u') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.text.clear();
                self.cursor = 0;
                true
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let at = byte(&self.text, self.cursor - 1);
                self.text.remove(at);
                self.cursor -= 1;
                true
            }
            KeyCode::Delete if self.cursor < n => {
                let at = byte(&self.text, self.cursor);
                self.text.remove(at);
                true
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                false
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(n);
                false
            }
            KeyCode::Home => {
                self.cursor = 0;
                false
            }
            KeyCode::End => {
                self.cursor = n;
                false
            }
            _ => false,
        }
    }
}

/// A centred rectangle of at most `w` × `h`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

/// A dialog's key hint from the keymap: "enter: fork · esc: cancel" (an action the user
/// left without a key is left out).
pub fn hint(keys: &Keymap, context: Context, what: &[(Action, &str)]) -> String {
    what.iter()
        .filter_map(|(a, text)| {
            let labels = keys.labels_in(context, *a);
            (!labels.is_empty()).then(|| format!("{}: {text}", labels.join(" / ")))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A text field's line: its label, its text, and the cursor when it is active.
pub fn input_line<'a>(label: &'a str, t: &'a TextInput, active: bool, th: &Theme) -> Line<'a> {
    let mut spans = vec![dim(format!("{label} "), th)];
    let chars: Vec<char> = t.text.chars().collect();
    let (a, b): (String, String) =
        (chars[..t.cursor.min(chars.len())].iter().collect(), chars[t.cursor.min(chars.len())..].iter().collect());
    spans.push(Span::styled(a, Style::default().fg(th.fg)));
    if active {
        let (cur, rest) = match b.chars().next() {
            Some(c) => (c.to_string(), b.chars().skip(1).collect::<String>()),
            None => (" ".to_string(), String::new()),
        };
        spans.push(Span::styled(cur, Style::default().fg(th.bg).bg(th.accent)));
        spans.push(Span::styled(rest, Style::default().fg(th.fg)));
    } else {
        spans.push(Span::styled(b, Style::default().fg(th.fg)));
    }
    Line::from(spans)
}

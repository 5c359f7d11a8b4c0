//! The run filter (`/`): typing edits the regex, live; its keymap keeps it or clears it.

use crossterm::event::KeyEvent;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::text::{hint, input_line, TextInput};
use super::text::{Effect, Env, Reply};
use crate::tui::action::Action;
use crate::tui::keymap::Context;
use crate::tui::panes::block;

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub text: TextInput,
}

impl Filter {
    pub fn new(text: &str) -> Filter {
        Filter { text: TextInput::new(text) }
    }

    pub fn key(&mut self, k: &KeyEvent, action: Option<Action>) -> Reply {
        if TextInput::edits(k) {
            let changed = self.text.key(k);
            let r = Reply::keep();
            return if changed { r.and(Effect::Filter(self.text.text.clone())) } else { r };
        }
        match action {
            Some(Action::Close) => Reply::close().and(Effect::Filter(String::new())),
            Some(Action::Submit) => Reply::close().and(Effect::Rebuild),
            _ => Reply::keep(),
        }
    }

    pub fn draw(&self, f: &mut Frame, env: Env) {
        let (area, th) = (f.area(), env.theme);
        let r = Rect { x: area.x, y: area.bottom().saturating_sub(3), width: area.width, height: 3.min(area.height) };
        let t = &self.text;
        let valid = t.text.is_empty() || regex::Regex::new(&t.text).is_ok();
        let mut lines = vec![input_line("/", t, true, th)];
        if !valid {
            lines[0].spans.push(Span::styled("  invalid regex", Style::default().fg(th.error)));
        }
        f.render_widget(Clear, r);
        let keys = hint(env.keymap, Context::Filter, &[(Action::Submit, "keep"), (Action::Close, "clear")]);
        let title = Line::from(Span::styled(format!(" Filter runs and languages (regex) · {keys} "), th.title()));
        f.render_widget(Paragraph::new(lines).block(block(title, true, th)), r);
    }
}

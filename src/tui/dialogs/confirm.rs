//! Confirm stopping a run: its keymap's submit stops it, any other key cancels.

use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::text::{centered, hint};
use super::text::{Effect, Env, Reply};
use crate::tui::action::Action;
use crate::tui::keymap::Context;
use crate::tui::panes::{block, dim};
use crate::tui::state::Request;

/// The run to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub run: String,
}

impl Confirm {
    pub fn key(&mut self, action: Option<Action>) -> Reply {
        if action != Some(Action::Submit) {
            return Reply::close();
        }
        Reply::close()
            .and(Effect::Log(format!("stopping {}", self.run), false))
            .and(Effect::Request(Request::Stop(self.run.clone())))
    }

    pub fn draw(&self, f: &mut Frame, env: Env) {
        let th = env.theme;
        let r = centered(f.area(), 54, 5);
        f.render_widget(Clear, r);
        let lines = vec![
            Line::from(vec![
                Span::raw("Stop "),
                Span::styled(self.run.clone(), Style::default().add_modifier(Modifier::BOLD)),
                Span::raw("? It checkpoints first."),
            ]),
            Line::from(dim(
                format!("{}   any other key: cancel", hint(env.keymap, Context::Confirm, &[(Action::Submit, "stop")])),
                th,
            )),
        ];
        f.render_widget(
            Paragraph::new(lines).block(block(
                Line::from(Span::styled(" Stop run ", Style::default().fg(th.warning))),
                true,
                th,
            )),
            r,
        );
    }
}

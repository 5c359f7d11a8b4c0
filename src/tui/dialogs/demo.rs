//! The demo offer (an empty runs root): start the demo, not now, or quit; any other key
//! dismisses it.

use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::text::{centered, hint};
use super::text::{Effect, Env, Reply};
use crate::tui::action::Action;
use crate::tui::keymap::Context;
use crate::tui::panes::block;
use crate::tui::state::Request;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Demo;

impl Demo {
    pub fn key(&mut self, action: Option<Action>) -> Reply {
        match action {
            Some(Action::Submit) => Reply::close().and(Effect::Request(Request::Demo)).and(Effect::Log(
                "starting the demo: base model on 12 languages, then English-only vs multilingual=0.4 SFT, 2 seeds each"
                    .into(),
                false,
            )),
            Some(Action::Quit) => Reply::close().and(Effect::Quit),
            _ => Reply::close(),
        }
    }

    pub fn draw(&self, f: &mut Frame, env: Env) {
        let th = env.theme;
        let r = centered(f.area(), 76, 13);
        f.render_widget(Clear, r);
        let lines = vec![
            Line::from(Span::styled(
                "No runs here yet. Start the demo experiment?",
                Style::default().add_modifier(Modifier::BOLD),
            )),
            Line::from(""),
            Line::from("1. a tiny base model pretrained on raw text in all 12 languages;"),
            Line::from("2. two SFT arms started from it on math, summarization and instructions,"),
            Line::from("   2 seeds each: English only  vs  multilingual=0.4 (es fr ja zh),"),
            Line::from("   ar ko pt held out; each arm a group with its across-seed interval."),
            Line::from("Curves appear within seconds; the runs keep going if you quit."),
            Line::from(""),
            Line::from(Span::styled(
                hint(
                    env.keymap,
                    Context::Demo,
                    &[(Action::Submit, "start"), (Action::Close, "not now"), (Action::Quit, "quit")],
                ),
                Style::default().fg(th.accent),
            )),
        ];
        f.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: false }).block(block(
                Line::from(Span::styled(" mixscope ", th.title())),
                true,
                th,
            )),
            r,
        );
    }
}

//! The launch dialog (`n`): a run config or a sweep file, and the seeds to start it with
//! (a count, or a list: one run per seed, one group).

use std::path::PathBuf;

use crossterm::event::KeyEvent;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::text::{centered, hint, input_line, TextInput};
use super::text::{Effect, Env, Reply};
use crate::tui::action::Action;
use crate::tui::keymap::Context;
use crate::tui::panes::{block, dim};
use crate::tui::state::Request;

/// What a seeds field says: how many runs it makes and with which seeds, or what is wrong
/// (`supervisor::parse_seeds`, as `--seeds` reads it). Empty: one run with the config's seed.
pub fn check_seeds(text: &str, base: Option<u64>) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(match base {
            Some(b) => format!("1 run, seed {b}"),
            None => "1 run, the config's seed".into(),
        });
    }
    match crate::supervisor::parse_seeds(t, base.unwrap_or(0)) {
        Ok(v) if t.contains(',') || base.is_some() => Ok(format!(
            "{} runs, one group: seeds {}",
            v.len(),
            v.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        )),
        Ok(v) => Ok(format!("{} runs, one group: the config's seed s and s+1 … s+{}", v.len(), v.len() - 1)),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// The launch dialog's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchField {
    Config,
    Seeds,
}

/// The launch dialog: a run config or a sweep file, and the seeds to start it with.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub config: TextInput,
    pub seeds: TextInput,
    pub field: LaunchField,
    pub seeds_check: Result<String, String>,
}

impl Launch {
    pub fn new(config: &str) -> Launch {
        Launch {
            config: TextInput::new(config),
            seeds: TextInput::default(),
            field: LaunchField::Config,
            seeds_check: check_seeds("", None),
        }
    }
}

impl Launch {
    pub fn key(&mut self, k: &KeyEvent, action: Option<Action>) -> Reply {
        if TextInput::edits(k) {
            match self.field {
                LaunchField::Config => {
                    self.config.key(k);
                }
                LaunchField::Seeds => {
                    if self.seeds.key(k) {
                        self.seeds_check = check_seeds(&self.seeds.text, None);
                    }
                }
            }
            return Reply::keep();
        }
        match action {
            Some(Action::Close) => Reply::close(),
            Some(Action::NextField | Action::PrevField) => {
                self.field = match self.field {
                    LaunchField::Config => LaunchField::Seeds,
                    LaunchField::Seeds => LaunchField::Config,
                };
                Reply::keep()
            }
            Some(Action::Submit) => {
                // Whether the file exists and is a sweep is the request's to find out (off
                // the UI thread); its error comes back to the log.
                let config = PathBuf::from(self.config.text.trim());
                let seeds = Some(self.seeds.text.trim().to_string()).filter(|s| !s.is_empty());
                match &self.seeds_check {
                    Err(e) => Reply::keep().and(Effect::Log(format!("fix the seeds first: {e}"), true)),
                    Ok(_) => Reply::close().and(Effect::Request(Request::Launch { config, sets: Vec::new(), seeds })),
                }
            }
            _ => Reply::keep(),
        }
    }

    pub fn draw(&self, f: &mut Frame, env: Env) {
        let (area, th, d) = (f.area(), env.theme, self);
        let r = centered(area, 70, 7);
        f.render_widget(Clear, r);
        let seeds_line = match &d.seeds_check {
            Ok(s) => Line::from(vec![
                Span::styled("✔ ", Style::default().fg(th.state(crate::runs::events::State::Running))),
                Span::raw(s.clone()),
            ]),
            Err(e) => Line::from(Span::styled(format!("✘ {e}"), Style::default().fg(th.error))),
        };
        let lines = vec![
            input_line("config", &d.config, d.field == LaunchField::Config, th),
            input_line("seeds ", &d.seeds, d.field == LaunchField::Seeds, th),
            seeds_line,
            Line::from(dim(
                format!(
                    "a run config or a sweep file; seeds: a count (3) or a list (0,3,7) · {}",
                    hint(
                        env.keymap,
                        Context::Launch,
                        &[
                            (Action::NextField, "field"),
                            (Action::Submit, "launch (queued until a slot is free)"),
                            (Action::Close, "cancel")
                        ]
                    )
                ),
                th,
            )),
        ];
        f.render_widget(
            Paragraph::new(lines).block(block(Line::from(Span::styled(" New run ", th.title())), true, th)),
            r,
        );
    }
}

//! The run filter (`/`): typing edits the regex (or `tag:NAME`), live; its keymap keeps it or
//! clears it.

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

/// What a filter's text asks for.
#[derive(Debug, Clone)]
pub enum Query {
    /// No filter (empty text).
    All,
    /// `tag:NAME` (`tag:a,b`: every one): the runs carrying the tags.
    Tags(Vec<String>),
    /// A regular expression (case-insensitive) over run names, ids and group ids; over
    /// languages when it matches no run.
    Regex(regex::Regex),
    /// Text that is neither (while it is typed): no filter, and the reason.
    Bad(String),
}

/// Read a filter's text.
pub fn query(text: &str) -> Query {
    if text.is_empty() {
        return Query::All;
    }
    if let Some(rest) = text.strip_prefix("tag:") {
        let tags: Vec<String> = rest.split(',').map(|t| t.trim().to_string()).collect();
        return match tags.iter().try_for_each(|t| crate::runs::notes::check_tag(t)) {
            Ok(()) => Query::Tags(tags),
            Err(e) => Query::Bad(format!("{e:#}")),
        };
    }
    match regex::RegexBuilder::new(text).case_insensitive(true).build() {
        Ok(re) => Query::Regex(re),
        Err(_) => Query::Bad("invalid regex".into()),
    }
}

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
        let mut lines = vec![input_line("/", t, true, th)];
        match query(&t.text) {
            Query::Bad(why) => lines[0].spans.push(Span::styled(format!("  {why}"), Style::default().fg(th.error))),
            Query::Tags(tags) => lines[0]
                .spans
                .push(Span::styled(format!("  runs tagged {}", tags.join(" and ")), Style::default().fg(th.accent))),
            Query::All | Query::Regex(_) => {}
        }
        f.render_widget(Clear, r);
        let keys = hint(env.keymap, Context::Filter, &[(Action::Submit, "keep"), (Action::Close, "clear")]);
        let title =
            Line::from(Span::styled(format!(" Filter runs and languages (regex, or tag:NAME) · {keys} "), th.title()));
        f.render_widget(Paragraph::new(lines).block(block(title, true, th)), r);
    }
}

//! The notes dialog (`N`): the selected run's note (free text) and tags, or those of a
//! group's runs. Saving is a request (`Request::Notes`): the event loop writes the file off the
//! UI thread, by a read-modify-write under the file's lock (`runs::notes::update`), so that a
//! tag added from a shell meanwhile is kept; the collector then reads it back.

use crossterm::event::KeyEvent;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::text::{centered, hint, input_line, TextInput};
use super::text::{Effect, Env, Reply};
use crate::runs::notes::{check_note, check_tag, Change, NoteEdit, Notes};
use crate::tui::action::Action;
use crate::tui::keymap::Context;
use crate::tui::panes::{block, dim};
use crate::tui::state::Request;

/// A line break of the note as the one-line field shows it.
pub const BREAK: char = '⏎';

/// The dialog's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotesField {
    Note,
    Tags,
}

/// The notes dialog: what it edits, and the note and tags as they were when it opened (what
/// is saved is the difference: tags the user did not touch are left as the file has them).
#[derive(Debug, Clone, PartialEq)]
pub struct EditNotes {
    /// The run's name, or the group's label.
    pub title: String,
    /// The runs the change is for (a group's: every member).
    pub runs: Vec<String>,
    pub note: TextInput,
    pub tags: TextInput,
    pub field: NotesField,
    /// The note and the tags shown when the dialog opened.
    note_was: String,
    tags_was: Vec<String>,
    /// The runs' notes differ (a group): the note field starts empty and is saved only when
    /// typed in.
    pub notes_differ: bool,
    /// What the fields say now: the change to save, or what is wrong.
    pub check: Result<Change, String>,
}

/// The tags a field's text names (spaces or commas between them).
fn words(text: &str) -> Vec<String> {
    text.split([' ', ',']).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

impl EditNotes {
    /// For the notes of one run, or of a group's runs (`notes`: each member's): the tags all
    /// of them carry, and their note when it is the same for all.
    pub fn new(title: &str, runs: Vec<(String, &Notes)>) -> EditNotes {
        let first = runs.first().map(|(_, n)| *n);
        let notes_differ = runs.iter().any(|(_, n)| Some(n.note.as_str()) != first.map(|f| f.note.as_str()));
        let note = if notes_differ { String::new() } else { first.map_or_else(String::new, |n| n.note.clone()) };
        let tags: Vec<String> = first
            .map(|f| f.tags.iter().filter(|t| runs.iter().all(|(_, n)| n.has_tag(t))).cloned().collect())
            .unwrap_or_default();
        let shown = note.replace('\n', &BREAK.to_string());
        let mut d = EditNotes {
            title: title.to_string(),
            runs: runs.into_iter().map(|(id, _)| id).collect(),
            note: TextInput::new(&shown),
            tags: TextInput::new(&tags.join(" ")),
            field: NotesField::Note,
            note_was: shown,
            tags_was: tags,
            notes_differ,
            check: Ok(Change::default()),
        };
        d.recheck();
        d
    }

    /// The change the fields make, checked.
    fn recheck(&mut self) {
        self.check = (|| {
            let tags = words(&self.tags.text);
            for t in &tags {
                check_tag(t).map_err(|e| format!("{e:#}"))?;
            }
            let note = (self.note.text != self.note_was).then(|| self.note.text.replace(BREAK, "\n"));
            if let Some(n) = &note {
                check_note(n).map_err(|e| format!("{e:#}"))?;
            }
            Ok(Change {
                note: note.map(|n| NoteEdit::Set(n.trim().to_string())),
                add: tags.iter().filter(|t| !self.tags_was.contains(t)).cloned().collect(),
                remove: self.tags_was.iter().filter(|t| !tags.contains(t)).cloned().collect(),
            })
        })();
    }

    pub fn key(&mut self, k: &KeyEvent, action: Option<Action>) -> Reply {
        if TextInput::edits(k) {
            let changed = match self.field {
                NotesField::Note => self.note.key(k),
                NotesField::Tags => self.tags.key(k),
            };
            if changed {
                self.recheck();
            }
            return Reply::keep();
        }
        match action {
            Some(Action::Close) => Reply::close(),
            Some(Action::NextField | Action::PrevField) => {
                self.field = match self.field {
                    NotesField::Note => NotesField::Tags,
                    NotesField::Tags => NotesField::Note,
                };
                Reply::keep()
            }
            Some(Action::Submit) => match &self.check {
                Err(e) => Reply::keep().and(Effect::Log(format!("fix it first: {e}"), true)),
                Ok(c) if c.is_empty() => Reply::close(),
                Ok(c) => Reply::close().and(Effect::Request(Request::Notes {
                    label: self.title.clone(),
                    runs: self.runs.clone(),
                    change: c.clone(),
                })),
            },
            _ => Reply::keep(),
        }
    }

    pub fn draw(&self, f: &mut Frame, env: Env) {
        let (area, th, d) = (f.area(), env.theme, self);
        let r = centered(area, 76, 10);
        f.render_widget(Clear, r);
        let status = match &d.check {
            Ok(c) => {
                let mut what = Vec::new();
                if c.note.is_some() {
                    what.push("the note".to_string());
                }
                if !c.add.is_empty() {
                    what.push(format!("+{}", c.add.join(" +")));
                }
                if !c.remove.is_empty() {
                    what.push(format!("-{}", c.remove.join(" -")));
                }
                let text = if what.is_empty() { "unchanged".to_string() } else { format!("saves {}", what.join(", ")) };
                Line::from(vec![
                    Span::styled("✔ ", Style::default().fg(th.state(crate::runs::events::State::Running))),
                    Span::raw(text),
                ])
            }
            Err(e) => Line::from(Span::styled(format!("✘ {e}"), Style::default().fg(th.error))),
        };
        let mut lines = vec![input_line("note", &d.note, d.field == NotesField::Note, th)];
        if d.notes_differ {
            lines.push(Line::from(dim("(the runs' notes differ: what you type replaces each)", th)));
        }
        lines.push(Line::from(""));
        lines.push(input_line("tags", &d.tags, d.field == NotesField::Tags, th));
        lines.push(status);
        lines.push(Line::from(dim(
            format!(
                "tags: words, letters digits - _ . · {BREAK} is a line break · {}",
                hint(
                    env.keymap,
                    Context::Notes,
                    &[(Action::NextField, "field"), (Action::Submit, "save"), (Action::Close, "cancel")]
                )
            ),
            th,
        )));
        let what = if d.runs.len() > 1 { format!(" of its {} runs", d.runs.len()) } else { String::new() };
        let title = Line::from(Span::styled(format!(" Note and tags · {}{what} ", d.title), th.title()));
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block(title, true, th)), r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::keymap::Keymap;
    use crossterm::event::{KeyCode, KeyModifiers};

    fn press(d: &mut EditNotes, code: KeyCode) -> Reply {
        let k = KeyEvent::new(code, KeyModifiers::NONE);
        let a = Keymap::default_map().lookup(Context::Notes, &k);
        d.key(&k, a)
    }

    fn typed(d: &mut EditNotes, s: &str) {
        for c in s.chars() {
            press(d, KeyCode::Char(c));
        }
    }

    /// What is saved is the difference from what the dialog showed: a tag the user did not
    /// touch is not written back (another writer may have removed it meanwhile).
    #[test]
    fn saving_sends_the_difference_as_a_request() {
        let n = Notes { note: "first\nsecond".into(), tags: vec!["a".into(), "b".into()], updated: None };
        let mut d = EditNotes::new("demo", vec![("run-1".into(), &n)]);
        assert_eq!(d.note.text, "first⏎second");
        assert_eq!(press(&mut d, KeyCode::Enter), Reply::close(), "nothing changed: nothing to save");
        let mut d = EditNotes::new("demo", vec![("run-1".into(), &n)]);
        typed(&mut d, " ok");
        press(&mut d, KeyCode::Tab);
        press(&mut d, KeyCode::Home);
        press(&mut d, KeyCode::Delete);
        press(&mut d, KeyCode::Delete);
        typed(&mut d, "c");
        assert_eq!(d.tags.text, "cb");
        press(&mut d, KeyCode::End);
        typed(&mut d, " keep");
        let r = press(&mut d, KeyCode::Enter);
        let Some(Effect::Request(Request::Notes { runs, change, .. })) = r.effects.first() else { panic!("{r:?}") };
        assert_eq!(runs, &["run-1"]);
        assert_eq!(change.note, Some(NoteEdit::Set("first\nsecond ok".into())));
        assert_eq!((change.add.join(" "), change.remove.join(" ")), ("cb keep".into(), "a b".into()));
    }

    #[test]
    fn a_bad_tag_is_said_and_nothing_is_saved() {
        let n = Notes::default();
        let mut d = EditNotes::new("demo", vec![("run-1".into(), &n)]);
        press(&mut d, KeyCode::Tab);
        typed(&mut d, "good b:ad");
        assert!(matches!(&d.check, Err(e) if e.contains("tag 'b:ad'")), "{:?}", d.check);
        let r = press(&mut d, KeyCode::Enter);
        assert!(r.open && matches!(r.effects.as_slice(), [Effect::Log(_, true)]), "{r:?}");
        assert_eq!(press(&mut d, KeyCode::Esc), Reply::close());
    }

    /// A group's runs: the tags all carry are shown; notes that differ start the field empty
    /// and are left alone unless typed in.
    #[test]
    fn a_groups_runs_show_their_common_tags() {
        let a = Notes { note: "x".into(), tags: vec!["both".into(), "only-a".into()], updated: None };
        let b = Notes { note: "y".into(), tags: vec!["both".into()], updated: None };
        let mut d = EditNotes::new("g ×2", vec![("a".into(), &a), ("b".into(), &b)]);
        assert_eq!((d.tags.text.as_str(), d.note.text.as_str(), d.notes_differ), ("both", "", true));
        press(&mut d, KeyCode::Tab);
        typed(&mut d, " new");
        let r = press(&mut d, KeyCode::Enter);
        let Some(Effect::Request(Request::Notes { runs, change, .. })) = r.effects.first() else { panic!("{r:?}") };
        assert_eq!(runs, &["a", "b"]);
        assert_eq!((change.note.as_ref(), change.add.join(" ")), (None, "new".into()));
    }
}

//! The reducer: what a main-screen action or a mouse event does to the state (the dialogs'
//! keys are their own, in `dialogs/`). No terminal: keys and deltas in, state out, as the
//! tests below show.

use crossterm::event::{KeyCode, KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

use super::action::Action;
use super::app::App;
use super::collect::answers::{Query as AnswersQuery, SideQuery};
use super::dialogs::confirm::Confirm;
use super::dialogs::demo::Demo;
use super::dialogs::filter::{Filter, Query};
use super::dialogs::fork::Fork;
use super::dialogs::launch::Launch;
use super::dialogs::notes::EditNotes;
use super::dialogs::samples::SamplesView;
use super::dialogs::{Dialog, Effect};
use super::panes::runs::list_top;
use super::state::{Focus, Request, Scripts};
use super::theme::{Theme, BUILTIN};
use crate::runs::events::State;

impl App {
    /// A key press: the open dialog's (it owns its keys), else the main screen's action.
    pub fn on_key(&mut self, k: KeyEvent) {
        self.dirty = true;
        let Some(mut d) = self.dialog.take() else {
            match self.keymap.lookup(self.context(), &k) {
                Some(a) => self.act(a),
                None if k.code == KeyCode::Esc && self.view.compare => self.view.compare = false,
                None => {}
            }
            return;
        };
        let reply = d.key(&k, self.env());
        if reply.open {
            self.dialog = Some(d);
        }
        for e in reply.effects {
            match e {
                Effect::Request(r) => self.pending.push(r),
                Effect::Log(text, error) => self.push_log(text, error),
                Effect::Filter(text) => {
                    let q = super::dialogs::filter::query(&text);
                    self.sel.filter = match &q {
                        Query::Regex(re) => Some(re.clone()),
                        _ => None,
                    };
                    self.sel.tags = match q {
                        Query::Tags(t) => t,
                        _ => Vec::new(),
                    };
                    self.sel.filter_text = text;
                    self.rebuild_tree();
                }
                Effect::Rebuild => self.rebuild_tree(),
                Effect::Quit => self.quit = true,
            }
        }
    }

    /// Apply an action.
    pub fn act(&mut self, a: Action) {
        self.dirty = true;
        match a {
            Action::Quit => self.quit = true,
            Action::Help => self.dialog = Some(Dialog::Help(Default::default())),
            Action::FocusNext => {
                self.view.focus = match self.view.focus {
                    Focus::Runs => Focus::Loss,
                    Focus::Loss => Focus::Langs,
                    Focus::Langs => Focus::Runs,
                }
            }
            Action::FocusPrev => {
                self.view.focus = match self.view.focus {
                    Focus::Runs => Focus::Langs,
                    Focus::Loss => Focus::Runs,
                    Focus::Langs => Focus::Loss,
                }
            }
            Action::Up if self.view.focus == Focus::Langs => self.move_lang(-1),
            Action::Down if self.view.focus == Focus::Langs => self.move_lang(1),
            Action::Samples => self.open_samples(),
            Action::Up => {
                self.sel.selected = self.sel.selected.saturating_sub(1);
                self.pick_task();
            }
            Action::Down => {
                self.sel.selected = (self.sel.selected + 1).min(self.sel.rows.len().saturating_sub(1));
                self.pick_task();
            }
            Action::Mark => {
                // On a sweep: mark all its runs (or unmark them when all are marked).
                if let Some(sw) = self.ui().selected_sweep().map(str::to_string) {
                    let ids: Vec<String> = self.ui().sweep_runs(&sw).iter().map(|r| r.id.clone()).collect();
                    if ids.iter().all(|i| self.sel.marked.contains(i)) {
                        for i in &ids {
                            self.sel.marked.remove(i);
                        }
                    } else {
                        self.sel.marked.extend(ids);
                    }
                } else if let Some(id) = self
                    .ui()
                    .selected_group()
                    .map(|g| g.id.clone())
                    .or_else(|| self.ui().selected_run().map(|r| r.id.clone()))
                {
                    // A group is marked as one side: its members are compared as a group.
                    if !self.sel.marked.remove(&id) {
                        self.sel.marked.insert(id);
                    }
                }
            }
            Action::Compare => {
                if self.view.compare {
                    self.view.compare = false;
                } else if self.ui().compare_sides().len() >= 2 {
                    self.view.compare = true;
                    self.pick_task();
                } else {
                    let k = self.keymap.label(Action::Mark);
                    self.push_log(format!("mark two or more runs or groups ({k}) to compare them"), true);
                }
            }
            Action::PauseResume | Action::Stop if self.ui().selected_group().is_some() => {
                let k = self.keymap.label(Action::Expand);
                self.push_log(format!("a group: expand it ({k}) and select one of its runs"), true);
            }
            Action::PauseResume => {
                if let Some(r) = self.ui().selected_run() {
                    let id = r.id.clone();
                    match r.state {
                        State::Running | State::Queued => {
                            self.push_log(format!("pausing {id}"), false);
                            self.pending.push(Request::Pause(id));
                        }
                        State::Paused | State::Stopped | State::Failed => {
                            self.push_log(format!("resuming {id}"), false);
                            self.pending.push(Request::Resume(id));
                        }
                        State::Finished => self.push_log(format!("{id} has finished: fork it to train further"), true),
                    }
                }
            }
            Action::Stop => {
                if let Some(r) = self.ui().selected_run() {
                    if matches!(r.state, State::Running | State::Queued | State::Paused) {
                        self.dialog = Some(Dialog::Confirm(Confirm { run: r.id.clone() }));
                    } else {
                        let msg = format!("{} is {}: nothing to stop", r.id, r.state.as_str());
                        self.push_log(msg, true);
                    }
                }
            }
            Action::Fork if self.ui().selected_group().is_some() => {
                let Some(g) = self.ui().selected_group() else { return };
                let members = self.ui().members(g);
                match Fork::for_group(g, &members) {
                    Some(d) if d.checkpoints.is_empty() && !members.iter().all(|m| m.alive) => {
                        let msg = format!("the runs of {} share no checkpoint to fork from yet", g.label());
                        self.push_log(msg, true);
                    }
                    Some(d) => self.dialog = Some(Dialog::Fork(Box::new(d))),
                    None => {}
                }
            }
            Action::Fork => {
                if let Some(r) = self.ui().selected_run() {
                    let d = Fork::new(r);
                    if d.checkpoints.is_empty() && !r.alive {
                        let msg = format!("{} has no checkpoint to fork from yet", r.id);
                        self.push_log(msg, true);
                    } else {
                        self.dialog = Some(Dialog::Fork(Box::new(d)));
                    }
                }
            }
            Action::NewRun => self.dialog = Some(Dialog::Launch(Box::new(Launch::new("configs/")))),
            Action::Notes => {
                let d = if let Some(g) = self.ui().selected_group() {
                    let members = self.ui().members(g);
                    let runs = members.iter().map(|r| (r.id.clone(), &r.notes)).collect();
                    Some(EditNotes::new(&g.label(), runs))
                } else {
                    self.ui().selected_run().map(|r| EditNotes::new(r.display_name(), vec![(r.id.clone(), &r.notes)]))
                };
                match d {
                    Some(d) => self.dialog = Some(Dialog::Notes(Box::new(d))),
                    None => self.push_log("select a run or a group to write its note and tags", true),
                }
            }
            Action::Expand => {
                let Some(row) = self.sel.rows.get(self.sel.selected) else { return };
                if let Some(g) = row.group.clone() {
                    if !self.sel.expanded.remove(&g) {
                        self.sel.expanded.insert(g);
                    }
                    self.rebuild_tree();
                }
            }
            Action::Collapse => {
                let Some(row) = self.sel.rows.get(self.sel.selected) else { return };
                let g = row.group.clone().filter(|g| self.sel.expanded.contains(g)).or_else(|| row.in_group.clone());
                if let Some(g) = g {
                    self.sel.expanded.remove(&g);
                    // The selection goes to the group's row.
                    if let Some(i) = self.sel.rows.iter().position(|r| r.group.as_deref() == Some(g.as_str())) {
                        self.sel.selected = i;
                    }
                    self.rebuild_tree();
                }
            }
            Action::Members => self.view.members = !self.view.members,
            Action::Export => match self.ui().export() {
                Ok(e) => {
                    let what = e.sides.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(" vs ");
                    let what = e.sweep.clone().map_or(what, |s| format!("sweep {s}"));
                    self.push_log(format!("exporting the {} pane of {what} …", e.pane.name()), false);
                    self.pending.push(Request::Export(e));
                }
                Err(msg) => self.push_log(msg, true),
            },
            Action::MarksUnadjusted => self.view.unadjusted = !self.view.unadjusted,
            Action::Demo => self.dialog = Some(Dialog::Demo(Demo)),
            Action::Filter => self.dialog = Some(Dialog::Filter(Filter::new(&self.sel.filter_text))),
            Action::XAxis => self.view.x_axis = self.view.x_axis.next(),
            Action::XRange => self.view.x_range = self.view.x_range.next(),
            Action::LogY => self.view.log_y = !self.view.log_y,
            Action::SmoothMore => {
                self.view.smoothing = (self.view.smoothing + 0.1).min(0.95);
                self.resmooth();
            }
            Action::SmoothLess => {
                self.view.smoothing = (self.view.smoothing - 0.1).max(0.0);
                self.resmooth();
            }
            Action::TaskNext if self.ui().selected_sweep().is_some() && !self.view.compare => {
                self.view.sweep_series += 1;
            }
            Action::TaskNext => {
                let tasks = self.ui().tasks();
                if let Some(i) = tasks.iter().position(|t| *t == self.view.task) {
                    self.view.task = tasks[(i + 1) % tasks.len()].clone();
                } else if let Some(t) = tasks.first() {
                    self.view.task = t.clone();
                }
            }
            Action::MetricToggle => self.view.show_loss = !self.view.show_loss,
            Action::GridToggle => self.view.grid = !self.view.grid,
            Action::ScriptFilter => {
                self.view.scripts = match self.view.scripts {
                    Scripts::All => Scripts::Latin,
                    Scripts::Latin => Scripts::NonLatin,
                    Scripts::NonLatin => Scripts::All,
                }
            }
            Action::Refresh => {
                self.reload = true;
                self.loading = true;
            }
            Action::ThemeNext => {
                self.theme_idx = (self.theme_idx + 1) % BUILTIN.len();
                if let Ok(t) = Theme::load(BUILTIN[self.theme_idx].0) {
                    self.theme = t;
                }
            }
            // On the main screen (when a user binds it there), closing leaves compare.
            Action::Close => self.view.compare = false,
            // The dialogs' own actions mean nothing on the main screen.
            Action::Submit
            | Action::NextField
            | Action::PrevField
            | Action::Increase
            | Action::Lower
            | Action::Zero
            | Action::PageUp
            | Action::PageDown
            | Action::OutcomeFilter
            | Action::Differ => {}
        }
    }

    /// Move the languages table's cursor by `by` rows (kept within the table).
    fn move_lang(&mut self, by: isize) {
        // The table's rows may be derived (a group's, the compare table's): bring them up to date.
        self.derive();
        let rows = self.ui().lang_rows();
        let at = self.ui().lang_cursor().and_then(|l| rows.iter().position(|r| *r == l)).unwrap_or(0);
        let to = (at as isize + by).clamp(0, rows.len().saturating_sub(1) as isize) as usize;
        self.sel.lang = rows.get(to).cloned();
    }

    /// Open the samples view of the languages table's language: the selected run's stored
    /// answers (a group's: its first member's), or in compare the first two sides' (A and B),
    /// read by the collector.
    fn open_samples(&mut self) {
        self.derive();
        let ui = self.ui();
        let Some(lang) = ui.lang_cursor() else {
            self.push_log("no language to show: the languages table is empty", true);
            return;
        };
        let side = |label: String, runs: &[&crate::tui::store::RunData], group: bool| {
            let r = runs[0];
            let note = group.then(|| format!("its run {} (1 of {} seeds)", r.display_name(), runs.len()));
            SideQuery { label, run: r.id.clone(), dir: r.dir.clone(), note }
        };
        let (sides, of) = if self.view.compare {
            let all = ui.compare_sides();
            let n = all.len();
            (all.iter().take(2).map(|s| side(s.label.clone(), &s.runs, s.group.is_some())).collect::<Vec<_>>(), n)
        } else if let Some(g) = ui.selected_group() {
            let members = ui.members(g);
            if members.is_empty() {
                return;
            }
            (vec![side(g.label(), &members, true)], 1)
        } else if let Some(r) = ui.selected_run() {
            (vec![side(r.display_name().to_string(), &[r], false)], 1)
        } else {
            return;
        };
        let q = AnswersQuery { task: self.view.task.clone(), lang, sides };
        self.answers = None;
        self.want_answers(q.clone());
        self.dialog = Some(Dialog::Samples(Box::new(SamplesView::new(q, of))));
    }

    /// A mouse event: click to focus and select, wheel to move the selection.
    pub fn on_mouse(&mut self, m: MouseEvent) {
        let inside = |r: Rect| m.column >= r.x && m.column < r.x + r.width && m.row >= r.y && m.row < r.y + r.height;
        let areas = self.areas();
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if inside(areas.runs) {
                    self.view.focus = Focus::Runs;
                    // Rows inside the list's border; the list may be scrolled.
                    let first = areas.runs.y + 1;
                    let h = areas.runs.height.saturating_sub(2) as usize;
                    if m.row >= first && ((m.row - first) as usize) < h {
                        let i = list_top(self.sel.selected, h) + (m.row - first) as usize;
                        if i < self.sel.rows.len() {
                            self.sel.selected = i;
                            self.pick_task();
                        }
                    }
                } else if inside(areas.loss) {
                    self.view.focus = Focus::Loss;
                } else if inside(areas.langs) {
                    self.view.focus = Focus::Langs;
                }
                self.dirty = true;
            }
            MouseEventKind::ScrollDown if self.dialog.is_none() => self.act(Action::Down),
            MouseEventKind::ScrollUp if self.dialog.is_none() => self.act(Action::Up),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::tui::dialogs::Dialog;
    use crate::tui::keymap::Keymap;
    use crate::tui::persist::Saved;
    use crate::tui::state::{Pick, XRange};
    use crate::tui::store::{Delta, Point, Store, XAxis};

    fn app() -> (tempfile::TempDir, App) {
        let t = tempfile::tempdir().unwrap();
        crate::tui::fixtures::standard(t.path()).unwrap();
        let app = App::new(Store::load(t.path()), Theme::dark(), Keymap::default_map());
        (t, app)
    }

    fn keys(app: &mut App, keys: &str) {
        for c in keys.chars() {
            app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
    }

    fn press(app: &mut App, code: KeyCode) {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    fn select(app: &mut App, prefix: &str) {
        app.sel.selected = app.sel.rows.iter().position(|r| app.store.runs[r.run].id.starts_with(prefix)).unwrap();
    }

    /// The view keys: each changes one setting, and the x range cycles back to the lineage.
    #[test]
    fn view_keys_change_the_view_settings() {
        let (_t, mut a) = app();
        assert_eq!(a.view.x_range, XRange::Lineage);
        keys(&mut a, "z");
        assert_eq!(a.view.x_range, XRange::Own);
        keys(&mut a, "z");
        assert_eq!(a.view.x_range, XRange::Recent(25));
        keys(&mut a, "z");
        assert_eq!(a.view.x_range, XRange::Lineage);
        keys(&mut a, "x");
        assert_eq!(a.view.x_axis, XAxis::Time);
        keys(&mut a, "-");
        assert!((a.view.smoothing - 0.5).abs() < 1e-6);
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.view.focus, Focus::Loss);
        keys(&mut a, "la");
        assert!(a.view.log_y);
        assert_eq!(a.view.scripts, Scripts::Latin);
    }

    /// The x range's first step of a fork's own curves: its fork step, and the last quarter.
    #[test]
    fn the_x_range_starts_at_the_forks_step_or_its_last_quarter() {
        let (_t, a) = app();
        let en = a.store.runs.iter().find(|r| r.id.starts_with("en-")).unwrap();
        assert_eq!((en.fork_step, en.step()), (Some(300), 700));
        assert_eq!(XRange::Lineage.from_step(en), 0);
        assert_eq!(XRange::Own.from_step(en), 300);
        assert_eq!(XRange::Recent(25).from_step(en), 600);
        let base = a.store.runs.iter().find(|r| r.id.starts_with("base-")).unwrap();
        assert_eq!(XRange::Recent(25).from_step(base), base.step() - (base.step() - base.loss.steps.at(0)) / 4);
    }

    /// Marks and compare; stop asks first, and its confirmation is a request; a filter typed
    /// narrows the tree and its clear key restores it.
    #[test]
    fn marks_dialogs_and_requests() {
        let (_t, mut a) = app();
        select(&mut a, "en-");
        keys(&mut a, " c");
        assert!(!a.view.compare, "one mark: no compare");
        assert!(a.log.back().is_some_and(|l| l.error && l.text.contains("mark two or more")));
        select(&mut a, "ml40-");
        keys(&mut a, " c");
        assert!(a.view.compare && a.sel.marked.len() == 2);
        keys(&mut a, "c");
        assert!(!a.view.compare);
        // The live fixture run is paused: stop asks first; `y` requests it.
        keys(&mut a, "s");
        assert!(matches!(&a.dialog, Some(Dialog::Confirm(c)) if c.run.starts_with("ml40-")));
        keys(&mut a, "y");
        assert!(a.dialog.is_none());
        assert!(matches!(a.pending.as_slice(), [Request::Stop(id)] if id.starts_with("ml40-")));
        // Any other key cancels.
        keys(&mut a, "sn");
        assert!(a.dialog.is_none() && a.pending.len() == 1);
        let all = a.sel.rows.len();
        keys(&mut a, "/ko-");
        assert!(matches!(a.dialog, Some(Dialog::Filter(_))));
        assert_eq!(a.sel.filter_text, "ko-");
        assert!(a.sel.rows.len() < all, "{:?}", a.sel.rows);
        press(&mut a, KeyCode::Esc);
        assert!(a.dialog.is_none() && a.sel.filter.is_none() && a.sel.rows.len() == all);
    }

    /// Deltas in: appended lines fold into the run (the one fold), a charted run's are drawn at
    /// once; the checkpoints the collector listed are what the fork dialog offers.
    #[test]
    fn deltas_fold_into_the_store_and_the_fork_dialog_reads_no_file() {
        let (_t, mut a) = app();
        select(&mut a, "en-");
        let dir = a.ui().selected_run().unwrap().dir.clone();
        let train =
            Point::Train { step: 701, time: 1.8e9, loss: 0.5, lr: 1e-3, tokens: 9, tokens_per_s: 1.0, langs: vec![] };
        let d = Delta::Events { dir: dir.clone(), events: vec![train], bad: 1 };
        assert!(a.shows(&d));
        assert!(a.apply(d));
        a.on_data();
        let r = a.ui().selected_run().unwrap();
        assert_eq!((r.step(), r.bad_lines), (701, 1));
        assert!(a.apply(Delta::Checkpoints { dir, on_disk: vec![(300, true), (650, false)] }));
        keys(&mut a, "f");
        let Some(Dialog::Fork(f)) = &a.dialog else { panic!("no fork dialog") };
        assert_eq!((f.checkpoints.as_slice(), f.step()), ([300, 650].as_slice(), Some(650)));
        press(&mut a, KeyCode::BackTab);
        press(&mut a, KeyCode::Up);
        let Some(Dialog::Fork(f)) = &a.dialog else { panic!("no fork dialog") };
        assert!(f.fresh_optimizer(), "300 holds weights only");
        press(&mut a, KeyCode::Esc);
        assert!(a.dialog.is_none() && a.pending.is_empty());
    }

    /// What a session saves comes back in the next: settings at once, the selected row and
    /// the marks once the root is read.
    #[test]
    fn a_saved_view_is_restored_when_its_rows_appear() {
        let (t, mut a) = app();
        select(&mut a, "ko-");
        keys(&mut a, " zzx+");
        press(&mut a, KeyCode::Tab);
        let saved = Saved::of(&a);
        assert!(matches!(&saved.selected, Some(Pick::Run(id)) if id.starts_with("ko-")));
        let mut b = App::new(Store::empty(t.path()), Theme::dark(), Keymap::default_map());
        saved.clone().restore(&mut b);
        assert_eq!((b.view.x_range, b.view.x_axis, b.view.focus), (XRange::Recent(25), XAxis::Time, Focus::Loss));
        assert!((b.view.smoothing - 0.7).abs() < 1e-6);
        assert!(b.apply(Delta::Loaded(Store::load(t.path()))));
        b.on_data();
        assert!(b.ui().selected_run().is_some_and(|r| r.id.starts_with("ko-")));
        assert_eq!(b.sel.marked, a.sel.marked);
        assert_eq!(Saved::of(&b), saved);
    }

    /// The export key queues the focused pane's figure for the event loop to draw off the UI
    /// thread (nothing is drawn or written here), and says so in the log: the loss pane's run,
    /// the languages pane's, the compared sides, a sweep.
    #[test]
    fn the_export_key_queues_the_focused_panes_figure() {
        use crate::report::export::{Export, Pane};
        let (t, mut a) = app();
        select(&mut a, "en-");
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.view.focus, Focus::Loss);
        keys(&mut a, "e");
        let side = ("demo-en".to_string(), vec!["en-4d5e6f".to_string()]);
        let want = Export { pane: Pane::Loss, sides: vec![side.clone()], sweep: None };
        assert_eq!(a.pending, [Request::Export(want)]);
        assert!(a.log.back().is_some_and(|l| !l.error && l.text.contains("exporting the loss pane of demo-en")));
        press(&mut a, KeyCode::Tab);
        keys(&mut a, "e");
        assert!(matches!(&a.pending[1], Request::Export(e) if e.pane == Pane::Languages && e.sides == [side.clone()]));
        // Back to the run list (the languages table takes the run list's keys while focused).
        a.view.focus = Focus::Runs;
        keys(&mut a, " ");
        select(&mut a, "ml40-");
        keys(&mut a, " ce");
        assert!(a.view.compare);
        let Request::Export(e) = &a.pending[2] else { panic!("{:?}", a.pending) };
        assert_eq!((e.pane, e.sides.len()), (Pane::Compare, 2));
        assert!(!t.path().join("exports").exists(), "the reducer draws nothing");
    }
}

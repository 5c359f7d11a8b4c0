//! The TUI's state (the store, the selection, the view settings, the open dialog) and how the
//! collector's deltas change it. Keys and mouse are the reducer's (`update.rs`); drawing reads
//! the state through [`App::ui`], a read-only view; I/O with the supervisor happens in the
//! event loop (`mod.rs`) through [`Request`]s.

use std::collections::VecDeque;

use ratatui::layout::Rect;

use super::collect::answers::{Answers, Query};
use super::collect::system::SystemStats;
use super::derived::Derived;
use super::dialogs::{Dialog, Env};
use super::groups::{GroupAggs, Groups};
use super::keymap::{Context, Keymap};
use super::layout;
use super::state::{LogLine, Pick, Scripts, Selection, ViewSettings};
use super::store::{Delta, Store, XAxis};
use super::theme::{Theme, BUILTIN};
use super::view::Ui;
use crate::runs::events::State;

pub use super::collect::system::GpuStat;
pub use super::state::{Focus, Request, Side, TreeRow, XRange};

/// The whole TUI state, by concern: the data (`store` and what is derived from it), the
/// selection, the view settings, the open dialog, and the event loop's bookkeeping.
pub struct App {
    pub store: Store,
    pub theme: Theme,
    pub(super) theme_idx: usize,
    pub keymap: Keymap,
    pub sel: Selection,
    pub view: ViewSettings,
    /// The open dialog or overlay (none: the main screen has the keys).
    pub dialog: Option<Dialog>,
    pub log: VecDeque<LogLine>,
    pub system: SystemStats,
    pub pending: Vec<Request>,
    pub quit: bool,
    pub dirty: bool,
    /// Ticks of the event loop (four a second).
    pub frame: u64,
    /// "Now" for ages and ETAs (fixed in tests).
    pub now: f64,
    /// The terminal's area (set by the event loop on start and on resize): mouse clicks are
    /// mapped to panes through [`layout::layout`] of it, as drawing places them.
    pub screen: Rect,
    /// Counts the store's changes ([`App::on_data`]): derived data is keyed by it.
    pub data_gen: u64,
    /// The runs root is still being read in the background (the first frames show that).
    pub loading: bool,
    /// The user asked to read the root again (the event loop asks the collector).
    pub reload: bool,
    /// The compare table and the sweep analysis, cached between frames ([`App::derive`]).
    pub derived: Derived,
    /// The groups of runs (recomputed when the runs or their configs change).
    pub groups: Groups,
    /// The viewed groups' mean curves and bands, updated from the members' new points.
    pub group_aggs: GroupAggs,
    seen_status: usize,
    seen_warnings: usize,
    /// Warnings to tell the terminal of (the event loop drains it).
    pub notify: Vec<String>,
    /// The stored answers the open samples view shows (read by the collector).
    pub answers: Option<Answers>,
    /// Answers the samples view wants read (the event loop asks the collector).
    pub answers_wanted: Option<Query>,
    /// Each side's latest evaluation of the view's set when its answers were asked for: a
    /// later one reads them again.
    answers_asked_at: Vec<Option<u64>>,
    /// What the run tree was last built from (`on_data` rebuilds it when this changes).
    tree_shape: Option<(u64, usize, usize, u64)>,
    /// Offer the demo when the first read of the root finds no runs (not with `--demo`, which
    /// starts it).
    pub offer_demo: bool,
    /// The root has been read whole once.
    loaded_once: bool,
    /// The first whole read is to be settled by the next `on_data`: a saved selection not
    /// found by then is given up, marks of runs and groups that are gone are dropped.
    settle: bool,
}

impl App {
    pub fn new(store: Store, theme: Theme, keymap: Keymap) -> App {
        let theme_idx = BUILTIN.iter().position(|(n, _)| *n == theme.name).unwrap_or(0);
        let mut app = App {
            store,
            theme,
            theme_idx,
            keymap,
            sel: Selection::default(),
            view: ViewSettings {
                focus: Focus::Runs,
                compare: false,
                x_axis: XAxis::Step,
                x_range: XRange::Lineage,
                log_y: false,
                smoothing: 0.6,
                task: "mr".into(),
                show_loss: false,
                grid: false,
                scripts: Scripts::All,
                sweep_series: 0,
                members: false,
                unadjusted: false,
            },
            dialog: None,
            log: VecDeque::new(),
            system: SystemStats::default(),
            pending: Vec::new(),
            quit: false,
            dirty: true,
            frame: 0,
            now: crate::util::now_secs(),
            screen: Rect::default(),
            data_gen: 0,
            loading: false,
            reload: false,
            derived: Derived::default(),
            groups: Groups::default(),
            group_aggs: GroupAggs::default(),
            seen_status: 0,
            seen_warnings: 0,
            notify: Vec::new(),
            answers: None,
            answers_wanted: None,
            answers_asked_at: Vec::new(),
            tree_shape: None,
            offer_demo: true,
            loaded_once: false,
            settle: false,
        };
        app.on_data();
        app
    }

    /// The read-only view panes draw from.
    pub fn ui(&self) -> Ui<'_> {
        Ui {
            store: &self.store,
            theme: &self.theme,
            keymap: &self.keymap,
            sel: &self.sel,
            view: &self.view,
            log: &self.log,
            system: &self.system,
            derived: &self.derived,
            groups: &self.groups,
            group_aggs: &self.group_aggs,
            now: self.now,
            frame: self.frame,
            loading: self.loading,
            data_gen: self.data_gen,
            answers: self.answers.as_ref(),
        }
    }

    /// What a dialog's keys and drawing need of the app.
    pub fn env(&self) -> Env<'_> {
        Env { keymap: &self.keymap, theme: &self.theme, screen: self.screen, answers: self.answers.as_ref() }
    }

    /// Bring the derived data (compare table, sweep analysis, the viewed groups' curves) up to
    /// date with the data and the selection; a no-op when nothing they depend on changed.
    /// Called before each frame.
    pub fn derive(&mut self) {
        let want = self.ui().viewed_groups();
        self.group_aggs.update(&self.store, &self.groups, &want, self.view.smoothing);
        let old = std::mem::take(&mut self.derived);
        self.derived = self.ui().derive(old);
    }

    /// The panes' areas on the current screen.
    pub fn areas(&self) -> layout::Areas {
        layout::layout(self.screen, &self.ui().right())
    }

    /// Bring every run's smoothed loss up to date (new points, or a new smoothing factor).
    pub(super) fn resmooth(&mut self) {
        for r in &mut self.store.runs {
            r.update_smooth(self.view.smoothing);
        }
    }

    /// Rebuild the run tree (see `tree.rs`).
    pub fn rebuild_tree(&mut self) {
        super::tree::rebuild(&mut self.sel, &self.store, &self.groups);
    }

    /// What the selected row shows (what a restart selects again).
    pub fn picked(&self) -> Option<Pick> {
        super::tree::current(&self.sel, &self.store)
    }

    /// Keep the languages pane on a task the charted runs have.
    pub fn pick_task(&mut self) {
        let tasks = self.ui().tasks();
        if !tasks.contains(&self.view.task) {
            if let Some(t) = tasks.first() {
                self.view.task = t.clone();
            }
        }
    }

    pub fn push_log(&mut self, text: impl Into<String>, error: bool) {
        self.log.push_back(LogLine { time: crate::util::now_secs(), text: text.into(), error });
        while self.log.len() > 200 {
            self.log.pop_front();
        }
        self.dirty = true;
    }

    /// Bring new status events of every run into the log strip.
    fn collect_status_log(&mut self) {
        let total: usize = self.store.runs.iter().map(|r| r.statuses.len() + r.warnings.len()).sum();
        if total == self.seen_status {
            return;
        }
        let warnings: usize = self.store.runs.iter().map(|r| r.warnings.len()).sum();
        if self.loaded_once && warnings > self.seen_warnings {
            // Warnings that arrived while the TUI watched: the terminal is told (bell, and a
            // desktop notification where it supports one), unless config.toml says not to.
            let mut new: Vec<(f64, String)> = Vec::new();
            for r in &self.store.runs {
                for (t, step, m) in &r.warnings {
                    new.push((*t, format!("{} at step {step}: {m}", r.display_name())));
                }
            }
            new.sort_by(|a, b| a.0.total_cmp(&b.0));
            let fresh = warnings - self.seen_warnings;
            self.notify.extend(new.into_iter().rev().take(fresh).map(|(_, m)| m));
        }
        self.seen_warnings = warnings;
        let mut lines: Vec<LogLine> = Vec::new();
        for r in &self.store.runs {
            for s in &r.statuses {
                let mut text = format!("{} {} at step {}", r.display_name(), s.state.as_str(), s.step);
                if let Some(m) = &s.message {
                    text.push_str(": ");
                    text.push_str(m);
                }
                lines.push(LogLine { time: s.time, text, error: s.state == State::Failed });
            }
            for (time, step, m) in &r.warnings {
                let text = format!("⚠ {} at step {step}: {m}", r.display_name());
                lines.push(LogLine { time: *time, text, error: true });
            }
        }
        let user: Vec<LogLine> = self.log.iter().filter(|l| !lines.contains(l)).cloned().collect();
        let mut all: Vec<LogLine> = lines.into_iter().chain(user).collect();
        all.sort_by(|a, b| a.time.partial_cmp(&b.time).unwrap_or(std::cmp::Ordering::Equal));
        let n = all.len();
        self.log = all.into_iter().skip(n.saturating_sub(200)).collect();
        self.seen_status = total;
    }

    /// Whether a delta changes what the panes draw now: anything but events appended to a run
    /// the panes do not chart (without a status event, which changes the tree's states).
    pub fn shows(&self, d: &Delta) -> bool {
        match d {
            Delta::Events { dir, events, .. } => {
                events.iter().any(|e| e.status().is_some() || e.is_warning())
                    || self.ui().charted().iter().any(|r| r.dir.as_os_str() == dir.as_os_str())
            }
            Delta::System(_) | Delta::Checkpoints { .. } => false,
            Delta::Answers(_) => true,
            _ => true,
        }
    }

    /// Fold in what the collector found; returns whether the store changed (then call
    /// [`App::on_data`]). A system sample waits for the once-a-second frame of the clocks.
    pub fn apply(&mut self, d: Delta) -> bool {
        match d {
            Delta::System(s) => {
                self.system = s;
                false
            }
            // For the samples view, when it still shows what they answer.
            Delta::Answers(a) => {
                if matches!(&self.dialog, Some(Dialog::Samples(v)) if v.query == a.query) {
                    self.answers = Some(*a);
                    self.dirty = true;
                }
                false
            }
            Delta::Loaded(store) => {
                self.loading = false;
                let changed = self.store.apply(Delta::Loaded(store));
                if !std::mem::replace(&mut self.loaded_once, true) {
                    self.after_first_load();
                }
                changed
            }
            d => self.store.apply(d),
        }
    }

    /// Once the root has been read: a root that cannot be read is an error in the log (the
    /// runs pane shows it too); an empty one offers the demo.
    fn after_first_load(&mut self) {
        self.settle = true;
        if let Some(e) = self.store.error.clone() {
            self.push_log(format!("cannot read the runs root: {e}"), true);
        } else if self.store.runs.is_empty() && self.offer_demo && self.dialog.is_none() {
            self.dialog = Some(Dialog::Demo(Default::default()));
        }
    }

    /// After the store changed: tree, task list, log.
    pub fn on_data(&mut self) {
        self.data_gen += 1;
        self.resmooth();
        self.groups.refresh(&self.store);
        // The tree's shape changes with the runs (their set, a first event that orders them,
        // a sweep's record; their tags, which a `tag:` filter shows), not with every appended
        // event.
        let shape = (
            self.store.runs_gen,
            self.store.runs.iter().filter(|r| r.first_time.is_some()).count(),
            self.store.sweeps.len(),
            self.store.notes_gen,
        );
        if self.tree_shape != Some(shape) {
            self.tree_shape = Some(shape);
            self.rebuild_tree();
        }
        if std::mem::take(&mut self.settle) {
            self.sel.restore = None;
            let (store, groups) = (&self.store, &self.groups);
            self.sel.marked.retain(|m| store.get(m).is_some() || groups.get(m).is_some());
        }
        self.pick_task();
        self.collect_status_log();
        self.refresh_answers();
        self.dirty = true;
    }

    /// Ask for the open samples view's answers (now, or again when its runs evaluated since).
    pub fn want_answers(&mut self, q: Query) {
        self.answers_asked_at = self.latest_evals(&q);
        self.answers_wanted = Some(q);
    }

    /// Each side's latest evaluation of the query's (task, language).
    fn latest_evals(&self, q: &Query) -> Vec<Option<u64>> {
        let key = (q.task.clone(), q.lang.clone());
        q.sides
            .iter()
            .map(|s| self.store.get(&s.run).and_then(|r| r.evals.get(&key)).and_then(|c| c.value.last()).map(|p| p.0))
            .collect()
    }

    /// A run of the open samples view evaluated again (its answers are written before the
    /// evaluation's events): read the view's answers again.
    fn refresh_answers(&mut self) {
        let Some(Dialog::Samples(v)) = &self.dialog else { return };
        let q = v.query.clone();
        if self.answers_wanted.is_none() && self.latest_evals(&q) != self.answers_asked_at {
            self.want_answers(q);
        }
    }

    /// The keymap context of the keys now: the open dialog's, else the main screen's (with
    /// the languages table's keys while its pane has the focus).
    pub fn context(&self) -> Context {
        match (&self.dialog, self.view.focus) {
            (Some(d), _) => d.context(),
            (None, super::state::Focus::Langs) => Context::Langs,
            (None, _) => Context::Global,
        }
    }
}

//! The TUI's state and how actions change it. Drawing is in `ui.rs` and `panes/`; I/O with
//! the supervisor happens in the event loop (`mod.rs`) through [`Request`]s.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

use super::action::Action;
use super::collect::Delta;
use super::derived::Derived;
use super::keymap::{Context, Keymap};
use super::store::{RunData, Store, XAxis};
use super::theme::{Theme, BUILTIN};
use super::ui;
use crate::data::lang;
use crate::data::mixture::{Mixture, SpecContext};
use crate::runs::events::State;

/// Which pane has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Runs,
    Loss,
    Langs,
}

/// Which languages the languages pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scripts {
    All,
    Latin,
    NonLatin,
}

impl Scripts {
    pub fn label(self) -> &'static str {
        match self {
            Scripts::All => "all scripts",
            Scripts::Latin => "Latin",
            Scripts::NonLatin => "non-Latin",
        }
    }
    pub fn admits(self, code: &str) -> bool {
        let latin = lang::get(code).is_some_and(|l| l.is_latin());
        match self {
            Scripts::All => true,
            Scripts::Latin => latin,
            Scripts::NonLatin => !latin,
        }
    }
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

/// The fork dialog's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkField {
    Step,
    Weights,
    Spec,
    Name,
}

/// The fork dialog.
#[derive(Debug, Clone)]
pub struct ForkDialog {
    pub run: String,
    pub checkpoints: Vec<u64>,
    /// The checkpoints that hold weights only (a shipped base's step): a fork from one starts
    /// with fresh optimizer moments, as `mixscope fork` does.
    pub weights_only: Vec<u64>,
    pub ckpt: usize,
    pub field: ForkField,
    /// Per-language weights (suite order), as edited.
    pub weights: Vec<(String, f64)>,
    pub row: usize,
    pub spec: TextInput,
    pub name: TextInput,
    /// The resolved mixture's summary, or the SPEC's error.
    pub validation: Result<String, String>,
    ctx: SpecContext,
}

impl ForkDialog {
    pub fn new(r: &RunData) -> ForkDialog {
        let cfg = r.cfg.clone().unwrap_or_default();
        let ctx = cfg.data.spec_context();
        let mut ck = r.checkpoints.clone();
        if let Some(dir_ck) = crate::runs::RunDir::new(&r.dir).checkpoints().ok().filter(|v| !v.is_empty()) {
            ck = dir_ck;
        }
        let spec = cfg.mixture().map(|m| m.spec).unwrap_or_else(|_| cfg.data.mixture.clone());
        let dir = crate::runs::RunDir::new(&r.dir);
        let weights_only = ck.iter().copied().filter(|s| dir.weights_only(*s)).collect();
        let mut d = ForkDialog {
            run: r.id.clone(),
            weights_only,
            ckpt: ck.len().saturating_sub(1),
            checkpoints: ck,
            field: ForkField::Weights,
            weights: lang::all().iter().map(|l| (l.code.clone(), 0.0)).collect(),
            row: 0,
            spec: TextInput::new(&spec),
            name: TextInput::new(&format!("{}-fork", r.display_name())),
            validation: Err(String::new()),
            ctx,
        };
        d.spec_changed();
        d
    }

    /// Re-validate the SPEC text, and show its weights in the rows when it parses.
    pub fn spec_changed(&mut self) {
        match Mixture::parse(&self.spec.text, &self.ctx) {
            Ok(m) => {
                for (code, w) in self.weights.iter_mut() {
                    *w = m.langs.iter().find(|(c, _)| c == code).map_or(0.0, |(_, w)| *w);
                }
                self.validation = Ok(m.summary());
            }
            Err(e) => self.validation = Err(format!("{e:#}")),
        }
    }

    /// Rewrite the SPEC from the rows.
    pub fn weights_changed(&mut self) {
        let parts: Vec<String> = self
            .weights
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .map(|(c, w)| format!("{c}={}", (w * 1000.0).round() / 1000.0))
            .collect();
        let tasks = self.spec.text.split(',').find(|p| p.starts_with("tasks="));
        let mut s = parts.join(",");
        if let Some(t) = tasks {
            s.push(',');
            s.push_str(t);
        }
        self.spec = TextInput::new(&s);
        self.spec_changed();
    }

    pub fn step(&self) -> Option<u64> {
        self.checkpoints.get(self.ckpt).copied()
    }

    /// The chosen checkpoint holds weights only: the fork starts with fresh optimizer moments.
    pub fn fresh_optimizer(&self) -> bool {
        self.step().is_some_and(|s| self.weights_only.contains(&s))
    }
}

/// Something the event loop must do outside the UI thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Pause(String),
    Resume(String),
    Stop(String),
    Fork { run: String, at: Option<u64>, spec: String, name: String },
    Launch { config: PathBuf, sets: Vec<String> },
    Demo,
}

/// Modal states.
#[derive(Debug, Clone)]
pub enum Mode {
    Normal,
    Help,
    Filter(TextInput),
    ConfirmStop(String),
    Fork(Box<ForkDialog>),
    NewRun(TextInput),
    DemoOffer,
}

/// A line of the log strip.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub time: f64,
    pub text: String,
    pub error: bool,
}

/// CPU and memory of the machine (and GPUs when known).
#[derive(Debug, Clone, Default)]
pub struct SystemStats {
    pub cpu_pct: Option<f64>,
    pub cores: usize,
    pub mem_used_gb: f64,
    pub mem_total_gb: f64,
    pub gpus: Vec<GpuStat>,
    last_cpu: Option<(u64, u64)>,
}

pub use crate::gpu::GpuStat;

impl SystemStats {
    /// Sample /proc (Linux); other systems show nothing.
    pub fn sample(&mut self) {
        self.cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        if let Ok(s) = std::fs::read_to_string("/proc/stat") {
            if let Some(line) = s.lines().next() {
                let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
                if v.len() >= 4 {
                    let idle = v[3] + v.get(4).copied().unwrap_or(0);
                    let total: u64 = v.iter().take(8).sum();
                    if let Some((pi, pt)) = self.last_cpu {
                        let (di, dt) = (idle.saturating_sub(pi), total.saturating_sub(pt));
                        if dt > 0 {
                            self.cpu_pct = Some(100.0 * (1.0 - di as f64 / dt as f64));
                        }
                    }
                    self.last_cpu = Some((idle, total));
                }
            }
        }
        if let Ok(m) = std::fs::read_to_string("/proc/meminfo") {
            let get = |k: &str| {
                m.lines()
                    .find(|l| l.starts_with(k))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            self.mem_total_gb = get("MemTotal:") / 1048576.0;
            self.mem_used_gb = (get("MemTotal:") - get("MemAvailable:")) / 1048576.0;
        }
        self.gpus = crate::gpu::sample();
    }
}

/// One row of the run tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeRow {
    /// The run of this row (for a sweep's header row: its first run).
    pub run: usize,
    pub depth: usize,
    /// Tree-drawing prefix, e.g. "│ └".
    pub prefix: String,
    /// A sweep's header row: the sweep id; its runs follow one level deeper.
    pub sweep: Option<String>,
    /// The run's name as the tree shows it: with its id when another run has the same name
    /// (two `mixscope train configs/demo.toml --run-dir runs/a` and `runs/b` are both "demo").
    pub label: String,
}

/// How the data is shown: what a user sets with the chart and view keys.
#[derive(Debug, Clone)]
pub struct ViewSettings {
    pub focus: Focus,
    /// The compare view of the marked runs.
    pub compare: bool,
    pub x_axis: XAxis,
    pub log_y: bool,
    /// The EMA factor of the smoothed loss (0 = none).
    pub smoothing: f32,
    /// The languages pane's task.
    pub task: String,
    /// The languages pane shows held-out loss instead of the task metric.
    pub show_loss: bool,
    /// Small multiples instead of one overlay.
    pub grid: bool,
    pub scripts: Scripts,
    /// Which series of a sweep the sweep view charts (`t` steps through them).
    pub sweep_series: usize,
}

/// Which runs the user is looking at: the run tree, its cursor, the marks and the filter.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub rows: Vec<TreeRow>,
    pub selected: usize,
    pub marked: BTreeSet<String>,
    pub filter: Option<regex::Regex>,
    pub filter_text: String,
    /// A run to select as soon as it appears (after a fork or launch).
    pub select_when_seen: Option<String>,
}

/// The whole TUI state, by concern: the data (`store` and what is derived from it), the
/// selection, the view settings, the open dialog (`mode`), and the event loop's bookkeeping.
pub struct App {
    pub store: Store,
    pub theme: Theme,
    theme_idx: usize,
    pub keymap: Keymap,
    pub sel: Selection,
    pub view: ViewSettings,
    pub mode: Mode,
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
    /// mapped to panes through [`ui::layout`] of it, as drawing places them.
    pub screen: Rect,
    /// Counts the store's changes ([`App::on_data`]): derived data is keyed by it.
    pub data_gen: u64,
    /// The runs root is still being read in the background (the first frames show that).
    pub loading: bool,
    /// The user asked to read the root again (the event loop asks the collector).
    pub reload: bool,
    /// The compare table and the sweep analysis, cached between frames ([`App::derive`]).
    pub derived: Derived,
    seen_status: usize,
    /// Offer the demo when the first read of the root finds no runs (not with `--demo`, which
    /// starts it).
    pub offer_demo: bool,
    /// The root has been read whole once.
    loaded_once: bool,
    /// The help screen's first line shown (it scrolls when it does not fit).
    pub help_scroll: u16,
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
                log_y: false,
                smoothing: 0.6,
                task: "mr".into(),
                show_loss: false,
                grid: false,
                scripts: Scripts::All,
                sweep_series: 0,
            },
            mode: Mode::Normal,
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
            seen_status: 0,
            offer_demo: true,
            loaded_once: false,
            help_scroll: 0,
        };
        app.on_data();
        app
    }

    /// Bring the derived data (compare table, sweep analysis) up to date with the data and the
    /// selection; a no-op when nothing they depend on changed. Called before each frame.
    pub fn derive(&mut self) {
        let old = std::mem::take(&mut self.derived);
        self.derived = Derived::refresh(self, old);
    }

    /// The panes' areas on the current screen.
    pub fn areas(&self) -> ui::Areas {
        ui::layout(self.screen, &ui::view(self))
    }

    /// Bring every run's smoothed loss up to date (new points, or a new smoothing factor).
    fn resmooth(&mut self) {
        for r in &mut self.store.runs {
            r.update_smooth(self.view.smoothing);
        }
    }

    /// The selected run.
    pub fn selected_run(&self) -> Option<&RunData> {
        self.sel.rows.get(self.sel.selected).filter(|r| r.sweep.is_none()).map(|r| &self.store.runs[r.run])
    }

    /// The selected sweep (its header row in the run tree).
    pub fn selected_sweep(&self) -> Option<&str> {
        self.sel.rows.get(self.sel.selected).and_then(|r| r.sweep.as_deref())
    }

    /// The runs of a sweep, in the order of its grid.
    pub fn sweep_runs(&self, id: &str) -> Vec<&RunData> {
        let mut v: Vec<&RunData> = self.store.runs.iter().filter(|r| r.sweep_id() == Some(id)).collect();
        v.sort_by(|a, b| {
            a.first_time.partial_cmp(&b.first_time).unwrap_or(std::cmp::Ordering::Equal).then(a.id.cmp(&b.id))
        });
        v
    }

    /// The runs the chart panes show: the marked ones in compare mode, else the selected one
    /// (with its ancestors, so a fork is drawn continuing its parent's curve).
    pub fn charted(&self) -> Vec<&RunData> {
        if self.view.compare {
            return self.store.runs.iter().filter(|r| self.sel.marked.contains(&r.id)).collect();
        }
        let Some(r) = self.selected_run() else { return Vec::new() };
        vec![r]
    }

    /// The ancestors of a run, nearest first, with the step each was forked from.
    pub fn ancestors(&self, r: &RunData) -> Vec<(&RunData, u64)> {
        let mut out = Vec::new();
        let mut cur = r;
        let mut guard = 0;
        while let (Some(p), Some(at)) = (&cur.parent, cur.fork_step) {
            let Some(parent) = self.store.get(p) else { break };
            out.push((parent, at));
            cur = parent;
            guard += 1;
            if guard > 32 {
                break;
            }
        }
        out
    }

    /// Rebuild the run tree (forks nested under their parents at their fork step).
    pub fn rebuild_tree(&mut self) {
        let keep = self.selected_run().map(|r| r.id.clone());
        let runs = &self.store.runs;
        let visible: Vec<bool> = runs
            .iter()
            .map(|r| match &self.sel.filter {
                Some(re) if self.filter_matches_runs() => {
                    re.is_match(&r.id) || r.name.as_deref().is_some_and(|n| re.is_match(n))
                }
                _ => true,
            })
            .collect();
        let children = |id: Option<&str>| -> Vec<usize> {
            let mut v: Vec<usize> = (0..runs.len())
                .filter(|&i| match id {
                    None => runs[i].parent.as_deref().is_none_or(|p| !runs.iter().any(|x| x.id == p)),
                    Some(p) => runs[i].parent.as_deref() == Some(p),
                })
                .collect();
            v.sort_by(|&a, &b| {
                let (ra, rb) = (&runs[a], &runs[b]);
                ra.fork_step
                    .cmp(&rb.fork_step)
                    .then(ra.first_time.partial_cmp(&rb.first_time).unwrap_or(std::cmp::Ordering::Equal))
                    .then(ra.id.cmp(&rb.id))
            });
            v
        };
        let mut rows = Vec::new();
        /// A node of the tree: a run, or a sweep (header) with its runs.
        enum Node {
            Run(usize),
            Sweep(String, Vec<usize>),
        }
        /// Runs of one sweep among siblings are gathered under the sweep's node, placed where
        /// its first run was.
        fn nodes(kids: Vec<usize>, runs: &[RunData]) -> Vec<Node> {
            let mut out: Vec<Node> = Vec::new();
            for k in kids {
                match runs[k].sweep_id() {
                    Some(id) => match out.iter_mut().find(|n| matches!(n, Node::Sweep(s, _) if s == id)) {
                        Some(Node::Sweep(_, v)) => v.push(k),
                        _ => out.push(Node::Sweep(id.to_string(), vec![k])),
                    },
                    None => out.push(Node::Run(k)),
                }
            }
            out
        }
        struct Ctx<'a> {
            children: &'a dyn Fn(Option<&str>) -> Vec<usize>,
            runs: &'a [RunData],
            visible: &'a [bool],
        }
        fn walk_nodes(list: Vec<Node>, depth: usize, prefix: &str, rows: &mut Vec<TreeRow>, cx: &Ctx) {
            let n = list.len();
            for (k, node) in list.into_iter().enumerate() {
                let last = k + 1 == n;
                let own =
                    if depth == 0 { String::new() } else { format!("{prefix}{}", if last { "└" } else { "├" }) };
                let child_prefix =
                    if depth == 0 { String::new() } else { format!("{prefix}{}", if last { " " } else { "│" }) };
                match node {
                    Node::Run(i) => {
                        if cx.visible[i] {
                            rows.push(TreeRow { run: i, depth, prefix: own, sweep: None, label: String::new() });
                        }
                        let kids = nodes((cx.children)(Some(&cx.runs[i].id)), cx.runs);
                        walk_nodes(kids, depth + 1, &child_prefix, rows, cx);
                    }
                    Node::Sweep(id, members) => {
                        if members.iter().any(|&m| cx.visible[m]) {
                            rows.push(TreeRow {
                                run: members[0],
                                depth,
                                prefix: own,
                                sweep: Some(id),
                                label: String::new(),
                            });
                        }
                        let members = members.into_iter().map(Node::Run).collect();
                        walk_nodes(members, depth + 1, &child_prefix, rows, cx);
                    }
                }
            }
        }
        let cx = Ctx { children: &children, runs, visible: &visible };
        walk_nodes(nodes(children(None), runs), 0, "", &mut rows, &cx);
        let mut names: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for r in runs {
            *names.entry(r.display_name()).or_default() += 1;
        }
        for row in rows.iter_mut().filter(|row| row.sweep.is_none()) {
            let r = &runs[row.run];
            row.label = match names.get(r.display_name()) {
                Some(&n) if n > 1 && r.display_name() != r.id => format!("{} · {}", r.display_name(), r.id),
                _ => r.display_name().to_string(),
            };
        }
        self.sel.rows = rows;
        let want = self.sel.select_when_seen.clone().or(keep);
        if let Some(id) = want {
            if let Some(i) = self.sel.rows.iter().position(|r| r.sweep.is_none() && self.store.runs[r.run].id == id) {
                self.sel.selected = i;
                if self.sel.select_when_seen.as_deref() == Some(id.as_str()) {
                    self.sel.select_when_seen = None;
                }
            }
        }
        if self.sel.selected >= self.sel.rows.len() {
            self.sel.selected = self.sel.rows.len().saturating_sub(1);
        }
    }

    fn filter_matches_runs(&self) -> bool {
        let Some(re) = &self.sel.filter else { return false };
        self.store.runs.iter().any(|r| re.is_match(&r.id) || r.name.as_deref().is_some_and(|n| re.is_match(n)))
    }

    /// Whether the languages pane shows a language (script filter and regex filter).
    pub fn lang_visible(&self, code: &str) -> bool {
        if !self.view.scripts.admits(code) {
            return false;
        }
        match &self.sel.filter {
            Some(re) if !self.filter_matches_runs() => re.is_match(code),
            _ => true,
        }
    }

    /// Tasks with eval curves among the charted runs.
    pub fn tasks(&self) -> Vec<String> {
        let mut v: Vec<String> = self.charted().iter().flat_map(|r| r.evals.keys().map(|(t, _)| t.clone())).collect();
        v.sort_by_key(|t| (["mr", "sm", "if", "lm"].iter().position(|x| x == t).unwrap_or(9), t.clone()));
        v.dedup();
        v
    }

    /// Keep the languages pane on a task the charted runs have.
    pub fn pick_task(&mut self) {
        let tasks = self.tasks();
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
    pub fn collect_status_log(&mut self) {
        let mut lines: Vec<LogLine> = Vec::new();
        let total: usize = self.store.runs.iter().map(|r| r.statuses.len()).sum();
        if total == self.seen_status {
            return;
        }
        for r in &self.store.runs {
            for s in &r.statuses {
                let mut text = format!("{} {} at step {}", r.display_name(), s.state.as_str(), s.step);
                if let Some(m) = &s.message {
                    text.push_str(": ");
                    text.push_str(m);
                }
                lines.push(LogLine { time: s.time, text, error: s.state == State::Failed });
            }
        }
        lines.sort_by(|a, b| a.time.partial_cmp(&b.time).unwrap_or(std::cmp::Ordering::Equal));
        let user: Vec<LogLine> = self.log.iter().filter(|l| !lines.contains(l)).cloned().collect();
        let mut all: Vec<LogLine> = lines.into_iter().chain(user).collect();
        all.sort_by(|a, b| a.time.partial_cmp(&b.time).unwrap_or(std::cmp::Ordering::Equal));
        let n = all.len();
        self.log = all.into_iter().skip(n.saturating_sub(200)).collect();
        self.seen_status = total;
    }

    /// The live runs' breath: 0 or 1, turning once a second (with the once-a-second frame,
    /// so that breathing costs no frames of its own).
    pub fn breath(&self) -> u64 {
        (self.frame / 4) % 2
    }

    /// Fold in what the collector found; returns whether the store changed (then call
    /// [`App::on_data`]). A system sample waits for the once-a-second frame of the clocks.
    pub fn apply(&mut self, d: Delta) -> bool {
        match d {
            Delta::System(s) => {
                self.system = s;
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
        if let Some(e) = self.store.error.clone() {
            self.push_log(format!("cannot read the runs root: {e}"), true);
        } else if self.store.runs.is_empty() && self.offer_demo && matches!(self.mode, Mode::Normal) {
            self.mode = Mode::DemoOffer;
        }
    }

    /// After the store changed: tree, task list, log.
    pub fn on_data(&mut self) {
        self.data_gen += 1;
        self.resmooth();
        self.rebuild_tree();
        self.pick_task();
        self.collect_status_log();
        self.dirty = true;
    }

    /// The keymap context of the current mode.
    pub fn context(&self) -> Context {
        match &self.mode {
            Mode::Normal => Context::Global,
            Mode::Help => Context::Help,
            Mode::Filter(_) => Context::Filter,
            Mode::ConfirmStop(_) => Context::Confirm,
            Mode::Fork(_) => Context::Fork,
            Mode::NewRun(_) => Context::Launch,
            Mode::DemoOffer => Context::Demo,
        }
    }

    /// A key press: a text field takes editing keys first, then the keymap of the mode's
    /// context decides.
    pub fn on_key(&mut self, k: KeyEvent) {
        self.dirty = true;
        let action = self.keymap.lookup(self.context(), &k);
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => match action {
                Some(a) => self.act(a),
                None if k.code == KeyCode::Esc && self.view.compare => self.view.compare = false,
                None => {}
            },
            Mode::Help => {
                // The help scrolls when it does not fit the screen.
                let (max, page) = super::panes::dialogs::help_scroll_range(self, self.screen);
                let at = self.help_scroll.min(max);
                self.help_scroll = match action {
                    Some(Action::Close) => {
                        self.help_scroll = 0;
                        return;
                    }
                    Some(Action::Down) => (at + 1).min(max),
                    Some(Action::Up) => at.saturating_sub(1),
                    Some(Action::PageDown) => (at + page.saturating_sub(1).max(1)).min(max),
                    Some(Action::PageUp) => at.saturating_sub(page.saturating_sub(1).max(1)),
                    _ => at,
                };
                self.mode = Mode::Help;
            }
            Mode::Filter(mut t) => {
                if TextInput::edits(&k) {
                    if t.key(&k) {
                        self.sel.filter_text = t.text.clone();
                        self.sel.filter = if t.text.is_empty() {
                            None
                        } else {
                            regex::RegexBuilder::new(&t.text).case_insensitive(true).build().ok()
                        };
                        self.rebuild_tree();
                    }
                    self.mode = Mode::Filter(t);
                    return;
                }
                match action {
                    Some(Action::Close) => {
                        self.sel.filter = None;
                        self.sel.filter_text.clear();
                        self.rebuild_tree();
                    }
                    Some(Action::Submit) => self.rebuild_tree(),
                    _ => self.mode = Mode::Filter(t),
                }
            }
            Mode::ConfirmStop(id) => {
                if action == Some(Action::Submit) {
                    self.push_log(format!("stopping {id}"), false);
                    self.pending.push(Request::Stop(id));
                }
            }
            Mode::NewRun(mut t) => {
                if TextInput::edits(&k) {
                    t.key(&k);
                    self.mode = Mode::NewRun(t);
                    return;
                }
                match action {
                    Some(Action::Close) => {}
                    Some(Action::Submit) => {
                        let path = PathBuf::from(t.text.trim());
                        if path.exists() {
                            self.pending.push(Request::Launch { config: path, sets: Vec::new() });
                        } else {
                            self.push_log(format!("{}: no such config file", path.display()), true);
                            self.mode = Mode::NewRun(t);
                        }
                    }
                    _ => self.mode = Mode::NewRun(t),
                }
            }
            Mode::DemoOffer => match action {
                Some(Action::Submit) => {
                    self.pending.push(Request::Demo);
                    self.push_log(
                        "starting the demo: base model on 12 languages, then English-only vs multilingual=0.4 SFT",
                        false,
                    );
                }
                Some(Action::Quit) => self.quit = true,
                _ => {}
            },
            Mode::Fork(mut d) => {
                if self.fork_key(&mut d, k, action) {
                    self.mode = Mode::Fork(d);
                }
            }
        }
    }

    /// A key in the fork dialog (with its action in the fork context); returns whether the
    /// dialog stays open.
    fn fork_key(&mut self, d: &mut ForkDialog, k: KeyEvent, action: Option<Action>) -> bool {
        let text = matches!(d.field, ForkField::Spec | ForkField::Name);
        if text && TextInput::edits(&k) {
            if d.field == ForkField::Spec {
                if d.spec.key(&k) {
                    d.spec_changed();
                }
            } else {
                d.name.key(&k);
            }
            return true;
        }
        let Some(action) = action else { return true };
        match action {
            Action::Close => return false,
            Action::Submit => {
                return match &d.validation {
                    Ok(_) => {
                        let name = d.name.text.trim().to_string();
                        self.pending.push(Request::Fork {
                            run: d.run.clone(),
                            at: d.step(),
                            spec: d.spec.text.clone(),
                            name: name.clone(),
                        });
                        self.push_log(
                            format!(
                                "forking {} at step {} as {name}{}",
                                d.run,
                                d.step().map_or("latest".into(), |s| s.to_string()),
                                if d.fresh_optimizer() { " (weights only: fresh optimizer moments)" } else { "" }
                            ),
                            false,
                        );
                        false
                    }
                    Err(e) => {
                        self.push_log(format!("fix the mixture first: {e}"), true);
                        true
                    }
                };
            }
            Action::NextField | Action::PrevField => {
                let order = [ForkField::Step, ForkField::Weights, ForkField::Spec, ForkField::Name];
                let i = order.iter().position(|f| *f == d.field).unwrap_or(0);
                let n = order.len();
                d.field = order[if action == Action::NextField { (i + 1) % n } else { (i + n - 1) % n }];
                return true;
            }
            _ => {}
        }
        match d.field {
            ForkField::Step => match action {
                Action::Up | Action::Lower => d.ckpt = d.ckpt.saturating_sub(1),
                Action::Down | Action::Increase => d.ckpt = (d.ckpt + 1).min(d.checkpoints.len().saturating_sub(1)),
                _ => {}
            },
            ForkField::Weights => match action {
                Action::Up => d.row = d.row.saturating_sub(1),
                Action::Down => d.row = (d.row + 1).min(d.weights.len() - 1),
                Action::Increase => {
                    d.weights[d.row].1 = ((d.weights[d.row].1 + 0.05) * 100.0).round() / 100.0;
                    d.weights_changed();
                }
                Action::Lower => {
                    d.weights[d.row].1 = (((d.weights[d.row].1 - 0.05).max(0.0)) * 100.0).round() / 100.0;
                    d.weights_changed();
                }
                Action::Zero => {
                    d.weights[d.row].1 = 0.0;
                    d.weights_changed();
                }
                _ => {}
            },
            ForkField::Spec | ForkField::Name => {}
        }
        true
    }

    /// Apply an action.
    pub fn act(&mut self, a: Action) {
        self.dirty = true;
        match a {
            Action::Quit => self.quit = true,
            Action::Help => self.mode = Mode::Help,
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
                if let Some(sw) = self.selected_sweep().map(str::to_string) {
                    let ids: Vec<String> = self.sweep_runs(&sw).iter().map(|r| r.id.clone()).collect();
                    if ids.iter().all(|i| self.sel.marked.contains(i)) {
                        for i in &ids {
                            self.sel.marked.remove(i);
                        }
                    } else {
                        self.sel.marked.extend(ids);
                    }
                } else if let Some(id) = self.selected_run().map(|r| r.id.clone()) {
                    if !self.sel.marked.remove(&id) {
                        self.sel.marked.insert(id);
                    }
                }
            }
            Action::Compare => {
                if self.view.compare {
                    self.view.compare = false;
                } else if self.sel.marked.len() >= 2 {
                    self.view.compare = true;
                    self.pick_task();
                } else {
                    let k = self.keymap.label(Action::Mark);
                    self.push_log(format!("mark two or more runs ({k}) to compare them"), true);
                }
            }
            Action::PauseResume => {
                if let Some(r) = self.selected_run() {
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
                if let Some(r) = self.selected_run() {
                    if matches!(r.state, State::Running | State::Queued | State::Paused) {
                        self.mode = Mode::ConfirmStop(r.id.clone());
                    } else {
                        let msg = format!("{} is {}: nothing to stop", r.id, r.state.as_str());
                        self.push_log(msg, true);
                    }
                }
            }
            Action::Fork => {
                if let Some(r) = self.selected_run() {
                    let d = ForkDialog::new(r);
                    if d.checkpoints.is_empty() && !r.alive {
                        let msg = format!("{} has no checkpoint to fork from yet", r.id);
                        self.push_log(msg, true);
                    } else {
                        self.mode = Mode::Fork(Box::new(d));
                    }
                }
            }
            Action::NewRun => self.mode = Mode::NewRun(TextInput::new("configs/")),
            Action::Demo => self.mode = Mode::DemoOffer,
            Action::Filter => self.mode = Mode::Filter(TextInput::new(&self.sel.filter_text)),
            Action::XAxis => self.view.x_axis = self.view.x_axis.next(),
            Action::LogY => self.view.log_y = !self.view.log_y,
            Action::SmoothMore => {
                self.view.smoothing = (self.view.smoothing + 0.1).min(0.95);
                self.resmooth();
            }
            Action::SmoothLess => {
                self.view.smoothing = (self.view.smoothing - 0.1).max(0.0);
                self.resmooth();
            }
            Action::TaskNext if self.selected_sweep().is_some() && !self.view.compare => {
                self.view.sweep_series += 1;
            }
            Action::TaskNext => {
                let tasks = self.tasks();
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
            | Action::PageDown => {}
        }
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
                        let i = super::panes::runs::list_top(self.sel.selected, h) + (m.row - first) as usize;
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
            MouseEventKind::ScrollDown if matches!(self.mode, Mode::Normal) => self.act(Action::Down),
            MouseEventKind::ScrollUp if matches!(self.mode, Mode::Normal) => self.act(Action::Up),
            _ => {}
        }
    }
}

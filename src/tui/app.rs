//! The TUI's state and how actions change it. Drawing is in `ui.rs` and `panes/`; I/O with
//! the supervisor happens in the event loop (`mod.rs`) through [`Request`]s.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

use super::action::Action;
use super::collect::Delta;
use super::derived::Derived;
use super::groups::{GroupAggs, Groups};
use super::keymap::{Context, Keymap};
use super::store::{RunData, Store, XAxis};
use super::theme::{Theme, BUILTIN};
use super::ui;
use crate::data::lang;
use crate::data::mixture::{Mixture, SpecContext};
use crate::runs::events::State;
use crate::runs::group::Group;

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
    Seeds,
}

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

/// The fork dialog: of one run, or of every member of a group at one step.
#[derive(Debug, Clone)]
pub struct ForkDialog {
    /// The run's id, or the group's label.
    pub run: String,
    /// Forking a group: its members (run ids); each fork keeps its member's seed.
    pub group: Option<Vec<String>>,
    /// The seeds of the forks of one run (empty: one fork, with the run's seed).
    pub seeds: TextInput,
    pub seeds_check: Result<String, String>,
    base_seed: u64,
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
            group: None,
            seeds: TextInput::default(),
            seeds_check: check_seeds("", Some(cfg.seed)),
            base_seed: cfg.seed,
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

    /// The dialog for a group: the checkpoints every member has, the first member's mixture.
    pub fn for_group(g: &Group, members: &[&RunData]) -> Option<ForkDialog> {
        let first = members.first()?;
        let mut d = ForkDialog::new(first);
        let mut common: Option<Vec<u64>> = None;
        for m in members {
            let mut ck = m.checkpoints.clone();
            if let Some(dir_ck) = crate::runs::RunDir::new(&m.dir).checkpoints().ok().filter(|v| !v.is_empty()) {
                ck = dir_ck;
            }
            common = Some(match common {
                None => ck,
                Some(c) => c.into_iter().filter(|s| ck.contains(s)).collect(),
            });
        }
        d.checkpoints = common.unwrap_or_default();
        d.ckpt = d.checkpoints.len().saturating_sub(1);
        d.run = g.label();
        d.group = Some(members.iter().map(|m| m.id.clone()).collect());
        d.name = TextInput::new(&format!("{}-fork", g.name.as_deref().unwrap_or(&g.id)));
        d.seeds_check = Ok(format!("{} forks, one group: each keeps its member's seed", members.len()));
        Some(d)
    }

    /// Re-validate the seeds text.
    pub fn seeds_changed(&mut self) {
        if self.group.is_none() {
            self.seeds_check = check_seeds(&self.seeds.text, Some(self.base_seed));
        }
    }

    /// The fields, in the order tab visits them (a group's forks keep their seeds: no field).
    pub fn fields(&self) -> &'static [ForkField] {
        if self.group.is_some() {
            &[ForkField::Step, ForkField::Weights, ForkField::Spec, ForkField::Name]
        } else {
            &[ForkField::Step, ForkField::Weights, ForkField::Spec, ForkField::Name, ForkField::Seeds]
        }
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

/// The launch dialog's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchField {
    Config,
    Seeds,
}

/// The launch dialog: a run config or a sweep file, and the seeds to start it with.
#[derive(Debug, Clone)]
pub struct LaunchDialog {
    pub config: TextInput,
    pub seeds: TextInput,
    pub field: LaunchField,
    pub seeds_check: Result<String, String>,
}

impl LaunchDialog {
    pub fn new(config: &str) -> LaunchDialog {
        LaunchDialog {
            config: TextInput::new(config),
            seeds: TextInput::default(),
            field: LaunchField::Config,
            seeds_check: check_seeds("", None),
        }
    }
}

/// Something the event loop must do outside the UI thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Pause(String),
    Resume(String),
    Stop(String),
    /// Fork one run: once, or once per seed (`seeds` as `--seeds` reads it).
    Fork {
        run: String,
        at: Option<u64>,
        spec: String,
        name: String,
        seeds: Option<String>,
    },
    /// Fork every member of a group at one step with one mixture (`supervisor::fork_group`).
    ForkGroup {
        label: String,
        members: Vec<String>,
        at: Option<u64>,
        spec: String,
        name: String,
    },
    /// Launch a config (once, or once per seed: `supervisor::launch_seeds`) or a sweep file.
    Launch {
        config: PathBuf,
        sets: Vec<String>,
        seeds: Option<String>,
    },
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
    NewRun(Box<LaunchDialog>),
    DemoOffer,
}

/// One side of the compare view: a run, or a group's members.
#[derive(Debug, Clone)]
pub struct Side<'a> {
    /// The run's name, or the group's label (`name ×K`).
    pub label: String,
    pub group: Option<&'a Group>,
    pub runs: Vec<&'a RunData>,
}

impl Side<'_> {
    /// The side's runs' ids (what derived data is keyed by).
    pub fn ids(&self) -> Vec<String> {
        self.runs.iter().map(|r| r.id.clone()).collect()
    }
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
    /// A group's row (runs that differ only in seed): the group's id (`g:…`); its members
    /// follow one level deeper when it is expanded, then the forks of its members.
    pub group: Option<String>,
    /// A member's row: the group it is listed under.
    pub in_group: Option<String>,
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
    /// A selected group's members drawn as thin lines under its mean and band.
    pub members: bool,
    /// The compare view marks a delta whose own interval excludes zero, instead of the
    /// Holm-adjusted marks.
    pub unadjusted: bool,
}

/// Which runs the user is looking at: the run tree, its cursor, the marks and the filter.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub rows: Vec<TreeRow>,
    pub selected: usize,
    /// Marked runs (their ids) and groups (their `g:…` ids): the sides of the compare view.
    pub marked: BTreeSet<String>,
    /// The groups whose members the tree lists (their ids).
    pub expanded: BTreeSet<String>,
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
    /// The groups of runs (recomputed when the runs or their configs change).
    pub groups: Groups,
    /// The viewed groups' mean curves and bands, updated from the members' new points.
    pub group_aggs: GroupAggs,
    seen_status: usize,
    /// What the run tree was last built from (`on_data` rebuilds it when this changes).
    tree_shape: Option<(u64, usize, usize)>,
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
                members: false,
                unadjusted: false,
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
            groups: Groups::default(),
            group_aggs: GroupAggs::default(),
            seen_status: 0,
            tree_shape: None,
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
        let want = self.viewed_groups();
        self.group_aggs.update(&self.store, &self.groups, &want, self.view.smoothing);
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

    /// The selected run (none when a sweep's or a group's row is selected).
    pub fn selected_run(&self) -> Option<&RunData> {
        self.sel
            .rows
            .get(self.sel.selected)
            .filter(|r| r.sweep.is_none() && r.group.is_none())
            .map(|r| &self.store.runs[r.run])
    }

    /// The selected group (its row in the run tree).
    pub fn selected_group(&self) -> Option<&Group> {
        self.sel.rows.get(self.sel.selected).and_then(|r| r.group.as_deref()).and_then(|g| self.groups.get(g))
    }

    /// A group's members in the store.
    pub fn members(&self, g: &Group) -> Vec<&RunData> {
        self.groups.members(g, &self.store)
    }

    /// The sides of the compare view: each marked group (its members) and each marked run, in
    /// the order of their first runs in the store.
    pub fn compare_sides(&self) -> Vec<Side<'_>> {
        let mut sides: Vec<(usize, Side)> = Vec::new();
        let pos = |id: &str| self.store.runs.iter().position(|r| r.id == id).unwrap_or(usize::MAX);
        for m in &self.sel.marked {
            if let Some(g) = self.groups.get(m) {
                let runs = self.members(g);
                if let Some(first) = runs.first() {
                    sides.push((pos(&first.id), Side { label: g.label(), group: Some(g), runs }));
                }
            } else if let Some(r) = self.store.get(m) {
                sides.push((pos(&r.id), Side { label: r.display_name().to_string(), group: None, runs: vec![r] }));
            }
        }
        sides.sort_by_key(|(p, _)| *p);
        sides.into_iter().map(|(_, s)| s).collect()
    }

    /// The groups whose curves the view draws: the selected one, or the compared ones.
    pub fn viewed_groups(&self) -> Vec<String> {
        if self.view.compare {
            return self.compare_sides().iter().filter_map(|s| s.group.map(|g| g.id.clone())).collect();
        }
        match (ui::view(self), self.selected_group()) {
            (ui::View::Main, Some(g)) => vec![g.id.clone()],
            _ => Vec::new(),
        }
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

    /// The runs the chart panes show: the compared ones (every member of a compared group),
    /// else the selected run, or the selected group's members.
    pub fn charted(&self) -> Vec<&RunData> {
        if self.view.compare {
            return self.compare_sides().into_iter().flat_map(|s| s.runs).collect();
        }
        if let Some(g) = self.selected_group() {
            return self.members(g);
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

    /// Rebuild the run tree: forks nested under their parents at their fork step; the runs of
    /// a sweep under its node; the runs of a group (two or more runs that differ only in seed)
    /// under its node, listed when it is expanded, followed by the forks of its members.
    pub fn rebuild_tree(&mut self) {
        /// What the selection was on, to find it again.
        enum Keep {
            Run(String),
            /// A group, and its first run.
            Group(String, String),
            Sweep(String),
        }
        let keep = self.sel.rows.get(self.sel.selected).map(|row| {
            let run = self.store.runs.get(row.run).map(|r| r.id.clone()).unwrap_or_default();
            match (&row.group, &row.sweep) {
                (Some(g), _) => Keep::Group(g.clone(), run),
                (_, Some(sw)) => Keep::Sweep(sw.clone()),
                _ => Keep::Run(run),
            }
        });
        let runs = &self.store.runs;
        let groups = &self.groups;
        let visible: Vec<bool> = runs
            .iter()
            .map(|r| match &self.sel.filter {
                Some(re) if self.filter_matches_runs() => {
                    re.is_match(&r.id)
                        || r.name.as_deref().is_some_and(|n| re.is_match(n))
                        || groups.of_run(&r.id).is_some_and(|g| re.is_match(&g.id))
                }
                _ => true,
            })
            .collect();
        let order = |a: &usize, b: &usize| {
            let (ra, rb) = (&runs[*a], &runs[*b]);
            ra.fork_step
                .cmp(&rb.fork_step)
                .then(ra.first_time.partial_cmp(&rb.first_time).unwrap_or(std::cmp::Ordering::Equal))
                .then(ra.id.cmp(&rb.id))
        };
        let ids: std::collections::HashSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        let children = |id: Option<&str>| -> Vec<usize> {
            let mut v: Vec<usize> = (0..runs.len())
                .filter(|&i| match id {
                    None => runs[i].parent.as_deref().is_none_or(|p| !ids.contains(p)),
                    Some(p) => runs[i].parent.as_deref() == Some(p),
                })
                .collect();
            v.sort_by(order);
            v
        };
        let mut rows = Vec::new();
        /// A node of the tree: a run (with its forks, or alone: a group's member), a sweep
        /// (header) with its runs, or a group with its members.
        enum Node {
            Run(usize),
            Member(usize, String),
            Sweep(String, Vec<usize>),
            Group(String, Vec<usize>),
        }
        struct Ctx<'a> {
            children: &'a dyn Fn(Option<&str>) -> Vec<usize>,
            order: &'a dyn Fn(&usize, &usize) -> std::cmp::Ordering,
            runs: &'a [RunData],
            visible: &'a [bool],
            groups: &'a Groups,
            expanded: &'a BTreeSet<String>,
        }
        /// The runs of one group among siblings gathered under one node, where its first run
        /// was (a group with one run here stays a run).
        fn gather_groups(list: Vec<usize>, cx: &Ctx) -> Vec<Node> {
            let mut out: Vec<Node> = Vec::new();
            for k in list {
                match cx.groups.of_run(&cx.runs[k].id) {
                    Some(g) => match out.iter_mut().find(|n| matches!(n, Node::Group(id, _) if *id == g.id)) {
                        Some(Node::Group(_, v)) => v.push(k),
                        _ => out.push(Node::Group(g.id.clone(), vec![k])),
                    },
                    None => out.push(Node::Run(k)),
                }
            }
            out.into_iter()
                .map(|n| match n {
                    Node::Group(_, v) if v.len() == 1 => Node::Run(v[0]),
                    n => n,
                })
                .collect()
        }
        /// Runs of one sweep among siblings are gathered under the sweep's node, placed where
        /// its first run was; the rest by group.
        fn nodes(kids: Vec<usize>, cx: &Ctx) -> Vec<Node> {
            let mut sweeps: Vec<(usize, String, Vec<usize>)> = Vec::new();
            let mut rest: Vec<usize> = Vec::new();
            let mut slots: Vec<Option<usize>> = Vec::new();
            for k in kids {
                match cx.runs[k].sweep_id() {
                    Some(id) => match sweeps.iter_mut().find(|(_, s, _)| s == id) {
                        Some((_, _, v)) => v.push(k),
                        None => {
                            sweeps.push((slots.len(), id.to_string(), vec![k]));
                            slots.push(None);
                        }
                    },
                    None => {
                        rest.push(k);
                        slots.push(Some(k));
                    }
                }
            }
            // Keep the order of first appearance: groups where their first run was, sweeps
            // where theirs was.
            let grouped = gather_groups(rest, cx);
            let first_of = |n: &Node| match n {
                Node::Run(k) | Node::Member(k, _) => *k,
                Node::Group(_, v) | Node::Sweep(_, v) => v[0],
            };
            let mut placed: Vec<(usize, Node)> = Vec::new();
            for n in grouped {
                let at = slots.iter().position(|s| *s == Some(first_of(&n))).unwrap_or(usize::MAX);
                placed.push((at, n));
            }
            for (at, id, v) in sweeps {
                placed.push((at, Node::Sweep(id, v)));
            }
            placed.sort_by_key(|(at, _)| *at);
            placed.into_iter().map(|(_, n)| n).collect()
        }
        fn walk_nodes(list: Vec<Node>, depth: usize, prefix: &str, rows: &mut Vec<TreeRow>, cx: &Ctx) {
            let n = list.len();
            for (k, node) in list.into_iter().enumerate() {
                let last = k + 1 == n;
                let own =
                    if depth == 0 { String::new() } else { format!("{prefix}{}", if last { "└" } else { "├" }) };
                let child_prefix =
                    if depth == 0 { String::new() } else { format!("{prefix}{}", if last { " " } else { "│" }) };
                let row = |run, sweep, group, in_group| TreeRow {
                    run,
                    depth,
                    prefix: own.clone(),
                    sweep,
                    group,
                    in_group,
                    label: String::new(),
                };
                match node {
                    Node::Run(i) => {
                        if cx.visible[i] {
                            rows.push(row(i, None, None, None));
                        }
                        let kids = nodes((cx.children)(Some(&cx.runs[i].id)), cx);
                        walk_nodes(kids, depth + 1, &child_prefix, rows, cx);
                    }
                    Node::Member(i, g) => {
                        if cx.visible[i] {
                            rows.push(row(i, None, None, Some(g)));
                        }
                    }
                    Node::Sweep(id, members) => {
                        if members.iter().any(|&m| cx.visible[m]) {
                            rows.push(row(members[0], Some(id), None, None));
                        }
                        walk_nodes(gather_groups(members, cx), depth + 1, &child_prefix, rows, cx);
                    }
                    Node::Group(id, members) => {
                        if members.iter().any(|&m| cx.visible[m]) {
                            rows.push(row(members[0], None, Some(id.clone()), None));
                        }
                        let mut kids: Vec<usize> =
                            members.iter().flat_map(|&m| (cx.children)(Some(&cx.runs[m].id))).collect();
                        kids.sort_by(cx.order);
                        let mut list: Vec<Node> = Vec::new();
                        if cx.expanded.contains(&id) {
                            list.extend(members.iter().map(|&m| Node::Member(m, id.clone())));
                        }
                        list.extend(nodes(kids, cx));
                        walk_nodes(list, depth + 1, &child_prefix, rows, cx);
                    }
                }
            }
        }
        let cx =
            Ctx { children: &children, order: &order, runs, visible: &visible, groups, expanded: &self.sel.expanded };
        walk_nodes(nodes(children(None), &cx), 0, "", &mut rows, &cx);
        let mut names: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for r in runs {
            *names.entry(r.display_name()).or_default() += 1;
        }
        for row in rows.iter_mut().filter(|row| row.sweep.is_none()) {
            let r = &runs[row.run];
            row.label = if let Some(g) = row.group.as_deref().and_then(|g| groups.get(g)) {
                g.label()
            } else if let Some(g) = row.in_group.as_deref().and_then(|g| groups.get(g)) {
                // A member: its seed, and what tells it apart from the others.
                let seed = r.cfg.as_ref().map_or(0, |c| c.seed);
                let other = if r.name.is_some() && r.name != g.name { r.display_name() } else { &r.id };
                format!("seed {seed} · {other}")
            } else {
                match names.get(r.display_name()) {
                    Some(&n) if n > 1 && r.display_name() != r.id => format!("{} · {}", r.display_name(), r.id),
                    _ => r.display_name().to_string(),
                }
            };
        }
        self.sel.rows = rows;
        let plain = |row: &TreeRow, id: &str| row.sweep.is_none() && row.group.is_none() && runs[row.run].id == id;
        let find = |want: &Keep| -> Option<usize> {
            let rows = &self.sel.rows;
            match want {
                Keep::Run(id) => rows.iter().position(|r| plain(r, id)).or_else(|| {
                    // A run inside a collapsed group: its group's row.
                    let g = groups.of_run(id)?;
                    rows.iter().position(|r| r.group.as_deref() == Some(g.id.as_str()))
                }),
                // A group no longer (a member gone): its first run.
                Keep::Group(g, first) => rows
                    .iter()
                    .position(|r| r.group.as_deref() == Some(g.as_str()))
                    .or_else(|| rows.iter().position(|r| plain(r, first))),
                Keep::Sweep(sw) => rows.iter().position(|r| r.sweep.as_deref() == Some(sw.as_str())),
            }
        };
        let seen = self.sel.select_when_seen.clone().map(Keep::Run);
        if let Some(i) = seen.as_ref().and_then(find) {
            self.sel.selected = i;
            self.sel.select_when_seen = None;
        } else if let Some(i) = keep.as_ref().and_then(find) {
            self.sel.selected = i;
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

    /// Whether a delta changes what the panes draw now: anything but events appended to a run
    /// the panes do not chart (without a status event, which changes the tree's states).
    pub fn shows(&self, d: &Delta) -> bool {
        match d {
            Delta::Events { dir, events, .. } => {
                events.iter().any(|e| matches!(e.body, crate::runs::events::Body::Status { .. }))
                    || self.charted().iter().any(|r| r.dir.as_os_str() == dir.as_os_str())
            }
            Delta::System(_) => false,
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
        self.groups.refresh(&self.store);
        // The tree's shape changes with the runs (their set, a first event that orders them,
        // a sweep's record), not with every appended event.
        let shape = (
            self.store.runs_gen,
            self.store.runs.iter().filter(|r| r.first_time.is_some()).count(),
            self.store.sweeps.len(),
        );
        if self.tree_shape != Some(shape) {
            self.tree_shape = Some(shape);
            self.rebuild_tree();
        }
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
            Mode::NewRun(mut d) => {
                if TextInput::edits(&k) {
                    match d.field {
                        LaunchField::Config => {
                            d.config.key(&k);
                        }
                        LaunchField::Seeds => {
                            if d.seeds.key(&k) {
                                d.seeds_check = check_seeds(&d.seeds.text, None);
                            }
                        }
                    }
                    self.mode = Mode::NewRun(d);
                    return;
                }
                match action {
                    Some(Action::Close) => {}
                    Some(Action::NextField | Action::PrevField) => {
                        d.field = match d.field {
                            LaunchField::Config => LaunchField::Seeds,
                            LaunchField::Seeds => LaunchField::Config,
                        };
                        self.mode = Mode::NewRun(d);
                    }
                    Some(Action::Submit) => {
                        let path = PathBuf::from(d.config.text.trim());
                        let seeds = Some(d.seeds.text.trim().to_string()).filter(|s| !s.is_empty());
                        if !path.exists() {
                            self.push_log(format!("{}: no such config file", path.display()), true);
                            self.mode = Mode::NewRun(d);
                        } else if let Err(e) = &d.seeds_check {
                            self.push_log(format!("fix the seeds first: {e}"), true);
                            self.mode = Mode::NewRun(d);
                        } else if seeds.is_some() && crate::sweep::is_sweep_file(&path) {
                            self.push_log("a sweep file gives its seeds in its [grid] (seed = [0, 1, 2])", true);
                            self.mode = Mode::NewRun(d);
                        } else {
                            self.pending.push(Request::Launch { config: path, sets: Vec::new(), seeds });
                        }
                    }
                    _ => self.mode = Mode::NewRun(d),
                }
            }
            Mode::DemoOffer => match action {
                Some(Action::Submit) => {
                    self.pending.push(Request::Demo);
                    self.push_log(
                        "starting the demo: base model on 12 languages, then English-only vs multilingual=0.4 SFT, 2 seeds each",
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
        let text = matches!(d.field, ForkField::Spec | ForkField::Name | ForkField::Seeds);
        if text && TextInput::edits(&k) {
            match d.field {
                ForkField::Spec => {
                    if d.spec.key(&k) {
                        d.spec_changed();
                    }
                }
                ForkField::Seeds => {
                    if d.seeds.key(&k) {
                        d.seeds_changed();
                    }
                }
                _ => {
                    d.name.key(&k);
                }
            }
            return true;
        }
        let Some(action) = action else { return true };
        match action {
            Action::Close => return false,
            Action::Submit => {
                return match (&d.validation, &d.seeds_check) {
                    (Ok(_), Ok(_)) => {
                        let name = d.name.text.trim().to_string();
                        let at = d.step().map_or("latest".into(), |s| s.to_string());
                        let fresh = if d.fresh_optimizer() { " (weights only: fresh optimizer moments)" } else { "" };
                        match &d.group {
                            Some(members) => {
                                self.pending.push(Request::ForkGroup {
                                    label: d.run.clone(),
                                    members: members.clone(),
                                    at: d.step(),
                                    spec: d.spec.text.clone(),
                                    name: name.clone(),
                                });
                                self.push_log(
                                    format!("forking every run of {} at step {at} as {name}{fresh}", d.run),
                                    false,
                                );
                            }
                            None => {
                                let seeds = Some(d.seeds.text.trim().to_string()).filter(|s| !s.is_empty());
                                self.pending.push(Request::Fork {
                                    run: d.run.clone(),
                                    at: d.step(),
                                    spec: d.spec.text.clone(),
                                    name: name.clone(),
                                    seeds,
                                });
                                self.push_log(format!("forking {} at step {at} as {name}{fresh}", d.run), false);
                            }
                        }
                        false
                    }
                    (Err(e), _) => {
                        self.push_log(format!("fix the mixture first: {e}"), true);
                        true
                    }
                    (_, Err(e)) => {
                        self.push_log(format!("fix the seeds first: {e}"), true);
                        true
                    }
                };
            }
            Action::NextField | Action::PrevField => {
                let order = d.fields();
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
            ForkField::Spec | ForkField::Name | ForkField::Seeds => {}
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
                } else if let Some(id) =
                    self.selected_group().map(|g| g.id.clone()).or_else(|| self.selected_run().map(|r| r.id.clone()))
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
                } else if self.compare_sides().len() >= 2 {
                    self.view.compare = true;
                    self.pick_task();
                } else {
                    let k = self.keymap.label(Action::Mark);
                    self.push_log(format!("mark two or more runs or groups ({k}) to compare them"), true);
                }
            }
            Action::PauseResume | Action::Stop if self.selected_group().is_some() => {
                let k = self.keymap.label(Action::Expand);
                self.push_log(format!("a group: expand it ({k}) and select one of its runs"), true);
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
            Action::Fork if self.selected_group().is_some() => {
                let Some(g) = self.selected_group() else { return };
                let members = self.members(g);
                match ForkDialog::for_group(g, &members) {
                    Some(d) if d.checkpoints.is_empty() && !members.iter().all(|m| m.alive) => {
                        let msg = format!("the runs of {} share no checkpoint to fork from yet", g.label());
                        self.push_log(msg, true);
                    }
                    Some(d) => self.mode = Mode::Fork(Box::new(d)),
                    None => {}
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
            Action::NewRun => self.mode = Mode::NewRun(Box::new(LaunchDialog::new("configs/"))),
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
            Action::MarksUnadjusted => self.view.unadjusted = !self.view.unadjusted,
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

//! The TUI's data: every run under the root, its events folded into curves ([`RunData::apply`],
//! the one fold, for a first read and for appended lines alike), and [`Store::apply`], which
//! folds the collector's [`Delta`]s in. Plain data: reading files is the collector's
//! (`collect/`), drawing is the panes'.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::RunConfig;
use crate::runs::events::decode::{Decoded, EvalPoint, LangTag, TrainPoint};
use crate::runs::events::{Body, Event, State};
use crate::runs::notes::Notes;

use super::collect::system::SystemStats;
use super::series::Series;
pub use super::timeline::{LangColumns, Timeline, XAxis};

/// What changed, as the collector found it and the store folds it ([`Store::apply`]).
#[derive(Debug)]
pub enum Delta {
    /// The runs' records alone, before their curves: configs, states, steps and losses from
    /// the ends of each events file (see `Collector::records`).
    Records(Store),
    /// The root as first read (or read again on request).
    Loaded(Store),
    /// A run directory that appeared, read.
    Added(RunData),
    /// A run whose events file was truncated or replaced, read afresh.
    Replaced(RunData),
    /// Lines appended to a run's file, decoded, in file order, and lines that did not parse.
    Events { dir: PathBuf, events: Vec<Point>, bad: usize },
    /// A run's state changed.
    Seen { dir: PathBuf, seen: Seen },
    /// A sweep's record, once written.
    Sweep(String, crate::sweep::SweepRecord),
    /// A sample of the system's CPU, memory and GPUs.
    System(SystemStats),
    /// A run's checkpoints on disk (listed when a checkpoint event arrives): what the fork
    /// dialog offers, without reading a directory on the UI thread.
    Checkpoints { dir: PathBuf, on_disk: Vec<(u64, bool)> },
    /// A run's note and tags, read when `notes.json` changed (`Err`: why it cannot be read).
    Notes { dir: PathBuf, notes: Result<Notes, String> },
    /// The stored answers the samples view asked for (`collect::answers`): the app keeps
    /// them beside the store, for the open view.
    Answers(Box<super::collect::answers::Answers>),
}

/// A run's state as its last status event, its locks, its process and its scheduler tell it.
pub use crate::supervisor::status::Observed as Seen;

/// A decoded line, owned (it crosses the collector's channel): the decoder's point or event,
/// folded by [`Point::fold`] through [`RunData::apply`] as the first read folds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Point {
    Train { step: u64, time: f64, loss: f64, lr: f64, tokens: u64, tokens_per_s: f64, langs: Vec<(LangTag, u64)> },
    Eval(Box<EvalLine>),
    Event(Event),
}

/// An eval point, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalLine {
    pub step: u64,
    pub time: f64,
    pub task: String,
    pub lang: String,
    pub group: String,
    pub loss: f64,
    pub metric: String,
    pub value: f64,
    pub n: u64,
    pub lang_ok: Option<f64>,
    pub ci: Option<[f64; 2]>,
}

impl From<Event> for Point {
    fn from(e: Event) -> Point {
        Point::Event(e)
    }
}

impl Point {
    /// Own a decoded line (`None`: a line that did not parse).
    pub fn of(d: Decoded<'_>) -> Option<Point> {
        Some(match d {
            Decoded::Train(t) => Point::Train {
                step: t.step,
                time: t.time,
                loss: t.loss,
                lr: t.lr,
                tokens: t.tokens,
                tokens_per_s: t.tokens_per_s,
                langs: t.langs.to_vec(),
            },
            Decoded::Eval(e) => Point::Eval(Box::new(EvalLine {
                step: e.step,
                time: e.time,
                task: e.task.to_string(),
                lang: e.lang.to_string(),
                group: e.group.to_string(),
                loss: e.loss,
                metric: e.metric.to_string(),
                value: e.value,
                n: e.n,
                lang_ok: e.lang_ok,
                ci: e.ci,
            })),
            Decoded::Event(e) => Point::Event(e),
            Decoded::Bad(_) => return None,
        })
    }

    /// The status event this is, if it is one.
    pub fn status(&self) -> Option<(State, &Option<String>, f64)> {
        match self {
            Point::Event(Event { time, body: Body::Status { state, message }, .. }) => Some((*state, message, *time)),
            _ => None,
        }
    }

    /// The line's step.
    pub fn step(&self) -> u64 {
        match self {
            Point::Train { step, .. } => *step,
            Point::Eval(e) => e.step,
            Point::Event(e) => e.step,
        }
    }

    /// Whether this is a checkpoint event (the run's checkpoints on disk changed).
    pub fn is_warning(&self) -> bool {
        matches!(self, Point::Event(Event { body: Body::Warning { .. }, .. }))
    }

    pub fn is_checkpoint(&self) -> bool {
        matches!(self, Point::Event(Event { body: Body::Checkpoint { .. }, .. }))
    }

    /// Fold into a run, through the one fold a first read uses ([`RunData::apply`]).
    pub fn fold(self, r: &mut RunData) {
        match self {
            Point::Train { step, time, loss, lr, tokens, tokens_per_s, langs } => {
                r.apply(Decoded::Train(TrainPoint { step, time, loss, lr, tokens, tokens_per_s, langs: &langs }))
            }
            Point::Eval(e) => r.apply(Decoded::Eval(EvalPoint {
                step: e.step,
                time: e.time,
                task: &e.task,
                lang: &e.lang,
                group: &e.group,
                loss: e.loss,
                metric: &e.metric,
                value: e.value,
                n: e.n,
                lang_ok: e.lang_ok,
                ci: e.ci,
            })),
            Point::Event(e) => r.apply(Decoded::Event(e)),
        }
    }
}

/// One (task, language) eval curve.
#[derive(Debug, Clone, Default)]
pub struct EvalCurve {
    pub value: Series,
    pub loss: Series,
    pub group: String,
    pub metric: String,
    pub n: u64,
    pub lang_ok: Option<f32>,
    /// The 95 % interval of each point of `value` (NaN where the event carried none).
    pub ci: Vec<(f32, f32)>,
}

impl EvalCurve {
    /// The interval of the point at `step`, when its event carried one.
    pub fn ci_at(&self, step: u64) -> Option<(f64, f64)> {
        let i = self.value.steps.position(step)?;
        let (lo, hi) = *self.ci.get(i)?;
        (lo.is_finite() && hi.is_finite()).then_some((lo as f64, hi as f64))
    }
}

/// A status event, for the log strip.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusLine {
    pub time: f64,
    pub step: u64,
    pub state: State,
    pub message: Option<String>,
}

/// Everything the TUI knows of one run.
#[derive(Debug, Clone)]
pub struct RunData {
    pub id: String,
    pub dir: PathBuf,
    pub cfg: Option<RunConfig>,
    pub name: Option<String>,
    pub mixture: String,
    pub parent: Option<String>,
    pub fork_step: Option<u64>,
    pub max_steps: u64,
    pub device: String,
    pub timeline: Timeline,
    pub loss: Series,
    pub lr: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub evals: BTreeMap<(String, String), EvalCurve>,
    pub statuses: Vec<StatusLine>,
    /// The run's `warning` events (time, step, message).
    pub warnings: Vec<(f64, u64, String)>,
    pub checkpoints: Vec<u64>,
    /// The checkpoints on disk (step, weights only), as the collector last listed them.
    pub on_disk: Option<Vec<(u64, bool)>>,
    pub best: Option<(f64, u64)>,
    pub first_time: Option<f64>,
    pub last_time: Option<f64>,
    pub bad_lines: usize,
    pub state: State,
    pub message: Option<String>,
    pub alive: bool,
    /// Why the run's run.toml cannot be read (missing, or unparsable): the run is shown failed,
    /// with this, whatever its events say.
    pub damaged: Option<String>,
    /// A Slurm run's latest job (id, Slurm's state, node).
    pub slurm: Option<crate::supervisor::slurm::SlurmView>,
    /// What a person wrote about the run (`notes.json`); why that file cannot be read.
    pub notes: Notes,
    pub notes_error: Option<String>,
    /// The train loss smoothed with a debiased EMA (see [`RunData::update_smooth`]).
    pub smooth: Series,
    smooth_state: (f32, f64, f64),
    /// Changes whenever the curves may have: a fresh read, or events folded in by
    /// [`Store::apply`] (what a group's cached aggregates compare against, see `tui::groups`).
    pub rev: u64,
}

/// A number never handed out before (in this process): the store's generations and the runs'
/// revisions, so that a store or a run read afresh never looks unchanged.
pub fn next_gen() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl RunData {
    /// The sweep this run is a point of.
    pub fn sweep_id(&self) -> Option<&str> {
        self.cfg.as_ref().and_then(|c| c.sweep.as_ref()).map(|t| t.id.as_str())
    }

    /// A run of `dir` with its config as read (`Err`: why run.toml cannot be read, shown as
    /// the run's failure); no events yet. The collector reads both (`RunData::open`).
    pub fn new(dir: &Path, id: String, read: Result<RunConfig, String>) -> RunData {
        let damaged = read.as_ref().err().cloned();
        let cfg = read.ok();
        let mixture = cfg.as_ref().and_then(|c| c.mixture().ok()).map(|m| m.summary()).unwrap_or_default();
        RunData {
            id,
            dir: dir.to_path_buf(),
            name: cfg.as_ref().and_then(|c| c.name.clone()),
            parent: cfg.as_ref().and_then(|c| c.lineage.as_ref().map(|l| l.parent.clone())),
            fork_step: cfg.as_ref().and_then(|c| c.lineage.as_ref().map(|l| l.fork_step)),
            max_steps: cfg.as_ref().map_or(0, |c| c.train.max_steps),
            device: cfg.as_ref().map_or_else(String::new, |c| match c.device {
                crate::config::DeviceSpec::Auto => "cpu".into(),
                d => d.to_string(),
            }),
            cfg,
            mixture,
            timeline: Timeline::default(),
            loss: Series::default(),
            lr: None,
            tokens_per_s: None,
            evals: BTreeMap::new(),
            statuses: Vec::new(),
            warnings: Vec::new(),
            checkpoints: Vec::new(),
            on_disk: None,
            best: None,
            first_time: None,
            last_time: None,
            bad_lines: 0,
            state: State::Queued,
            message: None,
            alive: false,
            damaged,
            slurm: None,
            notes: Notes::default(),
            notes_error: None,
            smooth: Series::default(),
            smooth_state: (f32::NAN, 0.0, 0.0),
            rev: next_gen(),
        }
    }

    /// Set the state fields. A run whose run.toml cannot be read is failed, with the reason
    /// (unless a trainer still holds it), as `ls` shows it.
    pub fn set_seen(&mut self, s: &Seen) {
        self.state = s.state;
        self.message = s.message.clone();
        self.alive = s.alive;
        self.slurm = s.slurm.clone();
        if let Some(d) = self.damaged.as_ref().filter(|_| !s.alive) {
            self.state = State::Failed;
            self.message = Some(d.clone());
        }
    }

    /// Set the note and tags as the collector read them.
    pub fn set_notes(&mut self, read: Result<Notes, String>) {
        (self.notes, self.notes_error) = read.map_or_else(|e| (Notes::default(), Some(e)), |n| (n, None));
    }

    /// The checkpoints a fork can start from, with whether each holds weights only: those on
    /// disk when the collector listed them, else those the events name.
    pub fn fork_points(&self) -> Vec<(u64, bool)> {
        match &self.on_disk {
            Some(v) if !v.is_empty() => v.clone(),
            _ => self.checkpoints.iter().map(|s| (*s, false)).collect(),
        }
    }

    /// The last step with a train event (or the fork step before the first one).
    pub fn step(&self) -> u64 {
        self.loss.last().map(|(s, _)| s).or(self.fork_step).unwrap_or(0)
    }

    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// Free what was reserved for the curves and not used (after a whole file was read: room
    /// is reserved from the file's size).
    pub fn shrink_to_fit(&mut self) {
        self.timeline.shrink_to_fit();
        self.loss.shrink_to_fit();
        for c in self.evals.values_mut() {
            c.value.shrink_to_fit();
            c.loss.shrink_to_fit();
            c.ci.shrink_to_fit();
        }
    }

    /// Fold one decoded line in: the one fold of every line, read whole or appended.
    pub fn apply(&mut self, d: Decoded<'_>) {
        match d {
            Decoded::Train(t) => self.apply_train(&t),
            Decoded::Eval(e) => self.apply_eval(&e),
            Decoded::Event(e) => self.fold_event(&e),
            Decoded::Bad(_) => self.bad_lines += 1,
        }
    }

    fn apply_train(&mut self, t: &TrainPoint<'_>) {
        self.note_time(t.time);
        self.timeline.push_counts(t.step, t.time, t.tokens as f64, t.langs);
        self.loss.push(t.step, t.loss as f32);
        (self.lr, self.tokens_per_s) = (Some(t.lr), Some(t.tokens_per_s));
    }

    /// Bring the smoothed loss up to date for `alpha` (incremental while the loss only grows).
    pub fn update_smooth(&mut self, alpha: f32) {
        let (a, mut acc, mut w) = self.smooth_state;
        let n = self.smooth.len();
        let valid =
            a == alpha && n <= self.loss.len() && (n == 0 || self.loss.steps.at(n - 1) == self.smooth.steps.at(n - 1));
        let start = if valid {
            n
        } else {
            self.smooth = Series::default();
            self.smooth.reserve(self.loss.len());
            acc = 0.0;
            w = 0.0;
            0
        };
        let al = alpha.clamp(0.0, 0.999) as f64;
        for i in start..self.loss.len() {
            let y = self.loss.ys[i];
            if y.is_finite() {
                acc = al * acc + (1.0 - al) * y as f64;
                w = al * w + (1.0 - al);
            }
            let v = if w > 0.0 { (acc / w) as f32 } else { f32::NAN };
            self.smooth.push(self.loss.steps.at(i), v);
        }
        self.smooth_state = (alpha, acc, w);
    }

    /// Steps per second over the recent train events (for ETAs).
    pub fn steps_per_s(&self) -> Option<f64> {
        let t = &self.timeline;
        let n = t.steps.len();
        if n < 2 {
            return None;
        }
        let k = n.saturating_sub(30);
        let (ds, dt) = ((t.steps.at(n - 1) - t.steps.at(k)) as f64, t.time(n - 1) - t.time(k));
        (dt > 0.0 && ds > 0.0).then(|| ds / dt)
    }

    /// Mean held-out loss per eval step over English and the seen languages (the checkpoint
    /// selection loss).
    pub fn heldout_loss(&self) -> Series {
        let mut by_step: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
        for c in self.evals.values().filter(|c| c.group != "unseen") {
            for (s, y) in c.loss.steps.iter().zip(&c.loss.ys) {
                if y.is_finite() {
                    let e = by_step.entry(s).or_insert((0.0, 0));
                    e.0 += *y as f64;
                    e.1 += 1;
                }
            }
        }
        let mut out = Series::default();
        for (s, (sum, n)) in by_step {
            out.push(s, (sum / n as f64) as f32);
        }
        out
    }

    /// An event the fast decoder did not take (a status, a checkpoint; a train line with a
    /// language name longer than eight bytes).
    fn fold_event(&mut self, e: &Event) {
        self.note_time(e.time);
        match &e.body {
            Body::Train { loss, lr, tokens, tokens_per_s, examples, .. } => {
                self.timeline.push(e.step, e.time, *tokens as f64);
                for (l, c) in &examples.lang {
                    self.timeline.set_examples(l, *c as f64);
                }
                self.loss.push(e.step, *loss as f32);
                (self.lr, self.tokens_per_s) = (Some(*lr), Some(*tokens_per_s));
            }
            Body::Eval { task, lang, group, loss, metric, value, n, lang_ok, ci, .. } => {
                let (step, time) = (e.step, e.time);
                let (loss, value, n, lang_ok, ci) = (*loss, *value, *n, *lang_ok, *ci);
                self.apply_eval(&EvalPoint { step, time, task, lang, group, loss, metric, value, n, lang_ok, ci });
            }
            Body::Checkpoint { eval_loss, .. } => self.apply_checkpoint(e.step, *eval_loss),
            Body::Status { state, message } => {
                self.statuses.push(StatusLine { time: e.time, step: e.step, state: *state, message: message.clone() })
            }
            Body::Warning { message, .. } => self.warnings.push((e.time, e.step, message.clone())),
            Body::Fork { .. } | Body::Unknown(_) => {}
        }
    }

    fn note_time(&mut self, t: f64) {
        if self.first_time.is_none() {
            self.first_time = Some(t);
        }
        self.last_time = Some(t);
    }

    fn apply_eval(&mut self, e: &EvalPoint<'_>) {
        self.note_time(e.time);
        self.timeline.examples.mark(e.step);
        let c = self.evals.entry((e.task.to_string(), e.lang.to_string())).or_default();
        c.value.push(e.step, e.value as f32);
        c.loss.push(e.step, e.loss as f32);
        if c.group != e.group {
            c.group = e.group.to_string();
        }
        if c.metric != e.metric {
            c.metric = e.metric.to_string();
        }
        c.n = e.n;
        c.lang_ok = e.lang_ok.map(|v| v as f32);
        let ci = e.ci.map(|[lo, hi]| (lo as f32, hi as f32)).unwrap_or((f32::NAN, f32::NAN));
        // One interval per point of `value`, whose push may have replaced its tail.
        let len = c.value.steps.len();
        c.ci.truncate(len - 1);
        c.ci.resize(len - 1, (f32::NAN, f32::NAN));
        c.ci.push(ci);
    }

    fn apply_checkpoint(&mut self, step: u64, eval_loss: Option<f64>) {
        if !self.checkpoints.contains(&step) {
            self.checkpoints.push(step);
        }
        if let Some(l) = eval_loss {
            if self.best.is_none_or(|(b, _)| l < b) {
                self.best = Some((l, step));
            }
        }
    }
}

/// The TUI's view of a runs root.
#[derive(Debug, Default)]
pub struct Store {
    pub root: PathBuf,
    /// The root could not be read (a file, no permission): what the TUI shows instead of runs.
    pub error: Option<String>,
    pub runs: Vec<RunData>,
    /// The records of the sweeps the runs belong to (`<runs>/.sweeps/<id>/sweep.json`), read
    /// once each: a record is written once, when its sweep is launched.
    pub sweeps: BTreeMap<String, crate::sweep::SweepRecord>,
    /// Changes when the set of runs or their configs may have changed (a root read, a run
    /// added or read afresh), not for appended events: run groups are recomputed on it.
    pub runs_gen: u64,
    /// Changes when a run's note or tags changed (the tree's `tag:` filter follows them).
    pub notes_gen: u64,
}

impl Store {
    /// A store of `root` with nothing read yet: what the first frame shows while the
    /// collector reads the root.
    pub fn empty(root: &Path) -> Store {
        Store::from_runs(root, Vec::new())
    }

    /// Runs as read, in the order the tree lists them: by their first event, then id.
    pub fn from_runs(root: &Path, mut runs: Vec<RunData>) -> Store {
        runs.sort_by(|a, b| {
            a.first_time.partial_cmp(&b.first_time).unwrap_or(std::cmp::Ordering::Equal).then(a.id.cmp(&b.id))
        });
        Store {
            root: root.to_path_buf(),
            error: None,
            runs,
            sweeps: BTreeMap::new(),
            runs_gen: next_gen(),
            notes_gen: 0,
        }
    }

    /// Fold in what the collector found; returns whether anything changed.
    pub fn apply(&mut self, d: Delta) -> bool {
        // Compared as bytes: the runs' directories are the root joined with a name.
        let at = |runs: &[RunData], dir: &Path| runs.iter().position(|r| r.dir.as_os_str() == dir.as_os_str());
        match d {
            Delta::Loaded(store) | Delta::Records(store) => {
                *self = store;
                self.runs_gen = next_gen();
            }
            Delta::Added(r) | Delta::Replaced(r) => {
                match at(&self.runs, &r.dir) {
                    Some(i) => self.runs[i] = r,
                    None => self.runs.push(r),
                }
                self.runs_gen = next_gen();
            }
            Delta::Events { dir, events, bad } => {
                let Some(i) = at(&self.runs, &dir) else { return false };
                let r = &mut self.runs[i];
                r.rev = next_gen();
                for e in events {
                    e.fold(r);
                }
                r.bad_lines += bad;
            }
            Delta::Seen { dir, seen } => {
                let Some(i) = at(&self.runs, &dir) else { return false };
                self.runs[i].set_seen(&seen);
            }
            Delta::Checkpoints { dir, on_disk } => {
                let Some(i) = at(&self.runs, &dir) else { return false };
                self.runs[i].on_disk = Some(on_disk);
            }
            Delta::Notes { dir, notes } => {
                let Some(i) = at(&self.runs, &dir) else { return false };
                self.runs[i].set_notes(notes);
                self.notes_gen = next_gen();
            }
            Delta::Sweep(id, rec) => {
                self.sweeps.insert(id, rec);
            }
            Delta::System(_) | Delta::Answers(_) => return false,
        }
        true
    }

    /// The record of a sweep, once it has been read.
    pub fn sweep_record(&self, id: &str) -> Option<&crate::sweep::SweepRecord> {
        self.sweeps.get(id)
    }

    pub fn get(&self, id: &str) -> Option<&RunData> {
        self.runs.iter().find(|r| r.id == id)
    }

    /// Bytes the runs' curves hold on the heap (series, timelines, interval columns): what
    /// `bench tui` divides by the events loaded. Strings and small fields are left out.
    pub fn heap_bytes(&self) -> usize {
        self.runs
            .iter()
            .map(|r| {
                r.timeline.heap_bytes()
                    + r.loss.heap_bytes()
                    + r.smooth.heap_bytes()
                    + r.evals
                        .values()
                        .map(|e| e.value.heap_bytes() + e.loss.heap_bytes() + e.ci.capacity() * 8)
                        .sum::<usize>()
            })
            .sum()
    }

    /// Total events read (for the loader's benchmark).
    pub fn points(&self) -> usize {
        self.runs
            .iter()
            .map(|r| r.loss.len() + r.evals.values().map(|e| e.value.len()).sum::<usize>() + r.statuses.len())
            .sum()
    }
}

//! Data collection for the TUI: every run directory under the root, its events folded into
//! curves, followed as they are appended. Drawing never reads files; it reads this.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::RunConfig;
use crate::runs::events::decode::{lang_name, lang_tag, Decoded, Decoder, EvalPoint, LangTag, TrainPoint};
use crate::runs::events::follow::Follower;
use crate::runs::events::{Body, Event, State};
use crate::runs::RunDir;

use super::collect::{set_seen, Collector, Delta};
use super::series::{Series, Steps};

/// Which quantity the x axis shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    Step,
    /// Wall time since the start of the run's lineage.
    Time,
    Tokens,
    /// Examples seen of the curve's own language (the paper's x axis).
    Examples,
}

impl XAxis {
    pub fn next(self) -> XAxis {
        match self {
            XAxis::Step => XAxis::Time,
            XAxis::Time => XAxis::Tokens,
            XAxis::Tokens => XAxis::Examples,
            XAxis::Examples => XAxis::Step,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Time => "time (s)",
            XAxis::Tokens => "tokens",
            XAxis::Examples => "examples of the language",
        }
    }
}

/// Per train event: what the x axes need, by step. Values are `f32`, times as offsets from the
/// run's first train event: exact enough for an axis (a tenth of a second after four months, a
/// token in 16 M), at half the memory.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub steps: Steps,
    /// The time of the first train event; `time` holds offsets from it.
    t_base: f64,
    time: Vec<f32>,
    tokens: Vec<f32>,
    total_examples: Vec<f32>,
    /// Examples seen per language, at the steps where evaluations were read.
    pub examples: LangColumns,
}

/// Examples seen per language. The last train event's counts are kept (`current`) and, when an
/// evaluation is read, recorded for its step (`marks`): the examples axis places evaluations,
/// so a language's count is needed at their steps only, not at every train step (the loss
/// curve's axis is the total, kept per train event). Columns are sorted by name; train lines
/// name their languages sorted, so a line is merged in one pass. Counts are `f32` (exact to
/// 16.7 M examples of a language, within one example of it far beyond).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LangColumns {
    names: Vec<String>,
    /// Per name: the tag of its first eight bytes and whether it is longer, which order as
    /// the names do (so that a line's names are merged by integer compares).
    tags: Vec<(LangTag, bool)>,
    /// The last train event's count per name, and its step.
    current: Vec<f32>,
    current_step: Option<u64>,
    /// The steps recorded, and per name its count at each.
    marks: Steps,
    cols: Vec<Vec<f32>>,
}

impl LangColumns {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    fn index(&self, lang: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(lang)).ok()
    }

    /// The last train event's count of `lang`.
    pub fn current(&self, lang: &str) -> Option<f32> {
        Some(self.current[self.index(lang)?])
    }

    /// The count of `lang` recorded at the last mark at or before `step`.
    pub fn at(&self, lang: &str, step: u64) -> Option<f32> {
        let i = self.marks.partition_point(|m| m <= step).checked_sub(1)?;
        Some(self.cols[self.index(lang)?][i])
    }

    /// The first marked step whose count of `lang` reaches `x`.
    fn step_at(&self, lang: &str, x: f64) -> Option<u64> {
        let col = &self.cols[self.index(lang)?];
        self.marks.get(col.partition_point(|&c| (c as f64) < x))
    }

    /// The position of `lang`, inserted (count zero, and zero at every mark) when new.
    fn slot(&mut self, lang: &str) -> usize {
        match self.index(lang) {
            Some(i) => i,
            None => {
                let i = self.names.partition_point(|n| n.as_str() < lang);
                self.insert(i, lang.to_string());
                i
            }
        }
    }

    fn insert(&mut self, i: usize, name: String) {
        self.tags.insert(i, lang_tag(&name));
        self.names.insert(i, name);
        self.current.insert(i, 0.0);
        self.cols.insert(i, vec![0.0; self.marks.len()]);
    }

    /// Record the current counts for `step`, when a train event at or before it was read.
    fn mark(&mut self, step: u64) {
        if self.current_step.is_none_or(|c| c > step) || self.marks.last().is_some_and(|m| m >= step) {
            return;
        }
        self.marks.push(step);
        for (col, &c) in self.cols.iter_mut().zip(&self.current) {
            col.push(c);
        }
    }

    /// Forget the marks from `step` on (a resumed run redoes them).
    fn truncate_from(&mut self, step: u64) {
        let keep = self.marks.partition_point(|m| m < step);
        self.marks.truncate(keep);
        for c in &mut self.cols {
            c.truncate(keep);
        }
    }

    /// Examples seen of every language, by the last train event.
    fn total(&self) -> f32 {
        self.current.iter().map(|&c| c as f64).sum::<f64>() as f32
    }

    fn heap_bytes(&self) -> usize {
        self.marks.heap_bytes() + self.cols.iter().map(|c| c.capacity() * 4).sum::<usize>()
    }
}

impl Timeline {
    /// Bytes the timeline holds on the heap (its columns' capacities).
    pub fn heap_bytes(&self) -> usize {
        self.steps.heap_bytes()
            + (self.time.capacity() + self.tokens.capacity() + self.total_examples.capacity()) * 4
            + self.examples.heap_bytes()
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The time of train event `i` (seconds since the epoch).
    pub fn time(&self, i: usize) -> f64 {
        self.t_base + self.time[i] as f64
    }

    /// Free what was reserved and not used (after a whole file was read).
    pub fn shrink_to_fit(&mut self) {
        self.time.shrink_to_fit();
        self.tokens.shrink_to_fit();
        self.total_examples.shrink_to_fit();
    }

    fn truncate_from(&mut self, step: u64) {
        let keep = self.steps.partition_point(|s| s < step);
        self.steps.truncate(keep);
        self.time.truncate(keep);
        self.tokens.truncate(keep);
        self.total_examples.truncate(keep);
        self.examples.truncate_from(step);
    }

    /// Append a train event's step, time and tokens (a step at or before the last replaces the
    /// tail from there); its examples follow.
    fn push(&mut self, step: u64, time: f64, tokens: f64) {
        if self.steps.last().is_some_and(|s| step <= s) {
            self.truncate_from(step);
        }
        if self.steps.is_empty() {
            self.t_base = time;
        }
        self.steps.push(step);
        self.time.push((time - self.t_base) as f32);
        self.tokens.push(tokens as f32);
        self.total_examples.push(self.examples.total());
        self.examples.current_step = Some(step);
    }

    /// [`Timeline::push`] and the event's counts, in one pass: `counts` are sorted by language,
    /// without repeats, each language a name of at most eight bytes held in its tag (see
    /// [`lang_tag`]), compared by tags. Languages the event does not name keep their count.
    fn push_counts(&mut self, step: u64, time: f64, tokens: f64, counts: &[(LangTag, u64)]) {
        self.push(step, time, tokens);
        let ex = &mut self.examples;
        if !(ex.tags.len() == counts.len() && ex.tags.iter().zip(counts).all(|(&t, &(tag, _))| t == (tag, false))) {
            // New languages (rare): their slots first.
            for &(tag, _) in counts {
                if !ex.tags.contains(&(tag, false)) {
                    ex.slot(&lang_name(tag));
                }
            }
        }
        let mut c = 0;
        for &(tag, count) in counts {
            while ex.tags[c] != (tag, false) {
                c += 1;
            }
            ex.current[c] = count as f32;
            c += 1;
        }
        self.total_examples[self.steps.len() - 1] = ex.total();
    }

    /// Room for about `n` more train events (a hint from the file's size).
    fn reserve(&mut self, n: usize) {
        self.time.reserve(n);
        self.tokens.reserve(n);
        self.total_examples.reserve(n);
    }

    /// The count of `lang` for the last train event (read by name, on the strict path).
    fn set_examples(&mut self, lang: &str, count: f64) {
        let Some(n) = self.steps.len().checked_sub(1) else { return };
        let ex = &mut self.examples;
        let i = ex.slot(lang);
        ex.current[i] = count as f32;
        self.total_examples[n] = ex.total();
    }

    fn index_at(&self, step: u64) -> Option<usize> {
        self.steps.partition_point(|s| s <= step).checked_sub(1)
    }

    /// The x value of a step, on an axis (`lang` for the examples axis, where the step is an
    /// evaluation's; none = all languages).
    pub fn x_of(&self, step: u64, axis: XAxis, lang: Option<&str>, t0: f64) -> Option<f64> {
        if axis == XAxis::Step {
            return Some(step as f64);
        }
        if let (XAxis::Examples, Some(l)) = (axis, lang) {
            return Some(self.examples.at(l, step).map_or(0.0, f64::from)).filter(|_| self.index_at(step).is_some());
        }
        let i = self.index_at(step)?;
        Some(match axis {
            XAxis::Time => self.time(i) - t0,
            XAxis::Tokens => self.tokens[i] as f64,
            _ => self.total_examples[i] as f64,
        })
    }

    /// The first step whose x value reaches `x` (x is non-decreasing in step).
    pub fn step_at_x(&self, x: f64, axis: XAxis, lang: Option<&str>, t0: f64) -> u64 {
        let after = || self.steps.last().map_or(0, |s| s + 1);
        let i = match (axis, lang) {
            (XAxis::Step, _) => return x.max(0.0).ceil() as u64,
            (XAxis::Examples, Some(l)) => return self.examples.step_at(l, x).unwrap_or_else(after),
            (XAxis::Time, _) => self.time.partition_point(|&t| self.t_base + t as f64 - t0 < x),
            (XAxis::Tokens, _) => self.tokens.partition_point(|&a| (a as f64) < x),
            (XAxis::Examples, None) => self.total_examples.partition_point(|&a| (a as f64) < x),
        };
        self.steps.get(i).unwrap_or_else(after)
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
    pub checkpoints: Vec<u64>,
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

    /// Open a run directory: its config; no events yet (a [`Source`] reads them).
    pub fn open(dir: &Path) -> RunData {
        let run = RunDir::new(dir);
        let read = run.read_config();
        let damaged = read.as_ref().err().map(|e| crate::supervisor::status::damaged_message(&run, &format!("{e:#}")));
        let cfg = read.ok();
        let mixture = cfg.as_ref().and_then(|c| c.mixture().ok()).map(|m| m.summary()).unwrap_or_default();
        RunData {
            id: run.id(),
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
            checkpoints: Vec::new(),
            best: None,
            first_time: None,
            last_time: None,
            bad_lines: 0,
            state: State::Queued,
            message: None,
            alive: false,
            damaged,
            slurm: None,
            smooth: Series::default(),
            smooth_state: (f32::NAN, 0.0, 0.0),
            rev: next_gen(),
        }
    }

    /// The last step with a train event (or the fork step before the first one).
    pub fn step(&self) -> u64 {
        self.loss.last().map(|(s, _)| s).or(self.fork_step).unwrap_or(0)
    }

    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// Open a run directory and read its events.
    pub fn load(dir: &Path) -> RunData {
        let mut r = RunData::open(dir);
        Source::new(dir).poll(&mut r);
        r.shrink_to_fit();
        r
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

    /// Fold one decoded line in.
    pub fn apply(&mut self, d: Decoded<'_>) {
        match d {
            Decoded::Train(t) => self.apply_train(&t),
            Decoded::Eval(e) => self.apply_eval(&e),
            Decoded::Event(e) => self.apply_event(&e),
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

    pub fn apply_event(&mut self, e: &Event) {
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
            Body::Fork { .. } | Body::Warning { .. } | Body::Unknown(_) => {}
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

/// A run's events file as read so far: where the follower is, and the decoder's state.
#[derive(Debug, Clone)]
pub struct Source {
    follower: Follower,
    decoder: Decoder,
}

impl Source {
    pub fn new(dir: &Path) -> Source {
        Source { follower: Follower::new(dir.join("events.jsonl")), decoder: Decoder::fast() }
    }

    /// Bytes of whole lines read so far.
    pub fn offset(&self) -> u64 {
        self.follower.offset()
    }

    /// Decode what was appended into `sink`; true when the file was truncated or replaced
    /// (what was read before is void: read the run afresh).
    pub fn read(&mut self, sink: impl FnMut(Decoded<'_>)) -> bool {
        self.decoder.read(&mut self.follower, sink)
    }

    /// Fold what was appended into `r`; returns whether anything changed. When the file was
    /// truncated or replaced, `r` is read again from a fresh start.
    pub fn poll(&mut self, r: &mut RunData) -> bool {
        if self.follower.offset() == 0 && r.loss.is_empty() {
            // A first read of a long file: room for its train events up front (a line is
            // rarely under 200 bytes), rather than growing by doubling as they come.
            let len = std::fs::metadata(self.follower.path()).map_or(0, |m| m.len());
            if len > 1 << 20 {
                let n = (len / 200) as usize;
                r.timeline.reserve(n);
                r.loss.reserve(n);
            }
        }
        let mut changed = false;
        if self.decoder.read(&mut self.follower, |d| {
            changed = true;
            r.apply(d)
        }) {
            *r = RunData::open(&r.dir);
            self.decoder.read(&mut self.follower, |d| r.apply(d));
            changed = true;
        }
        changed
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
}

impl Store {
    /// A store of `root` with nothing read yet: what the first frame shows while the
    /// collector reads the root.
    pub fn empty(root: &Path) -> Store {
        Store { root: root.to_path_buf(), error: None, runs: Vec::new(), sweeps: BTreeMap::new(), runs_gen: next_gen() }
    }

    /// Runs as read, in the order the tree lists them: by their first event, then id.
    pub fn from_runs(root: &Path, mut runs: Vec<RunData>) -> Store {
        runs.sort_by(|a, b| {
            a.first_time.partial_cmp(&b.first_time).unwrap_or(std::cmp::Ordering::Equal).then(a.id.cmp(&b.id))
        });
        Store { root: root.to_path_buf(), error: None, runs, sweeps: BTreeMap::new(), runs_gen: next_gen() }
    }

    /// Read every run under the root, as the collector first does (tests and benchmarks).
    pub fn load(root: &Path) -> Store {
        Collector::load(root).1
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
                for e in &events {
                    r.apply_event(e);
                }
                r.bad_lines += bad;
            }
            Delta::Seen { dir, seen } => {
                let Some(i) = at(&self.runs, &dir) else { return false };
                set_seen(&mut self.runs[i], &seen);
            }
            Delta::Sweep(id, rec) => {
                self.sweeps.insert(id, rec);
            }
            Delta::System(_) => return false,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::events::follow::READ_CHUNK;
    use crate::runs::events::{EventWriter, Examples};

    use crate::runs::events::samples::mr_es_eval;

    #[test]
    fn fast_and_slow_paths_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut w = EventWriter::open(&p).unwrap();
        let mut examples = Examples::default();
        for step in 1..=5u64 {
            examples.lang.insert("en".into(), step * 3);
            examples.lang.insert("es".into(), step);
            w.write(&Event::new(
                step,
                Body::Train {
                    loss: 5.0 - step as f64,
                    lr: 1e-3,
                    tokens: step * 100,
                    tokens_per_s: 10.0,
                    examples: examples.clone(),
                    grad_norm: Some(1.0),
                },
            ))
            .unwrap();
        }
        w.write(&mr_es_eval(5, None)).unwrap();
        w.write(&Event::new(
            5,
            Body::Checkpoint { path: "checkpoints/5".into(), eval_loss: Some(1.5), best: None, warnings: 0 },
        ))
        .unwrap();
        w.write(&Event::new(5, Body::Status { state: State::Finished, message: None })).unwrap();
        let fast = RunData::load(dir.path());
        // The slow path alone, for comparison.
        let mut slow = RunData::open(dir.path());
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            slow.apply_event(&Event::parse(line).unwrap());
        }
        assert_eq!(fast.loss.steps, slow.loss.steps);
        assert_eq!(fast.loss.ys, slow.loss.ys);
        assert_eq!(fast.timeline.examples, slow.timeline.examples);
        assert_eq!(fast.timeline.tokens, slow.timeline.tokens);
        assert_eq!(fast.evals.len(), 1);
        let c = &fast.evals[&("mr".to_string(), "es".to_string())];
        assert_eq!((c.value.last(), c.group.as_str(), c.n), (Some((5, 0.25)), "seen", 8));
        // The interval, read by the fast path as by serde.
        assert_eq!(c.ci_at(5), Some((0.0625, 0.5)));
        assert_eq!(slow.evals[&("mr".to_string(), "es".to_string())].ci_at(5), Some((0.0625, 0.5)));
        assert_eq!(c.ci_at(4), None);
        assert_eq!(fast.best, Some((1.5, 5)));
        assert_eq!(fast.statuses.last().unwrap().state, State::Finished);
        // A language's examples are kept at evaluations' steps (the examples axis places them).
        assert_eq!(fast.timeline.x_of(5, XAxis::Examples, Some("en"), 0.0), Some(15.0));
        assert_eq!(fast.timeline.step_at_x(9.0, XAxis::Examples, Some("en"), 0.0), 5);
        assert_eq!(fast.timeline.x_of(3, XAxis::Examples, None, 0.0), Some(12.0));
        assert_eq!(fast.bad_lines, 0);
    }

    /// Languages come and go, names long and short, a huge loss, a line without grad_norm, a
    /// resume that rewinds: the exact-layout path, the scanner and the strict parser build the
    /// same timeline.
    #[test]
    fn train_lines_of_every_shape_fold_the_same_way() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut w = EventWriter::open(&p).unwrap();
        let langs: [&[&str]; 6] = [
            &["en", "es"],
            &["en", "es", "zh"],
            &["ar", "en"],
            &["en", "pt-BR", "zh-Hant-TW"],
            &[],
            &["en", "es", "fr", "ja", "ko", "pt", "zh"],
        ];
        let mut step = 0;
        for round in 0..3u64 {
            for (i, ls) in langs.iter().enumerate() {
                step += 1;
                let mut examples = Examples::default();
                for (j, l) in ls.iter().enumerate() {
                    examples.lang.insert(l.to_string(), step * 10 + j as u64);
                }
                let loss = if i == 2 && round == 1 { 3.4e38 } else { 1.0 / step as f64 };
                let grad_norm = (i % 2 == 0).then_some(0.5);
                let body = Body::Train { loss, lr: 1e-5, tokens: step * 64, tokens_per_s: 1e3, examples, grad_norm };
                w.write(&Event::new(step, body)).unwrap();
            }
            step -= 2; // a resume from an earlier checkpoint
        }
        let fast = RunData::load(dir.path());
        let mut slow = RunData::open(dir.path());
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            slow.apply_event(&Event::parse(line).unwrap());
        }
        assert_eq!(fast.bad_lines, 0);
        assert_eq!(fast.loss.steps, slow.loss.steps);
        // Numbers are read to plotting precision, within an ulp of serde's correctly rounded
        // value (a 17-digit timestamp may differ in its last bit).
        let close = |x: f64, y: f64| (x - y).abs() <= 2.0 * f64::EPSILON * y.abs();
        let near = |x: f32, y: f32| (x.to_bits() as i64 - y.to_bits() as i64).abs() <= 1;
        assert!(fast.loss.ys.iter().zip(&slow.loss.ys).all(|(&x, &y)| near(x, y)));
        let (a, b) = (&fast.timeline, &slow.timeline);
        assert!((0..a.len()).all(|i| close(a.time(i), b.time(i))), "{a:?} vs {b:?}");
        assert_eq!((&a.steps, &a.tokens, &a.total_examples), (&b.steps, &b.tokens, &b.total_examples));
        assert_eq!(a.examples, b.examples);
        let names: Vec<&str> = a.examples.names().collect();
        assert_eq!(names, ["ar", "en", "es", "fr", "ja", "ko", "pt", "pt-BR", "zh", "zh-Hant-TW"]);
        assert_eq!(a.steps.len(), 14);
        assert_eq!((fast.lr, fast.tokens_per_s), (Some(1e-5), Some(1e3)));
    }

    /// A line naming the languages of the line before, with counts of every shape: each is a
    /// point with the counts serde reads, or (where serde rejects it) a bad line.
    #[test]
    fn counts_after_a_line_with_the_same_languages_read_as_the_parser_reads_them() {
        let line = |step: u64, langs: &str| {
            format!(
                "{{\"v\":1,\"step\":{step},\"time\":1.5,\"kind\":\"train\",\"loss\":2.5,\"lr\":0.001,\"tokens\":64,\
                 \"tokens_per_s\":10.0,\"examples\":{{\"lang\":{{{langs}}},\"task\":{{}}}}}}\n"
            )
        };
        let shapes = [
            "7",
            "0",
            "013",
            "00",
            "1234567",
            "12345678",
            "123456789012",
            "13.0",
            "13e1",
            "-1",
            "13 ",
            " 13",
            "1}",
            "",
        ];
        let mut maps: Vec<String> =
            shapes.iter().flat_map(|en| shapes.iter().map(move |es| format!("\"en\":{en},\"es\":{es}"))).collect();
        // Separators and keys of every shape.
        for m in ["29;\"es\":13", "29 ,\"es\":13", "29,\"es\":13,", "29,\"es\":13,\"fr\":1", "29", "29,\"eS\":13"] {
            maps.push(format!("\"en\":{m}"));
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        for map in &maps {
            let text = line(1, "\"en\":29,\"es\":13") + &line(2, map) + &line(3, "\"en\":30,\"es\":14");
            std::fs::write(&p, &text).unwrap();
            let fast = RunData::load(dir.path());
            let mut slow = RunData::open(dir.path());
            let mut bad = 0;
            for l in text.lines() {
                match Event::parse(l) {
                    Ok(e) => slow.apply_event(&e),
                    Err(_) => bad += 1,
                }
            }
            let case = format!("{{{map}}}");
            assert_eq!((fast.bad_lines, &fast.loss.steps), (bad, &slow.loss.steps), "{case}");
            assert_eq!(fast.timeline.examples, slow.timeline.examples, "{case}");
            assert_eq!(fast.timeline.total_examples, slow.timeline.total_examples, "{case}");
        }
    }

    #[test]
    fn follows_appends_torn_lines_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut w = EventWriter::open(&p).unwrap();
        let ev = |s: u64, l: f64| {
            Event::new(
                s,
                Body::Train {
                    loss: l,
                    lr: 1.0,
                    tokens: s,
                    tokens_per_s: 1.0,
                    examples: Examples::default(),
                    grad_norm: None,
                },
            )
        };
        for s in 1..=10 {
            w.write(&ev(s, 1.0)).unwrap();
        }
        let mut r = RunData::open(dir.path());
        let mut src = Source::new(dir.path());
        assert!(src.poll(&mut r));
        assert_eq!(r.loss.len(), 10);
        assert!(!src.poll(&mut r), "nothing new");
        use std::io::Write;
        let line = ev(11, 2.0).to_line();
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(&line.as_bytes()[..10]).unwrap();
        src.poll(&mut r);
        assert_eq!(r.loss.len(), 10, "a torn line waits");
        // The writer died; a resumed trainer restarts from step 6.
        let mut w = EventWriter::open(&p).unwrap();
        for s in 6..=8 {
            w.write(&ev(s, 3.0)).unwrap();
        }
        assert!(src.poll(&mut r));
        assert_eq!(r.bad_lines, 1, "the torn line is skipped and counted");
        assert_eq!(r.loss.steps, (1..=8).collect::<Vec<_>>());
        assert_eq!(r.loss.at(8), Some(3.0));
        assert_eq!(r.timeline.steps.len(), 8);
    }

    /// A train line written in two parts, cut at every byte (the whole object but its newline
    /// included): nothing is applied until its newline is written, and then the line once.
    #[test]
    fn a_line_is_applied_once_its_newline_is_written() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut examples = Examples::default();
        examples.lang.insert("en".into(), 7);
        examples.lang.insert("es".into(), 3);
        let body = |loss| Body::Train {
            loss,
            lr: 1e-4,
            tokens: 64,
            tokens_per_s: 5.0,
            examples: examples.clone(),
            grad_norm: Some(0.5),
        };
        let line = Event::new(2, body(2.5)).to_line(); // ends in its newline
        for cut in 1..line.len() {
            std::fs::write(&p, Event::new(1, body(4.0)).to_line()).unwrap();
            let mut r = RunData::open(dir.path());
            let mut src = Source::new(dir.path());
            src.poll(&mut r);
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(&line.as_bytes()[..cut]).unwrap();
            src.poll(&mut r);
            assert_eq!(r.loss.steps, [1], "cut at {cut}: nothing applied yet");
            f.write_all(&line.as_bytes()[cut..]).unwrap();
            assert!(src.poll(&mut r));
            assert_eq!(
                (r.loss.steps.to_vec().as_slice(), r.loss.ys.as_slice()),
                (&[1, 2][..], &[4.0, 2.5][..]),
                "cut at {cut}"
            );
            assert_eq!(r.timeline.examples.current("es"), Some(3.0));
            assert_eq!((r.lr, r.tokens_per_s, r.bad_lines), (Some(1e-4), Some(5.0), 0));
        }
    }

    /// A line longer than the reader's buffer (a status message of megabytes) is read whole,
    /// also when it arrives in pieces, and the lines around it are points.
    #[test]
    fn a_line_longer_than_a_read_chunk_is_read_whole() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut examples = Examples::default();
        examples.lang.insert("en".into(), 1);
        let train = |s: u64| {
            let body = Body::Train {
                loss: 1.0,
                lr: 1e-3,
                tokens: s,
                tokens_per_s: 1e3,
                examples: examples.clone(),
                grad_norm: None,
            };
            Event::new(s, body).to_line()
        };
        let message = "m".repeat(READ_CHUNK as usize * 5 / 2);
        let long = Event::new(2, Body::Status { state: State::Running, message: Some(message.clone()) }).to_line();
        std::fs::write(&p, train(1) + &long + &train(3)).unwrap();
        let mut r = RunData::open(dir.path());
        let mut src = Source::new(dir.path());
        src.poll(&mut r);
        assert_eq!(r.loss.steps, [1, 3]);
        assert_eq!(r.statuses.last().and_then(|s| s.message.as_deref()), Some(message.as_str()));
        // The same line appended in three pieces, polled after each: applied once whole.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let (a, b) = long.split_at(READ_CHUNK as usize / 3);
        let (b, c) = b.split_at(READ_CHUNK as usize * 3 / 2);
        for (i, piece) in [a, b, c].into_iter().enumerate() {
            f.write_all(piece.as_bytes()).unwrap();
            src.poll(&mut r);
            assert_eq!(r.statuses.len(), if i == 2 { 2 } else { 1 }, "piece {i}");
        }
        assert_eq!(r.statuses.last().and_then(|s| s.message.as_deref()), Some(message.as_str()));
        f.write_all(train(4).as_bytes()).unwrap();
        src.poll(&mut r);
        assert_eq!((r.loss.steps.to_vec(), r.bad_lines), (vec![1, 3, 4], 0));
        assert_eq!(src.offset(), std::fs::metadata(&p).unwrap().len());
    }

    /// The learning rate and tokens/s shown are the last train line's: across the reader's
    /// chunks (the line is kept once per chunk), after lines of other kinds, and poll to poll.
    #[test]
    fn rates_are_the_last_train_lines_across_chunks_and_polls() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut w = EventWriter::open(&p).unwrap();
        let mut examples = Examples::default();
        examples.lang.insert("en".into(), 1);
        let train = |s: u64| {
            let lr = 1e-3 / s as f64;
            Event::new(
                s,
                Body::Train {
                    loss: 1.0,
                    lr,
                    tokens: s,
                    tokens_per_s: 1000.0 + s as f64,
                    examples: examples.clone(),
                    grad_norm: Some(0.5),
                },
            )
        };
        let check = |w: &mut EventWriter| {
            w.write(&Event::new(1, Body::Checkpoint { path: "c".into(), eval_loss: None, best: None, warnings: 0 }))
        };
        let steps = (READ_CHUNK as usize * 3) / train(1).to_line().len();
        for s in 1..=steps as u64 {
            w.write(&train(s)).unwrap();
        }
        check(&mut w).unwrap();
        let mut r = RunData::open(dir.path());
        let mut src = Source::new(dir.path());
        src.poll(&mut r);
        assert_eq!(r.loss.len(), steps);
        assert_eq!((r.lr, r.tokens_per_s), (Some(1e-3 / steps as f64), Some(1000.0 + steps as f64)));
        for s in steps as u64 + 1..=steps as u64 + 3 {
            w.write(&train(s)).unwrap();
        }
        src.poll(&mut r);
        let last = steps as u64 + 3;
        assert_eq!((r.lr, r.tokens_per_s), (Some(1e-3 / last as f64), Some(1000.0 + last as f64)));
        check(&mut w).unwrap();
        assert!(src.poll(&mut r));
        assert_eq!((r.lr, r.tokens_per_s), (Some(1e-3 / last as f64), Some(1000.0 + last as f64)));
    }
}

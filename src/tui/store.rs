//! Data collection for the TUI: every run directory under the root, its events folded into
//! curves, followed as they are appended. Drawing never reads files; it reads this.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::config::RunConfig;
use crate::runs::events::{Body, Event, State};
use crate::runs::RunDir;

use super::series::Series;

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

/// Per train event: what the x axes need, by step.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub steps: Vec<u64>,
    pub time: Vec<f64>,
    pub tokens: Vec<f64>,
    pub total_examples: Vec<f64>,
    /// Examples seen per language, aligned with `steps`.
    pub examples: BTreeMap<String, Vec<f64>>,
}

impl Timeline {
    fn truncate_from(&mut self, step: u64) {
        let keep = self.steps.partition_point(|&s| s < step);
        self.steps.truncate(keep);
        self.time.truncate(keep);
        self.tokens.truncate(keep);
        self.total_examples.truncate(keep);
        for v in self.examples.values_mut() {
            v.truncate(keep);
        }
    }

    fn push(&mut self, step: u64, time: f64, tokens: f64) {
        if self.steps.last().is_some_and(|&s| step <= s) {
            self.truncate_from(step);
        }
        self.steps.push(step);
        self.time.push(time);
        self.tokens.push(tokens);
        self.total_examples.push(0.0);
        let n = self.steps.len();
        for v in self.examples.values_mut() {
            let last = v.last().copied().unwrap_or(0.0);
            v.resize(n, last);
        }
    }

    fn set_examples(&mut self, lang: &str, count: f64) {
        let n = self.steps.len();
        if n == 0 {
            return;
        }
        // One lookup for a language seen before (every line but the first names it again).
        let v = match self.examples.get_mut(lang) {
            Some(v) => v,
            None => self.examples.entry(lang.to_string()).or_insert_with(|| vec![0.0; n]),
        };
        v.resize(n, 0.0);
        v[n - 1] = count;
        self.total_examples[n - 1] += count;
    }

    fn index_at(&self, step: u64) -> Option<usize> {
        let i = self.steps.partition_point(|&s| s <= step);
        i.checked_sub(1)
    }

    /// The x value of a step, on an axis (`lang` for the examples axis; none = all languages).
    pub fn x_of(&self, step: u64, axis: XAxis, lang: Option<&str>, t0: f64) -> Option<f64> {
        if axis == XAxis::Step {
            return Some(step as f64);
        }
        let i = self.index_at(step)?;
        Some(match axis {
            XAxis::Step => step as f64,
            XAxis::Time => self.time[i] - t0,
            XAxis::Tokens => self.tokens[i],
            XAxis::Examples => match lang {
                Some(l) => self.examples.get(l).map_or(0.0, |v| v[i]),
                None => self.total_examples[i],
            },
        })
    }

    /// The first step whose x value reaches `x` (x is non-decreasing in step).
    pub fn step_at_x(&self, x: f64, axis: XAxis, lang: Option<&str>, t0: f64) -> u64 {
        if axis == XAxis::Step {
            return x.max(0.0).ceil() as u64;
        }
        let col: Vec<f64>;
        let v: &[f64] = match axis {
            XAxis::Time => {
                col = self.time.iter().map(|t| t - t0).collect();
                &col
            }
            XAxis::Tokens => &self.tokens,
            XAxis::Examples => match lang {
                Some(l) => self.examples.get(l).map_or(&[][..], |v| v.as_slice()),
                None => &self.total_examples,
            },
            XAxis::Step => unreachable!(),
        };
        let i = v.partition_point(|&a| a < x);
        self.steps.get(i).copied().unwrap_or_else(|| self.steps.last().map_or(0, |s| s + 1))
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
    /// A Slurm run's latest job (id, Slurm's state, node).
    pub slurm: Option<crate::supervisor::slurm::SlurmView>,
    /// The train loss smoothed with a debiased EMA (see [`RunData::update_smooth`]).
    pub smooth: Series,
    smooth_state: (f32, f64, f64),
    reader: LineReader,
}

impl RunData {
    /// The sweep this run is a point of.
    pub fn sweep_id(&self) -> Option<&str> {
        self.cfg.as_ref().and_then(|c| c.sweep.as_ref()).map(|t| t.id.as_str())
    }

    /// Open a run directory (reads nothing yet; call [`RunData::poll`]).
    pub fn open(dir: &Path) -> RunData {
        let run = RunDir::new(dir);
        let cfg = run.read_config().ok();
        let mixture = cfg
            .as_ref()
            .and_then(|c| crate::train::trainer::mixture_of(c).ok())
            .map(|m| m.summary())
            .unwrap_or_default();
        RunData {
            id: run.id(),
            dir: dir.to_path_buf(),
            name: cfg.as_ref().and_then(|c| c.name.clone()),
            parent: cfg.as_ref().and_then(|c| c.lineage.as_ref().map(|l| l.parent.clone())),
            fork_step: cfg.as_ref().and_then(|c| c.lineage.as_ref().map(|l| l.fork_step)),
            max_steps: cfg.as_ref().map_or(0, |c| c.train.max_steps),
            device: cfg.as_ref().map_or_else(String::new, |c| {
                if c.device == "auto" {
                    "cpu".into()
                } else {
                    c.device.clone()
                }
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
            slurm: None,
            smooth: Series::default(),
            smooth_state: (f32::NAN, 0.0, 0.0),
            reader: LineReader::new(dir.join("events.jsonl")),
        }
    }

    /// The last step with a train event (or the fork step before the first one).
    pub fn step(&self) -> u64 {
        self.loss.last().map(|(s, _)| s).or(self.fork_step).unwrap_or(0)
    }

    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// Read what was appended; returns whether anything changed.
    pub fn poll(&mut self) -> bool {
        let mut changed = false;
        let mut reader = std::mem::replace(&mut self.reader, LineReader::new(PathBuf::new()));
        let reset = reader.read(|line| {
            changed = true;
            apply_line(self, line);
        });
        self.reader = reader;
        if reset {
            *self = RunData::open(&self.dir);
            let mut reader = std::mem::replace(&mut self.reader, LineReader::new(PathBuf::new()));
            reader.read(|line| apply_line(self, line));
            self.reader = reader;
            changed = true;
        }
        changed
    }

    /// Bring the smoothed loss up to date for `alpha` (incremental while the loss only grows).
    pub fn update_smooth(&mut self, alpha: f32) {
        let (a, mut acc, mut w) = self.smooth_state;
        let n = self.smooth.len();
        let valid =
            a == alpha && n <= self.loss.len() && (n == 0 || self.loss.steps[n - 1] == self.smooth.steps[n - 1]);
        let start = if valid {
            n
        } else {
            self.smooth = Series::default();
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
            self.smooth.push(self.loss.steps[i], v);
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
        let (ds, dt) = ((t.steps[n - 1] - t.steps[k]) as f64, t.time[n - 1] - t.time[k]);
        (dt > 0.0 && ds > 0.0).then(|| ds / dt)
    }

    /// Re-derive the state from the last status event and the processes' locks.
    pub fn refresh_state(&mut self) -> bool {
        let run = RunDir::new(&self.dir);
        let last = self.statuses.last().map(|s| (s.state, s.message.clone()));
        let queued_at = self.statuses.iter().rev().find(|s| s.state == State::Queued).map(|s| s.time);
        let slurm = self.cfg.as_ref().is_some_and(crate::supervisor::slurm::is_slurm);
        let (state, message, alive, view) = crate::supervisor::status::observe(&run, slurm, last, queued_at);
        let changed = state != self.state || message != self.message || alive != self.alive || view != self.slurm;
        self.state = state;
        self.message = message;
        self.alive = alive;
        self.slurm = view;
        changed
    }

    fn apply_event(&mut self, e: &Event) {
        self.note_time(e.time);
        match &e.body {
            Body::Train { loss, lr, tokens, tokens_per_s, examples, .. } => {
                self.timeline.push(e.step, e.time, *tokens as f64);
                for (l, c) in &examples.lang {
                    self.timeline.set_examples(l, *c as f64);
                }
                self.loss.push(e.step, *loss as f32);
                self.lr = Some(*lr);
                self.tokens_per_s = Some(*tokens_per_s);
            }
            Body::Eval { task, lang, group, loss, metric, value, n, lang_ok, .. } => {
                self.apply_eval(e.step, task, lang, group, *loss, metric, *value, *n, *lang_ok);
            }
            Body::Checkpoint { eval_loss, .. } => self.apply_checkpoint(e.step, *eval_loss),
            Body::Status { state, message } => {
                self.statuses.push(StatusLine { time: e.time, step: e.step, state: *state, message: message.clone() })
            }
            Body::Fork { .. } | Body::Unknown(_) => {}
        }
    }

    fn note_time(&mut self, t: f64) {
        if self.first_time.is_none() {
            self.first_time = Some(t);
        }
        self.last_time = Some(t);
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_eval(
        &mut self,
        step: u64,
        task: &str,
        lang: &str,
        group: &str,
        loss: f64,
        metric: &str,
        value: f64,
        n: u64,
        lang_ok: Option<f64>,
    ) {
        let key = (task.to_string(), lang.to_string());
        let c = self.evals.entry(key).or_default();
        c.value.push(step, value as f32);
        c.loss.push(step, loss as f32);
        if c.group != group {
            c.group = group.to_string();
        }
        if c.metric != metric {
            c.metric = metric.to_string();
        }
        c.n = n;
        c.lang_ok = lang_ok.map(|v| v as f32);
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

/// Apply one line: a fast path for the writer's own train and eval lines, serde otherwise.
fn apply_line(r: &mut RunData, line: &[u8]) {
    if fast::apply(r, line) {
        return;
    }
    match std::str::from_utf8(line).ok().map(Event::parse) {
        Some(Ok(e)) => r.apply_event(&e),
        _ => r.bad_lines += 1,
    }
}

/// Follows a file by offset, keeping an unfinished last line.
#[derive(Debug, Clone)]
struct LineReader {
    path: PathBuf,
    offset: u64,
    ino: u64,
    partial: Vec<u8>,
}

impl LineReader {
    fn new(path: PathBuf) -> LineReader {
        LineReader { path, offset: 0, ino: 0, partial: Vec::new() }
    }

    /// Feed every complete new line to `f`; returns true when the file shrank or was replaced
    /// (the caller starts over).
    fn read(&mut self, mut f: impl FnMut(&[u8])) -> bool {
        let Ok(mut file) = File::open(&self.path) else { return false };
        let Ok(meta) = file.metadata() else { return false };
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let ino = 0;
        let len = meta.len();
        let consumed = self.offset + self.partial.len() as u64;
        if len < consumed || (self.ino != 0 && ino != self.ino) {
            self.offset = 0;
            self.partial.clear();
            self.ino = ino;
            return true;
        }
        self.ino = ino;
        if len == consumed {
            return false;
        }
        if file.seek(SeekFrom::Start(consumed)).is_err() {
            return false;
        }
        let mut buf = std::mem::take(&mut self.partial);
        let start = buf.len();
        buf.reserve((len - consumed) as usize);
        if (&mut file).take(len - consumed).read_to_end(&mut buf).is_err() {
            buf.truncate(start);
            self.partial = buf;
            return false;
        }
        let mut pos = 0;
        while let Some(nl) = memchr(b'\n', &buf[pos..]) {
            let line = &buf[pos..pos + nl];
            if !line.iter().all(|b| b.is_ascii_whitespace()) {
                f(line);
            }
            pos += nl + 1;
        }
        self.offset += pos as u64;
        self.partial = buf[pos..].to_vec();
        false
    }
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    memchr::memchr(b, s)
}

/// The TUI's view of a runs root.
#[derive(Debug, Default)]
pub struct Store {
    pub root: PathBuf,
    pub runs: Vec<RunData>,
    /// The records of the sweeps the runs belong to (`<runs>/.sweeps/<id>/sweep.json`), read
    /// once each: a record is written once, when its sweep is launched.
    pub sweeps: BTreeMap<String, crate::sweep::SweepRecord>,
}

impl Store {
    /// Load every run under the root, in parallel.
    pub fn load(root: &Path) -> Store {
        use rayon::prelude::*;
        let dirs: Vec<PathBuf> = crate::runs::list(root).unwrap_or_default().into_iter().map(|r| r.path).collect();
        let jobs: Vec<String> =
            dirs.iter().filter_map(|d| crate::supervisor::slurm::current(&RunDir::new(d)).map(|c| c.job)).collect();
        if !jobs.is_empty() {
            crate::supervisor::slurm::prefetch(&jobs);
        }
        let mut runs: Vec<RunData> = dirs
            .par_iter()
            .map(|d| {
                let mut r = RunData::open(d);
                r.poll();
                r.refresh_state();
                r
            })
            .collect();
        runs.sort_by(|a, b| {
            a.first_time.partial_cmp(&b.first_time).unwrap_or(std::cmp::Ordering::Equal).then(a.id.cmp(&b.id))
        });
        let mut store = Store { root: root.to_path_buf(), runs, sweeps: BTreeMap::new() };
        store.load_sweep_records();
        store
    }

    /// Read the records of sweeps not read yet (a sweep's runs may appear before its record).
    fn load_sweep_records(&mut self) {
        for r in &self.runs {
            if let Some(id) = r.sweep_id() {
                if !self.sweeps.contains_key(id) {
                    if let Some(rec) = crate::sweep::read_record(&self.root, id) {
                        self.sweeps.insert(id.to_string(), rec);
                    }
                }
            }
        }
    }

    /// The record of a sweep, once it has been read.
    pub fn sweep_record(&self, id: &str) -> Option<&crate::sweep::SweepRecord> {
        self.sweeps.get(id)
    }

    /// Pick up new run directories; returns whether any appeared.
    pub fn rescan(&mut self) -> bool {
        let mut added = false;
        for r in crate::runs::list(&self.root).unwrap_or_default() {
            if !self.runs.iter().any(|x| x.dir == r.path) {
                let mut d = RunData::open(&r.path);
                d.poll();
                d.refresh_state();
                self.runs.push(d);
                added = true;
            }
        }
        if self.runs.iter().any(|r| r.sweep_id().is_some_and(|id| !self.sweeps.contains_key(id))) {
            let before = self.sweeps.len();
            self.load_sweep_records();
            added |= self.sweeps.len() != before;
        }
        added
    }

    /// Read new events of every run; returns whether anything changed.
    pub fn poll(&mut self) -> bool {
        let mut changed = false;
        for r in &mut self.runs {
            changed |= r.poll();
        }
        changed
    }

    /// Re-derive states (locks); returns whether any changed.
    pub fn refresh_states(&mut self) -> bool {
        self.prefetch_slurm();
        let mut changed = false;
        for r in &mut self.runs {
            changed |= r.refresh_state();
        }
        changed
    }

    /// Ask Slurm about every Slurm run's job at once (answers are cached for the runs' refresh).
    fn prefetch_slurm(&self) {
        let jobs: Vec<String> = self
            .runs
            .iter()
            .filter(|r| r.cfg.as_ref().is_some_and(crate::supervisor::slurm::is_slurm))
            .filter_map(|r| crate::supervisor::slurm::current(&RunDir::new(&r.dir)).map(|c| c.job))
            .collect();
        if !jobs.is_empty() {
            crate::supervisor::slurm::prefetch(&jobs);
        }
    }

    pub fn get(&self, id: &str) -> Option<&RunData> {
        self.runs.iter().find(|r| r.id == id)
    }

    /// Total events read (for the loader's benchmark).
    pub fn points(&self) -> usize {
        self.runs
            .iter()
            .map(|r| r.loss.len() + r.evals.values().map(|e| e.value.len()).sum::<usize>() + r.statuses.len())
            .sum()
    }
}

/// A zero-allocation scanner for the lines mixscope's own writer produces.
mod fast {
    use super::RunData;

    struct Sc<'a> {
        b: &'a [u8],
        i: usize,
    }

    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ];

    impl<'a> Sc<'a> {
        #[inline]
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }
        #[inline]
        fn ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
                self.i += 1;
            }
        }
        #[inline]
        fn eat(&mut self, c: u8) -> Option<()> {
            self.ws();
            (self.peek() == Some(c)).then(|| self.i += 1)
        }
        /// The bytes of a string without escapes or control characters.
        #[inline]
        fn raw_str(&mut self) -> Option<&'a [u8]> {
            self.eat(b'"')?;
            let start = self.i;
            let rest = &self.b[start..];
            // Escapes and raw control characters (invalid JSON) go to the strict parser.
            let end = rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            if rest[end] != b'"' {
                return None;
            }
            self.i = start + end + 1;
            Some(&rest[..end])
        }
        fn str(&mut self) -> Option<&'a str> {
            std::str::from_utf8(self.raw_str()?).ok()
        }
        /// A JSON number: integers and plain decimals exactly enough for plotting; anything
        /// unusual goes through the standard parser.
        #[inline]
        fn num(&mut self) -> Option<f64> {
            self.ws();
            let start = self.i;
            let neg = self.peek() == Some(b'-');
            if neg {
                self.i += 1;
            }
            if self.peek() == Some(b'0') && self.b.get(self.i + 1).is_some_and(|c| c.is_ascii_digit()) {
                return None; // a leading zero is not JSON
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                if self.b[self.i..].starts_with(b"null") && !neg {
                    self.i += 4;
                    return Some(f64::NAN);
                }
                return None; // JSON numbers start with a digit
            }
            let mut mant: u64 = 0;
            let mut digits = 0u32;
            let mut scale: i32 = 0;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                if digits < 19 {
                    mant = mant * 10 + (c - b'0') as u64;
                    digits += 1;
                } else {
                    scale += 1;
                }
                self.i += 1;
            }
            if self.peek() == Some(b'.') {
                self.i += 1;
                if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return None;
                }
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    if digits < 19 {
                        mant = mant * 10 + (c - b'0') as u64;
                        digits += 1;
                        scale -= 1;
                    }
                    self.i += 1;
                }
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.i += 1;
                let eneg = match self.peek() {
                    Some(b'-') => {
                        self.i += 1;
                        true
                    }
                    Some(b'+') => {
                        self.i += 1;
                        false
                    }
                    _ => false,
                };
                if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return None;
                }
                let mut e: i32 = 0;
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    e = e.saturating_mul(10).saturating_add((c - b'0') as i32);
                    self.i += 1;
                }
                scale = scale.saturating_add(if eneg { -e } else { e });
            }
            let v = if scale == 0 {
                mant as f64
            } else if scale > 0 && scale < 23 {
                mant as f64 * POW10[scale as usize]
            } else if scale < 0 && scale > -23 {
                mant as f64 / POW10[(-scale) as usize]
            } else {
                // serde_json rejects a number that overflows f64 ("number out of range"): so
                // does the scanner, leaving the line to the strict parser's report.
                let v = std::str::from_utf8(&self.b[start..self.i]).ok()?.parse::<f64>().ok()?.abs();
                if !v.is_finite() {
                    return None;
                }
                v
            };
            Some(if neg { -v } else { v })
        }
        /// `null` (consumed) or not (nothing consumed).
        fn null(&mut self) -> bool {
            self.ws();
            self.literal(b"null").is_some()
        }
        fn opt_uint(&mut self) -> Option<Option<u64>> {
            if self.null() {
                return Some(None);
            }
            self.uint().map(Some)
        }
        fn opt_num(&mut self) -> Option<Option<f64>> {
            if self.null() {
                return Some(None);
            }
            self.num().map(Some)
        }
        fn opt_str(&mut self) -> Option<Option<&'a str>> {
            if self.null() {
                return Some(None);
            }
            self.str().map(Some)
        }
        /// The `examples` object as the strict parser reads it: `lang` and `task` (each at
        /// most once) are objects of unsigned counts; other keys are ignored.
        fn examples(&mut self) -> Option<()> {
            let mut seen = (false, false);
            self.object(|sc, k| {
                let flag = match k {
                    b"lang" => &mut seen.0,
                    b"task" => &mut seen.1,
                    _ => return sc.skip(),
                };
                if std::mem::replace(flag, true) {
                    return None;
                }
                sc.object(|sc, _| sc.uint().map(|_| ()))
            })
        }
        /// An array of numbers (`scores`): no nulls inside, as serde's `Vec<f64>` reads it.
        fn num_array(&mut self) -> Option<()> {
            self.array(|sc| if sc.null() { None } else { sc.num().map(|_| ()) })
        }
        /// Iterate an array's items; `f` consumes each.
        fn array(&mut self, mut f: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
            self.eat(b'[')?;
            if self.eat(b']').is_some() {
                return Some(());
            }
            loop {
                f(self)?;
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        }
        /// A JSON integer literal for the schema's unsigned fields (`v`, `step`, `tokens`, `n`,
        /// example counts): serde rejects a fraction, an exponent, a sign or an overflow there,
        /// and so does this.
        #[inline]
        fn uint(&mut self) -> Option<u64> {
            self.ws();
            let start = self.i;
            let mut v: u64 = 0;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
                self.i += 1;
            }
            let n = self.i - start;
            if n == 0 || (n > 1 && self.b[start] == b'0') || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            Some(v)
        }
        /// Skip any value, checking that it is well-formed JSON (nesting is limited; deeper
        /// values go to the strict parser).
        fn skip(&mut self) -> Option<()> {
            self.skip_nested(0)
        }
        fn skip_nested(&mut self, depth: u32) -> Option<()> {
            if depth > 32 {
                return None;
            }
            self.ws();
            match self.peek()? {
                b'"' => self.raw_str().map(|_| ()),
                b'{' => self.object(|sc, _| sc.skip_nested(depth + 1)),
                b'[' => self.array(|sc| sc.skip_nested(depth + 1)),
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                _ => self.num().map(|_| ()),
            }
        }
        fn literal(&mut self, word: &[u8]) -> Option<()> {
            self.b[self.i..].starts_with(word).then(|| self.i += word.len())
        }
        /// Iterate an object's keys; `f` consumes each value.
        #[inline]
        fn object(&mut self, mut f: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
            self.eat(b'{')?;
            self.ws();
            if self.eat(b'}').is_some() {
                return Some(());
            }
            loop {
                let k = self.raw_str()?;
                self.eat(b':')?;
                f(self, k)?;
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        }
    }

    /// The index of a field of the strict parser's `RawEvent` (a match: one length switch and
    /// a compare, where a search of the list cost a comparison per field name).
    #[inline]
    fn known(k: &[u8]) -> Option<u32> {
        Some(match k {
            b"v" => 0,
            b"kind" => 1,
            b"step" => 2,
            b"time" => 3,
            b"loss" => 4,
            b"lr" => 5,
            b"tokens" => 6,
            b"tokens_per_s" => 7,
            b"examples" => 8,
            b"grad_norm" => 9,
            b"task" => 10,
            b"lang" => 11,
            b"group" => 12,
            b"metric" => 13,
            b"value" => 14,
            b"n" => 15,
            b"lang_ok" => 16,
            b"scores" => 17,
            b"path" => 18,
            b"eval_loss" => 19,
            b"state" => 20,
            b"message" => 21,
            b"parent" => 22,
            b"parent_step" => 23,
            b"mixture" => 24,
            _ => return None,
        })
    }

    #[derive(Default)]
    struct Fields<'a> {
        kind: Option<&'a [u8]>,
        v: bool,
        step: Option<u64>,
        time: Option<f64>,
        loss: Option<f64>,
        lr: Option<f64>,
        tokens: Option<u64>,
        tps: Option<f64>,
        task: Option<&'a str>,
        lang: Option<&'a str>,
        group: Option<&'a str>,
        metric: Option<&'a str>,
        value: Option<f64>,
        n: Option<u64>,
        lang_ok: Option<f64>,
        examples_at: Option<usize>,
    }

    /// Apply a train or eval line; false (nothing applied) for anything else or any surprise.
    pub(super) fn apply(r: &mut RunData, line: &[u8]) -> bool {
        // Invalid UTF-8 anywhere makes the line invalid JSON: the strict parser reports it.
        if std::str::from_utf8(line).is_err() {
            return false;
        }
        let mut sc = Sc { b: line, i: 0 };
        let mut f = Fields::default();
        let mut seen: u32 = 0;
        let ok = sc.object(|sc, k| {
            // Every field the strict parser knows is checked as it checks it: its type (null
            // allowed where the field is optional there) and at most once (a repeated field is
            // an error there).
            if let Some(i) = known(k) {
                if seen & (1 << i) != 0 {
                    return None;
                }
                seen |= 1 << i;
            }
            match k {
                b"kind" => f.kind = Some(sc.raw_str()?),
                b"v" => f.v = sc.opt_uint()? == Some(1),
                b"step" => f.step = sc.opt_uint()?,
                b"time" => f.time = sc.opt_num()?,
                b"loss" => f.loss = sc.opt_num()?,
                b"lr" => f.lr = sc.opt_num()?,
                b"tokens" => f.tokens = sc.opt_uint()?,
                b"tokens_per_s" => f.tps = sc.opt_num()?,
                b"task" => f.task = sc.opt_str()?,
                b"lang" => f.lang = sc.opt_str()?,
                b"group" => f.group = sc.opt_str()?,
                b"metric" => f.metric = sc.opt_str()?,
                b"value" => f.value = sc.opt_num()?,
                b"n" => f.n = sc.opt_uint()?,
                b"lang_ok" => f.lang_ok = sc.opt_num()?,
                b"grad_norm" | b"eval_loss" => {
                    sc.opt_num()?;
                }
                b"scores" => {
                    if !sc.null() {
                        sc.num_array()?;
                    }
                }
                b"parent_step" => {
                    sc.opt_uint()?;
                }
                b"path" | b"state" | b"message" | b"parent" | b"mixture" => {
                    sc.opt_str()?;
                }
                b"examples" => {
                    if !sc.null() {
                        f.examples_at = Some(sc.i);
                        sc.examples()?;
                    }
                }
                _ => sc.skip()?,
            }
            Some(())
        });
        // Anything after the object (but whitespace) is not JSON: the strict parser decides.
        sc.ws();
        if ok.is_none() || !f.v || sc.i != sc.b.len() {
            return false;
        }
        let (Some(step), Some(time)) = (f.step, f.time) else { return false };
        match f.kind {
            Some(b"train") => {
                let (Some(loss), Some(lr), Some(tokens), Some(tps)) = (f.loss, f.lr, f.tokens, f.tps) else {
                    return false;
                };
                r.note_time(time);
                r.timeline.push(step, time, tokens as f64);
                if let Some(at) = f.examples_at {
                    let mut ex = Sc { b: line, i: at };
                    let _ = ex.object(|sc, k| {
                        if k == b"lang" {
                            sc.object(|sc, l| {
                                let c = sc.uint()? as f64;
                                r.timeline.set_examples(std::str::from_utf8(l).ok()?, c);
                                Some(())
                            })
                        } else {
                            sc.skip()
                        }
                    });
                }
                r.loss.push(step, loss as f32);
                r.lr = Some(lr);
                r.tokens_per_s = Some(tps);
                true
            }
            Some(b"eval") => {
                let (Some(task), Some(lang), Some(group), Some(metric)) = (f.task, f.lang, f.group, f.metric) else {
                    return false;
                };
                r.note_time(time);
                r.apply_eval(
                    step,
                    task,
                    lang,
                    group,
                    f.loss.unwrap_or(f64::NAN),
                    metric,
                    f.value.unwrap_or(f64::NAN),
                    f.n.unwrap_or(0),
                    f.lang_ok,
                );
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::events::{EventWriter, Examples};

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
        w.write(&Event::new(
            5,
            Body::Eval {
                task: "mr".into(),
                lang: "es".into(),
                group: "seen".into(),
                loss: 1.5,
                metric: "accuracy".into(),
                value: 0.25,
                n: 8,
                lang_ok: Some(1.0),
                scores: None,
            },
        ))
        .unwrap();
        w.write(&Event::new(5, Body::Checkpoint { path: "checkpoints/5".into(), eval_loss: Some(1.5) })).unwrap();
        w.write(&Event::new(5, Body::Status { state: State::Finished, message: None })).unwrap();
        let mut fast = RunData::open(dir.path());
        fast.poll();
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
        assert_eq!(fast.best, Some((1.5, 5)));
        assert_eq!(fast.statuses.last().unwrap().state, State::Finished);
        assert_eq!(fast.timeline.x_of(3, XAxis::Examples, Some("en"), 0.0), Some(9.0));
        assert_eq!(fast.timeline.step_at_x(9.0, XAxis::Examples, Some("en"), 0.0), 3);
        assert_eq!(fast.bad_lines, 0);
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
        assert!(r.poll());
        assert_eq!(r.loss.len(), 10);
        assert!(!r.poll(), "nothing new");
        use std::io::Write;
        let line = ev(11, 2.0).to_line();
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(&line.as_bytes()[..10]).unwrap();
        r.poll();
        assert_eq!(r.loss.len(), 10, "a torn line waits");
        // The writer died; a resumed trainer restarts from step 6.
        let mut w = EventWriter::open(&p).unwrap();
        for s in 6..=8 {
            w.write(&ev(s, 3.0)).unwrap();
        }
        assert!(r.poll());
        assert_eq!(r.bad_lines, 1, "the torn line is skipped and counted");
        assert_eq!(r.loss.steps, (1..=8).collect::<Vec<_>>());
        assert_eq!(r.loss.at(8), Some(3.0));
        assert_eq!(r.timeline.steps.len(), 8);
    }
}

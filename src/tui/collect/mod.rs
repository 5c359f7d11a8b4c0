//! The collector: everything the TUI reads from disk and from the system, off the UI thread
//! (as bottom's harvester does). It follows every run's `events.jsonl`, scans the runs root for
//! new runs and sweep records, observes run states (locks, processes, Slurm) and samples
//! `/proc`, and sends what changed as [`Delta`]s; the event loop folds them into the
//! [`Store`] and draws. The first frame is drawn before the root has been read.
//!
//! [`Collector`] does the work in plain calls (tests and `bench tui` drive it directly);
//! [`spawn`] runs it in a thread, woken by file events (paced: see [`DataPacer`]), by the event
//! loop, and by its own clock.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::runs::events::{Body, State};
use crate::runs::RunDir;
use crate::supervisor::slurm;

pub mod answers;
pub mod pace;
pub mod source;
pub mod system;

pub use super::store::{Delta, Point, Seen};
use super::store::{RunData, Store};
use pace::DataPacer;
use source::{checkpoints_on_disk, notes_stamp, read_notes, Source};
use system::SystemStats;

/// One run followed: its source, and what its state is derived from.
struct Watched {
    dir: PathBuf,
    source: Source,
    slurm: bool,
    /// The sweep the run is a point of.
    sweep: Option<String>,
    /// The last status event's state and message, and the time of the last `queued` one.
    last: Option<(State, Option<String>)>,
    queued_at: Option<f64>,
    seen: Option<Seen>,
    /// A status event arrived since the state was last observed.
    fresh_status: bool,
    /// The notes file as last read ([`notes_stamp`]).
    notes: Option<(u64, u64, i128)>,
}

impl Watched {
    /// Read a run directory whole.
    fn read(dir: &Path) -> (Watched, RunData) {
        // Stamped before it is read: a change in between is read again at the next look.
        let notes = notes_stamp(dir);
        let mut r = RunData::open(dir);
        let mut source = Source::new(dir);
        source.poll(&mut r);
        r.shrink_to_fit();
        r.on_disk = Some(checkpoints_on_disk(dir));
        let mut w = Watched {
            dir: dir.to_path_buf(),
            source,
            slurm: r.cfg.as_ref().is_some_and(slurm::is_slurm),
            sweep: r.sweep_id().map(str::to_string),
            last: None,
            queued_at: None,
            seen: None,
            fresh_status: false,
            notes,
        };
        for s in &r.statuses {
            w.note_status(s.state, &s.message, s.time);
        }
        let seen = w.observe();
        r.set_seen(&seen);
        w.seen = Some(seen);
        (w, r)
    }

    fn note_status(&mut self, state: State, message: &Option<String>, time: f64) {
        self.last = Some((state, message.clone()));
        self.fresh_status = true;
        if state == State::Queued {
            self.queued_at = Some(time);
        }
    }

    fn observe(&self) -> Seen {
        observe(&self.dir, self.slurm, self.last.clone(), self.queued_at)
    }

    /// A run nothing but a new status event can change: no process holds it, its last status
    /// is an end (finished, stopped, failed) or a pause that released its trainer, and Slurm
    /// does not run it. Its file is read when the watcher names it (or on the slow fallback
    /// poll), and its state is not looked at again until a status event arrives.
    fn quiet(&self) -> bool {
        let ended = matches!(
            self.last.as_ref().map(|l| l.0),
            Some(State::Finished | State::Stopped | State::Failed | State::Paused)
        );
        ended && !self.slurm && self.seen.as_ref().is_some_and(|s| !s.alive)
    }

    fn slurm_job(&self) -> Option<String> {
        self.slurm.then(|| slurm::current(&RunDir::new(&self.dir)).map(|c| c.job)).flatten()
    }
}

fn observe(dir: &Path, slurm: bool, last: Option<(State, Option<String>)>, queued_at: Option<f64>) -> Seen {
    crate::supervisor::status::observe(&RunDir::new(dir), slurm, last, queued_at)
}

/// A run's record: its config, and from the ends of its events file its first time, its last
/// step and loss, and its state (exact: the last status event, the locks, Slurm).
fn record(dir: &Path) -> RunData {
    let mut r = RunData::open(dir);
    let is_slurm = r.cfg.as_ref().is_some_and(slurm::is_slurm);
    let ends = crate::runs::events::ends::read_ends(&dir.join("events.jsonl"), is_slurm);
    for e in ends.first.iter().chain(&ends.last_train).chain(&ends.last_status) {
        r.apply(crate::runs::events::decode::Decoded::Event(e.clone()));
    }
    let last = ends.last_status.and_then(|e| match e.body {
        Body::Status { state, message } => Some((state, message)),
        _ => None,
    });
    r.set_seen(&observe(dir, is_slurm, last, ends.queued_at));
    r
}

/// Follows a runs root; each call appends what changed to `out`.
pub struct Collector {
    root: PathBuf,
    runs: Vec<Watched>,
    /// Run directories the watcher named since the last poll (read then, quiet or not), and
    /// whether it named something else under the root (a new run, a sweep record).
    dirty: std::collections::HashSet<PathBuf>,
    elsewhere: bool,
    /// Sweeps whose record has been read.
    sweeps: BTreeSet<String>,
    system: SystemStats,
}

/// The run directories under `root`, their Slurm jobs asked about at once (the answers are
/// cached for `observe`); or why the root cannot be read.
fn run_dirs(root: &Path) -> (Vec<PathBuf>, Option<String>) {
    let (dirs, error) = match crate::runs::list(root) {
        Ok(l) => (l.into_iter().map(|r| r.path).collect::<Vec<PathBuf>>(), None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    let jobs: Vec<String> = dirs.iter().filter_map(|d| slurm::current(&RunDir::new(d)).map(|c| c.job)).collect();
    if !jobs.is_empty() {
        slurm::prefetch(&jobs);
    }
    (dirs, error)
}

impl Store {
    /// Read every run under the root, as the collector first does (tests and benchmarks).
    pub fn load(root: &Path) -> Store {
        Collector::load(root).1
    }
}

impl Collector {
    /// Read every run under the root, in parallel: the collector that follows them, and the
    /// store as read.
    pub fn load(root: &Path) -> (Collector, Store) {
        use rayon::prelude::*;
        let (dirs, error) = run_dirs(root);
        let (runs, data): (Vec<Watched>, Vec<RunData>) = dirs.par_iter().map(|d| Watched::read(d)).unzip();
        let mut store = Store::from_runs(root, data);
        store.error = error;
        let mut c = Collector {
            root: root.to_path_buf(),
            runs,
            dirty: Default::default(),
            elsewhere: false,
            sweeps: BTreeSet::new(),
            system: SystemStats::default(),
        };
        let mut out = Vec::new();
        c.read_sweep_records(store.runs.iter().filter_map(RunData::sweep_id).map(str::to_string).collect(), &mut out);
        for d in out {
            store.apply(d);
        }
        (c, store)
    }

    /// Every run's record under the root (in parallel), without its curves: the tree,
    /// complete and with exact states, at the cost of a few reads per run.
    pub fn records(root: &Path) -> Store {
        use rayon::prelude::*;
        let (dirs, error) = run_dirs(root);
        let mut store = Store::from_runs(root, dirs.par_iter().map(|d| record(d)).collect());
        store.error = error;
        store
    }

    /// Note what the watcher says changed: a path under the root.
    pub fn touched(&mut self, path: &Path) {
        let Ok(rel) = path.strip_prefix(&self.root) else { return };
        match rel.components().next() {
            Some(std::path::Component::Normal(first)) => {
                let dir = self.root.join(first);
                // Compared as bytes (the runs' directories are the root joined with a name).
                if self.runs.iter().any(|w| w.dir.as_os_str() == dir.as_os_str()) {
                    self.dirty.insert(dir);
                } else {
                    self.elsewhere = true;
                }
            }
            _ => self.elsewhere = true,
        }
    }

    /// Events appended since the last poll, to every run (`all`), or to the runs the watcher
    /// named and those that are not quiet; returns whether a status event was among them (a
    /// state may have changed).
    pub fn poll(&mut self, all: bool, out: &mut Vec<Delta>) -> bool {
        let mut statuses = false;
        // The runs the watcher named, by place (a few lookups, not one per run).
        let mut named = vec![false; self.runs.len()];
        for d in std::mem::take(&mut self.dirty) {
            if let Some(i) = self.runs.iter().position(|w| w.dir.as_os_str() == d.as_os_str()) {
                named[i] = true;
            }
        }
        for (w, named) in self.runs.iter_mut().zip(named) {
            if !all && !named && w.quiet() {
                continue;
            }
            let Some((events, bad)) = w.source.appended() else {
                let (fresh, r) = Watched::read(&w.dir);
                *w = fresh;
                out.push(Delta::Replaced(r));
                continue;
            };
            let mut checkpoint = false;
            for e in &events {
                if let Some((state, message, time)) = e.status() {
                    w.note_status(state, message, time);
                    statuses = true;
                }
                checkpoint |= e.is_checkpoint();
            }
            if !events.is_empty() || bad > 0 {
                out.push(Delta::Events { dir: w.dir.clone(), events, bad });
            }
            if checkpoint {
                out.push(Delta::Checkpoints { dir: w.dir.clone(), on_disk: checkpoints_on_disk(&w.dir) });
            }
            // A note or tag written (by the TUI's request or from a shell): the watcher names
            // the run; without file events, the look at everything finds it.
            if named || all {
                let stamp = notes_stamp(&w.dir);
                if stamp != w.notes {
                    w.notes = stamp;
                    out.push(Delta::Notes { dir: w.dir.clone(), notes: read_notes(&w.dir) });
                }
            }
        }
        statuses
    }

    /// Run directories that appeared, and sweep records written since.
    pub fn rescan(&mut self, out: &mut Vec<Delta>) {
        let known: std::collections::HashSet<&Path> = self.runs.iter().map(|w| w.dir.as_path()).collect();
        let new: Vec<RunDir> = crate::runs::list(&self.root)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| !known.contains(r.path.as_path()))
            .collect();
        for r in new {
            let (w, data) = Watched::read(&r.path);
            self.runs.push(w);
            out.push(Delta::Added(data));
        }
        // A sweep's runs may appear before its record: look again for those not read yet.
        let sweeps = self.runs.iter().filter_map(|w| w.sweep.clone()).filter(|id| !self.sweeps.contains(id)).collect();
        self.read_sweep_records(sweeps, out);
    }

    fn read_sweep_records(&mut self, ids: Vec<String>, out: &mut Vec<Delta>) {
        for id in ids {
            if self.sweeps.contains(&id) {
                continue;
            }
            if let Some(rec) = crate::sweep::read_record(&self.root, &id) {
                self.sweeps.insert(id.clone());
                out.push(Delta::Sweep(id, rec));
            }
        }
    }

    /// Every run's state, observed afresh: those that changed. A quiet run's state changes
    /// only with a status event (a process that starts it writes one), so it is observed only
    /// after one arrives.
    pub fn refresh_states(&mut self, out: &mut Vec<Delta>) {
        // Slurm is asked about every Slurm run's job at once (in a background thread; the
        // answers are cached for `observe`).
        let jobs: Vec<String> = self.runs.iter().filter_map(Watched::slurm_job).collect();
        slurm::want(&jobs);
        for w in &mut self.runs {
            if w.quiet() && !w.fresh_status {
                continue;
            }
            w.fresh_status = false;
            let seen = w.observe();
            if w.seen.as_ref() != Some(&seen) {
                w.seen = Some(seen.clone());
                out.push(Delta::Seen { dir: w.dir.clone(), seen });
            }
        }
    }

    /// A sample of the system.
    pub fn sample_system(&mut self, out: &mut Vec<Delta>) {
        self.system.sample();
        out.push(Delta::System(self.system.clone()));
    }

    /// New events, and then (when `slow`) new runs, states and the system. `all` (the
    /// fallback for file events the watcher missed) reads and observes quiet runs too and
    /// looks for new runs whatever the watcher said.
    pub fn collect(&mut self, slow: bool, all: bool) -> Vec<Delta> {
        let mut out = Vec::new();
        let statuses = self.poll(all, &mut out);
        if all || (slow && std::mem::take(&mut self.elsewhere)) {
            self.rescan(&mut out);
        }
        // A status event may change a state at once (paused, finished); locks and Slurm are
        // looked at once a second.
        if slow || statuses {
            self.refresh_states(&mut out);
        }
        out
    }
}

/// What wakes the collector's thread besides its clock.
#[derive(Debug, Clone, PartialEq)]
pub enum Wake {
    /// A file under the root changed (from the watcher): read, paced.
    Files(PathBuf),
    /// Look at everything now (after a request to the supervisor, or when the watcher
    /// dropped events).
    Now,
    /// The watcher failed: look at everything, and keep looking at the fallback's pace.
    Unwatched,
    /// Read the root again from scratch.
    Reload,
    /// Read the stored answers the samples view shows (sent back as `Delta::Answers`).
    Answers(answers::Query),
}

/// How often live runs are polled without file events (a fallback: events can be missed),
/// every `POLL`, or every `POLL_WATCHED` once the watcher has shown that it reports this
/// root's changes (a root on a network file system may never: its writers are other
/// machines); how often states and the system are looked at; and how often every run, quiet
/// ones included, and the root's listing are read: every `ALL`, or `ALL_WATCHED` once watched.
const POLL: Duration = Duration::from_millis(250);
const POLL_WATCHED: Duration = Duration::from_secs(1);
const SLOW: Duration = Duration::from_secs(1);
const ALL: Duration = Duration::from_secs(4);
const ALL_WATCHED: Duration = Duration::from_secs(15);

/// Run a collector on `root` in a thread: it reads the root (sending [`Delta::Loaded`]), then
/// watches it, sending each batch of deltas to `tx`. It stops when `tx`'s receiver is gone.
/// Returns the sender that wakes it.
pub fn spawn(root: PathBuf, tx: tokio::sync::mpsc::UnboundedSender<Vec<Delta>>) -> std::io::Result<mpsc::Sender<Wake>> {
    let (wake, rx) = mpsc::channel();
    let files = wake.clone();
    std::thread::Builder::new().name("mixscope-collect".into()).spawn(move || {
        // File events under the root, recursively (new runs, appended events).
        let _ = crate::util::create_private_dir(&root);
        let _watcher = {
            use notify::Watcher;
            let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                match res {
                    // The kernel dropped events (its queue overflowed): look at everything.
                    Ok(ev) if ev.need_rescan() => {
                        let _ = files.send(Wake::Now);
                    }
                    Ok(ev) if !matches!(ev.kind, notify::EventKind::Access(_)) => {
                        for p in ev.paths {
                            let _ = files.send(Wake::Files(p));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        let _ = files.send(Wake::Unwatched);
                    }
                }
            })
            .ok();
            if let Some(w) = w.as_mut() {
                let _ = w.watch(&root, notify::RecursiveMode::Recursive);
            }
            w
        };
        // The tree first (a few reads per run), then the curves (every file read whole).
        if tx.send(vec![Delta::Records(Collector::records(&root))]).is_err() {
            return;
        }
        let (mut c, store) = Collector::load(&root);
        let mut first = vec![Delta::Loaded(store)];
        c.sample_system(&mut first);
        if tx.send(first).is_err() {
            return;
        }
        let mut pacer = DataPacer::default();
        let (mut read_at, mut next_poll, mut next_slow) = (None::<Instant>, Instant::now() + POLL, Instant::now());
        let mut next_all = Instant::now() + ALL;
        // Whether the watcher reports this root's changes: it has named a file, and not failed.
        let mut watched = false;
        loop {
            let now = Instant::now();
            let due = read_at.unwrap_or(next_poll).min(next_poll).min(next_slow);
            let (mut poll, mut slow, mut all) = (false, false, false);
            match rx.recv_timeout(due.saturating_duration_since(now)) {
                Ok(Wake::Files(path)) => {
                    watched = true;
                    c.touched(&path);
                    read_at.get_or_insert_with(|| pacer.due(now));
                }
                Ok(Wake::Now) => (poll, slow, all) = (true, true, true),
                Ok(Wake::Unwatched) => (watched, all) = (false, true),
                Ok(Wake::Reload) => {
                    let (fresh, store) = Collector::load(&root);
                    c = fresh;
                    if tx.send(vec![Delta::Loaded(store)]).is_err() {
                        return;
                    }
                }
                Ok(Wake::Answers(q)) => {
                    if tx.send(vec![Delta::Answers(Box::new(answers::read(&q)))]).is_err() {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if read_at.is_some_and(|t| t <= now) || next_poll <= now {
                (read_at, next_poll, poll) = (None, now + if watched { POLL_WATCHED } else { POLL }, true);
            }
            if next_slow <= now {
                (next_slow, slow) = (now + SLOW, true);
            }
            if next_all <= now || all {
                (next_all, all, poll) = (now + if watched { ALL_WATCHED } else { ALL }, true, true);
            }
            if !(poll || slow) {
                continue;
            }
            let mut out = c.collect(slow, all);
            if slow {
                c.sample_system(&mut out);
            }
            if !out.is_empty() {
                pacer.drawn(Instant::now());
                if tx.send(out).is_err() {
                    return;
                }
            }
        }
    })?;
    Ok(wake)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::events::{Event, EventWriter};
    use crate::tui::fixtures::{self, Spec};

    fn spec(id: &'static str, end: Option<(State, Option<&'static str>)>) -> Spec<'static> {
        Spec {
            id,
            name: id,
            parent: None,
            mixture: "en=0.6,es=0.4",
            tasks: &["mr"],
            heldout: &["pt"],
            from: 0,
            to: 40,
            max_steps: 100,
            eval_every: 20,
            start_time: fixtures::T0,
            seconds_per_step: 1.0,
            end,
            salt: 1,
        }
    }

    fn train(step: u64) -> Event {
        let body = Body::Train {
            loss: 0.5,
            lr: 1e-3,
            tokens: step,
            tokens_per_s: 1.0,
            examples: Default::default(),
            grad_norm: None,
        };
        Event::new(step, body)
    }

    /// What the event loop sees of a root as it changes: the root as read, events appended,
    /// a run that appears, a state that changes, a file replaced; nothing when nothing changed.
    #[test]
    fn the_collector_sends_what_changed_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fixtures::write_run(root, &spec("a", Some((State::Paused, None)))).unwrap();
        let (mut c, mut store) = Collector::load(root);
        assert_eq!(store.runs.len(), 1);
        let a = store.runs[0].dir.clone();
        assert_eq!((store.runs[0].step(), store.runs[0].state), (40, State::Paused));
        assert!(c.collect(true, true).is_empty(), "nothing changed");

        // Appended events: folded as the store's own read folds them.
        let mut w = EventWriter::open(&a.join("events.jsonl")).unwrap();
        for s in 41..=45 {
            w.write(&train(s)).unwrap();
        }
        w.write(&Event::new(45, Body::Status { state: State::Finished, message: None })).unwrap();
        // A paused run is quiet: read when the watcher names its file, not on every poll.
        assert!(c.collect(false, false).is_empty(), "a quiet run the watcher did not name");
        c.touched(&a.join("events.jsonl"));
        let deltas = c.collect(false, false);
        assert!(matches!(&deltas[0], Delta::Events { events, bad: 0, .. } if events.len() == 6), "{deltas:?}");
        assert!(
            deltas.iter().any(|d| matches!(d, Delta::Seen { seen, .. } if seen.state == State::Finished)),
            "the status event's state at once: {deltas:?}"
        );
        for d in deltas {
            assert!(store.apply(d));
        }
        assert_eq!((store.runs[0].step(), store.runs[0].state), (45, State::Finished));
        assert_eq!(store.runs[0].loss.len(), RunData::load(&a).loss.len());

        // A quiet run is still read on the fallback poll of everything.
        w.write(&train(46)).unwrap();
        assert!(c.collect(true, false).is_empty());
        let deltas = c.collect(false, true);
        assert!(matches!(&deltas[..], [Delta::Events { events, .. }] if events.len() == 1), "{deltas:?}");
        for d in deltas {
            store.apply(d);
        }

        // A new run (the watcher names a directory the collector does not follow), and then
        // its file replaced by a shorter one.
        fixtures::write_run(root, &spec("b", None)).unwrap();
        c.touched(&root.join("b").join("run.toml"));
        let deltas = c.collect(true, false);
        assert!(matches!(&deltas[..], [Delta::Added(r), ..] if r.id == "b"), "{deltas:?}");
        for d in deltas {
            store.apply(d);
        }
        assert_eq!(store.runs.len(), 2);
        let b = root.join("b").join("events.jsonl");
        std::fs::remove_file(&b).unwrap();
        std::fs::write(&b, train(1).to_line()).unwrap();
        let deltas = c.collect(false, false);
        assert!(matches!(&deltas[..], [Delta::Replaced(r)] if r.loss.len() == 1), "{deltas:?}");
        for d in deltas {
            store.apply(d);
        }
        assert_eq!(store.get("b").unwrap().loss.steps, [1]);
    }

    /// The thread: the root as read first, then appended events, woken by the file watcher
    /// (or its polling), and it stops when the event loop is gone.
    #[test]
    fn the_collector_thread_reads_the_root_then_follows_it() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        fixtures::write_run(&root, &spec("a", None)).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let wake = spawn(root.clone(), tx).unwrap();
        let records = rx.blocking_recv().unwrap();
        assert!(matches!(&records[..], [Delta::Records(s)] if s.runs.len() == 1 && s.runs[0].step() == 40));
        let first = rx.blocking_recv().unwrap();
        assert!(matches!(&first[0], Delta::Loaded(s) if s.runs.len() == 1));
        assert!(first.iter().any(|d| matches!(d, Delta::System(_))));
        EventWriter::open(&root.join("a").join("events.jsonl")).unwrap().write(&train(41)).unwrap();
        let got = loop {
            let batch = rx.blocking_recv().unwrap();
            if let Some(Delta::Events { events, .. }) = batch.into_iter().find(|d| matches!(d, Delta::Events { .. })) {
                break events;
            }
        };
        assert_eq!(got.iter().map(Point::step).collect::<Vec<_>>(), [41]);
        drop(rx);
        // The thread notices the closed channel at its next send; a wake makes one happen.
        let _ = wake.send(Wake::Now);
    }
}

//! The events readers on arbitrary bytes: the strict line parser (`Event::parse`), the
//! supervisor's file reader (`read_all`) and the fast decoder as the TUI folds it (`RunData::load`).
//! None may panic, and the scanner never draws a point the strict parser rejected (the
//! properties of tests/it/fuzz.rs: `event_readers_survive_*` and the single-line regression).

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mixscope::runs::events::{read_all, Body, Event};
use mixscope::tui::store::RunData;

/// Single lines checked on their own per input (each costs a file write and a poll).
const LINES_ALONE: usize = 8;

/// One run directory for the whole process: each input overwrites its `events.jsonl`. In
/// memory (/dev/shm) where there is one: rewriting a file on a disk can wait for the disk (ext4
/// flushes a truncated file on close), which made the runs several times slower.
fn run_dir() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, dir) = DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let t = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
        let t = t.expect("a temporary directory");
        let dir = t.path().join("r");
        std::fs::create_dir_all(&dir).expect("the run directory");
        (t, dir)
    });
    dir
}

fn write_events(bytes: &[u8]) -> PathBuf {
    let path = run_dir().join("events.jsonl");
    std::fs::write(&path, bytes).expect("writing events.jsonl");
    path
}

/// Points the TUI drew: train losses and eval values.
fn points(r: &RunData) -> (usize, usize) {
    (r.loss.len(), r.evals.values().map(|e| e.value.len()).sum())
}

fn counts(events: &[Event]) -> (usize, usize) {
    let trains = events.iter().filter(|e| matches!(e.body, Body::Train { .. })).count();
    let evals = events.iter().filter(|e| matches!(e.body, Body::Eval { .. })).count();
    (trains, evals)
}

fuzz_target!(|bytes: &[u8]| {
    // The strict parser, line by line.
    for line in bytes.split(|&b| b == b'\n') {
        if let Ok(s) = std::str::from_utf8(line) {
            let _ = Event::parse(s);
        }
    }

    // The whole file: the supervisor's reader, then the TUI's.
    let path = write_events(bytes);
    let (events, bad, torn) = read_all(&path).expect("read_all on an existing file");
    let lines = bytes.split(|&b| b == b'\n').filter(|l| !l.iter().all(|b| b.is_ascii_whitespace())).count();
    assert!(events.len() + bad.len() <= lines, "{} events + {} bad lines > {lines} lines", events.len(), bad.len());
    assert_eq!(torn, bytes.last().is_some_and(|&b| b != b'\n'), "torn");
    let r = RunData::load(run_dir());
    let (trains, evals) = counts(&events);
    let (loss, values) = points(&r);
    assert!(loss <= trains, "{loss} points from {trains} train events");
    assert!(values <= evals, "{values} eval points from {evals} eval events");

    // Each complete line alone: the scanner draws exactly what the strict parser accepts.
    let mut complete: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    complete.pop(); // the torn (or empty) rest after the last newline
    for line in complete.into_iter().filter(|l| !l.iter().all(|b| b.is_ascii_whitespace())).take(LINES_ALONE) {
        let mut one = line.to_vec();
        one.push(b'\n');
        let path = write_events(&one);
        let (events, _, _) = read_all(&path).expect("read_all on an existing file");
        let r = RunData::load(run_dir());
        let shown = String::from_utf8_lossy(line);
        assert_eq!(points(&r), counts(&events), "points drawn vs strict events for {shown:?}");
        if let (Some(e), Some(&s)) = (events.first(), r.loss.steps.first()) {
            assert_eq!(s, e.step, "step drawn vs strict step for {shown:?}");
        }
    }
});

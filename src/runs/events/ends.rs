//! The ends of an events file, read without reading it whole: its first event, its last event,
//! its last train, status and checkpoint events. What a run's summary needs (start time, step,
//! loss, state, best selection loss) at the cost of a few reads, where a long run's whole file
//! is a gigabyte.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{Best, Body, Event, State};

/// What [`read`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ends {
    pub first: Option<Event>,
    /// The last line that parses, whatever its kind.
    pub last: Option<Event>,
    pub last_train: Option<Event>,
    pub last_status: Option<Event>,
    /// The time of the last `queued` status event (when asked for).
    pub queued_at: Option<f64>,
    /// The run's step: the last train event's, or a later event's when higher (a checkpoint's
    /// or a status's at the step trained last; a fork's, before any training).
    pub step: u64,
    /// The best selection loss among the run's checkpoint events (when asked for): from the last
    /// checkpoint event, which carries it; runs written before checkpoint events did are read
    /// back through every checkpoint event.
    pub best: Best,
    /// The run's `warning` events (when the best is asked for): those after its last checkpoint
    /// event and the count that event carries; the last one when it lies in what was read.
    pub warnings: u64,
    pub last_warning: Option<Event>,
    /// Bytes read, and lines read that did not parse (a torn last line is not one).
    pub bytes: u64,
    pub bad: usize,
}

/// What to look for besides the first, last, last train and last status events.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want {
    /// The last `queued` status, however far back (Slurm's record of which queue request a job
    /// answers); without it, `queued_at` is the last status's time when that is `queued`.
    pub queued: bool,
    /// The best selection loss.
    pub best: bool,
}

/// Bytes read per step backwards.
const CHUNK: usize = 64 << 10;

/// [`read`] for the first, last train and last status events (and, with `want_queued`, the last
/// `queued` status).
pub fn read_ends(path: &Path, want_queued: bool) -> Ends {
    read(path, Want { queued: want_queued, best: false })
}

/// Read the first line, then whole lines backwards from the end until what is wanted is found,
/// or the start is reached. Lines are only parsed (strictly) when they may be of a kind looked
/// for; a torn last line and lines that do not parse are passed over, as every reader does.
pub fn read(path: &Path, want: Want) -> Ends {
    let mut ends = Ends::default();
    let Ok(mut f) = File::open(path) else { return ends };
    let Ok(len) = f.metadata().map(|m| m.len()) else { return ends };
    let mut bad = 0usize;
    let mut parse = |line: &[u8]| {
        let e = std::str::from_utf8(line).ok().and_then(|s| Event::parse(s).ok());
        bad += usize::from(e.is_none() && !line.iter().all(u8::is_ascii_whitespace));
        e
    };
    // The first line.
    let mut head = vec![0u8; CHUNK.min(len as usize)];
    if f.read_exact(&mut head).is_ok() {
        ends.bytes += head.len() as u64;
        if let Some(n) = memchr::memchr(b'\n', &head) {
            ends.first = parse(&head[..n]);
        }
    }
    // The best: found once a checkpoint event that carries it is read; until then (older runs)
    // the selection losses of the checkpoint events read since.
    let mut best = Best::default();
    let mut best_found = false;
    // The step: the highest of the events after the last train event, and its.
    let mut step_after = 0u64;
    // Whole lines backwards. `carry` is the first line of the chunk after (its start lay
    // before it), with its newline; what follows a file's last newline is not a line yet.
    let mut end = len;
    let mut carry: Vec<u8> = Vec::new();
    let done = |e: &Ends, best_found: bool| {
        e.last.is_some()
            && e.last_train.is_some()
            && e.last_status.is_some()
            && (!want.queued || e.queued_at.is_some() || e.last_status.as_ref().is_some_and(is_queued))
            && (!want.best || best_found)
    };
    let mut look = |line: &[u8], ends: &mut Ends, best: &mut Best, best_found: &mut bool| {
        let has = |word: &[u8]| memchr::memmem::find(line, word).is_some();
        let need = ends.last.is_none()
            || (ends.last_train.is_none() && has(b"train"))
            || has(b"status")
            || (want.best && !*best_found && (has(b"checkpoint") || has(b"warning")))
            || (ends.last_train.is_none() && has(b"fork"));
        if !need {
            return;
        }
        let Some(e) = parse(line) else { return };
        if ends.last_train.is_none() {
            step_after = step_after.max(e.step);
        }
        match &e.body {
            Body::Train { .. } if ends.last_train.is_none() => ends.last_train = Some(e.clone()),
            Body::Status { state, .. } => {
                if want.queued && ends.queued_at.is_none() && *state == State::Queued {
                    ends.queued_at = Some(e.time);
                }
                if ends.last_status.is_none() {
                    ends.last_status = Some(e.clone());
                }
            }
            Body::Warning { .. } if want.best && !*best_found => {
                ends.warnings += 1;
                if ends.last_warning.is_none() {
                    ends.last_warning = Some(e.clone());
                }
            }
            Body::Checkpoint { eval_loss, best: carried, warnings, .. } if want.best && !*best_found => {
                // Ties keep the earlier step: an earlier event's loss replaces an equal later one.
                if let Some(l) = eval_loss {
                    if best.loss.is_none_or(|b| *l <= b) {
                        *best = Best { loss: Some(*l), step: Some(e.step) };
                    }
                }
                if let Some(c) = carried {
                    *best_found = true;
                    ends.warnings += warnings;
                    if let Some(l) = c.loss {
                        if best.loss.is_none_or(|b| l <= b) {
                            *best = *c;
                        }
                    }
                }
            }
            _ => {}
        }
        ends.last.get_or_insert(e);
    };
    while end > 0 && !done(&ends, best_found) {
        let start = end.saturating_sub(CHUNK as u64);
        let mut buf = vec![0u8; (end - start) as usize];
        if f.seek(SeekFrom::Start(start)).is_err() || f.read_exact(&mut buf).is_err() {
            break;
        }
        ends.bytes += buf.len() as u64;
        buf.extend_from_slice(&carry);
        let Some(mut stop) = memchr::memrchr(b'\n', &buf) else {
            carry = buf; // one long line so far
            end = start;
            continue;
        };
        while let Some(nl) = memchr::memrchr(b'\n', &buf[..stop]) {
            look(&buf[nl + 1..stop], &mut ends, &mut best, &mut best_found);
            stop = nl;
            if done(&ends, best_found) {
                break;
            }
        }
        if start == 0 {
            if !done(&ends, best_found) {
                look(&buf[..stop], &mut ends, &mut best, &mut best_found); // the file's first line
            }
            break;
        }
        buf.truncate(stop + 1);
        carry = buf;
        end = start;
    }
    if ends.queued_at.is_none() {
        ends.queued_at = ends.last_status.as_ref().filter(|s| is_queued(s)).map(|s| s.time);
    }
    ends.step = match &ends.last_train {
        Some(t) => t.step.max(step_after),
        None => step_after.max(ends.first.as_ref().map_or(0, |e| e.step)),
    };
    ends.best = best;
    ends.bad = bad;
    ends
}

fn is_queued(e: &Event) -> bool {
    matches!(e.body, Body::Status { state: State::Queued, .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::events::{read_all, Examples};

    fn train(step: u64) -> Event {
        let body = Body::Train {
            loss: 1.0 / step as f64,
            lr: 1e-3,
            tokens: step,
            tokens_per_s: 1.0,
            examples: Examples::default(),
            grad_norm: None,
        };
        Event::new(step, body)
    }

    fn status(step: u64, state: State, message: Option<String>) -> Event {
        Event::new(step, Body::Status { state, message })
    }

    /// A fork at step 6000 trained 5,000 steps, a checkpoint every 1,250 with these selection
    /// losses (evaluations at its step before it), `carries` saying which checkpoint events
    /// carry the best so far; then finished.
    fn checkpointed(losses: &[Option<f64>], carries: &[bool]) -> Vec<String> {
        let fork =
            Body::Fork { parent: "base".into(), parent_step: 6000, mixture: "en=1".into(), fresh_optimizer: false };
        let mut lines = vec![
            Event::new(6000, fork).to_line(),
            status(6000, State::Queued, None).to_line(),
            status(6000, State::Running, Some("started from base @6000".into())).to_line(),
        ];
        let mut best = Best::default();
        let mut warnings = 0;
        for s in 6001..=11000u64 {
            lines.push(train(s).to_line());
            if s == 7000 || s == 10000 {
                warnings += 1;
                let w = Body::Warning { message: "the loss has stayed at 8.3178".into(), value: Some(8.3178) };
                lines.push(Event::new(s, w).to_line());
            }
            if (s - 6000) % 1250 == 0 {
                let k = ((s - 6000) / 1250 - 1) as usize;
                let Some(&eval_loss) = losses.get(k) else { continue };
                best = best.after(s, eval_loss);
                let ev = Body::Eval {
                    task: "mr".into(),
                    lang: "es".into(),
                    group: "seen".into(),
                    loss: 1.0,
                    metric: "accuracy".into(),
                    value: 0.5,
                    n: 8,
                    lang_ok: None,
                    scores: None,
                    ci: None,
                };
                lines.push(Event::new(s, ev).to_line());
                let (best, warnings) = if carries[k] { (Some(best), warnings) } else { (None, 0) };
                let body = Body::Checkpoint { path: format!("checkpoints/{s}"), eval_loss, best, warnings };
                lines.push(Event::new(s, body).to_line());
            }
        }
        lines.push(status(11000, State::Finished, None).to_line());
        lines
    }

    /// A finished run's summary costs a few reads however long the run: the last chunk holds
    /// its last train, status and checkpoint events.
    #[test]
    fn a_finished_run_is_read_from_its_last_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        std::fs::write(&p, checkpointed(&[Some(0.5), Some(0.3), Some(0.3), Some(0.4)], &[true; 4]).concat()).unwrap();
        let len = std::fs::metadata(&p).unwrap().len();
        let got = read(&p, Want { queued: false, best: true });
        assert_eq!(got.best, Best { loss: Some(0.3), step: Some(8500) });
        assert_eq!(got.step, 11000);
        assert_eq!(got.warnings, 2);
        assert!(len > 8 * CHUNK as u64, "{len}");
        assert!(got.bytes <= 2 * CHUNK as u64, "{} of {len} bytes read", got.bytes);
    }

    /// What a whole read finds, found from the ends: over chunk boundaries, with a line longer
    /// than a chunk, a torn tail, garbage, and statuses near the start only.
    #[test]
    fn the_ends_are_what_a_whole_read_finds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let long = Some("m".repeat(CHUNK * 2 + 17));
        let cases: Vec<Vec<String>> = vec![
            vec![],
            vec![status(0, State::Queued, None).to_line()],
            vec![status(0, State::Queued, None).to_line(), status(0, State::Running, None).to_line()]
                .into_iter()
                .chain((1..=3000).map(|s| train(s).to_line()))
                .collect(),
            (1..=2000)
                .map(|s| train(s).to_line())
                .chain([
                    status(2000, State::Paused, long.clone()).to_line(),
                    "not json\n".into(),
                    "{\"v\":1,\"ste".into(),
                ])
                .collect(),
            vec![status(0, State::Queued, None).to_line(), status(1, State::Finished, long).to_line()],
            (1..=500).map(|s| train(s).to_line()).collect(),
            // A fork's run with checkpoints that carry the best (0.3 twice: the earlier step
            // is the best), as the trainer writes them; then one written before they did; then
            // one resumed across the change; then checkpoints with no evaluation.
            checkpointed(&[Some(0.5), Some(0.3), Some(0.3), Some(0.4)], &[true; 4]),
            checkpointed(&[Some(0.5), Some(0.3), Some(0.3), Some(0.4)], &[false; 4]),
            checkpointed(&[Some(0.5), Some(0.2), Some(0.3), Some(0.4)], &[false, false, true, true]),
            checkpointed(&[None, None], &[true, true]),
        ];
        for (i, lines) in cases.into_iter().enumerate() {
            std::fs::write(&p, lines.concat()).unwrap();
            let (events, _, _) = read_all(&p).unwrap();
            let last = |f: &dyn Fn(&Event) -> bool| events.iter().rev().find(|e| f(e)).cloned();
            let text = std::fs::read_to_string(&p).unwrap();
            let status = last(&|e| matches!(e.body, Body::Status { .. }));
            let train = last(&|e| matches!(e.body, Body::Train { .. }));
            // The step as a whole read finds it: the last train event's, raised by later events.
            let mut step = 0;
            for e in &events {
                step = if matches!(e.body, Body::Train { .. }) { e.step } else { step.max(e.step) };
            }
            let warnings = events.iter().filter(|e| matches!(e.body, Body::Warning { .. })).count() as u64;
            let best = events.iter().fold(Best::default(), |b, e| match &e.body {
                Body::Checkpoint { eval_loss, .. } => b.after(e.step, *eval_loss),
                _ => b,
            });
            for (queued, q) in [(true, last(&is_queued)), (false, status.clone().filter(is_queued))] {
                let got = read(&p, Want { queued, best: true });
                assert_eq!(got.first, text.lines().next().and_then(|l| Event::parse(l).ok()), "case {i}");
                assert_eq!(got.last, events.last().cloned(), "case {i}");
                assert_eq!(got.last_train, train, "case {i}");
                assert_eq!(got.last_status, status, "case {i}");
                assert_eq!(got.queued_at, q.map(|e| e.time), "case {i} queued {queued}");
                assert_eq!(got.step, step, "case {i}");
                assert_eq!(got.best, best, "case {i}");
                assert_eq!(got.warnings, warnings, "case {i}");
            }
        }
        assert_eq!(read_ends(&dir.path().join("missing"), true), Ends::default());
    }
}

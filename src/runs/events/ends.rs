//! The ends of an events file, read without reading it whole: its first event, its last train
//! event and its last status event. What a run's row in a list needs (start time, step, loss,
//! state) at the cost of a few reads, where a long run's whole file is a gigabyte.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{Body, Event, State};

/// What [`read_ends`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ends {
    pub first: Option<Event>,
    pub last_train: Option<Event>,
    pub last_status: Option<Event>,
    /// The time of the last `queued` status event (when asked for).
    pub queued_at: Option<f64>,
}

/// Bytes read per step backwards.
const CHUNK: usize = 64 << 10;

/// Read the first line, then whole lines backwards from the end until the last train and
/// status events are found (and, with `want_queued`, the last `queued` status), or the start
/// is reached. Lines are only parsed (strictly) when they may be of a kind looked for; a torn
/// last line and lines that do not parse are passed over, as every reader does.
pub fn read_ends(path: &Path, want_queued: bool) -> Ends {
    let mut ends = Ends::default();
    let Ok(mut f) = File::open(path) else { return ends };
    let Ok(len) = f.metadata().map(|m| m.len()) else { return ends };
    let parse = |line: &[u8]| std::str::from_utf8(line).ok().and_then(|s| Event::parse(s).ok());
    // The first line.
    let mut head = vec![0u8; CHUNK.min(len as usize)];
    if f.read_exact(&mut head).is_ok() {
        if let Some(n) = memchr::memchr(b'\n', &head) {
            ends.first = parse(&head[..n]);
        }
    }
    // Whole lines backwards. `carry` is the first line of the chunk after (its start lay
    // before it), with its newline; what follows a file's last newline is not a line yet.
    let mut end = len;
    let mut carry: Vec<u8> = Vec::new();
    let done = |e: &Ends| {
        e.last_train.is_some()
            && e.last_status.is_some()
            && (!want_queued || e.queued_at.is_some() || e.last_status.as_ref().is_some_and(is_queued))
    };
    while end > 0 && !done(&ends) {
        let start = end.saturating_sub(CHUNK as u64);
        let mut buf = vec![0u8; (end - start) as usize];
        if f.seek(SeekFrom::Start(start)).is_err() || f.read_exact(&mut buf).is_err() {
            break;
        }
        buf.extend_from_slice(&carry);
        let Some(mut stop) = memchr::memrchr(b'\n', &buf) else {
            carry = buf; // one long line so far
            end = start;
            continue;
        };
        let look = |line: &[u8], ends: &mut Ends| {
            let has = |word: &[u8]| memchr::memmem::find(line, word).is_some();
            if !((ends.last_train.is_none() && has(b"train")) || has(b"status")) {
                return;
            }
            let Some(e) = parse(line) else { return };
            match &e.body {
                Body::Train { .. } if ends.last_train.is_none() => ends.last_train = Some(e),
                Body::Status { state, .. } => {
                    if want_queued && ends.queued_at.is_none() && *state == State::Queued {
                        ends.queued_at = Some(e.time);
                    }
                    ends.last_status.get_or_insert(e);
                }
                _ => {}
            }
        };
        while let Some(nl) = memchr::memrchr(b'\n', &buf[..stop]) {
            look(&buf[nl + 1..stop], &mut ends);
            stop = nl;
            if done(&ends) {
                break;
            }
        }
        if start == 0 {
            if !done(&ends) {
                look(&buf[..stop], &mut ends); // the file's first line
            }
            break;
        }
        buf.truncate(stop + 1);
        carry = buf;
        end = start;
    }
    if want_queued && ends.queued_at.is_none() {
        ends.queued_at = ends.last_status.as_ref().filter(|s| is_queued(s)).map(|s| s.time);
    }
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
        ];
        for (i, lines) in cases.into_iter().enumerate() {
            std::fs::write(&p, lines.concat()).unwrap();
            let (events, _, _) = read_all(&p).unwrap();
            let last = |f: &dyn Fn(&Event) -> bool| events.iter().rev().find(|e| f(e)).cloned();
            let want = Ends {
                first: std::fs::read_to_string(&p).unwrap().lines().next().and_then(|l| Event::parse(l).ok()),
                last_train: last(&|e| matches!(e.body, Body::Train { .. })),
                last_status: last(&|e| matches!(e.body, Body::Status { .. })),
                queued_at: last(&is_queued).map(|e| e.time),
            };
            assert_eq!(read_ends(&p, true), want, "case {i}");
            assert_eq!(read_ends(&p, false), Ends { queued_at: read_ends(&p, false).queued_at, ..want }, "case {i}");
        }
        assert_eq!(read_ends(&dir.path().join("missing"), true), Ends::default());
    }
}

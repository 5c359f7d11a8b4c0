//! `events.jsonl`: the append-only event log of a run (docs/run-directory.md).
//!
//! Writers append one JSON object per line with a single `write` (the file is opened with
//! `O_APPEND`), so a line is either whole or torn at the end by a crash. A writer that opens a
//! log whose last line is torn terminates it first, so that the next event starts on a line of
//! its own. Readers skip lines that do not parse (reporting them), ignore unknown kinds and
//! fields, keep an unfinished last line for the next read, and start over when the file shrinks.

pub mod decode;
pub mod ends;
mod fast;
pub mod follow;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use decode::{Decoded, Decoder};
use follow::Follower;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::util::open_append_private;

/// The event format version.
pub const VERSION: u32 = 1;

/// The lifecycle state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Paused,
    Stopped,
    Finished,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Paused => "paused",
            State::Stopped => "stopped",
            State::Finished => "finished",
            State::Failed => "failed",
        }
    }

    /// A state after which the trainer process is gone for good (until resumed by hand).
    pub fn is_final(self) -> bool {
        matches!(self, State::Stopped | State::Finished | State::Failed)
    }

    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "queued" => State::Queued,
            "running" => State::Running,
            "paused" => State::Paused,
            "stopped" => State::Stopped,
            "finished" => State::Finished,
            "failed" => State::Failed,
            _ => return None,
        })
    }
}

/// Cumulative examples seen, per language and per task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Examples {
    #[serde(default)]
    pub lang: BTreeMap<String, u64>,
    #[serde(default)]
    pub task: BTreeMap<String, u64>,
}

/// The kind-specific part of an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Body {
    Train {
        loss: f64,
        lr: f64,
        tokens: u64,
        tokens_per_s: f64,
        examples: Examples,
        #[serde(skip_serializing_if = "Option::is_none")]
        grad_norm: Option<f64>,
    },
    Eval {
        task: String,
        lang: String,
        group: String,
        loss: f64,
        metric: String,
        value: f64,
        n: u64,
        /// Share of generations written in the prompt's language (when generated).
        #[serde(skip_serializing_if = "Option::is_none")]
        lang_ok: Option<f64>,
        /// The metric of each generated example, in order (error bars: bootstrap, binomial).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scores: Option<Vec<f64>>,
        /// The 95 % interval of `value`: Wilson's for proportions, the percentile bootstrap of
        /// the mean for graded scores (`analysis::stats::mean_ci`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ci: Option<[f64; 2]>,
    },
    Checkpoint {
        path: String,
        /// The mean held-out loss at this checkpoint, when an eval ran at this step.
        #[serde(skip_serializing_if = "Option::is_none")]
        eval_loss: Option<f64>,
        /// The run's best selection loss among its own checkpoint events so far, this one
        /// included (its `loss` and `step` null before any evaluation): a reader learns the best
        /// from the last checkpoint event alone. Absent in runs written before 2026-12-05.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        best: Option<Best>,
        /// How many `warning` events the run has logged so far (with `best`; absent is 0).
        #[serde(default, skip_serializing_if = "is_zero")]
        warnings: u64,
    },
    /// Something in the curves a person should look at (the trainer goes on): a loss far above
    /// its recent level, a loss pinned at the uniform distribution's, an evaluation that fell.
    Warning {
        message: String,
        /// The value that triggered it (the loss, the evaluation's value).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
    },
    Status {
        state: State,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Fork {
        parent: String,
        parent_step: u64,
        mixture: String,
        /// The checkpoint forked from holds weights only (a shipped base's): the run starts with
        /// fresh optimizer moments instead of its parent's.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fresh_optimizer: bool,
    },
    /// A kind this version does not know (kept so that readers can count it).
    #[serde(skip)]
    Unknown(String),
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub v: u32,
    pub step: u64,
    pub time: f64,
    #[serde(flatten)]
    pub body: Body,
}

impl Event {
    pub fn new(step: u64, body: Body) -> Event {
        Event { v: VERSION, step, time: crate::util::now_secs(), body }
    }

    pub fn kind(&self) -> &str {
        match &self.body {
            Body::Train { .. } => "train",
            Body::Eval { .. } => "eval",
            Body::Checkpoint { .. } => "checkpoint",
            Body::Status { .. } => "status",
            Body::Fork { .. } => "fork",
            Body::Warning { .. } => "warning",
            Body::Unknown(k) => k,
        }
    }

    /// Parse one line. Unknown kinds become [`Body::Unknown`]; unknown fields are ignored.
    pub fn parse(line: &str) -> std::result::Result<Event, String> {
        RawEvent::parse(line)?.into_event()
    }

    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("events serialise");
        s.push('\n');
        s
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A checkpoint event's record of the run's best selection loss so far.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Best {
    pub loss: Option<f64>,
    pub step: Option<u64>,
}

impl Best {
    /// The best after a checkpoint at `step` with selection loss `eval_loss` (ties keep the
    /// earlier step, as the trainer's selection does).
    pub fn after(self, step: u64, eval_loss: Option<f64>) -> Best {
        match eval_loss {
            Some(l) if self.loss.is_none_or(|b| l < b) => Best { loss: Some(l), step: Some(step) },
            _ => self,
        }
    }
}

/// Every field any kind may have: one flat struct parses fast and tolerates unknown fields.
/// Strings are borrowed from the line where they hold no escapes, so the fast decoder hands
/// eval lines over without allocating (`decode.rs`).
#[derive(Deserialize)]
pub(crate) struct RawEvent<'a> {
    v: Option<u32>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    step: Option<u64>,
    time: Option<f64>,
    loss: Option<f64>,
    lr: Option<f64>,
    tokens: Option<u64>,
    tokens_per_s: Option<f64>,
    pub(crate) examples: Option<Examples>,
    grad_norm: Option<f64>,
    #[serde(borrow)]
    task: Option<Cow<'a, str>>,
    #[serde(borrow)]
    lang: Option<Cow<'a, str>>,
    #[serde(borrow)]
    group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    metric: Option<Cow<'a, str>>,
    value: Option<f64>,
    n: Option<u64>,
    lang_ok: Option<f64>,
    scores: Option<Vec<f64>>,
    ci: Option<[f64; 2]>,
    path: Option<String>,
    eval_loss: Option<f64>,
    best: Option<Best>,
    warnings: Option<u64>,
    state: Option<String>,
    message: Option<String>,
    parent: Option<String>,
    parent_step: Option<u64>,
    mixture: Option<String>,
    fresh_optimizer: Option<bool>,
}

fn need<T>(v: Option<T>, kind: &str, field: &str) -> std::result::Result<T, String> {
    v.ok_or_else(|| format!("{kind} event without `{field}`"))
}

impl<'a> RawEvent<'a> {
    pub(crate) fn parse(line: &'a str) -> std::result::Result<RawEvent<'a>, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }

    pub(crate) fn kind(&self) -> &str {
        &self.kind
    }

    /// The fields every event needs: version, step, time.
    fn header(&self) -> std::result::Result<(u32, u64, f64), String> {
        let k = self.kind.as_ref();
        Ok((need(self.v, k, "v")?, need(self.step, k, "step")?, need(self.time, k, "time")?))
    }

    /// A train event's numbers, each required (its counts are in [`RawEvent::examples`]: the
    /// point names no languages).
    pub(crate) fn train(&self) -> std::result::Result<decode::TrainPoint<'static>, String> {
        let (_, step, time) = self.header()?;
        let k = "train";
        Ok(decode::TrainPoint {
            langs: &[],
            step,
            time,
            loss: need(self.loss, k, "loss")?,
            lr: need(self.lr, k, "lr")?,
            tokens: need(self.tokens, k, "tokens")?,
            tokens_per_s: need(self.tokens_per_s, k, "tokens_per_s")?,
        })
    }

    /// An eval event as a point borrowed from this one (task, language, group and metric
    /// required; a missing loss or value is NaN, a missing `n` 0).
    pub(crate) fn eval(&self) -> std::result::Result<decode::EvalPoint<'_>, String> {
        let (_, step, time) = self.header()?;
        fn text<'b>(f: &'b Option<Cow<'_, str>>, name: &str) -> std::result::Result<&'b str, String> {
            need(f.as_deref(), "eval", name)
        }
        Ok(decode::EvalPoint {
            step,
            time,
            task: text(&self.task, "task")?,
            lang: text(&self.lang, "lang")?,
            group: text(&self.group, "group")?,
            loss: self.loss.unwrap_or(f64::NAN),
            metric: text(&self.metric, "metric")?,
            value: self.value.unwrap_or(f64::NAN),
            n: self.n.unwrap_or(0),
            lang_ok: self.lang_ok,
            ci: self.ci,
        })
    }

    pub(crate) fn into_event(self) -> std::result::Result<Event, String> {
        let (v, step, time) = self.header()?;
        let k = self.kind.as_ref();
        let body = match k {
            "train" => {
                let t = self.train()?;
                let (loss, lr, tokens, tokens_per_s) = (t.loss, t.lr, t.tokens, t.tokens_per_s);
                Body::Train {
                    loss,
                    lr,
                    tokens,
                    tokens_per_s,
                    examples: self.examples.unwrap_or_default(),
                    grad_norm: self.grad_norm,
                }
            }
            "eval" => {
                let mut body = self.eval()?.to_event().body;
                if let Body::Eval { scores, .. } = &mut body {
                    *scores = self.scores;
                }
                body
            }
            "checkpoint" => Body::Checkpoint {
                path: need(self.path, k, "path")?,
                eval_loss: self.eval_loss,
                best: self.best,
                warnings: self.warnings.unwrap_or(0),
            },
            "status" => {
                let s = need(self.state, k, "state")?;
                let state = State::parse(&s).ok_or_else(|| format!("status event with unknown state '{s}'"))?;
                Body::Status { state, message: self.message }
            }
            "fork" => Body::Fork {
                parent: need(self.parent, k, "parent")?,
                parent_step: need(self.parent_step, k, "parent_step")?,
                mixture: need(self.mixture, k, "mixture")?,
                fresh_optimizer: self.fresh_optimizer.unwrap_or(false),
            },
            "warning" => Body::Warning { message: need(self.message, k, "message")?, value: self.value },
            other => Body::Unknown(other.to_string()),
        };
        Ok(Event { v, step, time, body })
    }
}

/// Events for tests.
#[cfg(test)]
pub(crate) mod samples {
    use super::{Body, Event};

    /// An MR eval result in Spanish at `step`: 0.25 of 8, with its interval.
    pub fn mr_es_eval(step: u64, scores: Option<Vec<f64>>) -> Event {
        let body = Body::Eval {
            task: "mr".into(),
            lang: "es".into(),
            group: "seen".into(),
            loss: 1.5,
            metric: "accuracy".into(),
            value: 0.25,
            n: 8,
            lang_ok: Some(1.0),
            scores,
            ci: Some([0.0625, 0.5]),
        };
        Event::new(step, body)
    }
}

/// Appends events to a run's log.
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// Open (creating with mode 0600) for appending; a torn last line is terminated first.
    pub fn open(path: &Path) -> Result<EventWriter> {
        let mut file = open_append_private(path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            let mut r = File::open(path)?;
            r.seek(SeekFrom::Start(len - 1))?;
            let mut last = [0u8; 1];
            r.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").with_context(|| format!("terminating a torn line in {}", path.display()))?;
            }
        }
        Ok(EventWriter { file, path: path.to_path_buf() })
    }

    /// Append one event as one line, in one write.
    pub fn write(&mut self, ev: &Event) -> Result<()> {
        self.file.write_all(ev.to_line().as_bytes()).with_context(|| format!("appending to {}", self.path.display()))
    }

    /// Make what was written durable (used for status and checkpoint events).
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data().with_context(|| format!("syncing {}", self.path.display()))
    }
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    /// 1-based line number in the file.
    pub line: u64,
    pub reason: String,
}

/// Follows an events file: each [`EventTail::poll`] returns the events appended since the last.
pub struct EventTail {
    follower: Follower,
    decoder: Decoder,
    /// Lines skipped because they do not parse.
    pub bad: Vec<BadLine>,
}

/// What a poll found.
#[derive(Debug, Default)]
pub struct Polled {
    pub events: Vec<Event>,
    /// The file shrank or was replaced: earlier events should be dropped.
    pub reset: bool,
}

impl EventTail {
    pub fn new(path: &Path) -> EventTail {
        EventTail { follower: Follower::new(path.to_path_buf()), decoder: Decoder::strict(), bad: Vec::new() }
    }

    /// Bytes consumed so far (whole lines).
    pub fn offset(&self) -> u64 {
        self.follower.offset()
    }

    /// A torn (unterminated) last line is pending.
    pub fn has_partial(&self) -> bool {
        self.follower.has_partial()
    }

    /// Read what was appended since the last poll. A missing file is no events.
    pub fn poll(&mut self) -> Result<Polled> {
        let mut out = Polled::default();
        if self.read_into(&mut out.events) {
            out.reset = true;
            out.events.clear();
            self.bad.clear();
            self.read_into(&mut out.events);
        }
        Ok(out)
    }

    /// One read of the follower; true when it found the file shrunk or replaced.
    fn read_into(&mut self, events: &mut Vec<Event>) -> bool {
        let bad = &mut self.bad;
        self.decoder.read(&mut self.follower, |d| match d {
            Decoded::Event(e) => events.push(e),
            Decoded::Bad(b) => bad.push(b),
            Decoded::Train(_) | Decoded::Eval(_) => unreachable!("a strict decoder hands over events only"),
        })
    }
}

/// Read a whole events file: the events, the lines skipped, and whether the last line is torn.
pub fn read_all(path: &Path) -> Result<(Vec<Event>, Vec<BadLine>, bool)> {
    let mut t = EventTail::new(path);
    let p = t.poll()?;
    let torn = t.has_partial();
    Ok((p.events, t.bad, torn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(step: u64, loss: f64) -> Event {
        Event::new(
            step,
            Body::Train {
                loss,
                lr: 1e-3,
                tokens: step * 100,
                tokens_per_s: 5.0,
                examples: Examples::default(),
                grad_norm: None,
            },
        )
    }

    #[test]
    fn round_trip_every_kind() {
        let evs = vec![
            train(1, 2.5),
            Event::new(
                2,
                Body::Eval {
                    task: "mr".into(),
                    lang: "es".into(),
                    group: "seen".into(),
                    loss: 1.0,
                    metric: "accuracy".into(),
                    value: 0.5,
                    n: 50,
                    lang_ok: Some(1.0),
                    scores: None,
                    ci: None,
                },
            ),
            Event::new(
                2,
                Body::Checkpoint {
                    path: "checkpoints/2".into(),
                    eval_loss: Some(1.0),
                    best: Some(Best { loss: Some(1.0), step: Some(2) }),
                    warnings: 1,
                },
            ),
            Event::new(
                2,
                Body::Warning { message: "the loss has stayed at 8.3178 for 50 steps".into(), value: Some(8.3178) },
            ),
            Event::new(2, Body::Status { state: State::Paused, message: None }),
            Event::new(
                0,
                Body::Fork { parent: "abc".into(), parent_step: 2, mixture: "en=1".into(), fresh_optimizer: true },
            ),
        ];
        for e in evs {
            let line = e.to_line();
            assert!(line.contains("\"v\":1") && line.contains(&format!("\"kind\":\"{}\"", e.kind())), "{line}");
            assert_eq!(Event::parse(line.trim()).unwrap(), e);
        }
    }

    #[test]
    fn tolerant_reading() {
        let unknown = r#"{"v":1,"kind":"sparkle","step":3,"time":1.0,"x":1}"#;
        let extra = r#"{"v":1,"kind":"status","step":3,"time":1.0,"state":"running","future":[1,2]}"#;
        let e = Event::parse(unknown).unwrap();
        assert_eq!(e.kind(), "sparkle");
        assert_eq!(Event::parse(extra).unwrap().kind(), "status");
        assert!(Event::parse(r#"{"v":1,"kind":"train","step":3,"time":1.0}"#).unwrap_err().contains("`loss`"));
    }

    #[test]
    fn tail_follows_appends_and_tolerates_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut w = EventWriter::open(&p).unwrap();
        w.write(&train(1, 3.0)).unwrap();
        let mut t = EventTail::new(&p);
        assert_eq!(t.poll().unwrap().events.len(), 1);
        // A torn write: half a line.
        let line = train(2, 2.0).to_line();
        let (a, b) = line.split_at(20);
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(a.as_bytes()).unwrap();
        assert!(t.poll().unwrap().events.is_empty());
        assert!(t.has_partial());
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b.as_bytes()).unwrap();
        assert_eq!(t.poll().unwrap().events[0].step, 2);
        // A writer killed mid-line, then a new writer: the torn line is skipped and reported.
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(&a.as_bytes()[..10]).unwrap();
        let mut w2 = EventWriter::open(&p).unwrap();
        w2.write(&train(3, 1.0)).unwrap();
        let got = t.poll().unwrap();
        assert_eq!(got.events.len(), 1);
        assert_eq!(got.events[0].step, 3);
        assert_eq!(t.bad.len(), 1);
        assert_eq!(t.bad[0].line, 3);
        let (all, bad, torn) = read_all(&p).unwrap();
        assert_eq!((all.len(), bad.len(), torn), (3, 1, false));
        // Garbage and invalid UTF-8 are skipped, not fatal.
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"not json\n\xff\xfe\n").unwrap();
        w2.write(&train(4, 0.5)).unwrap();
        let got = t.poll().unwrap();
        assert_eq!(got.events.len(), 1);
        assert_eq!(t.bad.len(), 3);
        // Truncation resets.
        std::fs::write(&p, train(9, 0.1).to_line()).unwrap();
        let got = t.poll().unwrap();
        assert!(got.reset);
        assert_eq!(got.events[0].step, 9);
    }
}

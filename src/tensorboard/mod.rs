//! TensorBoard event files of a run, written live by the trainer into `<run>/tensorboard/` and
//! by `mixscope export RUN --tensorboard DIR` from `events.jsonl`. TensorBoard (and W&B's
//! TensorBoard sync) read them as they are; `tensorboard --logdir <runs root>` shows every run.
//!
//! What is written (step = the run's step, wall time = the event's time):
//! - `train/loss`, `train/lr`, `train/tokens_per_s`, `train/grad_norm` for every train event;
//! - `eval/<task>/<metric>/<lang>`, `eval_loss/<task>/<lang>` and `lang_ok/<task>/<lang>` for
//!   every eval result, and when an evaluation round ends its group averages
//!   `eval/<task>/<metric>/{seen_avg,unseen_avg,ratio_to_en}` and
//!   `eval_loss/<task>/{seen_avg,unseen_avg}` (`analysis::aggregate`, as the TUI shows them);
//! - `eval_loss/selection`, the held-out loss that picks the best checkpoint;
//! - a `SessionLog` START whenever a trainer starts or resumes, at the first step it trains: a
//!   resumed run trains again the steps after its checkpoint, and TensorBoard then drops the
//!   ones an earlier process wrote, as mixscope's readers do.
//!
//! Each trainer process writes a file of its own,
//! `events.out.tfevents.<unix seconds>.<host>.<sequence>.<pid>`, named so that TensorBoard,
//! which reads a directory's files in name order, reads them in the order they were written.
//! Every record is appended with one `write`, so a killed trainer leaves whole records followed
//! by at most one torn one, which TensorBoard stops at.

pub mod proto;
pub mod record;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use prost::Message;

use crate::analysis::{aggregate, Cell};
use crate::runs::events::{Body, Event, State};

/// The directory of a run's event files, inside the run directory.
pub const DIR: &str = "tensorboard";

/// One record to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Scalars {
        step: u64,
        wall_time: f64,
        values: Vec<(String, f32)>,
    },
    /// A trainer (re)started at this step.
    Start {
        step: u64,
        wall_time: f64,
    },
}

/// Turns a run's events, in order, into TensorBoard records. Eval results of one step are
/// gathered until the round ends (an event of another kind or step, or [`Scalars::end_round`]),
/// and their group averages are written then.
#[derive(Debug, Default)]
pub struct Scalars {
    round: Option<(u64, f64)>,
    cells: BTreeMap<(String, String), Cell>,
}

impl Scalars {
    pub fn push(&mut self, ev: &Event, out: &mut Vec<Record>) {
        let is_eval = matches!(ev.body, Body::Eval { .. });
        if !is_eval || self.round.is_some_and(|(s, _)| s != ev.step) {
            self.end_round(out);
        }
        let (step, wall_time) = (ev.step, ev.time);
        match &ev.body {
            Body::Train { loss, lr, tokens_per_s, grad_norm, .. } => {
                let mut values = vec![
                    ("train/loss".to_string(), *loss as f32),
                    ("train/lr".to_string(), *lr as f32),
                    ("train/tokens_per_s".to_string(), *tokens_per_s as f32),
                ];
                if let Some(g) = grad_norm {
                    values.push(("train/grad_norm".to_string(), *g as f32));
                }
                out.push(Record::Scalars { step, wall_time, values });
            }
            Body::Eval { task, lang, loss, metric, value, lang_ok, .. } => {
                let mut values = vec![
                    (format!("eval/{task}/{metric}/{lang}"), *value as f32),
                    (format!("eval_loss/{task}/{lang}"), *loss as f32),
                ];
                if let Some(ok) = lang_ok {
                    values.push((format!("lang_ok/{task}/{lang}"), *ok as f32));
                }
                out.push(Record::Scalars { step, wall_time, values });
                self.round = Some((step, wall_time));
                if let Some((key, cell)) = Cell::of_eval(&ev.body) {
                    self.cells.insert(key, cell);
                }
            }
            Body::Checkpoint { eval_loss: Some(l), .. } => {
                out.push(Record::Scalars { step, wall_time, values: vec![("eval_loss/selection".into(), *l as f32)] });
            }
            // TensorBoard drops what was written at the START step and after: the first step
            // this trainer trains, not the checkpoint it resumed from.
            Body::Status { state: State::Running, .. } => out.push(Record::Start { step: step + 1, wall_time }),
            _ => {}
        }
    }

    /// Write the group averages of the eval round gathered so far.
    pub fn end_round(&mut self, out: &mut Vec<Record>) {
        let Some((step, wall_time)) = self.round.take() else { return };
        let cells = std::mem::take(&mut self.cells);
        let mut tasks: Vec<&String> = cells.keys().map(|(t, _)| t).collect();
        tasks.dedup();
        let mut values = Vec::new();
        for task in tasks {
            let Some(metric) = cells.iter().find(|((t, _), _)| t == task).map(|(_, c)| c.metric.clone()) else {
                continue;
            };
            let m = aggregate(&cells, task, false);
            let l = aggregate(&cells, task, true);
            for (name, v) in [("seen_avg", m.seen), ("unseen_avg", m.unseen), ("ratio_to_en", m.ratio_to_english)] {
                if let Some(v) = v {
                    values.push((format!("eval/{task}/{metric}/{name}"), v as f32));
                }
            }
            for (name, v) in [("seen_avg", l.seen), ("unseen_avg", l.unseen)] {
                if let Some(v) = v {
                    values.push((format!("eval_loss/{task}/{name}"), v as f32));
                }
            }
        }
        if !values.is_empty() {
            out.push(Record::Scalars { step, wall_time, values });
        }
    }
}

/// The encoded `Event` message of a record.
pub fn encode(r: &Record) -> Vec<u8> {
    let (step, wall_time, what) = match r {
        Record::Scalars { step, wall_time, values } => {
            let value = values
                .iter()
                .map(|(tag, v)| proto::Value { tag: tag.clone(), kind: Some(proto::Kind::SimpleValue(*v)) })
                .collect();
            (*step, *wall_time, proto::What::Summary(proto::Summary { value }))
        }
        Record::Start { step, wall_time } => (
            *step,
            *wall_time,
            proto::What::SessionLog(proto::SessionLog { status: proto::SESSION_START, msg: String::new() }),
        ),
    };
    proto::Event { wall_time, step: step as i64, what: Some(what) }.encode_to_vec()
}

/// An event file being appended to.
pub struct Writer {
    file: File,
    path: PathBuf,
    scalars: Scalars,
    records: Vec<Record>,
    buf: Vec<u8>,
}

impl Writer {
    /// Start a new event file in `dir` (created), with its version record.
    pub fn create(dir: &Path) -> Result<Writer> {
        // Never through a link: `<run>/tensorboard` linked elsewhere is refused.
        if crate::util::is_link(dir) {
            return Err(crate::util::link_error(dir));
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let now = crate::util::now_secs();
        let host: String = crate::runs::lock::hostname()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .collect();
        let pid = std::process::id();
        // The sequence orders two files of the same second (a trainer killed and restarted).
        let mut seq = std::fs::read_dir(dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents."))
            .count();
        let name = |seq: usize| format!("events.out.tfevents.{:010}.{host}.{seq:04}.{pid}", now as u64);
        while dir.join(name(seq)).exists() {
            seq += 1;
        }
        let path = dir.join(name(seq));
        let file = crate::util::open_append_private(&path)?;
        let mut w = Writer { file, path, scalars: Scalars::default(), records: Vec::new(), buf: Vec::new() };
        let version =
            proto::Event { wall_time: now, step: 0, what: Some(proto::What::FileVersion("brain.Event:2".into())) };
        w.buf.clear();
        record::frame(&version.encode_to_vec(), &mut w.buf);
        w.file.write_all(&w.buf).with_context(|| format!("writing {}", w.path.display()))?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append the records of one event.
    pub fn write(&mut self, ev: &Event) -> Result<()> {
        self.scalars.push(ev, &mut self.records);
        self.flush()
    }

    /// End the current eval round: write its group averages.
    pub fn end_round(&mut self) -> Result<()> {
        self.scalars.end_round(&mut self.records);
        self.flush()
    }

    /// Write the pending records, each with one `write` (whole, or torn only at the file's end).
    fn flush(&mut self) -> Result<()> {
        for r in self.records.drain(..) {
            self.buf.clear();
            record::frame(&encode(&r), &mut self.buf);
            self.file.write_all(&self.buf).with_context(|| format!("writing {}", self.path.display()))?;
        }
        Ok(())
    }
}

/// What `export_run` wrote.
pub struct Exported {
    pub file: PathBuf,
    pub events: usize,
}

/// Write a run's TensorBoard file from its `events.jsonl`, into `<out>/<run id>/` (a fresh
/// file; event files an earlier export left there are replaced).
pub fn export_run(run: &crate::runs::RunDir, out: &Path) -> Result<Exported> {
    let (events, _bad, _partial) = crate::runs::events::read_all(&run.events_path())?;
    if events.is_empty() {
        crate::bail_input!("{}: the run has no events to export", run.events_path().display());
    }
    let dir = out.join(run.id());
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("events.out.tfevents.") {
                std::fs::remove_file(e.path()).with_context(|| format!("replacing {}", e.path().display()))?;
            }
        }
    }
    let mut w = Writer::create(&dir)?;
    for ev in &events {
        w.write(ev)?;
    }
    w.end_round()?;
    w.file.sync_all().ok();
    Ok(Exported { file: w.path.clone(), events: events.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::events::Examples;

    fn eval(step: u64, task: &str, lang: &str, group: &str, value: f64) -> Event {
        let mut e = Event::new(
            step,
            Body::Eval {
                task: task.into(),
                lang: lang.into(),
                group: group.into(),
                loss: 1.0 + value,
                metric: "accuracy".into(),
                value,
                n: 64,
                lang_ok: Some(1.0),
                scores: None,
                ci: None,
            },
        );
        e.time = 100.0 + step as f64;
        e
    }

    #[test]
    fn a_round_of_evals_ends_with_its_group_averages() {
        let mut s = Scalars::default();
        let mut out = Vec::new();
        let train = Event::new(
            10,
            Body::Train {
                loss: 2.0,
                lr: 1e-3,
                tokens: 5,
                tokens_per_s: 7.0,
                examples: Examples::default(),
                grad_norm: Some(0.5),
            },
        );
        s.push(&train, &mut out);
        for (l, g, v) in [("en", "en", 0.8), ("es", "seen", 0.6), ("fr", "seen", 0.4), ("pt", "unseen", 0.1)] {
            s.push(&eval(10, "mr", l, g, v), &mut out);
        }
        assert_eq!(out.len(), 5, "one train record and one per eval, the averages still pending");
        s.push(
            &Event::new(
                10,
                Body::Checkpoint { path: "checkpoints/10".into(), eval_loss: Some(1.25), best: None, warnings: 0 },
            ),
            &mut out,
        );
        let Record::Scalars { values, step, .. } = &out[5] else { panic!("{:?}", out[5]) };
        assert_eq!(*step, 10);
        let get = |t: &str| values.iter().find(|(k, _)| k == t).map(|(_, v)| *v);
        assert!((get("eval/mr/accuracy/seen_avg").unwrap() - 0.5).abs() < 1e-6);
        assert!((get("eval/mr/accuracy/unseen_avg").unwrap() - 0.1).abs() < 1e-6);
        assert!((get("eval/mr/accuracy/ratio_to_en").unwrap() - (1.1 / 3.0) / 0.8).abs() < 1e-6);
        assert!((get("eval_loss/mr/seen_avg").unwrap() - 1.5).abs() < 1e-6);
        assert_eq!(
            out[6],
            Record::Scalars {
                step: 10,
                wall_time: out_time(&out[6]),
                values: vec![("eval_loss/selection".into(), 1.25)]
            }
        );
    }

    fn out_time(r: &Record) -> f64 {
        match r {
            Record::Scalars { wall_time, .. } | Record::Start { wall_time, .. } => *wall_time,
        }
    }

    #[test]
    fn zero_is_written_not_elided() {
        let r = Record::Scalars { step: 0, wall_time: 0.0, values: vec![("a".into(), 0.0)] };
        let ev = proto::Event::decode(encode(&r).as_slice()).unwrap();
        let Some(proto::What::Summary(s)) = ev.what else { panic!() };
        assert_eq!(s.value[0].kind, Some(proto::Kind::SimpleValue(0.0)));
        // field 2 (float, wire type 5) is present in the bytes
        assert!(encode(&r).windows(5).any(|w| w == [0x15, 0, 0, 0, 0]));
    }
}

//! The `control` file: how the CLI, the supervisor or the TUI ask a trainer to pause, resume,
//! stop or checkpoint. Each request has a sequence number; the trainer reads the file at step
//! boundaries (one `stat` when nothing changed) and acts on a sequence number it has not seen.
//! The trainer answers through `events.jsonl` (status and checkpoint events).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    Pause,
    Resume,
    Stop,
    Checkpoint,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Stop => "stop",
            Command::Checkpoint => "checkpoint",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub seq: u64,
    pub cmd: Command,
}

/// The current request, if any.
pub fn read(run_dir: &Path) -> Option<Request> {
    let s = std::fs::read_to_string(run_dir.join("control")).ok()?;
    serde_json::from_str(&s).ok()
}

/// The last request the run's latest checkpoint records as handled (`control_seq` in its
/// state.json; 0 when there is none).
fn handled_seq(run_dir: &Path) -> u64 {
    let run = super::RunDir::new(run_dir);
    let Some(step) = run.latest_checkpoint().ok().flatten() else { return 0 };
    std::fs::read(run.checkpoint_dir(step).join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["control_seq"].as_u64())
        .unwrap_or(0)
}

/// Write a new request, numbered past the current one and past the last one the run's latest
/// checkpoint records as handled: a control file deleted (or replaced by an older one) never
/// makes a new request look handled to the trainer that resumes from that checkpoint. Returns
/// its number. The file is written atomically, mode 0600 from the start.
pub fn send(run_dir: &Path, cmd: Command) -> Result<u64> {
    let seq = read(run_dir).map_or(0, |r| r.seq).max(handled_seq(run_dir)) + 1;
    let req = Request { seq, cmd };
    let path = run_dir.join("control");
    crate::util::write_atomic_private(&path, serde_json::to_string(&req)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(seq)
}

/// Watches the control file cheaply: re-reads it only when its modification time or size
/// changed.
pub struct ControlWatch {
    path: std::path::PathBuf,
    stamp: Option<(std::time::SystemTime, u64, u64)>,
    last_seq: u64,
}

impl ControlWatch {
    /// Start watching; requests already in the file count as seen.
    pub fn new(run_dir: &Path) -> ControlWatch {
        let last_seq = read(run_dir).map_or(0, |r| r.seq);
        let mut w = ControlWatch { path: run_dir.join("control"), stamp: None, last_seq };
        w.stamp = w.stamp_now();
        w
    }

    /// Like `new`, but an unhandled request already in the file is returned by the next poll
    /// (a trainer restarted to resume must not miss a pending stop).
    pub fn new_from(run_dir: &Path, last_seq: u64) -> ControlWatch {
        ControlWatch { path: run_dir.join("control"), stamp: None, last_seq }
    }

    fn stamp_now(&self) -> Option<(std::time::SystemTime, u64, u64)> {
        let m = std::fs::metadata(&self.path).ok()?;
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let ino = 0;
        Some((m.modified().ok()?, m.len(), ino))
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// A new request, if one arrived since the last poll. A control file that is gone (deleted
    /// by hand) starts the numbering over: the next request may be numbered from 1 again.
    pub fn poll(&mut self) -> Option<Command> {
        let stamp = self.stamp_now();
        if stamp.is_none() {
            self.stamp = None;
            self.last_seq = 0;
            return None;
        }
        if stamp == self.stamp {
            return None;
        }
        self.stamp = stamp;
        let dir = self.path.parent()?;
        let req = read(dir)?;
        if req.seq > self.last_seq {
            self.last_seq = req.seq;
            Some(req.cmd)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_seen_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ControlWatch::new(dir.path());
        assert_eq!(w.poll(), None);
        send(dir.path(), Command::Pause).unwrap();
        assert_eq!(w.poll(), Some(Command::Pause));
        assert_eq!(w.poll(), None);
        send(dir.path(), Command::Resume).unwrap();
        send(dir.path(), Command::Stop).unwrap();
        assert_eq!(w.poll(), Some(Command::Stop), "the latest request wins");
        assert_eq!(read(dir.path()).unwrap().seq, 3);
        let mut fresh = ControlWatch::new(dir.path());
        assert_eq!(fresh.poll(), None, "old requests are not replayed");
        let mut pending = ControlWatch::new_from(dir.path(), 2);
        assert_eq!(pending.poll(), Some(Command::Stop));
        // The file deleted: the watch starts over, and a new request (numbered 1) is seen.
        std::fs::remove_file(dir.path().join("control")).unwrap();
        assert_eq!(pending.poll(), None);
        assert_eq!(send(dir.path(), Command::Pause).unwrap(), 1);
        assert_eq!(pending.poll(), Some(Command::Pause));
    }

    #[test]
    fn a_request_is_numbered_past_what_the_latest_checkpoint_handled() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("checkpoints/10");
        std::fs::create_dir_all(&ck).unwrap();
        std::fs::write(ck.join("state.json"), r#"{"step":10,"control_seq":4}"#).unwrap();
        assert_eq!(send(dir.path(), Command::Stop).unwrap(), 5, "the control file is gone; the checkpoint saw 4");
        assert_eq!(send(dir.path(), Command::Resume).unwrap(), 6);
    }
}

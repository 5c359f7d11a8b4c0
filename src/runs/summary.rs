//! A run's summary, derived from its run directory alone: its config's fields, the ends of its
//! events file, and whether a trainer or its monitor is alive (their `flock`s, which the kernel
//! drops when a process dies however it dies). The supervisor adds Slurm's word on top
//! (`supervisor::status`).

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::events::{ends, Body, State};
use super::{lock, RunDir};
use crate::config::{DeviceSpec, RunConfig};

/// What a run directory says of its run: its config's fields, the ends of its events and
/// whether a process holds it. Everyone who lists runs reads this (`ls`, the scheduler and
/// `supervisor::status` through [`crate::supervisor::RunStatus`], reports, sweep analyses).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub name: Option<String>,
    pub state: State,
    /// The last status message (a failure's reason, "resumed from step N", ...).
    pub message: Option<String>,
    /// Optimizer steps completed.
    pub step: u64,
    pub max_steps: u64,
    pub loss: Option<f64>,
    /// The best held-out (selection) loss and its step, from checkpoint events.
    pub best_loss: Option<f64>,
    pub best_step: Option<u64>,
    pub mixture: String,
    pub parent: Option<String>,
    pub fork_step: Option<u64>,
    pub device: String,
    pub threads: usize,
    /// Time of the first and of the last event.
    pub started: Option<f64>,
    pub updated: Option<f64>,
    /// When the run was queued, while its last status is `queued` (the queue's FIFO order);
    /// for a Slurm run, the time of its last `queued` status whatever came after.
    pub queued_at: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub checkpoints: Vec<u64>,
    pub alive: bool,
    pub pid: Option<u32>,
    /// Lines of events.jsonl read that did not parse (its ends are read, not the whole file).
    pub bad_lines: usize,
    /// The sweep this run is a point of.
    pub sweep: Option<crate::config::SweepTag>,
    #[serde(skip)]
    pub config: Option<RunConfig>,
    #[serde(skip)]
    pub dir: std::path::PathBuf,
    /// The run's `warning` events, and the last one (`at step N: …`) when it lies near the end.
    pub warnings: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_warning: Option<String>,
    /// Bytes of events.jsonl read to learn all this.
    #[serde(skip)]
    pub read_bytes: u64,
    /// The last status event's state and message, as written (`state` and `message` are what
    /// the processes' locks make of them).
    #[serde(skip)]
    pub recorded: Option<(State, Option<String>)>,
}

/// Whether a monitor or a trainer process holds the run.
pub fn is_alive(run: &RunDir) -> bool {
    lock::is_held(&run.path) || monitor_held(&run.path)
}

fn monitor_held(dir: &Path) -> bool {
    let p = dir.join("monitor.lock");
    let Ok(f) = crate::util::open_nofollow(std::fs::OpenOptions::new().read(true), &p) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a valid descriptor; a successful probe is released when `f` closes.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = f;
        false
    }
}

/// The last lines of the run's stderr.log (a failed run's reason).
pub fn stderr_tail(run: &RunDir, n: usize) -> Vec<String> {
    let Ok(text) = std::fs::read(run.stderr_path()) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&text[text.len().saturating_sub(64 * 1024)..]).into_owned();
    let lines: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// A run's state from its last status event and whether a trainer or monitor holds it: a run
/// whose process died without writing a final status has failed (with its stderr's last lines).
pub fn derive_state(
    run: &RunDir,
    last: Option<State>,
    message: Option<String>,
    alive: bool,
) -> (State, Option<String>) {
    match (last, alive) {
        (Some(State::Running) | Some(State::Queued) | None, true) => (State::Running, message),
        (Some(s), true) => (s, message),
        (Some(State::Running), false) => {
            let tail = stderr_tail(run, 5);
            let mut msg = "the trainer exited without a final status".to_string();
            if !tail.is_empty() {
                msg.push_str(": ");
                msg.push_str(&tail.join(" | "));
            }
            (State::Failed, Some(msg))
        }
        (Some(s), false) => (s, message),
        (None, false) => match lock::read_info(&run.path.join("lock")) {
            // Every command that creates a run holds its lock until the run's first status
            // (queued, or running): a lock's owner that died before writing one died in setup.
            Some(owner) => (
                State::Failed,
                Some(format!(
                    "setup did not finish: the process that created the run (pid {} on {}) ended before the run was queued or started training; resume starts it again",
                    owner.pid, owner.host
                )),
            ),
            None => (State::Queued, message.or_else(|| Some("not launched".into()))),
        },
    }
}

/// A run's summary from its directory: its run.toml, the ends of its events file (never the
/// whole file: see [`super::events::ends`]) and its processes' locks. For a run whose config
/// `queued_of` holds (a Slurm run's queue request), the time of the last `queued` status is
/// found even when later statuses follow.
pub fn read(run: &RunDir, queued_of: fn(&RunConfig) -> bool) -> Result<Summary> {
    let cfg = run.read_config();
    let cfg_error = cfg.as_ref().err().map(|e| format!("{e:#}"));
    let cfg = cfg.ok();
    let queued = cfg.as_ref().is_some_and(queued_of);
    let ends = ends::read(&run.events_path(), ends::Want { queued, best: true });
    let train = ends.last_train.as_ref().and_then(|e| match e.body {
        Body::Train { loss, tokens_per_s, .. } => Some((loss, tokens_per_s)),
        _ => None,
    });
    let last = ends.last_status.as_ref().and_then(|e| match &e.body {
        Body::Status { state, message } => Some((*state, message.clone())),
        _ => None,
    });
    let mut st = Summary {
        id: run.id(),
        name: cfg.as_ref().and_then(|c| c.name.clone()),
        state: State::Queued,
        message: None,
        step: ends.step,
        max_steps: cfg.as_ref().map_or(0, |c| c.train.max_steps),
        loss: train.map(|t| t.0),
        best_loss: ends.best.loss,
        best_step: ends.best.step,
        mixture: cfg.as_ref().and_then(|c| c.mixture().ok()).map(|m| m.summary()).unwrap_or_default(),
        parent: cfg.as_ref().and_then(|c| c.lineage.as_ref().map(|l| l.parent.clone())),
        fork_step: cfg.as_ref().and_then(|c| c.lineage.as_ref().map(|l| l.fork_step)),
        device: cfg.as_ref().map_or_else(|| "?".into(), |c| shown_device(c.device, run)),
        threads: cfg.as_ref().map_or(0, |c| c.threads),
        started: ends.first.as_ref().map(|e| e.time),
        updated: ends.last.as_ref().map(|e| e.time),
        queued_at: ends.queued_at,
        tokens_per_s: train.map(|t| t.1),
        checkpoints: run.checkpoints().unwrap_or_default(),
        alive: false,
        pid: None,
        bad_lines: ends.bad,
        sweep: cfg.as_ref().and_then(|c| c.sweep.clone()),
        config: cfg,
        dir: run.path.clone(),
        warnings: ends.warnings,
        last_warning: ends.last_warning.as_ref().and_then(|e| match &e.body {
            Body::Warning { message, .. } => Some(format!("at step {}: {message}", e.step)),
            _ => None,
        }),
        read_bytes: ends.bytes,
        recorded: last.clone(),
    };
    st.alive = is_alive(run);
    (st.state, st.message) = derive_state(run, last.as_ref().map(|l| l.0), last.and_then(|l| l.1), st.alive);
    st.pid = lock::read_info(&run.path.join("lock")).map(|i| i.pid).filter(|_| lock::is_held(&run.path));
    if let (Some(err), false) = (cfg_error, st.alive) {
        // A run whose run.toml cannot be read cannot be trained or resumed: say why.
        st.state = State::Failed;
        st.message = Some(damaged_message(run, &err));
    }
    Ok(st)
}

/// What `ls`, the TUI and reports say of a run whose run.toml cannot be read (`err`).
pub fn damaged_message(run: &RunDir, err: &str) -> String {
    if run.exists() {
        format!("unreadable run.toml: {err}")
    } else {
        "damaged: run.toml is missing (its events and checkpoints are kept; it cannot be resumed or forked)".into()
    }
}

/// The summary of every run under a root (unreadable runs are reported as failed).
pub fn list(root: &Path) -> Result<Vec<Summary>> {
    Ok(super::list(root)?.iter().map(|r| read(r, |_| false).unwrap_or_else(|e| unreadable(r, &e))).collect())
}

/// A run whose summary could not be read: failed, with why.
pub fn unreadable(r: &RunDir, e: &anyhow::Error) -> Summary {
    Summary {
        id: r.id(),
        name: None,
        state: State::Failed,
        message: Some(format!("{e:#}")),
        step: 0,
        max_steps: 0,
        loss: None,
        best_loss: None,
        best_step: None,
        mixture: String::new(),
        parent: None,
        fork_step: None,
        device: "?".into(),
        threads: 0,
        started: None,
        updated: None,
        queued_at: None,
        tokens_per_s: None,
        checkpoints: Vec::new(),
        alive: false,
        pid: None,
        bad_lines: 0,
        sweep: None,
        config: None,
        dir: r.path.clone(),
        warnings: 0,
        last_warning: None,
        read_bytes: 0,
        recorded: None,
    }
}

/// The device as `ls` shows it: `auto` is `cpu` in a build without CUDA (where it can be
/// nothing else).
/// A run the queue gave a GPU shows that GPU.
fn shown_device(spec: DeviceSpec, run: &RunDir) -> String {
    if spec.takes_any_gpu() {
        if let Some(d) = run.assigned_device() {
            return d;
        }
    }
    if spec == DeviceSpec::Auto && !cfg!(feature = "cuda") {
        "cpu".into()
    } else {
        spec.to_string()
    }
}

//! The monitor process of a launched run: starts the trainer, waits for it, records how it
//! ended, and hands its slot to the next queued run.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use super::status::stderr_tail;
use crate::runs::events::{read_all, Body, State};
use crate::runs::RunDir;

/// Start a monitor for a queued run, detached in its own session. The monitor inherits an
/// exclusive flock on `monitor.lock`, so the run counts as alive from this moment on and no
/// other scheduler starts it twice.
pub fn spawn(root: &Path, run: &RunDir) -> Result<()> {
    let lock_path = run.path.join("monitor.lock");
    let mut o = OpenOptions::new();
    o.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let file = crate::util::open_nofollow(&mut o, &lock_path)?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: flock / fcntl on a valid descriptor we own.
        unsafe {
            if libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) != 0 {
                return Ok(()); // someone else is starting or watching it
            }
            let flags = libc::fcntl(fd, libc::F_GETFD);
            libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
        }
        let mut cmd = Command::new(super::exe()?);
        cmd.arg("_supervise").arg(&run.path).arg("--runs").arg(root).arg("--lock-fd").arg(fd.to_string());
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe; the monitor gets its own session so that a
        // closing terminal (SIGHUP) or the launcher's exit does not end it.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("starting the run's monitor")?;
        // The child holds the lock through its inherited descriptor; ours may close.
        drop(file);
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }
    #[cfg(not(unix))]
    {
        let _ = (file, root);
        anyhow::bail!("launching supervised runs needs a Unix system");
    }
    Ok(())
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => "signal",
    }
}

/// The monitor's main: run the trainer to its end and record what the trainer could not.
pub fn supervise(run_dir: &Path, root: &Path, lock_fd: Option<i32>) -> Result<i32> {
    #[cfg(unix)]
    if let Some(fd) = lock_fd {
        // Keep the lock for ourselves; the trainer does not inherit it.
        // SAFETY: fcntl on a descriptor inherited from the scheduler.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    let run = RunDir::new(run_dir);
    // The trainer's output goes to the run's logs, never through a link out of the run: a run
    // whose logs cannot be opened fails with the reason.
    let opened = (|| -> Result<_> {
        let cfg = run.read_config()?;
        let out = crate::util::open_append_private(&run.stdout_path())?;
        let err = crate::util::open_append_private(&run.stderr_path())?;
        Ok((cfg, out, err))
    })();
    let (cfg, out, err) = match opened {
        Ok(x) => x,
        Err(e) => {
            super::append_status(&run, State::Failed, Some(format!("the trainer could not start: {e:#}")))?;
            release(lock_fd);
            let _ = super::schedule(root);
            return Ok(1);
        }
    };
    let mut cmd = Command::new(super::exe()?);
    cmd.arg("_run").arg(&run.path).arg("--runs").arg(root);
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    if cfg.threads > 0 {
        cmd.env("RAYON_NUM_THREADS", cfg.threads.min(crate::util::max_threads()).to_string());
    }
    match run.assigned_device() {
        Some(d) => cmd.env("MIXSCOPE_DEVICE", d),
        None => cmd.env_remove("MIXSCOPE_DEVICE"),
    };
    let status = match cmd.spawn() {
        Ok(mut child) => child.wait()?,
        Err(e) => {
            super::append_status(&run, State::Failed, Some(format!("could not start the trainer: {e}")))?;
            release(lock_fd);
            let _ = super::schedule(root);
            return Ok(1);
        }
    };
    let (events, _, _) = read_all(&run.events_path())?;
    let last = events.iter().rev().find_map(|e| match &e.body {
        Body::Status { state, .. } => Some(*state),
        _ => None,
    });
    let ended_cleanly = matches!(last, Some(State::Finished | State::Stopped | State::Paused | State::Failed));
    if !ended_cleanly {
        let mut why = match status.code() {
            Some(c) => format!("the trainer exited with code {c}"),
            None => {
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    let s = status.signal().unwrap_or(0);
                    format!("the trainer was killed by signal {s} ({})", signal_name(s))
                }
                #[cfg(not(unix))]
                {
                    "the trainer was killed".to_string()
                }
            }
        };
        let tail = stderr_tail(&run, 5);
        if !tail.is_empty() {
            why.push_str(": ");
            why.push_str(&tail.join(" | "));
        }
        super::append_status(&run, State::Failed, Some(why))?;
    }
    // Free our hold on the run before handing its slot to the next queued run.
    release(lock_fd);
    let _ = super::schedule(root);
    Ok(0)
}

/// Close the monitor's inherited `monitor.lock` descriptor: the run is no longer held.
fn release(lock_fd: Option<i32>) {
    #[cfg(unix)]
    if let Some(fd) = lock_fd {
        // SAFETY: closing the inherited descriptor we own, once.
        unsafe {
            libc::close(fd);
        }
    }
    #[cfg(not(unix))]
    let _ = lock_fd;
}

//! The `lock` file: who is training a run right now.
//!
//! A trainer creates `lock` with its pid, host and start time and holds an exclusive `flock`
//! on it for as long as it lives. The kernel drops the flock when the process dies, however it
//! dies (kill -9, OOM), so "is the owner alive" is exact on one host: try the flock. The pid
//! and start time are for people and for the supervisor's messages.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The content of a lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub pid: u32,
    pub host: String,
    /// Unix seconds when the trainer started.
    pub started: f64,
}

/// A held lock: dropping it (or the process dying) releases it.
pub struct RunLock {
    file: File,
    path: PathBuf,
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(unix)]
fn try_flock(f: &File) -> bool {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a valid open descriptor.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(not(unix))]
fn try_flock(_f: &File) -> bool {
    true
}

impl RunLock {
    /// Take the lock of a run directory, or say who holds it.
    pub fn acquire(run_dir: &Path) -> Result<RunLock> {
        let path = run_dir.join("lock");
        let mut o = OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        // Never through a link: a `lock` linked to another file would have it replaced.
        let mut file = crate::util::open_nofollow(&mut o, &path)?;
        // Another process may probe the lock for a moment: retry briefly.
        let mut ok = false;
        for _ in 0..50 {
            if try_flock(&file) {
                ok = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !ok {
            let holder = read_info(&path)
                .map(|i| format!("pid {} on {}", i.pid, i.host))
                .unwrap_or_else(|| "another process".into());
            return Err(crate::error::bad_input(format!("{} is being trained by {holder}", run_dir.display())));
        }
        let info = LockInfo { pid: std::process::id(), host: hostname(), started: crate::util::now_secs() };
        file.set_len(0)?;
        file.write_all(serde_json::to_string(&info)?.as_bytes())?;
        file.sync_data()?;
        Ok(RunLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file's handle (kept open to hold the flock).
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// The lock's recorded owner, if the file exists and parses.
pub fn read_info(path: &Path) -> Option<LockInfo> {
    let mut s = String::new();
    crate::util::open_nofollow(OpenOptions::new().read(true), path).ok()?.read_to_string(&mut s).ok()?;
    serde_json::from_str(&s).ok()
}

/// Whether a live process holds the run's lock (on this host).
pub fn is_held(run_dir: &Path) -> bool {
    let path = run_dir.join("lock");
    let Ok(f) = crate::util::open_nofollow(OpenOptions::new().read(true), &path) else {
        return false;
    };
    if try_flock(&f) {
        // Nobody holds it; our probe's flock is released when `f` closes here.
        false
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_while_alive_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_held(dir.path()));
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert!(is_held(dir.path()));
        let info = read_info(lock.path()).unwrap();
        assert_eq!(info.pid, std::process::id());
        drop(lock);
        assert!(!is_held(dir.path()));
    }
}

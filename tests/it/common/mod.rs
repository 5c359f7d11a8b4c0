//! Helpers shared by the integration tests: the real binary, temp run roots, event files.
#![allow(dead_code)]

pub mod tfevents;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mixscope"))
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join(name)
}

/// A `mixscope` command with a private cache and no network.
pub fn cmd(cache: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env("MIXSCOPE_CACHE", cache).env("HF_HUB_OFFLINE", "1").env_remove("MIXSCOPE_RUNS").env_remove("MIXSCOPE_ASSETS");
    // Not the developer's own ~/.config/mixscope (keymap, default runs root, themes).
    c.env("MIXSCOPE_CONFIG_DIR", cache.join("user-config"));
    c
}

pub fn run(cache: &Path, args: &[&str]) -> Output {
    cmd(cache).args(args).output().expect("running mixscope")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert success and return stdout.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status.code(), stdout(&o), stderr(&o));
    stdout(&o)
}

/// Assert exit code 2 and return stderr.
pub fn bad(o: Output) -> String {
    assert_eq!(o.status.code(), Some(2), "stdout:\n{}\nstderr:\n{}", stdout(&o), stderr(&o));
    let e = stderr(&o);
    assert!(!e.contains("panicked"), "{e}");
    e
}

/// Every event of a run, as JSON values (torn lines skipped).
pub fn events(run_dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

pub fn of_kind<'a>(evs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    evs.iter().filter(|e| e["kind"] == kind).collect()
}

pub fn losses(run_dir: &Path) -> Vec<(u64, f64)> {
    of_kind(&events(run_dir), "train")
        .iter()
        .map(|e| (e["step"].as_u64().unwrap(), e["loss"].as_f64().unwrap()))
        .collect()
}

pub fn last_state(run_dir: &Path) -> Option<String> {
    of_kind(&events(run_dir), "status").last().map(|e| e["state"].as_str().unwrap().to_string())
}

pub fn sha(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Poll until `f` is true or the timeout passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// `mixscope ls --json` as values.
pub fn ls(cache: &Path, root: &Path) -> Vec<serde_json::Value> {
    let out = ok(run(cache, &["ls", "--runs", root.to_str().unwrap(), "--json"]));
    serde_json::from_str(&out).unwrap()
}

pub fn ls_state(cache: &Path, root: &Path, id: &str) -> String {
    ls(cache, root).iter().find(|r| r["id"] == id).map(|r| r["state"].as_str().unwrap().to_string()).unwrap_or_default()
}

/// Ends a supervised run when dropped — also when the test fails — before the test's temporary
/// directory goes, so that no trainer outlives its test: asks it to stop, waits up to 10 s, then
/// kills what is left (the trainer's pid, from `ls --json`).
pub struct EndOnDrop {
    pub cache: PathBuf,
    pub root: PathBuf,
    pub id: String,
}

impl EndOnDrop {
    pub fn new(cache: &Path, root: &Path, id: &str) -> EndOnDrop {
        EndOnDrop { cache: cache.to_path_buf(), root: root.to_path_buf(), id: id.trim().to_string() }
    }
    fn row(&self) -> Option<serde_json::Value> {
        let o = cmd(&self.cache).args(["ls", "--json", "--runs", self.root.to_str()?]).output().ok()?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        v.as_array()?.iter().find(|r| r["id"] == self.id.as_str()).cloned()
    }
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        let alive = |r: &Option<serde_json::Value>| r.as_ref().is_some_and(|r| r["alive"] == true);
        if !alive(&self.row()) {
            return;
        }
        let _ = cmd(&self.cache).args(["stop", &self.id, "--runs", self.root.to_str().unwrap_or(".")]).output();
        if wait_for(Duration::from_secs(10), || !alive(&self.row())) {
            return;
        }
        if let Some(pid) = self.row().and_then(|r| r["pid"].as_u64()) {
            // SAFETY: kill(2) on a pid this test's run reported.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// The revision the fake hub caches of the tests are at.
pub const HUB_REV: &str = "0123456789abcdef0123456789abcdef01234567";

/// A repository's snapshot directory in a hub cache, created as huggingface_hub lays it out:
/// `<kind>s--org--name/refs/main` names [`HUB_REV`], whose files are in `snapshots/<rev>/`.
/// `kind` is `model` or `dataset`.
pub fn hub_snapshot(hub: &Path, kind: &str, repo: &str) -> PathBuf {
    let r = hub.join(format!("{kind}s--{}", repo.replace('/', "--")));
    std::fs::create_dir_all(r.join("refs")).unwrap();
    std::fs::write(r.join("refs").join("main"), HUB_REV).unwrap();
    let s = r.join("snapshots").join(HUB_REV);
    std::fs::create_dir_all(&s).unwrap();
    s
}

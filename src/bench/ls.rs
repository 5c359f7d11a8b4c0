//! What `mixscope ls` and `launch` cost on a large runs root (rows of `bench tui`, next to the
//! TUI's first frame on the same root): both learn every run's state from its run.toml and the
//! ends of its events file, never the whole file.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::Row;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn exe() -> Result<std::path::PathBuf> {
    std::env::current_exe().context("finding the mixscope binary")
}

/// Milliseconds of `f`, median of `rounds`.
fn time(rounds: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut v = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(v))
}

/// A small config `launch` can start on one thread (the trainer is stopped at once).
const TINY: &str = r#"name = "bench-launch"
seed = 1
threads = 1

[model.shape]
hidden_size = 32
intermediate_size = 64
num_hidden_layers = 2
num_attention_heads = 2
max_position_embeddings = 256

[tokenizer]
vocab_size = 512

[data]
tasks = ["mr"]
mixture = "en=1"
heldout = []
seq_len = 64

[train]
max_steps = 1000000
batch_size = 2

[eval]
every = 0

[checkpoint]
every = 1000000
"#;

/// `ls` (a fresh process each time, as a user runs it) and `launch` on `root`; `what` names
/// the root in the rows.
pub fn rows(root: &Path, what: &str) -> Result<Vec<Row>> {
    let exe = exe()?;
    let runs = crate::runs::list(root)?.len();
    let ls = time(3, || {
        let out = Command::new(&exe).args(["ls", "--runs"]).arg(root).output()?;
        if !out.status.success() {
            bail!("mixscope ls failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    })?;
    // In this process, side by side: the status list as `ls` and the scheduler derive it, and
    // the same root's events files read whole (what each did before 2026-12-05).
    let list = time(3, || crate::supervisor::list(root).map(|_| ()))?;
    let whole = time(1, || {
        for r in crate::runs::list(root)? {
            crate::runs::events::read_all(&r.events_path())?;
        }
        Ok(())
    })?;
    let mut rows = vec![Row::new(
        "tui",
        "ls",
        format!(
            "{what}: `mixscope ls`, a fresh process; in-process, the {runs} statuses take {list:.0} ms, reading the files whole {whole:.0} ms ({:.0}× longer)",
            whole / list.max(1e-3)
        ),
        ls,
        "ms",
        "≤ 300",
        ls <= 300.0,
    )];
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, TINY)?;
    // The first launch into a root builds the config's tokenizer into the root's cache (once);
    // the second is what every later launch costs.
    let first = launch_and_stop(&exe, &cfg, root)?;
    let launch = launch_and_stop(&exe, &cfg, root)?;
    rows.push(Row::new(
        "tui",
        "launch",
        format!(
            "{what}: `mixscope launch` of a small config until it returns (the run created, the queue read, its trainer started); the first into this root {:.1} s (its tokenizer built once)",
            first / 1e3
        ),
        launch,
        "ms",
        "≤ 500",
        launch <= 500.0,
    ));
    Ok(rows)
}

/// Milliseconds until `mixscope launch` returns; the run is then stopped and waited for.
fn launch_and_stop(exe: &Path, cfg: &Path, root: &Path) -> Result<f64> {
    let t = Instant::now();
    let out =
        Command::new(exe).env("MIXSCOPE_CPU_BUDGET", "1").args(["launch"]).arg(cfg).arg("--runs").arg(root).output()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        bail!("mixscope launch failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let _ = Command::new(exe).args(["stop", &id, "--runs"]).arg(root).output();
    // The trainer stops at its next step; wait for it to let go of the run.
    let run = crate::runs::RunDir::new(root.join(&id));
    let until = Instant::now() + Duration::from_secs(60);
    while crate::supervisor::status::is_alive(&run) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(ms)
}

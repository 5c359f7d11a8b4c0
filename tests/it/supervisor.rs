//! Supervised runs as real child processes: the queue, pause / resume / stop, crashes, and
//! runs that outlive the command that launched them.

use crate::common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn launch(cache: &Path, root: &Path, sets: &[&str]) -> String {
    let cfg = fixture("tiny.toml");
    let mut c = cmd(cache);
    c.env("MIXSCOPE_CPU_BUDGET", "1").args(["launch", cfg.to_str().unwrap(), "--runs", root.to_str().unwrap()]);
    for s in sets {
        c.args(["--set", s]);
    }
    ok(c.output().unwrap()).trim().to_string()
}

fn ctl(cache: &Path, root: &Path, verb: &str, id: &str) {
    let mut c = cmd(cache);
    c.env("MIXSCOPE_CPU_BUDGET", "1").args([verb, id, "--runs", root.to_str().unwrap()]);
    ok(c.output().unwrap());
}

fn status_times(dir: &Path, state: &str) -> Vec<f64> {
    of_kind(&events(dir), "status")
        .iter()
        .filter(|e| e["state"] == state)
        .map(|e| e["time"].as_f64().unwrap())
        .collect()
}

fn last_step(dir: &Path) -> u64 {
    losses(dir).last().map_or(0, |(s, _)| *s)
}

#[test]
fn with_one_slot_the_second_run_waits_for_the_first() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let a = launch(t.path(), &root, &["max_steps=120"]);
    let b = launch(t.path(), &root, &["max_steps=20", "seed=5"]);
    assert!(wait_for(Duration::from_secs(30), || ls_state(t.path(), &root, &a) == "running"));
    assert_eq!(ls_state(t.path(), &root, &b), "queued");
    assert!(
        wait_for(Duration::from_secs(240), || ls_state(t.path(), &root, &b) == "finished"),
        "{:?}",
        ls(t.path(), &root)
    );
    assert_eq!(ls_state(t.path(), &root, &a), "finished");
    let a_done = status_times(&root.join(&a), "finished")[0];
    let b_start = status_times(&root.join(&b), "running")[0];
    assert!(b_start >= a_done, "b started at {b_start}, before a finished at {a_done}");
}

#[test]
fn pause_resume_and_stop() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let id = launch(t.path(), &root, &["max_steps=100000", "eval_every=0", "checkpoint_every=100000"]);
    let _end = EndOnDrop::new(t.path(), &root, &id);
    let dir = root.join(&id);
    assert!(wait_for(Duration::from_secs(60), || last_step(&dir) >= 5));
    ctl(t.path(), &root, "pause", &id);
    assert!(wait_for(Duration::from_secs(30), || ls_state(t.path(), &root, &id) == "paused"));
    let paused_at = last_step(&dir);
    assert!(
        dir.join("checkpoints").join(paused_at.to_string()).join("state.json").exists(),
        "pause writes a checkpoint"
    );
    // Paused: no process, no new events.
    let row = ls(t.path(), &root).into_iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(row["alive"], false, "{row}");
    let n = events(&dir).len();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(events(&dir).len(), n, "a paused run writes nothing");
    ctl(t.path(), &root, "resume", &id);
    assert!(wait_for(Duration::from_secs(60), || last_step(&dir) > paused_at + 2));
    let after: Vec<u64> = losses(&dir).iter().map(|(s, _)| *s).filter(|s| *s > paused_at).collect();
    assert_eq!(after[0], paused_at + 1, "steps continue from the same step");
    ctl(t.path(), &root, "stop", &id);
    assert!(wait_for(Duration::from_secs(30), || ls_state(t.path(), &root, &id) == "stopped"));
    let end = last_step(&dir);
    assert!(
        dir.join("checkpoints").join(end.to_string()).join("model.safetensors").exists(),
        "stop writes a checkpoint"
    );
    // Run directories are private to their owner.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(dir.join("control")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.join("events.jsonl")).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn pause_hold_keeps_the_trainer_and_its_slot() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let id = launch(t.path(), &root, &["max_steps=100000", "eval_every=0", "checkpoint_every=100000", "pause=hold"]);
    let _end = EndOnDrop::new(t.path(), &root, &id);
    let other = launch(t.path(), &root, &["max_steps=5", "seed=9"]);
    let dir = root.join(&id);
    assert!(wait_for(Duration::from_secs(60), || last_step(&dir) >= 3));
    ctl(t.path(), &root, "pause", &id);
    assert!(wait_for(Duration::from_secs(30), || ls_state(t.path(), &root, &id) == "paused"));
    let row = ls(t.path(), &root).into_iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(row["alive"], true, "the trainer waits, paused: {row}");
    let paused_at = last_step(&dir);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(last_step(&dir), paused_at, "a paused run trains no further");
    assert_eq!(ls_state(t.path(), &root, &other), "queued", "the paused run still holds the one slot");
    ctl(t.path(), &root, "resume", &id);
    assert!(wait_for(Duration::from_secs(30), || last_step(&dir) > paused_at + 1));
    let after: Vec<u64> = losses(&dir).iter().map(|(s, _)| *s).filter(|s| *s > paused_at).collect();
    assert_eq!(after[0], paused_at + 1);
    assert_eq!(status_times(&dir, "queued").len(), 1, "resumed in place, never queued again");
    ctl(t.path(), &root, "stop", &id);
    assert!(wait_for(Duration::from_secs(120), || ls_state(t.path(), &root, &other) == "finished"));
}

#[test]
fn a_killed_trainer_shows_as_failed_with_its_signal() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let id = launch(t.path(), &root, &["max_steps=100000", "eval_every=0"]);
    let _end = EndOnDrop::new(t.path(), &root, &id);
    let dir = root.join(&id);
    assert!(wait_for(Duration::from_secs(60), || last_step(&dir) >= 3));
    let lock: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("lock")).unwrap()).unwrap();
    let pid = lock["pid"].as_u64().unwrap();
    let t0 = Instant::now();
    assert!(std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    assert!(wait_for(Duration::from_secs(2), || ls_state(t.path(), &root, &id) == "failed"), "not failed within 2 s");
    let elapsed = t0.elapsed();
    let row = ls(t.path(), &root).into_iter().find(|r| r["id"] == id).unwrap();
    let msg = row["message"].as_str().unwrap_or_default();
    assert!(msg.contains("signal 9") && msg.contains("SIGKILL"), "{msg}");
    eprintln!("failed reported after {elapsed:?}");
}

#[test]
fn runs_outlive_the_launching_command() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    // `launch` has returned (and its process exited) by the time we get the id.
    let id = launch(t.path(), &root, &["max_steps=100000", "eval_every=0"]);
    let _end = EndOnDrop::new(t.path(), &root, &id);
    let dir = root.join(&id);
    assert!(wait_for(Duration::from_secs(60), || last_step(&dir) >= 2));
    let s1 = last_step(&dir);
    assert!(wait_for(Duration::from_secs(30), || last_step(&dir) > s1 + 5), "the run keeps training");
    assert_eq!(ls_state(t.path(), &root, &id), "running");
    ctl(t.path(), &root, "stop", &id);
    assert!(wait_for(Duration::from_secs(30), || ls_state(t.path(), &root, &id) == "stopped"));
    // Controls on runs in the wrong state are input errors.
    let e = bad(run(t.path(), &["pause", &id, "--runs", root.to_str().unwrap()]));
    assert!(e.contains("stopped"), "{e}");
    let e = bad(run(t.path(), &["stop", "nosuchrun", "--runs", root.to_str().unwrap()]));
    assert!(e.contains("no run 'nosuchrun'"), "{e}");
}

#[test]
fn another_user_cannot_control_a_run() {
    // Acting as another user needs root (CI runs as root); elsewhere there is no other user to be.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to act as another user");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // A copy of the binary the other user can reach (the build directory may be private).
    let exe = t.path().join("mixscope");
    std::fs::copy(bin(), &exe).unwrap();
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args(args)
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("MIXSCOPE_RUNS")
            .output()
            .unwrap()
    };
    let langs = as_nobody(&["data", "langs"]);
    if !langs.status.success() {
        eprintln!("skipped: the other user cannot run the test binary here: {}", stderr(&langs));
        return;
    }
    let root = t.path().join("runs");
    let id = launch(t.path(), &root, &["max_steps=100000", "eval_every=0"]);
    let _end = EndOnDrop::new(t.path(), &root, &id);
    let dir = root.join(&id);
    assert!(wait_for(Duration::from_secs(60), || last_step(&dir) >= 2));
    let rs = root.to_str().unwrap();
    for verb in ["pause", "stop"] {
        let o = as_nobody(&[verb, &id, "--runs", rs]);
        assert!(!o.status.success(), "{verb} as another user succeeded: {}", stdout(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c"])
        .arg(format!("echo '{{\"seq\": 99, \"cmd\": \"stop\"}}' > {}", dir.join("control").display()))
        .output()
        .unwrap();
    assert!(!o.status.success(), "another user wrote the control file");
    let at = last_step(&dir);
    assert!(wait_for(Duration::from_secs(30), || last_step(&dir) > at + 3), "the run was disturbed");
    assert_eq!(ls_state(t.path(), &root, &id), "running");
    ctl(t.path(), &root, "stop", &id);
    assert!(wait_for(Duration::from_secs(30), || ls_state(t.path(), &root, &id) == "stopped"));
}

/// `ls`, the scheduler and reports learn a run's state, step, loss and best from the ends of its
/// events file: on long runs (finished, paused, failed, still being written, queued) every value
/// is what a whole read of the file says, from a few chunks of each file.
#[test]
fn a_runs_summary_is_read_from_the_ends_of_its_events() {
    use mixscope::runs::events::{read_all, Body, State};
    use mixscope::tui::fixtures;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    type End = Option<(State, Option<&'static str>)>;
    let ends: [(&str, End); 4] = [
        ("done", Some((State::Finished, None))),
        ("held", Some((State::Paused, Some("paused at step 20000")))),
        ("broke", Some((State::Failed, Some("out of memory")))),
        ("live", None),
    ];
    for (i, (id, end)) in ends.into_iter().enumerate() {
        let spec = fixtures::Spec {
            id,
            name: id,
            parent: Some(("base", 6000)),
            mixture: "multilingual=0.4",
            tasks: &["mr", "sm"],
            heldout: &["pt"],
            from: 6000,
            to: 26_000,
            max_steps: 30_000,
            // The last evaluation and checkpoint at the last step, as a trainer's last step.
            eval_every: 2000,
            start_time: 1.8e9,
            seconds_per_step: 0.25,
            end,
            salt: i as u64,
        };
        fixtures::write_run(&root, &spec).unwrap();
    }
    let all = mixscope::supervisor::list(&root).unwrap();
    assert_eq!(all.len(), 4);
    for s in &all {
        let path = s.dir.join("events.jsonl");
        let size = std::fs::metadata(&path).unwrap().len();
        let (events, _, _) = read_all(&path).unwrap();
        let loss = events.iter().rev().find_map(|e| match e.body {
            Body::Train { loss, .. } => Some(loss),
            _ => None,
        });
        let mut best: Option<(f64, u64)> = None;
        for e in &events {
            if let Body::Checkpoint { eval_loss: Some(l), .. } = e.body {
                if best.is_none_or(|(b, _)| l < b) {
                    best = Some((l, e.step));
                }
            }
        }
        assert_eq!(s.step, 26_000, "{}", s.id);
        assert_eq!(s.loss, loss, "{}", s.id);
        assert_eq!(s.best_loss.zip(s.best_step), best, "{}", s.id);
        assert!(best.is_some());
        assert_eq!(s.started, events.first().map(|e| e.time), "{}", s.id);
        assert_eq!(s.updated, events.last().map(|e| e.time), "{}", s.id);
        assert!(size > 3_000_000, "{}: a long run's file ({size} bytes)", s.id);
        if s.id != "live" {
            // A run with a final status: its last chunk says everything.
            assert!(s.read_bytes <= 3 * 65_536, "{}: {} of {size} bytes read", s.id, s.read_bytes);
        }
    }
    let state = |id: &str| all.iter().find(|s| s.id == id).unwrap().state;
    assert_eq!(state("done"), State::Finished);
    assert_eq!(state("held"), State::Paused);
    assert_eq!(state("broke"), State::Failed);
    // No process holds the live run and it ended without a final status: it failed.
    assert_eq!(state("live"), State::Failed);
}

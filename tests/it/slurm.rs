//! Runs on a real single-node Slurm cluster: submitted with sbatch, queued and run by Slurm,
//! paused (the allocation is released), forked, resumed as a new job, stopped while pending,
//! cancelled and timed out by Slurm; a sweep as one job per point; the TUI's view of them.
//!
//! The cluster comes from `scripts/slurm-cluster.sh` (`test` starts one, runs this file and
//! stops it; CI does that on every run). Without `SLURM_CONF` naming a cluster that answers,
//! these tests say so and pass, unless `MIXSCOPE_SLURM_TEST=require`, when that is a failure.

use crate::common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The tests share one small cluster: one at a time, so each sees Slurm's queue as it expects.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether a Slurm cluster answers; panics when one is required and none does.
fn cluster() -> bool {
    let up = std::env::var_os("SLURM_CONF").is_some()
        && Command::new("sinfo")
            .args(["-h", "-o", "%T"])
            .output()
            .is_ok_and(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("down"));
    if !up {
        let required = std::env::var("MIXSCOPE_SLURM_TEST").is_ok_and(|v| v == "require");
        assert!(
            !required,
            "MIXSCOPE_SLURM_TEST=require but no Slurm cluster answers (SLURM_CONF unset or sinfo fails)"
        );
        eprintln!(
            "skipped: no Slurm cluster (start one with scripts/slurm-cluster.sh start DIR and export SLURM_CONF)"
        );
    }
    up
}

/// Cancels every job the test's runs submitted, also when the test fails.
struct CancelJobs(std::path::PathBuf);

impl Drop for CancelJobs {
    fn drop(&mut self) {
        let Ok(dirs) = std::fs::read_dir(&self.0) else { return };
        for d in dirs.flatten() {
            let text = std::fs::read_to_string(d.path().join("slurm.jsonl")).unwrap_or_default();
            for l in text.lines() {
                if let Some(job) =
                    serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["job"].as_str().map(String::from))
                {
                    let _ = Command::new("scancel").arg(job).output();
                }
            }
        }
    }
}

fn launch(cache: &Path, root: &Path, sets: &[&str]) -> String {
    let cfg = fixture("tiny.toml");
    let mut c = cmd(cache);
    c.args(["launch", cfg.to_str().unwrap(), "--runs", root.to_str().unwrap(), "--launcher", "slurm"]);
    for s in sets {
        c.args(["--set", s]);
    }
    ok(c.output().unwrap()).trim().to_string()
}

fn row(cache: &Path, root: &Path, id: &str) -> serde_json::Value {
    ls(cache, root).into_iter().find(|r| r["id"] == id).unwrap_or_default()
}

fn ctl(cache: &Path, root: &Path, args: &[&str]) -> String {
    let mut c = cmd(cache);
    c.args(args).args(["--runs", root.to_str().unwrap()]);
    ok(c.output().unwrap())
}

fn steps(dir: &Path) -> Vec<u64> {
    of_kind(&events(dir), "train").iter().map(|e| e["step"].as_u64().unwrap()).collect()
}

fn squeue_state(job: &str) -> String {
    let o = Command::new("squeue").args(["-h", "--states=all", "-o", "%T", "-j", job]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

const LONG: [&str; 4] = ["max_steps=100000", "eval_every=0", "checkpoint_every=100000", "slurm.cpus=1"];

#[test]
fn slurm_runs_queue_pause_fork_resume_cancel_and_time_out() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !cluster() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let _cancel = CancelJobs(root.clone());
    let host = String::from_utf8(Command::new("hostname").arg("-s").output().unwrap().stdout).unwrap();
    let host = host.trim();
    let wait = |secs: u64, what: &str, f: &mut dyn FnMut() -> bool| {
        assert!(wait_for(Duration::from_secs(secs), f), "{what}: {:#?}", ls(t.path(), &root));
    };

    // A partition Slurm does not have is bad input, found before any run exists.
    let mut c = cmd(t.path());
    c.args(["launch", fixture("tiny.toml").to_str().unwrap(), "--runs", root.to_str().unwrap()]).args([
        "--launcher",
        "slurm",
        "--set",
        "slurm.partition=nope",
    ]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("slurm") && stderr(&o).contains("partition"), "{}", stderr(&o));
    assert!(
        !root.exists()
            || std::fs::read_dir(&root).unwrap().flatten().all(|e| e.file_name().to_string_lossy().starts_with('.'))
    );

    // T: a one-minute time limit in partition `tiny`; A: long. Together they fill the node's
    // two CPUs, so B waits in Slurm's queue.
    let tl = launch(t.path(), &root, &[&LONG[..], &["name=tl", "slurm.partition=tiny", "slurm.time=1"]].concat());
    let a = launch(t.path(), &root, &[&LONG[..], &["name=a"]].concat());
    wait(60, "T and A run", &mut || {
        let (rt, ra) = (row(t.path(), &root, &tl), row(t.path(), &root, &a));
        rt["state"] == "running" && ra["state"] == "running" && steps(&root.join(&a)).len() > 5
    });
    let ra = row(t.path(), &root, &a);
    assert_eq!(ra["alive"], true);
    assert_eq!(ra["slurm"]["node"], host, "{ra}");
    assert_eq!(ra["slurm"]["state"], "RUNNING", "{ra}");
    let a_job1 = ra["slurm"]["job"].as_str().unwrap().to_string();
    let b = launch(t.path(), &root, &["max_steps=30", "seed=5", "name=b", "slurm.cpus=1"]);
    let rb = row(t.path(), &root, &b);
    assert_eq!(rb["state"], "queued", "{rb}");
    assert_eq!(rb["slurm"]["state"], "PENDING", "{rb}");
    assert!(rb["message"].as_str().unwrap().contains("pending"), "{rb}");
    // `ls` shows the job and its node like a device.
    let text = ctl(t.path(), &root, &["ls"]);
    assert!(text.contains(&format!("job {a_job1}@{host}")), "{text}");

    // Pause A: it checkpoints and its job ends, releasing the allocation, so B starts.
    ctl(t.path(), &root, &["pause", &a]);
    wait(60, "A paused, its job completed", &mut || {
        let r = row(t.path(), &root, &a);
        r["state"] == "paused" && r["alive"] == false && r["slurm"]["state"] == "COMPLETED"
    });
    let paused_at = *steps(&root.join(&a)).last().unwrap();
    assert!(root.join(&a).join("checkpoints").join(paused_at.to_string()).join("state.json").exists());
    wait(90, "B ran in A's place and finished", &mut || row(t.path(), &root, &b)["state"] == "finished");

    // Fork A at its pause checkpoint with a new mixture: a new Slurm job from that state.
    let fork = ctl(
        t.path(),
        &root,
        &["fork", &a, "--mix", "multilingual=0.4", "--name", "c", "--max-steps", &(paused_at + 20).to_string()],
    );
    let c = fork.trim().to_string();
    wait(90, "the fork finished", &mut || row(t.path(), &root, &c)["state"] == "finished");
    let rc = row(t.path(), &root, &c);
    assert_eq!(rc["parent"], a.as_str());
    assert_eq!(rc["fork_step"], paused_at);
    assert!(rc["slurm"]["job"].is_string(), "{rc}");
    assert_eq!(steps(&root.join(&c)).first(), Some(&(paused_at + 1)), "the fork continues from the checkpoint");

    // Resume A: a second job, continuing from the step after the pause.
    ctl(t.path(), &root, &["resume", &a]);
    wait(60, "A runs again", &mut || steps(&root.join(&a)).iter().filter(|s| **s > paused_at).count() > 3);
    let ra = row(t.path(), &root, &a);
    assert_eq!(ra["slurm"]["jobs"], 2, "{ra}");
    let a_job2 = ra["slurm"]["job"].as_str().unwrap().to_string();
    assert_ne!(a_job2, a_job1);
    assert_eq!(steps(&root.join(&a)).iter().find(|s| **s > paused_at), Some(&(paused_at + 1)));

    // D waits behind T and A; stopping it while pending cancels its job.
    let d = launch(t.path(), &root, &["max_steps=30", "name=d", "slurm.cpus=1"]);
    wait(20, "D pending", &mut || row(t.path(), &root, &d)["slurm"]["state"] == "PENDING");
    let d_job = row(t.path(), &root, &d)["slurm"]["job"].as_str().unwrap().to_string();
    ctl(t.path(), &root, &["stop", &d]);
    let rd = row(t.path(), &root, &d);
    assert_eq!(rd["state"], "stopped", "{rd}");
    assert!(rd["message"].as_str().unwrap().contains(&format!("Slurm job {d_job} cancelled")), "{rd}");
    assert_eq!(squeue_state(&d_job), "CANCELLED");
    assert!(steps(&root.join(&d)).is_empty(), "D never trained");

    // Someone cancels A's job behind mixscope's back: failed, with Slurm's words, recorded.
    let o = Command::new("scancel").arg(&a_job2).output().unwrap();
    assert!(o.status.success());
    wait(30, "A failed as cancelled", &mut || row(t.path(), &root, &a)["state"] == "failed");
    let ra = row(t.path(), &root, &a);
    assert_eq!(ra["message"], format!("Slurm job {a_job2} CANCELLED on {host}"), "{ra}");
    let evs = events(&root.join(&a));
    let last = of_kind(&evs, "status").last().copied().unwrap().clone();
    assert_eq!(last["state"], "failed", "the verdict is written to events.jsonl");

    // E's trainer hangs (SIGSTOP): the first stop goes to its control file and is not
    // answered; the second cancels the job with scancel.
    let e = launch(t.path(), &root, &[&LONG[..], &["name=e"]].concat());
    wait(60, "E trains", &mut || steps(&root.join(&e)).len() > 3 && row(t.path(), &root, &e)["pid"].is_u64());
    let pid = row(t.path(), &root, &e)["pid"].as_u64().unwrap() as i32;
    // SAFETY: kill(2) on the pid of this test's own trainer.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    let e_job = row(t.path(), &root, &e)["slurm"]["job"].as_str().unwrap().to_string();
    ctl(t.path(), &root, &["stop", &e]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(row(t.path(), &root, &e)["state"], "running", "a hung trainer does not answer");
    ctl(t.path(), &root, &["stop", &e]);
    wait(30, "E stopped through scancel", &mut || {
        let r = row(t.path(), &root, &e);
        r["state"] == "stopped" && r["alive"] == false
    });
    let stops: Vec<String> = of_kind(&events(&root.join(&e)), "status")
        .iter()
        .filter_map(|s| s["message"].as_str().map(String::from))
        .collect();
    assert!(
        stops.iter().any(|m| m.contains(&format!("Slurm job {e_job} cancelled (the trainer had not answered)"))),
        "{stops:?}"
    );
    assert_eq!(squeue_state(&e_job), "CANCELLED");

    // Slurm ends T at its time limit.
    wait(150, "T timed out", &mut || row(t.path(), &root, &tl)["state"] == "failed");
    let rt = row(t.path(), &root, &tl);
    assert!(rt["message"].as_str().unwrap().contains("TIMEOUT"), "{rt}");

    // The TUI shows a Slurm run's job and node in its detail pane.
    let store = mixscope::tui::store::Store::load(&root);
    let ra = store.runs.iter().find(|r| r.id == a).unwrap();
    assert_eq!(ra.state, mixscope::runs::events::State::Failed);
    assert_eq!(ra.slurm.as_ref().map(|v| v.short()), Some(format!("job {a_job2}@{host}")));
    let mut app = mixscope::tui::app::App::new(
        store,
        mixscope::tui::theme::Theme::dark(),
        mixscope::tui::keymap::Keymap::default_map(),
    );
    // Runs of one config but for seed and name are a group (a, e and tl here): listed when
    // expanded.
    app.sel.expanded = app.groups.list.iter().map(|g| g.id.clone()).collect();
    app.rebuild_tree();
    app.sel.selected = app
        .sel
        .rows
        .iter()
        .position(|r| r.group.is_none() && r.sweep.is_none() && app.store.runs[r.run].id == a)
        .unwrap();
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 48)).unwrap();
    app.derive();
    term.draw(|f| mixscope::tui::ui::draw(f, &app)).unwrap();
    let buf = term.backend().buffer();
    let screen: String =
        (0..48).map(|y| (0..160).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>() + "\n").collect();
    assert!(screen.contains(&format!("slurm job {a_job2}@{host} CANCELLED")), "{screen}");
}

#[test]
fn a_sweep_goes_to_slurm_as_one_job_per_point() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !cluster() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let _cancel = CancelJobs(root.clone());
    let mut c = cmd(t.path());
    c.args(["sweep", fixture("sweep-tiny.toml").to_str().unwrap(), "--runs", root.to_str().unwrap()]).args([
        "--grid",
        "n=0,8",
        "--launcher",
        "slurm",
        "--wait",
    ]);
    let out = ok(c.output().unwrap());
    assert!(out.contains("2 runs"), "{out}");
    let rows = ls(t.path(), &root);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let mut jobs = Vec::new();
    for r in &rows {
        assert_eq!(r["state"], "finished", "{r}");
        assert!(r["sweep"]["id"].is_string(), "{r}");
        jobs.push(r["slurm"]["job"].as_str().unwrap().to_string());
    }
    jobs.dedup();
    assert_eq!(jobs.len(), 2, "one job per point");
}

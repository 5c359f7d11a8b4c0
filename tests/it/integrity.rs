//! What mixscope guarantees about the files it touches: it never changes the mode of a
//! directory it did not create; a pause or stop that arrives at any moment (an evaluation
//! included) leaves a run that resumes; two commands creating one run directory leave one
//! true record.

use crate::common;
use common::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn tiny_train(cache: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = cmd(cache);
    c.args(["train", fixture("tiny.toml").to_str().unwrap(), "-q"]);
    for s in ["max_steps=2", "eval_every=0", "checkpoint_every=2"] {
        c.args(["--set", s]);
    }
    c.args(extra);
    c
}

/// `train --run-dir` under a sticky world-writable directory and `train` into a group-shared
/// runs root leave both modes as they were; the run directories mixscope creates are 0700; a
/// run's base model goes to the runs root, not beside a `--run-dir` elsewhere.
#[test]
fn directories_mixscope_did_not_create_keep_their_modes() {
    let t = tempfile::tempdir().unwrap();
    let shared = t.path().join("X/t");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let root = t.path().join("runs");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o2775)).unwrap();
    let dir = shared.join("myrun");
    ok(tiny_train(t.path(), &["--run-dir", dir.to_str().unwrap(), "--runs", root.to_str().unwrap()]).output().unwrap());
    assert_eq!(mode(&shared), 0o1777, "the run directory's parent keeps its mode");
    assert_eq!(mode(&dir) & 0o777, 0o700, "the run directory mixscope created is private");
    ok(tiny_train(t.path(), &["--runs", root.to_str().unwrap()]).output().unwrap());
    assert_eq!(mode(&root), 0o2775, "a group-shared runs root keeps its mode");
    // A parent mixscope creates for --run-dir is its own: private.
    let deep = t.path().join("new/deeper/run");
    ok(tiny_train(t.path(), &["--run-dir", deep.to_str().unwrap(), "--runs", root.to_str().unwrap()])
        .output()
        .unwrap());
    assert_eq!(mode(&t.path().join("new")) & 0o777, 0o700);

    // A run that starts from a base: the base goes to the runs root (MIXSCOPE_RUNS here).
    let tiny = std::fs::read_to_string(fixture("tiny.toml")).unwrap();
    let base = tiny
        .replace("name = \"tiny\"", "name = \"base\"")
        .replace("tasks = [\"mr\", \"sm\", \"if\"]", "tasks = [\"lm\"]")
        .replace("heldout = [\"pt\"]", "heldout = []")
        .replace("max_steps = 30", "max_steps = 2")
        .replace("generate_n = 4", "generate_n = 0");
    std::fs::write(t.path().join("base.toml"), base).unwrap();
    let sft = "name = \"sft\"\nthreads = 1\n[init]\nconfig = \"base.toml\"\n[data]\ntasks = [\"mr\"]\n\
               mixture = \"en=1\"\nseq_len = 128\n[train]\nmax_steps = 2\nbatch_size = 4\n\
               [eval]\nevery = 0\nn = 4\ngenerate_n = 0\n[checkpoint]\nevery = 2\n";
    let cfg = t.path().join("sft.toml");
    std::fs::write(&cfg, sft).unwrap();
    let elsewhere = shared.join("sft");
    let env_root = t.path().join("env-runs");
    ok(cmd(t.path())
        .env("MIXSCOPE_RUNS", &env_root)
        .args(["train", cfg.to_str().unwrap(), "--run-dir", elsewhere.to_str().unwrap(), "-q"])
        .output()
        .unwrap());
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&shared), ["myrun", "sft"], "nothing but the run beside --run-dir");
    assert!(names(&env_root).iter().any(|n| n.starts_with("base-")), "{:?}", names(&env_root));
    assert_eq!(mode(&shared), 0o1777);
}

fn launch(cache: &Path, root: &Path, sets: &[&str]) -> String {
    let mut c = cmd(cache);
    c.env("MIXSCOPE_CPU_BUDGET", "1").args(["launch", fixture("tiny.toml").to_str().unwrap(), "--runs"]);
    c.arg(root);
    for s in sets {
        c.args(["--set", s]);
    }
    ok(c.output().unwrap()).trim().to_string()
}

fn ctl(cache: &Path, root: &Path, verb: &str, id: &str) {
    ok(cmd(cache).env("MIXSCOPE_CPU_BUDGET", "1").args([verb, id, "--runs"]).arg(root).output().unwrap());
}

/// Whether the run's events hold a train event at `step` (read as the file grows).
fn trained(dir: &Path, step: u64) -> bool {
    losses(dir).iter().any(|(s, _)| *s == step)
}

/// The eval events at `step`, as (task, lang) pairs.
fn evals_at(dir: &Path, step: u64) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = of_kind(&events(dir), "eval")
        .iter()
        .filter(|e| e["step"] == step)
        .map(|e| (e["task"].as_str().unwrap().to_string(), e["lang"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

/// A pause, then a stop, each sent while the trainer evaluates: both are obeyed, both resumes
/// go on training (they used to pause or stop again at once, every time), and the interrupted
/// evaluations run when the run resumes, each once.
#[test]
fn a_pause_or_stop_during_an_evaluation_resumes_and_the_evaluation_runs() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    // An evaluation long enough (~1 s or more) to be caught in the middle.
    let id = launch(
        t.path(),
        &root,
        &[
            "max_steps=30",
            "eval.every=10",
            "checkpoint.every=10",
            "eval.n=64",
            "eval.generate_n=96",
            "eval.max_new_tokens=64",
        ],
    );
    let _end = EndOnDrop::new(t.path(), &root, &id);
    let dir = root.join(&id);
    for (step, verb, state) in [(10u64, "pause", "paused"), (20, "stop", "stopped")] {
        assert!(wait_for(Duration::from_secs(120), || trained(&dir, step)), "no train event at step {step}");
        ctl(t.path(), &root, verb, &id);
        assert!(
            wait_for(Duration::from_secs(60), || ls_state(t.path(), &root, &id) == state),
            "{verb}: {:?}",
            ls(t.path(), &root)
        );
        let log = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
        assert!(
            log.contains(&format!("eval at step {step} interrupted by a request")),
            "the {verb} arrived during the evaluation at step {step}:\n{log}"
        );
        let st: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("checkpoints/{step}/state.json"))).unwrap())
                .unwrap();
        assert_eq!(st["eval_pending"], true, "{st}");
        assert!(st["sha256"]["model.safetensors"].is_string(), "rewritten, state.json keeps its checksums: {st}");
        ctl(t.path(), &root, "resume", &id);
        assert!(
            wait_for(Duration::from_secs(120), || trained(&dir, step + 1)),
            "resumed after the {verb}, the run trains on: {:?}",
            of_kind(&events(&dir), "status")
        );
    }
    assert!(wait_for(Duration::from_secs(120), || ls_state(t.path(), &root, &id) == "finished"));
    let last = evals_at(&dir, 30);
    assert!(!last.is_empty());
    for step in [10, 20] {
        assert_eq!(evals_at(&dir, step), last, "the evaluation at step {step} ran once, whole, after the resume");
    }
    let states: Vec<String> =
        of_kind(&events(&dir), "status").iter().map(|e| e["state"].as_str().unwrap().to_string()).collect();
    assert_eq!(states.iter().filter(|s| *s == "paused").count(), 1, "{states:?}");
    assert_eq!(states.iter().filter(|s| *s == "stopped").count(), 1, "{states:?}");
    // The checkpoint each evaluation belongs to records it as done, with its selection loss.
    for step in [10, 20] {
        let p = dir.join(format!("checkpoints/{step}/state.json"));
        if let Ok(b) = std::fs::read(p) {
            let st: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert!(st.get("eval_pending").is_none(), "{st}");
            assert!(st["eval_loss"].is_number(), "{st}");
        }
    }
}

/// Two `train` commands creating the same new run directory with different configs: one
/// trains, the other is refused before it writes anything, and run.toml is the config the run
/// trained on.
#[test]
fn two_commands_creating_one_run_directory_leave_one_true_record() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    // The tokenizer is trained once, before the race.
    ok(tiny_train(t.path(), &["--runs", root.to_str().unwrap()]).output().unwrap());
    for round in 0..4 {
        let dir = t.path().join(format!("race{round}"));
        let spawn = |seed: &str| {
            tiny_train(t.path(), &["--run-dir", dir.to_str().unwrap(), "--runs", root.to_str().unwrap()])
                .args(["--set", &format!("seed={seed}"), "--set", "max_steps=20"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("11"), spawn("22"));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let (winner, loser) = match (a.status.success(), b.status.success()) {
            (true, false) => ("11", b),
            (false, true) => ("22", a),
            _ => panic!("exactly one wins: {:?} {:?} {}{}", a.status, b.status, stderr(&a), stderr(&b)),
        };
        assert_eq!(loser.status.code(), Some(2), "{}", stderr(&loser));
        let e = stderr(&loser);
        // Refused while the winner trains, or (on a loaded machine, where the loser starts only
        // after the winner finished) refused as a run of another config: nothing written either way.
        assert!(
            e.contains("being trained by")
                || e.contains("another command created a run there")
                || e.contains("was created from a different config"),
            "{e}"
        );
        let run_toml: toml::Value = toml::from_str(&std::fs::read_to_string(dir.join("run.toml")).unwrap()).unwrap();
        assert_eq!(run_toml["seed"].as_integer().unwrap().to_string(), winner, "round {round}");
        let evs = events(&dir);
        let started = of_kind(&evs, "status").iter().filter(|e| e["state"] == "running").count();
        assert_eq!(started, 1, "one trainer's record: {evs:?}");
        assert_eq!(last_state(&dir).as_deref(), Some("finished"));
        // The run resumes with the config it trained on (nothing to train: it has finished).
        let o = tiny_train(t.path(), &["--run-dir", dir.to_str().unwrap(), "--runs", root.to_str().unwrap()])
            .args(["--set", &format!("seed={winner}"), "--set", "max_steps=20"])
            .output()
            .unwrap();
        ok(o);
    }
}

/// The non-hidden entries of a runs root (what `ls` would look at), sorted.
fn visible(root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(root) else { return Vec::new() };
    let mut v: Vec<String> =
        rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| !n.starts_with('.')).collect();
    v.sort();
    v
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dst = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&e.path(), &dst);
        } else if ft.is_file() {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// `checkpoint.keep_last = 0` is bad input (pruning would delete the checkpoint just written),
/// refused before a run exists; and pruning keeps the latest checkpoint whatever a run.toml says
/// (one written before the check).
#[test]
fn keep_last_zero_is_refused_and_pruning_keeps_the_latest_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let r = root.to_str().unwrap();
    let e = bad(tiny_train(t.path(), &["--runs", r, "--set", "checkpoint.keep_last=0"]).output().unwrap());
    assert!(e.contains("--set checkpoint.keep_last=0: checkpoint.keep_last: must be at least 1"), "{e}");
    assert!(visible(&root).is_empty(), "{:?}", visible(&root));

    let dir = root.join("r");
    let d = dir.to_str().unwrap();
    ok(tiny_train(t.path(), &["--run-dir", d, "--runs", r, "--set", "checkpoint.keep_last=1"]).output().unwrap());
    let toml_path = dir.join("run.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap();
    assert!(text.contains("keep_last = 1"), "{text}");
    std::fs::write(&toml_path, text.replace("keep_last = 1", "keep_last = 0")).unwrap();
    ok(tiny_train(t.path(), &["--run-dir", d, "--runs", r, "--set", "checkpoint.keep_last=1", "--set", "max_steps=4"])
        .output()
        .unwrap());
    let last = of_kind(&events(&dir), "checkpoint").last().map(|e| e["path"].as_str().unwrap().to_string());
    assert_eq!(last.as_deref(), Some("checkpoints/4"));
    assert!(dir.join("checkpoints/4/model.safetensors").exists(), "the latest checkpoint is kept");
}

/// `fork RUN --at S` where checkpoint S holds weights only (a demo run's first step: the shipped
/// base's last) forks with fresh optimizer moments, and says so: on the command line, in the
/// fork event and in the child's first status. The child trains and finishes.
#[test]
fn a_fork_at_a_weights_only_checkpoint_starts_with_fresh_optimizer_moments() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let r = root.to_str().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/demo.toml");
    let mut c = cmd(t.path());
    c.args(["train", demo.to_str().unwrap(), "--runs", r, "-q"]);
    for s in ["name=sft", "max_steps=1", "eval.n=2", "eval.generate_n=0", "threads=1"] {
        c.args(["--set", s]);
    }
    ok(c.output().unwrap());
    let sft = ls(t.path(), &root).into_iter().find(|x| x["name"] == "sft").expect("the sft run");
    let sft_id = sft["id"].as_str().unwrap().to_string();
    assert_eq!(sft["checkpoints"], serde_json::json!([6000, 6001]), "{sft}");
    assert!(!root.join(&sft_id).join("checkpoints/6000/optimizer.safetensors").exists());

    let o = cmd(t.path())
        .env("MIXSCOPE_CPU_BUDGET", "1")
        .args(["fork", &sft_id, "--at", "6000", "--mix", "en=1", "--runs", r])
        .output()
        .unwrap();
    let said = format!("{}{}", ok(o.clone()), stderr(&o));
    let child = stdout(&o).lines().last().unwrap().trim().to_string();
    let _end = EndOnDrop::new(t.path(), &root, &child);
    let dir = root.join(&child);
    assert!(
        wait_for(Duration::from_secs(300), || matches!(
            ls_state(t.path(), &root, &child).as_str(),
            "finished" | "failed"
        )),
        "{:?}",
        ls(t.path(), &root)
    );
    assert_eq!(ls_state(t.path(), &root, &child), "finished", "{:?}", of_kind(&events(&dir), "status"));
    assert!(said.contains("fresh optimizer moments"), "{said}");
    let fork = of_kind(&events(&dir), "fork")[0].clone();
    assert_eq!(fork["fresh_optimizer"], true, "{fork}");
    let first = of_kind(&events(&dir), "status").into_iter().find(|e| e["state"] == "running").cloned().unwrap();
    assert!(first["message"].as_str().unwrap().contains("fresh optimizer moments"), "{first}");
    assert!(dir.join("checkpoints/6001/optimizer.safetensors").exists());
}

/// Damaged checkpoints are refused, naming the file, exit 2, by everything that loads one
/// (resume, fork, export, samples): a state.json naming another step, or whose token count
/// disagrees with the run's events, flipped bytes in the weights or the optimizer state.
/// Checkpoints written without checksums (older runs) still load.
#[test]
fn a_corrupt_checkpoint_fails_loudly_naming_the_file() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let r = root.to_str().unwrap();
    let good = root.join("good");
    let sets = ["--set", "max_steps=4", "--set", "checkpoint_every=2"];
    let train = |dir: &Path, max: &str| {
        let mut c = tiny_train(t.path(), &["--run-dir", dir.to_str().unwrap(), "--runs", r]);
        c.args(sets).args(["--set", max]);
        c.output().unwrap()
    };
    ok(train(&good, "max_steps=4"));
    let copy = |name: &str| {
        let d = root.join(name);
        copy_tree(&good, &d);
        d
    };
    let flip = |p: &Path| {
        let mut b = std::fs::read(p).unwrap();
        let mid = b.len() / 2;
        for x in &mut b[mid..mid + 2000] {
            *x ^= 0xff;
        }
        std::fs::write(p, b).unwrap();
    };
    let edit_state = |d: &Path, f: &dyn Fn(&mut serde_json::Value)| {
        let p = d.join("checkpoints/4/state.json");
        let mut v = json(&p);
        f(&mut v);
        std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    };

    let d = copy("step");
    edit_state(&d, &|v| v["step"] = 1.into());
    let e = bad(train(&d, "max_steps=6"));
    assert!(e.contains("checkpoints/4/state.json") && e.contains("step 1"), "{e}");
    assert!(!of_kind(&events(&d), "train").iter().any(|e| e["step"].as_u64() > Some(4)), "nothing trained");

    let d = copy("tokens");
    edit_state(&d, &|v| v["tokens"] = (v["tokens"].as_u64().unwrap() + 1).into());
    let e = bad(train(&d, "max_steps=6"));
    assert!(e.contains("checkpoints/4/state.json") && e.contains("events.jsonl"), "{e}");

    for f in ["model.safetensors", "optimizer.safetensors"] {
        let d = copy(&format!("flip-{}", &f[..5]));
        flip(&d.join("checkpoints/4").join(f));
        let e = bad(train(&d, "max_steps=6"));
        assert!(e.contains(&format!("checkpoints/4/{f}")) && e.contains("SHA-256"), "{e}");
        assert!(!of_kind(&events(&d), "train").iter().any(|e| e["step"].as_u64() > Some(4)), "nothing trained");
    }

    // Fork, export and samples of the damaged checkpoint: refused, nothing created.
    let d = root.join("flip-model");
    let before = visible(&root);
    let e = bad(run(t.path(), &["fork", d.to_str().unwrap(), "--at", "4", "--mix", "en=1", "--runs", r]));
    assert!(e.contains("checkpoints/4/model.safetensors"), "{e}");
    assert_eq!(visible(&root), before, "a refused fork creates nothing");
    let out = t.path().join("export");
    let e = bad(run(t.path(), &["export", d.to_str().unwrap(), "--out", out.to_str().unwrap()]));
    assert!(e.contains("checkpoints/4/model.safetensors"), "{e}");
    assert!(!out.exists());
    let e = bad(run(t.path(), &["samples", d.to_str().unwrap(), "--n", "1"]));
    assert!(e.contains("checkpoints/4/model.safetensors"), "{e}");

    // Each checkpoint records the SHA-256 of its files; one without (written before they were)
    // is accepted.
    let st = json(&good.join("checkpoints/4/state.json"));
    for f in ["model.safetensors", "optimizer.safetensors"] {
        let h = st["sha256"][f].as_str().unwrap_or_else(|| panic!("no checksum of {f}: {st}"));
        assert_eq!(h, sha(&good.join("checkpoints/4").join(f)));
    }
    let d = copy("legacy");
    edit_state(&d, &|v| {
        v.as_object_mut().unwrap().remove("sha256");
    });
    ok(train(&d, "max_steps=6"));
    assert_eq!(last_state(&d).as_deref(), Some("finished"));
}

/// Links inside a run directory are not followed for writes: a run whose events.jsonl, lock,
/// control, checkpoints/ or tensorboard/ is a symbolic link is refused (exit 2, naming it), and
/// a supervised run whose stdout.log or stderr.log is one fails with the reason. What the links
/// point to is left as it was.
#[test]
fn links_inside_a_run_directory_are_not_followed_for_writes() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let r = root.to_str().unwrap();
    let good = root.join("good");
    ok(tiny_train(t.path(), &["--run-dir", good.to_str().unwrap(), "--runs", r]).output().unwrap());
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let link = |d: &Path, entry: &str| -> PathBuf {
        let target = outside.join(format!("{}-{entry}", d.file_name().unwrap().to_string_lossy()));
        let p = d.join(entry);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
            std::fs::create_dir(&target).unwrap();
        } else {
            let _ = std::fs::remove_file(&p);
            std::fs::write(&target, "precious\n").unwrap();
        }
        std::os::unix::fs::symlink(&target, &p).unwrap();
        target
    };
    let untouched = |target: &Path| {
        if target.is_dir() {
            assert!(std::fs::read_dir(target).unwrap().next().is_none(), "{} was written into", target.display());
        } else {
            assert_eq!(std::fs::read_to_string(target).unwrap(), "precious\n", "{} was written", target.display());
        }
    };
    for entry in ["events.jsonl", "lock", "control", "checkpoints", "tensorboard", "samples"] {
        let d = root.join(format!("link-{}", entry.replace('.', "-")));
        copy_tree(&good, &d);
        std::fs::create_dir_all(d.join("tensorboard")).unwrap();
        std::fs::write(d.join("control"), "{\"seq\":0,\"cmd\":\"resume\"}").unwrap();
        let target = link(&d, entry);
        let e = bad(tiny_train(t.path(), &["--run-dir", d.to_str().unwrap(), "--runs", r, "--set", "max_steps=4"])
            .output()
            .unwrap());
        assert!(e.contains(&format!("{entry}: is a symbolic link")), "{entry}: {e}");
        untouched(&target);
    }
    // The supervised trainer's logs: the run fails with the reason.
    for entry in ["stdout.log", "stderr.log"] {
        let id = format!("link-{}", entry.replace('.', "-"));
        let d = root.join(&id);
        copy_tree(&good, &d);
        let cfg = std::fs::read_to_string(d.join("run.toml")).unwrap();
        std::fs::write(d.join("run.toml"), cfg.replace("max_steps = 2", "max_steps = 4")).unwrap();
        let line = format!(
            "{{\"v\":1,\"kind\":\"status\",\"step\":2,\"time\":{},\"state\":\"stopped\",\"message\":\"by the test\"}}\n",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("events.jsonl"))
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        let target = link(&d, entry);
        ok(run(t.path(), &["resume", &id, "--runs", r]));
        let _end = EndOnDrop::new(t.path(), &root, &id);
        assert!(
            wait_for(Duration::from_secs(60), || ls_state(t.path(), &root, &id) == "failed"),
            "{:?}",
            ls(t.path(), &root)
        );
        let row = ls(t.path(), &root).into_iter().find(|x| x["id"] == id.as_str()).unwrap();
        let msg = row["message"].as_str().unwrap_or_default();
        assert!(msg.contains(&format!("{entry}: is a symbolic link")), "{row}");
        untouched(&target);
    }
}

/// After a pause, the control file deleted, then resume: a stop still reaches the trainer (a
/// request numbered from 1 again used to be taken for one already handled).
#[test]
fn stop_works_after_the_control_file_was_deleted() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let id = launch(t.path(), &root, &["max_steps=100000", "eval.every=0", "checkpoint.every=50"]);
    let _end = EndOnDrop::new(t.path(), &root, &id);
    let dir = root.join(&id);
    assert!(wait_for(Duration::from_secs(120), || trained(&dir, 3)));
    ctl(t.path(), &root, "pause", &id);
    assert!(wait_for(Duration::from_secs(60), || ls_state(t.path(), &root, &id) == "paused"));
    let paused_at = losses(&dir).last().unwrap().0;
    std::fs::remove_file(dir.join("control")).unwrap();
    ctl(t.path(), &root, "resume", &id);
    assert!(wait_for(Duration::from_secs(120), || trained(&dir, paused_at + 2)), "resumed");
    ctl(t.path(), &root, "stop", &id);
    assert!(
        wait_for(Duration::from_secs(60), || ls_state(t.path(), &root, &id) == "stopped"),
        "the stop was obeyed: {:?}",
        of_kind(&events(&dir), "status")
    );
}

/// `--run-dir` naming a directory that holds files and is not a run is refused before anything
/// is written into it.
#[test]
fn a_run_dir_that_is_neither_empty_nor_a_run_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("notes");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("todo.txt"), "keep me\n").unwrap();
    let e = bad(tiny_train(
        t.path(),
        &["--run-dir", dir.to_str().unwrap(), "--runs", t.path().join("runs").to_str().unwrap()],
    )
    .output()
    .unwrap());
    assert!(e.contains("neither empty nor a run") && e.contains("'todo.txt'"), "{e}");
    assert_eq!(visible(&dir), ["todo.txt"]);
    assert_eq!(std::fs::read_to_string(dir.join("todo.txt")).unwrap(), "keep me\n");
}

/// A runs root mixscope creates, and what it creates in it (its cache, a run, its checkpoints,
/// a shipped base installed there), are private (0700): new directories are the owner's alone.
#[test]
fn a_new_runs_root_and_the_directories_mixscope_makes_in_it_are_private() {
    let t = tempfile::tempdir().unwrap();
    // The tokenizer cache in the runs root (no MIXSCOPE_CACHE): the root is made by it.
    let root = t.path().join("runs");
    let mut c = tiny_train(t.path(), &["--runs", root.to_str().unwrap()]);
    c.env_remove("MIXSCOPE_CACHE");
    ok(c.output().unwrap());
    let run = root.join(visible(&root).first().expect("a run"));
    for d in [root.clone(), root.join(".cache"), run.clone(), run.join("checkpoints")] {
        assert_eq!(mode(&d) & 0o777, 0o700, "{}", d.display());
    }
    // A shipped base installed into a new root.
    let root2 = t.path().join("runs2");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/demo.toml");
    let mut c = cmd(t.path());
    c.args(["train", demo.to_str().unwrap(), "--runs", root2.to_str().unwrap(), "-q"]);
    for s in ["max_steps=1", "eval.n=2", "eval.generate_n=0", "threads=1"] {
        c.args(["--set", s]);
    }
    ok(c.output().unwrap());
    let base = root2.join(visible(&root2).into_iter().find(|n| n.starts_with("demo-base")).expect("the base"));
    for d in [root2.clone(), base.clone(), base.join("checkpoints"), base.join("checkpoints/6000")] {
        assert_eq!(mode(&d) & 0o777, 0o700, "{}", d.display());
    }
}

//! Crash safety: a trainer killed with SIGKILL at random moments — during steps, evaluations,
//! checkpoint writes and pruning — loses nothing that was written and resumes every time, and
//! the run it finally completes is bit-for-bit the run that was never killed.

use crate::common;
use common::*;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const KILLS: usize = 20;
const CKPT_EVERY: u64 = 5;
const MAX_STEPS: &str = "max_steps=600";

fn train_cmd(cache: &Path, dir: &Path) -> std::process::Command {
    let mut c = cmd(cache);
    c.args(["train", fixture("tiny.toml").to_str().unwrap(), "--run-dir", dir.to_str().unwrap(), "-q"]);
    for s in [MAX_STEPS, "checkpoint_every=5", "eval_every=20", "checkpoint.keep_last=2"] {
        c.args(["--set", s]);
    }
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// Every checkpoint directory under its step's name is whole: its three files exist and its
/// state.json parses and names that step.
fn assert_checkpoints_whole(dir: &Path) -> Vec<u64> {
    let mut steps = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir.join("checkpoints")) else { return steps };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(step) = name.parse::<u64>() else {
            assert!(name.starts_with('.'), "unexpected entry {name} in checkpoints/");
            continue;
        };
        for f in ["model.safetensors", "optimizer.safetensors", "state.json"] {
            assert!(e.path().join(f).exists(), "checkpoint {step} is missing {f}");
        }
        let st: serde_json::Value = serde_json::from_slice(&std::fs::read(e.path().join("state.json")).unwrap())
            .unwrap_or_else(|err| panic!("checkpoint {step}: state.json does not parse: {err}"));
        assert_eq!(st["step"].as_u64(), Some(step), "checkpoint {step}: state.json names another step");
        steps.push(step);
    }
    steps.sort_unstable();
    steps
}

/// The last train step in the events, and the number of lines that do not parse.
fn last_train_step(dir: &Path) -> (Option<u64>, usize) {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    let mut last = None;
    let mut bad = 0;
    for l in text.lines() {
        match serde_json::from_str::<serde_json::Value>(l) {
            Ok(e) if e["kind"] == "train" => last = e["step"].as_u64(),
            Ok(_) => {}
            Err(_) => bad += 1,
        }
    }
    (last, bad)
}

/// The loss of every step, as last written (steps redone after a kill are written again).
fn final_losses(dir: &Path) -> BTreeMap<u64, f64> {
    losses(dir).into_iter().collect()
}

#[test]
fn kill_9_at_random_moments_then_resume_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path();
    let dir = t.path().join("runs/killed");
    // The run never killed, first: it also trains the tokenizer into the cache, so that the
    // kills below land in training rather than in tokenizer training.
    let straight = t.path().join("runs/straight");
    let out = train_cmd(cache, &straight).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261127);
    let mut history: Vec<u8> = Vec::new();
    let mut kills = 0;
    let mut torn = 0;
    let mut tb_torn = 0;
    let mut seen_files = Vec::new();
    while kills < KILLS {
        let before = last_train_step(&dir).0;
        let latest_ckpt = assert_checkpoints_whole(&dir).last().copied();
        let offset = history.len();
        let mut child = train_cmd(cache, &dir).spawn().unwrap();
        let wait = Duration::from_millis(rng.random_range(150..900));
        std::thread::sleep(wait);
        if child.try_wait().unwrap().is_some() {
            break; // finished before this kill
        }
        child.kill().unwrap(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        kills += 1;

        // The events written before are intact: the file only grew.
        let now = std::fs::read(dir.join("events.jsonl")).unwrap_or_default();
        assert!(now.starts_with(&history), "kill {kills}: events.jsonl lost or rewrote history");
        history = now;
        let (at, bad) = last_train_step(&dir);
        torn = torn.max(bad);
        let ckpts = assert_checkpoints_whole(&dir);
        eprintln!("kill {kills} after {wait:?}: last train step {at:?}, checkpoints {ckpts:?}");
        // Its TensorBoard file (one per trainer process) holds whole records, each with good
        // CRCs, and at most one torn record at its end; the file says where this trainer
        // started, so that TensorBoard drops the steps it trained again.
        let files = tfevents::files(&dir.join("tensorboard"));
        assert!(files.len() <= kills, "{} TensorBoard files after {kills} trainers", files.len());
        for f in &files {
            let (recs, torn) = tfevents::read(f);
            tb_torn += usize::from(torn > 0);
            if let Some(first) = recs.first() {
                assert_eq!(first.what, tfevents::What::FileVersion("brain.Event:2".into()));
            }
        }
        if let Some(f) = files.last().filter(|f| !seen_files.contains(*f)) {
            if let Some(start) = tfevents::read(f).0.get(1) {
                assert_eq!(start.what, tfevents::What::Session(1), "{}", f.display());
                assert_eq!(start.step, latest_ckpt.unwrap_or(0) + 1, "{}: START step", f.display());
            }
        }
        seen_files = files;
        // The restarted trainer started right after the latest whole checkpoint, so it redid
        // at most one checkpoint interval.
        if let Some(first_new) = first_train_step(&history[offset..]) {
            let from = latest_ckpt.unwrap_or(0);
            assert_eq!(first_new, from + 1, "kill {kills}: resumed at {first_new}, latest checkpoint {from}");
            let redone = before.unwrap_or(0).saturating_sub(from);
            assert!(redone <= CKPT_EVERY, "kill {kills}: redid {redone} steps");
        }
    }
    assert!(kills >= KILLS / 2, "the run finished after {kills} kills: make it longer");
    let ckpts = assert_checkpoints_whole(&dir);
    assert!(ckpts.last().is_some_and(|&s| s >= 50), "the kills left the run at {ckpts:?}: too early to test much");

    // Resume to the end; the completed run equals one that was never killed.
    let out = train_cmd(cache, &dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(last_state(&dir).as_deref(), Some("finished"));
    assert_eq!(final_losses(&dir), final_losses(&straight), "losses differ from the run never killed");
    assert_eq!(
        sha(&dir.join("checkpoints/600/model.safetensors")),
        sha(&straight.join("checkpoints/600/model.safetensors")),
        "final weights differ from the run never killed"
    );
    // What TensorBoard shows of the killed run's files equals the run's final events.
    let shown = tfevents::scalars(&dir.join("tensorboard"));
    let expected: BTreeMap<u64, f32> = final_losses(&dir).into_iter().map(|(s, l)| (s, l as f32)).collect();
    assert_eq!(shown["train/loss"], expected, "TensorBoard's train/loss after the kills");
    let mut straight_shown = tfevents::scalars(&straight.join("tensorboard"));
    let mut shown = shown;
    for m in [&mut shown, &mut straight_shown] {
        m.remove("train/tokens_per_s"); // a wall-clock figure, the one value that may differ
    }
    assert!(shown.keys().any(|t| t.starts_with("eval/")), "{:?}", shown.keys());
    for (tag, pts) in &straight_shown {
        let got = shown.get(tag).cloned().unwrap_or_default();
        let diff: Vec<_> = pts.iter().filter(|(s, v)| got.get(s) != Some(v)).take(5).collect();
        let extra: Vec<_> = got.keys().filter(|s| !pts.contains_key(s)).take(5).collect();
        assert!(
            diff.is_empty() && extra.is_empty(),
            "TensorBoard's {tag} differs from the run never killed: {diff:?} (killed run: {:?}), extra steps {extra:?}",
            diff.iter().map(|(s, _)| got.get(s)).collect::<Vec<_>>()
        );
    }
    assert_eq!(shown.keys().collect::<Vec<_>>(), straight_shown.keys().collect::<Vec<_>>());
    eprintln!("{tb_torn} torn TensorBoard record(s) over the kills");
    // Torn lines (a kill in the middle of a write) are skipped by readers; the mixscope reader
    // agrees with the run's state.
    let ls = ok(run(cache, &["ls", "--runs", t.path().join("runs").to_str().unwrap(), "--json"]));
    let v: serde_json::Value = serde_json::from_str(&ls).unwrap();
    let me = v.as_array().unwrap().iter().find(|r| r["id"] == "killed").unwrap();
    assert_eq!(me["state"], "finished");
    assert_eq!(me["step"], 600);
    eprintln!("{kills} kills survived; at most {torn} torn line(s) at once");
}

/// The step of the first train event in a stretch of events.jsonl.
fn first_train_step(bytes: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["kind"] == "train")
        .and_then(|e| e["step"].as_u64())
}

/// Bad input of every kind, table-driven: exit 2, a message that names the place, no panic,
/// and no run directory left behind.
#[test]
fn bad_input_exits_2_naming_the_place_and_creates_nothing() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(d.join(name), bytes).unwrap();
        d.join(name).to_str().unwrap().to_string()
    };
    let user = |name: &str, jsonl: &[u8]| {
        write(&format!("{name}.jsonl"), jsonl);
        write(
            &format!("{name}.toml"),
            format!("[data]\nfiles = [\"{name}.jsonl\"]\ntasks = [\"mr\", \"chat\"]\nmixture = \"en=1\"\n").as_bytes(),
        )
    };
    let ok_line = br#"{"prompt":"hi","response":"yo","lang":"en","task":"chat"}"#;
    let huge = format!(r#"{{"prompt":"{}","response":"b","lang":"en","task":"chat"}}"#, "a".repeat(2 << 20));
    // A local model directory with a valid config.json and a corrupt weight file.
    std::fs::create_dir_all(d.join("lm")).unwrap();
    write(
        "lm/config.json",
        br#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":512,"hidden_size":32,
            "intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":2,"max_position_embeddings":64}"#,
    );
    write("lm/model.safetensors", &[0xff; 300]);
    std::fs::create_dir_all(d.join("lm-trunc")).unwrap();
    std::fs::copy(d.join("lm/config.json"), d.join("lm-trunc/config.json")).unwrap();
    let mut trunc = 40u64.to_le_bytes().to_vec();
    trunc.extend_from_slice(br#"{"w":{"dtype":"F32","shape":[64],"data_offsets":[0,256]}}"#);
    write("lm-trunc/model.safetensors", &trunc[..48]);
    let mut trunc2 = (trunc.len() as u64 - 8).to_le_bytes().to_vec();
    trunc2.extend_from_slice(&trunc[8..]);
    write("lm-trunc/model.safetensors", &trunc2);

    let cases: Vec<(String, &str)> = vec![
        (write("malformed.toml", b"[train\nmax_steps = 3\n"), "malformed.toml:1:7"),
        (write("nested.toml", b"[model.shape]\nhidden = 3\n"), "nested.toml:2:1: unknown field `hidden`"),
        (write("type.toml", b"seed = \"x\"\n"), "type.toml:1:8"),
        (write("range.toml", b"[train]\nlr = -1.0\n"), "range.toml:2:6: train.lr"),
        (write("inf.toml", b"[train]\nlr = inf\n"), "train.lr: must be a positive number (got inf)"),
        (write("batch.toml", b"[train]\nbatch_size = 0\n"), "train.batch_size: must be at least 1"),
        (write("threads.toml", b"threads = -2\n"), "threads.toml:1:11"),
        (write("neg.toml", b"[data]\nmixture = \"en=-1,es=1\"\n"), "data.mixture"),
        (write("zero.toml", b"[data]\nmixture = \"en=0,es=0\"\n"), "data.mixture"),
        (write("nan.toml", b"[data]\nmixture = \"en=nan,es=1\"\n"), "nan is not a finite number"),
        (write("dup.toml", b"[data]\nmixture = \"en=1,en=2\"\n"), "language 'en' is listed twice"),
        (write("lang.toml", b"[data]\nmixture = \"en=1,xx=1\"\n"), "unknown language 'xx'"),
        (write("task.toml", b"[data]\ntasks = [\"xx\"]\n"), "data.tasks: unknown task 'xx'"),
        (write("overlap.toml", b"[data]\nseen = [\"es\"]\nheldout = [\"es\"]\n"), "both seen"),
        (write("nofile.toml", b"[data]\nfiles = [\"nope.jsonl\"]\n"), "nope.jsonl: no such file"),
        (
            user("utf8", &[ok_line.as_slice(), b"\n{\"prompt\":\"\xff\xfe\"}\n"].concat()),
            "utf8.jsonl:2:12: invalid UTF-8",
        ),
        (user("missing", br#"{"prompt":"hi","lang":"en","task":"chat"}"#), "missing.jsonl:1: missing field `response`"),
        (user("empty", br#"{"prompt":"hi","response":"","lang":"en","task":"chat"}"#), "empty.jsonl:1: empty response"),
        (user("notjson", b"{\"prompt\":\"hi\",\n"), "notjson.jsonl:1:"),
        (user("huge", huge.as_bytes()), "huge.jsonl:1: line is"),
        (write("corrupt.toml", b"[model]\nsource = \"lm\"\n"), "lm/model.safetensors: not a readable safetensors file"),
        (write("trunc.toml", b"[model]\nsource = \"lm-trunc\"\n"), "tensor 'w' ends at byte 256"),
        ("/nonexistent/cfg.toml".into(), "no such config file"),
        (write("launcher.toml", b"launcher = \"k8s\"\n"), "launcher.toml:1:12: launcher: 'k8s' is not local or slurm"),
        (write("slurmkey.toml", b"[slurm]\nnodes = 2\n"), "slurmkey.toml:2:1: unknown field `nodes`"),
        (write("slurmcpus.toml", b"[slurm]\ncpus = 0\n"), "slurmcpus.toml:2:8: slurm.cpus: must be at least 1"),
        (write("slurmextra.toml", b"[slurm]\nextra = [\"exclusive\"]\n"), "'exclusive' is not an sbatch option"),
        (write("slurmhold.toml", b"launcher = \"slurm\"\npause = \"hold\"\n"), "releases its allocation when paused"),
    ];
    let rd = d.join("runs/x");
    for (cfg, want) in &cases {
        let e = bad(cmd(d).current_dir(d).args(["train", cfg, "--run-dir", rd.to_str().unwrap()]).output().unwrap());
        assert!(e.contains(want), "{cfg}: expected {want:?} in:\n{e}");
        assert!(!rd.exists(), "{cfg}: bad input left a run directory");
    }

    // Forks and runs that do not exist, steps with no checkpoint, a run dir full of garbage.
    let root = d.join("runs");
    let root_s = root.to_str().unwrap();
    let p = root.join("p");
    let mut o = cmd(d);
    o.args(["train", fixture("tiny.toml").to_str().unwrap(), "--run-dir", p.to_str().unwrap(), "-q"]);
    assert!(o.args(["--set", "max_steps=12"]).status().unwrap().success());
    let e = bad(run(d, &["fork", "p", "--at", "7", "--mix", "en=1", "--runs", root_s]));
    assert!(e.contains("--at 7: run p has no checkpoint at step 7 (checkpoints: 10 12)"), "{e}");
    let e = bad(run(d, &["fork", "nope", "--mix", "en=1", "--runs", root_s]));
    assert!(e.contains("no run 'nope'"), "{e}");
    let e = bad(run(d, &["fork", "p", "--mix", "en=1,zz=2", "--runs", root_s]));
    assert!(e.contains("unknown language 'zz'"), "{e}");
    std::fs::create_dir_all(root.join("garbage")).unwrap();
    std::fs::write(root.join("garbage/run.toml"), "not toml [[[").unwrap();
    std::fs::write(root.join("garbage/events.jsonl"), b"\xff\xfe{\"v\":1,\n\0\0\0garbage\n").unwrap();
    let ls: serde_json::Value = serde_json::from_str(&ok(run(d, &["ls", "--json", "--runs", root_s]))).unwrap();
    let by_id = |id: &str| ls.as_array().unwrap().iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("p")["state"], "finished", "other runs are unaffected");
    let g = by_id("garbage");
    assert_eq!(g["state"], "failed");
    assert!(g["message"].as_str().unwrap().contains("run.toml:1:5"), "{g}");
    let e = bad(run(d, &["resume", "garbage", "--runs", root_s]));
    assert!(e.contains("run.toml:1:5"), "{e}");
    let e = bad(run(d, &["fork", "garbage", "--mix", "en=1", "--runs", root_s]));
    assert!(e.contains("run.toml"), "{e}");
    eprintln!("{} bad inputs tried", cases.len() + 6);
}

/// A write failure in the middle of a checkpoint (the file-size limit stands in for a full
/// disk: the same failing `write`, without needing to mount a small filesystem) keeps the
/// previous checkpoint whole and loadable, marks the run failed with the reason, and a later
/// resume continues exactly.
#[test]
fn a_failed_checkpoint_write_keeps_the_previous_checkpoint_and_fails_the_run() {
    use std::os::unix::process::CommandExt;
    let t = tempfile::tempdir().unwrap();
    let cache = t.path();
    let dir = t.path().join("runs/r");
    let sets = |c: &mut std::process::Command, steps: &str| {
        c.args(["train", fixture("tiny.toml").to_str().unwrap(), "--run-dir", dir.to_str().unwrap(), "-q"]);
        c.args(["--set", steps, "--set", "checkpoint_every=10", "--set", "eval_every=10"]);
    };
    let mut c = cmd(cache);
    sets(&mut c, "max_steps=10");
    assert!(c.status().unwrap().success());
    let model = dir.join("checkpoints/10/model.safetensors");
    let before = sha(&model);
    let limit = std::fs::metadata(&model).unwrap().len() / 2;
    assert!(std::fs::metadata(dir.join("events.jsonl")).unwrap().len() * 3 < limit, "the test needs a larger model");

    let mut c = cmd(cache);
    sets(&mut c, "max_steps=20");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("File too large") || err.contains("No space left"), "{err}");
    assert_eq!(last_state(&dir).as_deref(), Some("failed"));
    let ls: serde_json::Value =
        serde_json::from_str(&ok(run(cache, &["ls", "--json", "--runs", t.path().join("runs").to_str().unwrap()])))
            .unwrap();
    let msg = ls[0]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("checkpoint") || msg.contains("model"), "{msg}");
    assert_eq!(assert_checkpoints_whole(&dir), vec![10], "no half-written checkpoint 20");
    assert_eq!(sha(&model), before, "the previous checkpoint is untouched");

    // With room again, the run resumes from step 10 and ends as a run that never failed.
    let mut c = cmd(cache);
    sets(&mut c, "max_steps=20");
    assert!(c.status().unwrap().success());
    let straight = t.path().join("runs/straight");
    let mut c = cmd(cache);
    c.args(["train", fixture("tiny.toml").to_str().unwrap(), "--run-dir", straight.to_str().unwrap(), "-q"]);
    c.args(["--set", "max_steps=20", "--set", "checkpoint_every=10", "--set", "eval_every=10"]);
    assert!(c.status().unwrap().success());
    assert_eq!(final_losses(&dir), final_losses(&straight));
    assert_eq!(
        sha(&dir.join("checkpoints/20/model.safetensors")),
        sha(&straight.join("checkpoints/20/model.safetensors"))
    );
}

/// Bytes a directory tree takes, each file rounded up to 4 KiB pages (as tmpfs counts them).
fn pages_used(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() { pages_used(&e.path()) + 4096 } else { m.len().div_ceil(4096) * 4096 };
    }
    total
}

#[test]
fn a_full_disk_fails_the_run_with_no_space_left_and_keeps_the_previous_checkpoint() {
    // A real full disk: a small tmpfs in a private mount namespace (needs the right to mount
    // there, as root in CI; elsewhere the file-size-limit test above stands in for it).
    let probe = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d && rmdir $d"])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: cannot mount a tmpfs in a private mount namespace here");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let cache = t.path();
    let dir = t.path().join("runs/r");
    let sets = ["--set", "checkpoint_every=10", "--set", "eval_every=10"];
    let mut c = cmd(cache);
    c.args(["train", fixture("tiny.toml").to_str().unwrap(), "--run-dir", dir.to_str().unwrap(), "-q"]);
    c.args(["--set", "max_steps=10"]).args(sets);
    assert!(c.status().unwrap().success());
    let model = dir.join("checkpoints/10/model.safetensors");
    let before = sha(&model);
    // Room for what is there and half of the next checkpoint's weights.
    let size = pages_used(&dir) + std::fs::metadata(&model).unwrap().len() / 2;
    let mnt = t.path().join("small");
    let out = t.path().join("after");
    std::fs::create_dir_all(&mnt).unwrap();
    let script = format!(
        "mount -t tmpfs -o size={size} tmpfs {mnt} && cp -a {dir} {mnt}/r && \
         {bin} train {cfg} --run-dir {mnt}/r -q --set max_steps=20 --set checkpoint_every=10 --set eval_every=10 2>{t}/err; \
         echo $? > {t}/rc; {bin} ls --json --runs {mnt} > {t}/ls.json 2>&1; cp -a {mnt}/r {out}",
        mnt = mnt.display(),
        dir = dir.display(),
        bin = bin().display(),
        cfg = fixture("tiny.toml").display(),
        t = t.path().display(),
        out = out.display(),
    );
    let st = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env("MIXSCOPE_CACHE", cache)
        .env("HF_HUB_OFFLINE", "1")
        .status()
        .unwrap();
    assert!(st.success(), "the namespace script failed");
    let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap();
    assert_ne!(read("rc").trim(), "0", "the run cannot succeed on a full disk");
    let err = read("err");
    assert!(err.contains("No space left on device") && !err.contains("panicked"), "{err}");
    let ls: serde_json::Value = serde_json::from_str(&read("ls.json")).expect("ls works on the full disk");
    assert_eq!(ls[0]["state"], "failed", "{ls}");
    assert!(ls[0]["message"].as_str().unwrap().contains("No space left on device"), "{ls}");
    assert_eq!(assert_checkpoints_whole(&out), vec![10], "no half-written checkpoint 20");
    assert_eq!(sha(&out.join("checkpoints/10/model.safetensors")), before, "the previous checkpoint is intact");
    let (_, bad_lines) = last_train_step(&out);
    assert_eq!(bad_lines, 0, "the event log is whole");

    // With room again it resumes from step 10 and ends as the run that never failed.
    let mut c = cmd(cache);
    c.args(["train", fixture("tiny.toml").to_str().unwrap(), "--run-dir", out.to_str().unwrap(), "-q"]);
    c.args(["--set", "max_steps=20"]).args(sets);
    assert!(c.status().unwrap().success());
    let straight = t.path().join("runs/straight");
    let mut c = cmd(cache);
    c.args(["train", fixture("tiny.toml").to_str().unwrap(), "--run-dir", straight.to_str().unwrap(), "-q"]);
    c.args(["--set", "max_steps=20"]).args(sets);
    assert!(c.status().unwrap().success());
    assert_eq!(
        sha(&out.join("checkpoints/20/model.safetensors")),
        sha(&straight.join("checkpoints/20/model.safetensors"))
    );
}

/// A trainer killed after saving a checkpoint but before logging it: the resumed trainer logs
/// that checkpoint with its selection loss (from state.json), so the best-checkpoint rule and
/// TensorBoard's `eval_loss/selection` still see it.
#[test]
fn a_checkpoint_saved_but_not_logged_is_logged_when_the_run_resumes() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("runs/cut");
    let train = || {
        let mut c = cmd(t.path());
        c.args(["train", fixture("tiny.toml").to_str().unwrap(), "--run-dir", dir.to_str().unwrap(), "-q"]);
        ok(c.output().unwrap());
    };
    train();
    // Cut the log just before the last checkpoint's event, as a kill there would have.
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().rposition(|l| l.contains("\"kind\":\"checkpoint\"")).unwrap();
    let cut: serde_json::Value = serde_json::from_str(lines[at]).unwrap();
    assert_eq!(cut["step"], 30);
    let want = cut["eval_loss"].as_f64().expect("an eval ran at the last step");
    std::fs::write(dir.join("events.jsonl"), lines[..at].iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();

    train();
    let evs = events(&dir);
    let ckpts: Vec<_> = of_kind(&evs, "checkpoint").into_iter().filter(|e| e["step"] == 30).collect();
    assert_eq!(ckpts.len(), 1, "{ckpts:?}");
    assert_eq!(ckpts[0]["eval_loss"].as_f64(), Some(want));
    assert_eq!(ckpts[0]["path"], cut["path"]);
    assert_eq!(last_state(&dir).as_deref(), Some("finished"));
    // Resuming again adds nothing: the checkpoint is logged now.
    train();
    assert_eq!(of_kind(&events(&dir), "checkpoint").len(), of_kind(&evs, "checkpoint").len());
}

/// The non-hidden entries of a directory, sorted (a runs root's runs, and anything else).
fn visible(root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(root) else { return Vec::new() };
    let mut v: Vec<String> =
        rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| !n.starts_with('.')).collect();
    v.sort();
    v
}

fn tiny_sets(c: &mut std::process::Command, sets: &[&str]) {
    for s in sets {
        c.args(["--set", s]);
    }
}

/// Settings that parse but cannot run, given with `--set` to `train` and `launch` (and a
/// mixture to `fork`): exit 2 naming the place, before any run directory exists.
#[test]
fn bad_settings_exit_2_naming_the_place_before_anything_is_created() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let root = d.join("runs");
    let r = root.to_str().unwrap();
    let tiny = fixture("tiny.toml");
    let cases: [(&str, &str); 6] = [
        ("threads=100000", "--set threads=100000: threads: must be at most"),
        ("checkpoint.keep_last=0", "--set checkpoint.keep_last=0: checkpoint.keep_last: must be at least 1"),
        ("mixture=en=1,budget=0", "column 6: budget"),
        ("device=cuda:7", "--set device=cuda:7: device"),
        ("train.freeze=[\"nonexistent\"]", "train.freeze: 'nonexistent' names no parameter"),
        ("data.heldout=[\"en\"]", "data.heldout: 'en'"),
    ];
    for (set, want) in cases {
        for verb in ["train", "launch"] {
            let mut c = cmd(d);
            c.args([verb, tiny.to_str().unwrap(), "--runs", r]);
            tiny_sets(&mut c, &["max_steps=2", set]);
            let e = bad(c.output().unwrap());
            assert!(e.contains(want), "{verb} --set {set}: expected {want:?} in:\n{e}");
            assert!(visible(&root).is_empty(), "{verb} --set {set} left {:?}", visible(&root));
        }
    }
    // A fork with a mixture that cannot train creates nothing either.
    let mut c = cmd(d);
    c.args(["train", tiny.to_str().unwrap(), "--run-dir", root.join("p").to_str().unwrap(), "-q"]);
    tiny_sets(&mut c, &["max_steps=2", "eval_every=0"]);
    ok(c.output().unwrap());
    let e = bad(run(d, &["fork", "p", "--mix", "en=1,budget=0", "--runs", r]));
    assert!(e.contains("column 6: budget"), "{e}");
    assert_eq!(visible(&root), ["p"]);
}

/// A user-data file that is a FIFO: each time mixscope opens it to read, the test's open for
/// writing returns, so the test knows where the process is and acts there before it sends the
/// rows.
struct Fifo {
    path: std::path::PathBuf,
}

impl Fifo {
    fn new(path: &Path) -> Fifo {
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        Fifo { path: path.to_path_buf() }
    }

    /// The write end, once a reader has opened the FIFO (None if the child ended first).
    fn wait_reader(&self, child: &mut std::process::Child) -> Option<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_secs(120) {
            match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&self.path) {
                Ok(f) => {
                    // SAFETY: fcntl on a descriptor we own.
                    unsafe {
                        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
                        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
                    }
                    return Some(f);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
                Err(e) => panic!("{}: {e}", self.path.display()),
            }
            if child.try_wait().unwrap().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

const USER_ROWS: usize = 24;

fn user_rows() -> String {
    (0..USER_ROWS)
        .map(|i| format!("{{\"prompt\":\"hello {i}\",\"response\":\"world {i}\",\"lang\":\"en\",\"task\":\"chat\"}}\n"))
        .collect()
}

/// A config of the tiny model whose data includes `data.jsonl` (a FIFO, or a file) beside it.
fn fifo_config(dir: &Path) -> std::path::PathBuf {
    let tiny = std::fs::read_to_string(fixture("tiny.toml")).unwrap();
    let cfg = tiny
        .replace("tasks = [\"mr\", \"sm\", \"if\"]", "tasks = [\"mr\", \"chat\"]\nfiles = [\"data.jsonl\"]")
        .replace("mixture = \"en=0.6,es=0.2,ja=0.2\"", "mixture = \"en=1\"")
        .replace("heldout = [\"pt\"]", "heldout = []");
    let p = dir.join("fifo.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

/// Start `train` on a FIFO data file and stop it where its trainer's setup opens the data (the
/// run directory exists, no step has run); returns the child and the FIFO's write end.
fn train_held_in_setup(cache: &Path, cfg: &Path, dir: &Path, fifo: &Fifo) -> (std::process::Child, std::fs::File) {
    let mut child = cmd(cache)
        .args(["train", cfg.to_str().unwrap(), "--run-dir", dir.to_str().unwrap(), "-q"])
        .args(["--runs", dir.parent().unwrap().to_str().unwrap()])
        .args(["--set", "max_steps=20", "--set", "eval_every=0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The rows are read once to check them before the run is created ...
    let mut w = fifo.wait_reader(&mut child).expect("train reads its data to check it");
    std::io::Write::write_all(&mut w, user_rows().as_bytes()).unwrap();
    drop(w);
    assert!(wait_for(Duration::from_secs(60), || dir.join("run.toml").exists()), "the run is created");
    // ... and again by the trainer's setup.
    let w = fifo.wait_reader(&mut child).expect("the trainer reads its data in setup");
    (child, w)
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(120) {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().ok();
    panic!("the trainer did not end");
}

/// Ctrl-C while the trainer sets up (here: while it reads its data) ends it before it trains:
/// the run is `stopped`, no step trained, no checkpoint written, no `running` status.
#[test]
fn ctrl_c_during_setup_stops_the_trainer_before_it_trains() {
    let t = tempfile::tempdir().unwrap();
    let cfg = fifo_config(t.path());
    let fifo = Fifo::new(&t.path().join("data.jsonl"));
    let dir = t.path().join("runs/r");
    let (mut child, mut w) = train_held_in_setup(t.path(), &cfg, &dir, &fifo);
    // SAFETY: kill(2) on our child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    std::io::Write::write_all(&mut w, user_rows().as_bytes()).unwrap();
    drop(w);
    wait_exit(&mut child);
    let statuses: Vec<serde_json::Value> = of_kind(&events(&dir), "status").into_iter().cloned().collect();
    assert!(!statuses.iter().any(|e| e["state"] == "running"), "{statuses:?}");
    let last = statuses.last().expect("a final status");
    assert_eq!(last["state"], "stopped", "{statuses:?}");
    assert!(last["message"].as_str().unwrap_or_default().contains("during setup"), "{last}");
    assert!(of_kind(&events(&dir), "train").is_empty());
    assert!(visible(&dir.join("checkpoints")).is_empty(), "no checkpoint: {:?}", visible(&dir.join("checkpoints")));
}

/// A trainer killed (SIGKILL) during its setup leaves a run that `ls` shows as failed, with the
/// reason, and that `resume` starts again (it used to stay `queued`, with nothing to resume).
#[test]
fn a_trainer_killed_during_setup_leaves_a_failed_run_that_resumes() {
    let t = tempfile::tempdir().unwrap();
    let cfg = fifo_config(t.path());
    let data = t.path().join("data.jsonl");
    let fifo = Fifo::new(&data);
    let root = t.path().join("runs");
    let dir = root.join("r");
    let (mut child, w) = train_held_in_setup(t.path(), &cfg, &dir, &fifo);
    child.kill().unwrap();
    wait_exit(&mut child);
    drop(w);
    let row = ls(t.path(), &root).into_iter().find(|x| x["id"] == "r").expect("the run is listed");
    assert_eq!(row["state"], "failed", "{row}");
    assert!(row["message"].as_str().unwrap_or_default().contains("setup"), "{row}");
    // With its data a plain file again, the run resumes and finishes.
    std::fs::remove_file(&data).unwrap();
    std::fs::write(&data, user_rows()).unwrap();
    ok(run(t.path(), &["resume", "r", "--runs", root.to_str().unwrap()]));
    let _end = EndOnDrop::new(t.path(), &root, "r");
    assert!(
        wait_for(Duration::from_secs(120), || ls_state(t.path(), &root, "r") == "finished"),
        "{:?}",
        ls(t.path(), &root)
    );
}

/// Run names starting with '.' (or climbing out with `..`) still make runs that `ls` lists
/// and ids find: ids never start with '.'.
#[test]
fn names_starting_with_a_dot_make_runs_that_ls_lists() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let r = root.to_str().unwrap();
    let mut c = cmd(t.path());
    c.args(["train", fixture("tiny.toml").to_str().unwrap(), "--runs", r, "-q"]);
    tiny_sets(&mut c, &["name=.hidden", "max_steps=2", "eval_every=0"]);
    ok(c.output().unwrap());
    let rows = ls(t.path(), &root);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let id = rows[0]["id"].as_str().unwrap().to_string();
    assert!(!id.starts_with('.'), "{id}");
    assert_eq!(rows[0]["name"], ".hidden");
    let o = cmd(t.path())
        .env("MIXSCOPE_CPU_BUDGET", "1")
        .args(["fork", ".hidden", "--name", "../../x", "--mix", "en=1", "--runs", r])
        .output()
        .unwrap();
    let child = ok(o).trim().to_string();
    let _end = EndOnDrop::new(t.path(), &root, &child);
    assert!(!child.starts_with('.') && !child.contains('/'), "{child}");
    assert!(root.join(&child).join("run.toml").exists());
    assert!(
        wait_for(Duration::from_secs(120), || ls_state(t.path(), &root, &child) == "finished"),
        "{:?}",
        ls(t.path(), &root)
    );
}

/// A run directory whose run.toml is gone is shown as damaged by `ls` and `report`, not
/// skipped; commands on it say what is missing.
#[test]
fn a_run_without_its_run_toml_shows_as_damaged() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let r = root.to_str().unwrap();
    for id in ["ok", "broken"] {
        let mut c = cmd(t.path());
        c.args(["train", fixture("tiny.toml").to_str().unwrap(), "--run-dir", root.join(id).to_str().unwrap(), "-q"]);
        tiny_sets(&mut c, &["max_steps=2", "eval_every=2"]);
        ok(c.output().unwrap());
    }
    std::fs::remove_file(root.join("broken/run.toml")).unwrap();
    let rows = ls(t.path(), &root);
    let b = rows.iter().find(|x| x["id"] == "broken").unwrap_or_else(|| panic!("broken is listed: {rows:?}"));
    assert_eq!(b["state"], "failed", "{b}");
    let msg = b["message"].as_str().unwrap();
    assert!(msg.contains("damaged") && msg.contains("run.toml is missing"), "{b}");
    let text = ok(run(t.path(), &["ls", "--runs", r]));
    assert!(text.contains("broken") && text.contains("run.toml is missing"), "{text}");
    let out = t.path().join("report");
    let said = ok(run(t.path(), &["report", "--runs", r, "--out", out.to_str().unwrap()]));
    assert!(said.contains("broken") && said.contains("run.toml is missing"), "{said}");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("broken") && html.contains("run.toml is missing"), "the report's runs table");
    let e = bad(run(t.path(), &["resume", "broken", "--runs", r]));
    assert!(e.contains("run.toml is missing"), "{e}");
}

/// A run whose gradient becomes NaN (a rate of 30, no clipping) ends `failed` at that step with
/// the value and its last good checkpoint named, and that checkpoint loads (it exports). With
/// `train.on_nonfinite = "pause"` it ends `paused` instead, and resumes from that checkpoint.
#[test]
fn a_diverging_run_stops_at_the_step_naming_the_value_and_keeps_its_last_good_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let cfg = fixture("tiny.toml");
    let sets = ["lr=30", "train.grad_clip=0", "max_steps=60", "eval.every=0"];
    let mut args = vec!["train", cfg.to_str().unwrap(), "--runs", root.to_str().unwrap(), "--set", "name=diverges"];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let o = run(t.path(), &args);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("the gradient norm became NaN at step 37"), "{e}");
    assert!(e.contains("the checkpoint at step 30 is the last good state"), "{e}");
    let runs = ls(t.path(), &root);
    let r = &runs[0];
    assert_eq!(r["state"], "failed");
    assert!(r["message"].as_str().unwrap().contains("at step 37"), "{r}");
    assert_eq!(r["step"], 36, "the step that diverged was not applied");
    let id = r["id"].as_str().unwrap().to_string();
    let out = t.path().join("export");
    ok(run(
        t.path(),
        &["export", &id, "--step", "30", "--out", out.to_str().unwrap(), "--runs", root.to_str().unwrap()],
    ));
    assert!(out.join("model.safetensors").exists());

    args[5] = "name=holds";
    args.extend(["--set", "train.on_nonfinite=pause"]);
    let o = run(t.path(), &args);
    let runs = ls(t.path(), &root);
    let r = runs.iter().find(|r| r["name"] == "holds").unwrap();
    assert_eq!(r["state"], "paused", "{r} {}", stderr(&o));
    assert!(r["message"].as_str().unwrap().contains("NaN at step 37"), "{r}");
}

//! Real training of a tiny model through the real binary: events, determinism of resume and
//! fork, and bad configs.

use crate::common;
use common::*;
use std::path::Path;

fn train(cache: &Path, dir: &Path, sets: &[&str]) -> String {
    let mut args = vec![
        "train",
        fixture("tiny.toml").to_str().unwrap().to_string().leak() as &str,
        "--run-dir",
        dir.to_str().unwrap(),
        "-q",
    ];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    ok(run(cache, &args))
}

#[test]
fn training_writes_the_event_contract() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("runs/r");
    train(t.path(), &dir, &["max_steps=80"]);
    let evs = events(&dir);
    for e in &evs {
        assert_eq!(e["v"], 1);
        assert!(e["step"].is_u64() && e["time"].is_f64() && e["kind"].is_string(), "{e}");
    }
    let l: Vec<f64> = losses(&dir).iter().map(|(_, l)| *l).collect();
    assert_eq!(l.len(), 80);
    let first: f64 = l[..20].iter().sum::<f64>() / 20.0;
    let last: f64 = l[60..].iter().sum::<f64>() / 20.0;
    assert!(last < 0.7 * first, "loss fell from {first} to {last} only");
    let trains = of_kind(&evs, "train");
    let t80 = trains.last().unwrap();
    for k in ["lr", "tokens", "tokens_per_s"] {
        assert!(t80[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert_eq!(t80["examples"]["lang"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 80 * 8);
    assert!(t80["examples"]["task"]["mr"].as_u64().unwrap() > 0);
    // Eval events for every (task, lang) of the config, with the run's groups.
    let evals = of_kind(&evs, "eval");
    for task in ["mr", "sm", "if"] {
        for (lang, group) in [("en", "anchor"), ("es", "seen"), ("ja", "seen"), ("pt", "unseen")] {
            let e = evals
                .iter()
                .find(|e| e["task"] == task && e["lang"] == lang && e["step"] == 80)
                .unwrap_or_else(|| panic!("{task}/{lang}"));
            assert_eq!(e["group"], group);
            assert!(e["loss"].as_f64().unwrap().is_finite());
            assert!(e["metric"].is_string() && e["n"].as_u64().unwrap() > 0);
        }
    }
    let ckpts = of_kind(&evs, "checkpoint");
    assert_eq!(
        ckpts.iter().map(|c| c["step"].as_u64().unwrap()).collect::<Vec<_>>(),
        vec![10, 20, 30, 40, 50, 60, 70, 80]
    );
    let last = dir.join(ckpts.last().unwrap()["path"].as_str().unwrap());
    for f in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        assert!(last.join(f).exists(), "{f}");
    }
    // keep_last = 5, plus the best (here the latest).
    let kept = std::fs::read_dir(dir.join("checkpoints")).unwrap().count();
    assert!(kept <= 6, "{kept} checkpoints kept");
    assert_eq!(last_state(&dir).as_deref(), Some("finished"));
}

/// Two runs' weights and optimizer state at `step` are the same bytes.
fn assert_same_state(a: &Path, b: &Path, step: u64) {
    for f in ["model.safetensors", "optimizer.safetensors"] {
        let file = format!("checkpoints/{step}/{f}");
        assert_eq!(sha(&a.join(&file)), sha(&b.join(&file)), "{file}");
    }
}

#[test]
fn resume_is_bit_exact() {
    let t = tempfile::tempdir().unwrap();
    let straight = t.path().join("runs/straight");
    let split = t.path().join("runs/split");
    train(t.path(), &straight, &["max_steps=40", "checkpoint_every=1000"]);
    // Stop part-way, then resume the same run directory.
    train(t.path(), &split, &["max_steps=17", "checkpoint_every=1000"]);
    assert!(split.join("checkpoints/17").exists());
    train(t.path(), &split, &["max_steps=40", "checkpoint_every=1000"]);
    assert_eq!(losses(&straight), losses(&split));
    assert_same_state(&straight, &split, 40);
    // The answers each evaluation stored are the same, byte for byte (the split run also
    // stored those of its evaluation at 17, where it stopped).
    for step in [10, 20, 30, 40] {
        let file = format!("samples/{step}.jsonl.zst");
        let text = |d: &std::path::Path| mixscope::runs::samples::decompress(&d.join(&file)).unwrap();
        assert_eq!(text(&straight), text(&split), "{file}");
    }
    assert!(split.join("samples/17.jsonl.zst").exists());
}

/// `train.gradient_checkpointing` recomputes each block in the backward pass: the run is the
/// same bit for bit (losses, weights, optimizer state), and run.toml says how it ran.
#[test]
fn gradient_checkpointing_trains_the_same_run() {
    let t = tempfile::tempdir().unwrap();
    let plain = t.path().join("runs/plain");
    let ckpt = t.path().join("runs/ckpt");
    train(t.path(), &plain, &["max_steps=12", "checkpoint_every=1000"]);
    train(t.path(), &ckpt, &["max_steps=12", "checkpoint_every=1000", "train.gradient_checkpointing=true"]);
    assert_eq!(losses(&plain), losses(&ckpt));
    assert_same_state(&plain, &ckpt, 12);
    let toml = |d: &Path| std::fs::read_to_string(d.join("run.toml")).unwrap();
    assert!(toml(&ckpt).contains("gradient_checkpointing = true"), "{}", toml(&ckpt));
    assert!(!toml(&plain).contains("gradient_checkpointing"), "written only when on");
}

#[test]
fn a_fork_with_the_same_mixture_continues_its_parent_exactly() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let parent = root.join("parent");
    train(t.path(), &parent, &["max_steps=40"]);
    let spec = "en=0.6,es=0.2,ja=0.2";
    let id = ok(run(
        t.path(),
        &["fork", "parent", "--at", "20", "--mix", spec, "--runs", root.to_str().unwrap(), "--name", "same"],
    ));
    let id = id.trim();
    let child = root.join(id);
    let evs = events(&child);
    assert_eq!(evs[0]["kind"], "fork", "the first event of a fork is `fork`");
    assert_eq!(evs[0]["parent"], "parent");
    assert_eq!(evs[0]["parent_step"], 20);
    // The fork was queued and started by the supervisor; wait for it to finish.
    assert!(
        wait_for(std::time::Duration::from_secs(120), || last_state(&child).as_deref() == Some("finished")),
        "{:?}",
        last_state(&child)
    );
    // Its first start is a start from its parent's checkpoint, not a resume; the checkpoint
    // events carry the run's own best (none from its parent's steps).
    let evs = events(&child);
    let running = of_kind(&evs, "status").into_iter().find(|e| e["state"] == "running").unwrap();
    let msg = running["message"].as_str().unwrap();
    assert!(msg.starts_with("started from parent @20: "), "{msg}");
    let ckpts = of_kind(&evs, "checkpoint");
    let own: Vec<f64> = ckpts.iter().filter_map(|e| e["eval_loss"].as_f64()).collect();
    let min = own.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(ckpts.last().unwrap()["best"]["loss"].as_f64(), Some(min), "{:?}", ckpts.last());
    let p: Vec<(u64, f64)> = losses(&parent).into_iter().filter(|(s, _)| *s > 20).collect();
    assert_eq!(losses(&child), p);
    assert_eq!(
        sha(&parent.join("checkpoints/40/model.safetensors")),
        sha(&child.join("checkpoints/40/model.safetensors"))
    );
    let cfg = std::fs::read_to_string(child.join("run.toml")).unwrap();
    assert!(
        cfg.contains("[lineage]") && cfg.contains("parent = \"parent\"") && cfg.contains("fork_step = 20"),
        "{cfg}"
    );
}

#[test]
fn a_fork_with_a_new_mixture_changes_only_future_draws() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let parent = root.join("parent");
    train(t.path(), &parent, &["max_steps=20"]);
    let id = ok(run(
        t.path(),
        &["fork", "parent", "--mix", "en=0.5,ko=0.5", "--max-steps", "30", "--runs", root.to_str().unwrap()],
    ));
    let child = root.join(id.trim());
    assert!(wait_for(std::time::Duration::from_secs(120), || last_state(&child).as_deref() == Some("finished")));
    let pe = of_kind(&events(&parent), "train").last().unwrap()["examples"]["lang"].clone();
    let ce = events(&child);
    let first = of_kind(&ce, "train")[0];
    assert_eq!(first["step"], 21);
    let langs = first["examples"]["lang"].as_object().unwrap();
    // Counts carry over: the parent's languages keep their totals, Korean is new.
    assert_eq!(langs["es"], pe["es"]);
    assert_eq!(langs["ja"], pe["ja"]);
    assert!(langs["en"].as_u64() >= pe["en"].as_u64());
    assert!(langs.contains_key("ko") || langs["en"].as_u64().unwrap() > pe["en"].as_u64().unwrap());
    // Korean is now seen, and evaluated as seen; Spanish left the mixture and is unseen.
    let evals = of_kind(&ce, "eval");
    assert!(evals.iter().any(|e| e["lang"] == "ko" && e["group"] == "seen"));
    assert!(evals.iter().any(|e| e["lang"] == "es" && e["group"] == "unseen"));
}

#[test]
fn bad_configs_exit_2_naming_the_place() {
    let t = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = t.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cases = [
        (write("unknown.toml", "[train]\nmax_stepz = 3\n"), vec![], "unknown.toml:2:1"),
        (write("type.toml", "[train]\nmax_steps = \"many\"\n"), vec![], "type.toml:2:13"),
        (write("zero.toml", "[train]\nmax_steps = 0\n"), vec![], "train.max_steps: must be at least 1"),
        (write("ok.toml", ""), vec!["--set", "max_steps=0"], "--set max_steps=0"),
        (write("mix.toml", "[data]\nmixture = \"en=1,zz=1\"\n"), vec![], "unknown language 'zz'"),
    ];
    for (path, extra, want) in cases {
        let mut args = vec!["train", path.to_str().unwrap(), "--run-dir"];
        let rd = t.path().join("runs/x");
        args.push(rd.to_str().unwrap());
        args.extend(extra);
        let e = bad(run(t.path(), &args));
        assert!(e.contains(want), "{}: {e}", path.display());
        assert!(!rd.exists(), "a bad config creates no run directory");
    }
    let e = bad(run(t.path(), &["train", "/nonexistent/cfg.toml"]));
    assert!(e.contains("/nonexistent/cfg.toml") && e.contains("no such config file"), "{e}");
}

/// `[init] config = ...` trains the base run once and reuses it, but only while this build
/// makes the same data: a base recorded with another suite fingerprint is trained anew.
#[test]
fn a_base_run_is_trained_once_and_reused_while_the_suite_is_the_same() {
    let t = tempfile::tempdir().unwrap();
    let tiny = std::fs::read_to_string(fixture("tiny.toml")).unwrap();
    let base = tiny
        .replace("name = \"tiny\"", "name = \"base\"")
        .replace("tasks = [\"mr\", \"sm\", \"if\"]", "tasks = [\"lm\"]")
        .replace("heldout = [\"pt\"]", "heldout = []")
        .replace("max_steps = 30", "max_steps = 10")
        .replace("generate_n = 4", "generate_n = 0");
    std::fs::write(t.path().join("base.toml"), base).unwrap();
    let sft = "name = \"sft\"\nthreads = 1\n[init]\nconfig = \"base.toml\"\n[data]\ntasks = [\"mr\"]\n\
               mixture = \"en=1\"\nseq_len = 128\n[train]\nmax_steps = 5\nbatch_size = 4\n\
               [eval]\nevery = 5\nn = 4\ngenerate_n = 0\n[checkpoint]\nevery = 5\n";
    let cfg = t.path().join("sft.toml");
    std::fs::write(&cfg, sft).unwrap();
    let root = t.path().join("runs");
    let train = |name: &str| {
        let dir = root.join(name);
        ok(run(
            t.path(),
            &[
                "train",
                cfg.to_str().unwrap(),
                "--runs",
                root.to_str().unwrap(),
                "--run-dir",
                dir.to_str().unwrap(),
                "-q",
            ],
        ));
        assert_eq!(last_state(&dir).as_deref(), Some("finished"), "{name}");
        let run_toml = std::fs::read_to_string(dir.join("run.toml")).unwrap();
        let cfg: toml::Value = toml::from_str(&run_toml).unwrap();
        cfg["lineage"]["parent"].as_str().unwrap().to_string()
    };
    let bases = || {
        let mut v: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("base"))
            .collect();
        v.sort();
        v
    };
    let first = train("a");
    assert_eq!(bases(), std::slice::from_ref(&first));
    assert_eq!(last_state(&root.join(&first)).as_deref(), Some("finished"));
    assert_eq!(train("b"), first, "the second run reuses the trained base");
    assert_eq!(bases().len(), 1);
    // A base made by a build whose suite differs is not this build's base.
    let base_toml = root.join(&first).join("run.toml");
    let text = std::fs::read_to_string(&base_toml).unwrap();
    let line = text.lines().find(|l| l.starts_with("suite = ")).expect("the base records its suite").to_string();
    std::fs::write(&base_toml, text.replace(&line, "suite = \"0000000000000000\"")).unwrap();
    let second = train("c");
    assert_ne!(second, first);
    assert_eq!(bases().len(), 2);
}

/// Copy a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A base model that ships in `assets/bases/` (weights only, its events for its curves) is
/// copied into an empty runs root instead of being trained; the run made from it starts with
/// fresh optimizer moments, trains, evaluates, and resumes exactly like any run.
#[test]
fn a_shipped_base_is_installed_not_trained() {
    let t = tempfile::tempdir().unwrap();
    let cfgs = t.path().join("configs");
    copy_tree(&fixture("shipped"), &cfgs);
    // Make the base once, as `mixscope train` makes any run, and ship it without its
    // optimizer state and its earlier checkpoints.
    let made = t.path().join("made/base");
    ok(run(t.path(), &["train", cfgs.join("base.toml").to_str().unwrap(), "--run-dir", made.to_str().unwrap(), "-q"]));
    let assets = t.path().join("assets");
    let repo_assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    std::fs::copy(repo_assets.join("langs.toml"), {
        std::fs::create_dir_all(&assets).unwrap();
        assets.join("langs.toml")
    })
    .unwrap();
    copy_tree(&repo_assets.join("suite"), &assets.join("suite"));
    let shipped = assets.join("bases/tiny-base");
    std::fs::create_dir_all(shipped.join("checkpoints")).unwrap();
    for f in ["run.toml", "events.jsonl", "tokenizer.json"] {
        std::fs::copy(made.join(f), shipped.join(f)).unwrap();
    }
    copy_tree(&made.join("checkpoints/6"), &shipped.join("checkpoints/6"));
    std::fs::remove_file(shipped.join("checkpoints/6/optimizer.safetensors")).unwrap();

    let root = t.path().join("runs");
    let sft = root.join("sft");
    let train_sft = |extra: &[&str]| {
        let mut args = vec!["train", cfgs.join("sft.toml").to_str().unwrap().to_string().leak() as &str];
        args.extend(["--run-dir", sft.to_str().unwrap().to_string().leak() as &str]);
        args.extend(["--runs", root.to_str().unwrap().to_string().leak() as &str]);
        args.extend(extra);
        let o = cmd(t.path()).env("MIXSCOPE_ASSETS", &assets).args(&args).output().unwrap();
        ok(o)
    };
    let out = train_sft(&[]);
    assert!(!out.contains("training the base model first"), "{out}");
    // The root holds the shipped base under a new id: same config, same curves, same weights.
    let bases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("run.toml").exists() && *p != sft)
        .collect();
    assert_eq!(bases.len(), 1, "{bases:?}");
    let base = &bases[0];
    assert_eq!(std::fs::read(base.join("events.jsonl")).unwrap(), std::fs::read(made.join("events.jsonl")).unwrap());
    assert_eq!(sha(&base.join("checkpoints/6/model.safetensors")), sha(&made.join("checkpoints/6/model.safetensors")));
    // The fine-tuning run starts from it and finishes, with evaluations that carry intervals.
    let evs = events(&sft);
    assert_eq!(of_kind(&evs, "fork")[0]["parent_step"], 6);
    assert_eq!(last_state(&sft).as_deref(), Some("finished"));
    let evals = of_kind(&evs, "eval");
    assert!(!evals.is_empty());
    for e in evals.iter().filter(|e| e["metric"] == "accuracy") {
        let ci = e["ci"].as_array().unwrap_or_else(|| panic!("no interval: {e}"));
        let (lo, hi, v) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap(), e["value"].as_f64().unwrap());
        assert!(0.0 <= lo && lo <= v && v <= hi && hi <= 1.0 && hi - lo > 0.1, "{e}");
    }
    // Its own checkpoint has the optimizer state it made, so a longer run resumes from it.
    let latest = std::fs::read_dir(sft.join("checkpoints"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()))
        .max()
        .unwrap();
    assert_eq!(latest, 10);
    assert!(sft.join("checkpoints/10/optimizer.safetensors").exists());
    train_sft(&["--set", "max_steps=6"]);
    assert_eq!(losses(&sft).last().unwrap().0, 12);
    // A second run from the same config in the same root finds the installed base.
    let o = cmd(t.path())
        .env("MIXSCOPE_ASSETS", &assets)
        .args([
            "train",
            cfgs.join("sft.toml").to_str().unwrap(),
            "--run-dir",
            root.join("sft2").to_str().unwrap(),
            "--runs",
            root.to_str().unwrap(),
            "-q",
        ])
        .output()
        .unwrap();
    ok(o);
    let runs = std::fs::read_dir(&root).unwrap().flatten().filter(|e| e.path().join("run.toml").exists()).count();
    assert_eq!(runs, 3, "base, sft, sft2");
    // `compare` gives every per-language delta an interval, and marks none that includes 0.
    let sft2 = root.join("sft2");
    let cmp = |json: bool| {
        let mut args = vec!["compare", sft.to_str().unwrap(), sft2.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        ok(run(t.path(), &args))
    };
    let v: serde_json::Value = serde_json::from_str(&cmp(true)).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let en = rows.iter().find(|r| r["row"] == "en" && r["task"] == "mr").unwrap();
    let d = &en["latest_delta"][0];
    let (lo, hi) = (d["lo"].as_f64().unwrap(), d["hi"].as_f64().unwrap());
    assert!(lo <= d["value"].as_f64().unwrap() && d["value"].as_f64().unwrap() <= hi && hi - lo > 0.2, "{d}");
    let text = cmp(false);
    // Two single runs: the marks cover sampling only, Holm-adjusted over each task's rows.
    assert!(
        text.contains("95% interval") && text.contains("sampling only") && text.contains("after Holm's adjustment"),
        "{text}"
    );
}

/// Every shipped base model (`assets/bases/NAME`: the demo's, and the size axis's) is what
/// `mixscope train configs/NAME.toml` makes: its first steps, retrained here, match the shipped
/// curve bit for bit (CPU training with a seed is deterministic across thread counts), and its
/// config is the one `configs/` holds, so a fresh runs root installs it.
#[test]
fn the_shipped_bases_are_reproducible() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(repo.join("assets/bases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.contains(&"demo-base".to_string()) && names.len() >= 2, "{names:?}");
    for name in names {
        let shipped = repo.join("assets/bases").join(&name);
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("runs/base");
        let cfg = repo.join("configs").join(format!("{name}.toml"));
        assert!(cfg.exists(), "assets/bases/{name} ships without configs/{name}.toml");
        ok(run(
            t.path(),
            &["train", cfg.to_str().unwrap(), "--run-dir", dir.to_str().unwrap(), "--set", "max_steps=12", "-q"],
        ));
        let want: Vec<(u64, f64)> = losses(&shipped).into_iter().take(12).collect();
        assert_eq!(losses(&dir), want, "the first 12 steps of the shipped {name}");
        let made: toml::Value = toml::from_str(&std::fs::read_to_string(dir.join("run.toml")).unwrap()).unwrap();
        let ship: toml::Value = toml::from_str(&std::fs::read_to_string(shipped.join("run.toml")).unwrap()).unwrap();
        assert_eq!(made["source_hash"], ship["source_hash"], "configs/{name}.toml is the shipped base's config");
        assert_eq!(made["suite"], ship["suite"], "{name} was made from this build's suite");
        assert_eq!(sha(&dir.join("tokenizer.json")), sha(&shipped.join("tokenizer.json")));
        let step = ship["train"]["max_steps"].as_integer().unwrap();
        assert!(
            shipped.join(format!("checkpoints/{step}/model.safetensors")).exists(),
            "{name} ships its final weights"
        );
    }
}

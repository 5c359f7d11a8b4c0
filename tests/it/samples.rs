//! What the model wrote, stored with the run: each evaluation's answers in
//! `samples/<step>.jsonl.zst`, equal to what `mixscope samples` regenerates from the checkpoint
//! of that step; runs without them; and an evaluation that falls, which writes one warning.

use crate::common;
use common::*;
use std::path::Path;

fn train(cache: &Path, config: &Path, dir: &Path, sets: &[&str]) {
    let mut args = vec!["train", config.to_str().unwrap(), "--run-dir", dir.to_str().unwrap(), "-q"];
    for s in sets {
        args.extend(["--set", s]);
    }
    ok(run(cache, &args));
}

fn samples_json(cache: &Path, root: &Path, id: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["samples", id, "--runs", root.to_str().unwrap(), "--json"];
    args.extend(extra);
    serde_json::from_str(&ok(run(cache, &args))).unwrap()
}

/// The answers stored at each evaluation are what `mixscope samples` regenerates from that
/// step's checkpoint (same greedy decoding, same scores), and the eval event's scores; a run
/// without stored answers says so and still regenerates them.
#[test]
fn stored_answers_equal_what_samples_regenerates_from_the_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let dir = root.join("r");
    train(t.path(), &fixture("tiny.toml"), &dir, &["max_steps=30"]);
    let stored: Vec<String> = std::fs::read_dir(dir.join("samples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(stored, ["10.jsonl.zst", "20.jsonl.zst", "30.jsonl.zst"]);
    let evs = events(&dir);
    let mut compared = 0;
    for step_n in [10u64, 30] {
        let step = step_n.to_string();
        let step = step.as_str();
        for (task, lang) in [("mr", "en"), ("sm", "ja"), ("if", "pt")] {
            let want =
                samples_json(t.path(), &root, "r", &["--task", task, "--lang", lang, "--step", step, "--n", "4"]);
            let got = samples_json(
                t.path(),
                &root,
                "r",
                &["--task", task, "--lang", lang, "--step", step, "--n", "4", "--stored"],
            );
            assert_eq!(got["step"].to_string(), step);
            assert_eq!(got["samples"], want["samples"], "{task} {lang} at {step}");
            assert_eq!(got["samples"].as_array().unwrap().len(), 4, "generate_n = 4");
            // The eval event's scores are the stored answers' scores.
            let ev = of_kind(&evs, "eval")
                .into_iter()
                .find(|e| e["task"] == task && e["lang"] == lang && e["step"] == step_n)
                .unwrap();
            let scores: Vec<f64> =
                got["samples"].as_array().unwrap().iter().map(|s| s["score"].as_f64().unwrap()).collect();
            let ev_scores: Vec<f64> = ev["scores"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect();
            assert_eq!(scores, ev_scores);
            compared += 1;
        }
    }
    assert_eq!(compared, 6);
    // The latest stored evaluation by default; a step not stored is bad input naming those
    // that are.
    let latest = samples_json(t.path(), &root, "r", &["--stored", "--task", "sm", "--lang", "es"]);
    assert_eq!(latest["step"], 30);
    let e = bad(run(t.path(), &["samples", "r", "--runs", root.to_str().unwrap(), "--stored", "--step", "15"]));
    assert!(e.contains("stores no answers at step 15; it stores steps 10, 20, 30"), "{e}");
    // A run written before answers were stored: `--stored` says so; regenerating still works.
    std::fs::remove_dir_all(dir.join("samples")).unwrap();
    let e = bad(run(t.path(), &["samples", "r", "--runs", root.to_str().unwrap(), "--stored"]));
    assert!(e.contains("stores no answers") && e.contains("leave out --stored"), "{e}");
    let again = samples_json(t.path(), &root, "r", &["--step", "30", "--n", "2"]);
    assert_eq!(again["samples"].as_array().unwrap().len(), 2);
}

/// User data whose answer is one number per language: English prompts are answered 7,
/// Spanish ones (the same prompts) 3. A model trained on English answers 7 to everything; a
/// fork trained on Spanish learns to answer 3, and its English accuracy falls.
fn two_answers(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("numbers.jsonl");
    let mut text = String::new();
    for i in 0..240 {
        for (lang, n) in [("en", 7), ("es", 3)] {
            text.push_str(&format!(
                "{{\"lang\":\"{lang}\",\"task\":\"mr\",\"prompt\":\"Item {i}: which number?\",\"response\":\"{n}\",\"answer\":{n}}}\n"
            ));
        }
    }
    std::fs::write(&data, text).unwrap();
    let cfg = dir.join("numbers.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"name = "numbers"
seed = 3
threads = 1

[model.shape]
hidden_size = 32
intermediate_size = 64
num_hidden_layers = 2
num_attention_heads = 2
max_position_embeddings = 128

[tokenizer]
vocab_size = 512

[data]
tasks = ["mr"]
files = ["{}"]
mixture = "en=1"
seq_len = 64

[train]
max_steps = 60
batch_size = 16
lr = 1e-2
warmup_steps = 5

[eval]
every = 30
n = 24
generate_n = 24
max_new_tokens = 4
langs = ["en", "es"]

[checkpoint]
every = 30
keep_last = 3
"#,
            data.display()
        ),
    )
    .unwrap();
    cfg
}

/// An evaluation whose English accuracy falls far below the previous one's (a fork trained
/// on the other answer) writes one warning event, naming the task, the language, both steps,
/// both values with their intervals and the difference's; `ls` counts it. The parent, whose
/// evaluations only rose, has none.
#[test]
fn an_evaluation_that_falls_writes_one_warning_naming_both_steps() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let cfg = two_answers(t.path());
    let parent = root.join("parent");
    train(t.path(), &cfg, &parent, &[]);
    let evs = events(&parent);
    let at = |evs: &[serde_json::Value], step: u64, lang: &str| {
        of_kind(evs, "eval").into_iter().find(|e| e["step"] == step && e["lang"] == lang).unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    assert!(at(&evs, 60, "en") > 0.9, "the parent answers 7: {}", at(&evs, 60, "en"));
    assert!(of_kind(&evs, "warning").is_empty(), "{:?}", of_kind(&evs, "warning"));
    let id = ok(run(
        t.path(),
        &["fork", "parent", "--mix", "es=1", "--max-steps", "120", "--name", "other", "--runs", root.to_str().unwrap()],
    ));
    let child = root.join(id.trim());
    assert!(
        wait_for(std::time::Duration::from_secs(180), || last_state(&child).as_deref() == Some("finished")),
        "{:?}",
        last_state(&child)
    );
    let evs = events(&child);
    assert!(at(&evs, 90, "en") < 0.2, "the fork answers 3: {}", at(&evs, 90, "en"));
    let warnings = of_kind(&evs, "warning");
    assert_eq!(warnings.len(), 1, "one warning, at the first evaluation after the fall: {warnings:?}");
    let w = warnings[0];
    assert_eq!(w["step"], 90);
    let msg = w["message"].as_str().unwrap();
    assert!(msg.starts_with("the evaluation at step 90 fell below step 60's"), "{msg}");
    assert!(
        msg.contains("MR en accuracy 1.000 [") && msg.contains("] at 60 → 0.") && msg.contains(" at 90, Δ -"),
        "{msg}"
    );
    assert!(!msg.contains("MR es accuracy"), "Spanish rose: {msg}");
    assert_eq!(w["value"].as_f64(), Some(at(&evs, 90, "en")));
    let rows = ls(t.path(), &root);
    let r = rows.iter().find(|r| r["name"] == "other").unwrap();
    assert_eq!(r["warnings"].as_u64(), Some(1), "{r}");
}

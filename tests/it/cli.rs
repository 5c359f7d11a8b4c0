//! The data commands and input errors, through the real binary.

use crate::common;
use common::*;

#[test]
fn data_langs_lists_twelve_languages_with_script_and_group() {
    let t = tempfile::tempdir().unwrap();
    let out = ok(run(t.path(), &["data", "langs"]));
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 12, "{out}");
    for (code, script, group) in [
        ("en", "Latin", "anchor"),
        ("es", "Latin", "seen"),
        ("fr", "Latin", "seen"),
        ("ja", "Japanese", "seen"),
        ("zh", "Han", "seen"),
        ("ar", "Arabic", "unseen"),
        ("ko", "Hangul", "unseen"),
        ("pt", "Latin", "unseen"),
    ] {
        let row =
            rows.iter().find(|r| r.split_whitespace().next() == Some(code)).unwrap_or_else(|| panic!("{code} missing"));
        assert!(row.contains(script) && row.contains(group), "{row}");
    }
}

#[test]
fn data_sample_is_deterministic_and_follows_the_weights() {
    let t = tempfile::tempdir().unwrap();
    let spec = "en=0.6,es=0.1,fr=0.1,ja=0.1,zh=0.1";
    let a = run(t.path(), &["data", "sample", "--mix", spec, "--n", "20000", "--seed", "7"]);
    let b = run(t.path(), &["data", "sample", "--mix", spec, "--n", "20000", "--seed", "7"]);
    let c = run(t.path(), &["data", "sample", "--mix", spec, "--n", "20000", "--seed", "8"]);
    assert!(a.status.success() && b.status.success() && c.status.success());
    assert_eq!(a.stdout, b.stdout, "same seed, same bytes");
    assert_ne!(a.stdout, c.stdout, "another seed, other examples");
    let text = String::from_utf8(a.stdout).unwrap();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *counts.entry(v["lang"].as_str().unwrap().to_string()).or_default() += 1;
        assert!(!v["response"].as_str().unwrap().is_empty());
        n += 1;
    }
    assert_eq!(n, 20000);
    for (lang, w) in [("en", 0.6), ("es", 0.1), ("fr", 0.1), ("ja", 0.1), ("zh", 0.1)] {
        let share = counts[lang] as f64 / n as f64;
        assert!((share - w).abs() <= 0.015, "{lang}: {share:.4} vs {w}");
    }
}

#[test]
fn data_sample_rejects_bad_mixtures_with_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let e = bad(run(t.path(), &["data", "sample", "--mix", "en=0.5,xx=0.5", "--n", "3"]));
    assert!(e.contains("unknown language 'xx'") && e.contains("column 8"), "{e}");
    let e = bad(run(t.path(), &["data", "sample", "--mix", "en=0,es=0", "--n", "3"]));
    assert!(e.contains("all weights are zero"), "{e}");
    let e = bad(run(t.path(), &["data", "sample", "--mix", "en=-1,es=1", "--n", "3"]));
    assert!(e.contains("negative"), "{e}");
}

#[test]
fn every_language_file_checks() {
    let t = tempfile::tempdir().unwrap();
    let out = ok(run(t.path(), &["data", "check"]));
    assert!(out.contains("ok: 12"), "{out}");
}

/// `--set` values take the type of the key they set: runs named `nan` and `true` are made so,
/// and a number's key given text is exit 2 naming the key and the type it holds.
#[test]
fn set_values_take_the_type_of_their_key() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let cfg = fixture("tiny.toml");
    for name in ["nan", "true"] {
        let o = run(
            t.path(),
            &[
                "train",
                cfg.to_str().unwrap(),
                "--runs",
                root.to_str().unwrap(),
                "--set",
                &format!("name={name}"),
                "--set",
                "max_steps=2",
            ],
        );
        ok(o);
        let runs = ls(t.path(), &root);
        assert!(runs.iter().any(|r| r["name"] == name), "{runs:?}");
    }
    let e = bad(run(
        t.path(),
        &["train", cfg.to_str().unwrap(), "--runs", root.to_str().unwrap(), "--set", "max_steps=abc"],
    ));
    assert!(e.contains("max_steps") && e.contains("expected a whole number"), "{e}");
}

/// `mixscope diff A B` lists the config keys whose values differ, and only those.
#[test]
fn diff_lists_the_keys_that_differ() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let cfg = fixture("tiny.toml");
    let r = root.to_str().unwrap();
    for sets in [["name=a", "lr=1e-3"], ["name=b", "lr=3e-4"]] {
        let mut args =
            vec!["train", cfg.to_str().unwrap(), "--runs", r, "--set", "max_steps=2", "--set", "eval.every=0"];
        for s in sets {
            args.extend(["--set", s]);
        }
        ok(run(t.path(), &args));
    }
    let out = ok(run(t.path(), &["diff", "a", "b", "--runs", r, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&str> = v["differ"].as_array().unwrap().iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["name", "train.lr"], "{out}");
    let text = ok(run(t.path(), &["diff", "a", "b", "--runs", r]));
    assert!(text.contains("train.lr") && text.contains("0.0003") && !text.contains("max_steps"), "{text}");
    let same = ok(run(t.path(), &["diff", "a", "a", "--runs", r]));
    assert!(same.contains("the same config"), "{same}");
}

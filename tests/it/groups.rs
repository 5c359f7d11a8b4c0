//! Seeds and groups from the command line: `launch --seeds` makes one group; `ls` shows it;
//! `compare`, `report`, `export` and `fork` take a group wherever they take a run, and
//! `compare` says what its intervals cover and how its marks are adjusted.

use crate::common;
use common::*;
use std::path::Path;
use std::time::Duration;

fn launch(cache: &Path, root: &Path, args: &[&str]) -> Vec<String> {
    let mut c = cmd(cache);
    c.env("MIXSCOPE_CPU_BUDGET", "2").args(["launch", fixture("tiny.toml").to_str().unwrap(), "--runs"]).arg(root);
    for s in ["max_steps=20", "eval.every=10", "checkpoint.every=10"] {
        c.args(["--set", s]);
    }
    c.args(args);
    ok(c.output().unwrap()).lines().map(str::to_string).collect()
}

fn all_finished(cache: &Path, root: &Path, n: usize) -> bool {
    let rows = ls(cache, root);
    rows.len() == n && rows.iter().all(|r| r["state"] == "finished")
}

fn mixscope(cache: &Path, root: &Path, args: &[&str]) -> std::process::Output {
    cmd(cache).env("MIXSCOPE_CPU_BUDGET", "2").args(args).arg("--runs").arg(root).output().unwrap()
}

#[test]
fn a_group_of_seeds_from_launch_to_compare_report_export_and_fork() {
    let t = tempfile::tempdir().unwrap();
    let (cache, root) = (t.path(), t.path().join("runs"));
    let a = launch(cache, &root, &["--seeds", "3"]);
    let b = launch(cache, &root, &["--seeds", "7,8,9", "--set", "mixture=en=1", "--set", "name=en"]);
    assert_eq!((a.len(), b.len()), (3, 3), "{a:?} {b:?}");
    assert!(wait_for(Duration::from_secs(240), || all_finished(cache, &root, 6)), "{:?}", ls(cache, &root));

    // ls: one group per launch, with the seeds; --json names each run's group and its size.
    let rows = ls(cache, &root);
    let group_of = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap()["group"].as_str().unwrap().to_string();
    let (ga, gb) = (group_of(&a[0]), group_of(&b[0]));
    assert!(a.iter().all(|id| group_of(id) == ga) && b.iter().all(|id| group_of(id) == gb) && ga != gb);
    assert!(rows.iter().all(|r| r["group_size"] == 3));
    let text = ok(mixscope(cache, &root, &["ls"]));
    assert!(text.contains(&format!("group {ga} tiny ×3 (seeds 1 2 3): 3 finished")), "{text}");
    assert!(text.contains(&format!("group {gb} en ×3 (seeds 7 8 9): 3 finished")), "{text}");
    for id in &a {
        assert!(text.contains(&format!("\n  {id} ")), "members indented under their group:\n{text}");
    }

    // compare by name and by group id: intervals across seeds, Holm named.
    let out = ok(mixscope(cache, &root, &["compare", "tiny", &gb]));
    assert!(out.contains(&format!("[A] group {ga} tiny ×3")), "{out}");
    assert!(out.contains("intervals: 95%, across seeds (Welch's t over each group's runs)"), "{out}");
    assert!(out.contains("Holm's adjustment over the rows of each task"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(mixscope(cache, &root, &["compare", "tiny", "en", "--json"]))).unwrap();
    assert_eq!(v["adjustment"], "holm");
    let en = v["rows"].as_array().unwrap().iter().find(|r| r["row"] == "en" && r["task"] == "mr").unwrap();
    assert_eq!(en["k"], serde_json::json!([3, 3]));
    let d = &en["latest_delta"][0];
    assert_eq!(d["method"], "welch", "{en}");
    assert!(d["lo"].as_f64().unwrap() <= d["value"].as_f64().unwrap(), "{d}");
    assert!(en["latest_sd"][0].is_number(), "{en}");
    // Two single runs: said to cover sampling only.
    let out = ok(mixscope(cache, &root, &["compare", &a[0], &b[0]]));
    assert!(out.contains("sampling only"), "{out}");
    // Some of a group's seeds as a side: a list of its runs (runs of two groups are refused).
    let out = ok(mixscope(cache, &root, &["compare", &format!("{},{}", a[0], a[1]), &a[2]]));
    assert!(out.contains("tiny ×2: runs "), "{out}");
    let e = bad(mixscope(cache, &root, &["compare", &format!("{},{}", a[0], b[0]), &a[2]]));
    assert!(e.contains("these runs are not one group"), "{e}");
    // A group id that is not there is named.
    let e = bad(mixscope(cache, &root, &["compare", "g:ffffffffff", "en"]));
    assert!(e.contains("no group 'g:ffffffffff'"), "{e}");

    // report: groups.csv holds each group's means with intervals over seeds.
    let out_dir = t.path().join("report");
    ok(mixscope(cache, &root, &["report", "--out", out_dir.to_str().unwrap(), "tiny"]));
    let csv = std::fs::read_to_string(out_dir.join("groups.csv")).unwrap();
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(head[..3], ["group", "name", "k"]);
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let body: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert!(!body.is_empty() && body.iter().all(|r| r[0] == ga), "only the group asked for");
    assert!(body.iter().all(|r| r[col("k")] == "3" && r[col("interval")] == "seeds"), "{csv}");
    let runs_csv = std::fs::read_to_string(out_dir.join("runs.csv")).unwrap();
    assert_eq!(runs_csv.lines().skip(1).filter(|l| l.contains(&ga)).count(), runs_csv.lines().count() - 1);

    // export: each member into a directory of its own.
    let exp = t.path().join("exported");
    ok(mixscope(cache, &root, &["export", &ga, "--out", exp.to_str().unwrap()]));
    for id in &a {
        assert!(exp.join(id).join("model.safetensors").exists(), "{id}");
    }

    // fork of a group: every member at the same step, a new group of three.
    let out = ok(mixscope(cache, &root, &["fork", &ga, "--at", "10", "--mix", "en=0.5,es=0.5", "--name", "es50"]));
    let forks: Vec<&str> = out.lines().collect();
    assert_eq!(forks.len(), 3, "{out}");
    assert!(wait_for(Duration::from_secs(240), || all_finished(cache, &root, 9)), "{:?}", ls(cache, &root));
    let rows = ls(cache, &root);
    let fork_rows: Vec<&serde_json::Value> =
        rows.iter().filter(|r| forks.contains(&r["id"].as_str().unwrap())).collect();
    let g = fork_rows[0]["group"].as_str().unwrap();
    assert!(fork_rows.iter().all(|r| r["group"] == g && r["fork_step"] == 10), "{fork_rows:?}");
    let parents: Vec<&str> = fork_rows.iter().map(|r| r["parent"].as_str().unwrap()).collect();
    let mut sorted = parents.clone();
    sorted.sort();
    let mut want: Vec<&str> = a.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(sorted, want, "each member forked once");
    // A fork step not every member has is refused before anything is created.
    let e = bad(mixscope(cache, &root, &["fork", &ga, "--at", "15", "--mix", "en=1"]));
    assert!(e.contains("not every run of the group has a checkpoint there"), "{e}");
    assert_eq!(ls(cache, &root).len(), 9);
}

#[test]
fn seeds_are_checked_before_anything_is_created() {
    let t = tempfile::tempdir().unwrap();
    let (cache, root) = (t.path(), t.path().join("runs"));
    for (seeds, says) in [("0", "a count from 1 to 256"), ("1,1", "a seed is given twice"), ("x", "give a count")] {
        let mut c = cmd(cache);
        c.args(["launch", fixture("tiny.toml").to_str().unwrap(), "--seeds", seeds, "--runs"]).arg(&root);
        let e = bad(c.output().unwrap());
        assert!(e.contains(says), "{seeds}: {e}");
    }
    let mut c = cmd(cache);
    c.args(["launch", fixture("tiny.toml").to_str().unwrap(), "--seeds", "1,2", "--set", "seed=4", "--runs"])
        .arg(&root);
    assert!(bad(c.output().unwrap()).contains("--set seed=... cannot be too"));
    assert!(ls(cache, &root).is_empty(), "nothing created");
}

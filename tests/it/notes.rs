//! A run's note and tags from the command line: `note`, `tag`, `ls --tag`, `report`; bad
//! input is exit 2 and writes nothing; many writers at once (processes and this one) lose
//! none of each other's tags.

use crate::common;
use common::*;
use mixscope::tui::fixtures;
use std::path::Path;

/// The standard fixture's runs (no training needed): demo-base, demo-en, demo-ml40, ...
fn root() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    fixtures::standard(&root).unwrap();
    (t, root)
}

fn ms(cache: &Path, root: &Path, args: &[&str]) -> std::process::Output {
    cmd(cache).args(args).arg("--runs").arg(root).output().unwrap()
}

fn notes_file(root: &Path, id: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root.join(id).join("notes.json")).unwrap()).unwrap()
}

#[test]
fn note_and_tag_set_print_and_refuse_bad_input() {
    let (t, root) = root();
    let c = t.path();
    // Tags: +NAME and NAME add, -NAME removes (a tag that is not there: nothing to remove);
    // the run's tags are printed, sorted. The run by name, as every command takes it.
    assert_eq!(ok(ms(c, &root, &["tag", "demo-en", "+best", "baseline", "-nope"])), "baseline best\n");
    assert_eq!(ok(ms(c, &root, &["tag", "en-4d5e6f", "-best"])), "baseline\n");
    assert_eq!(ok(ms(c, &root, &["tag", "en-4d"])), "baseline\n", "a unique prefix; no change: printed");
    let o = ms(c, &root, &["tag", "demo-ml40"]);
    assert_eq!((ok(o.clone()), stderr(&o).trim()), (String::new(), "ml40-7a8b9c: no tags"));
    // The note: set, printed, appended, removed.
    assert_eq!(ok(ms(c, &root, &["note", "demo-en", "lr looks too low"])), "lr looks too low\n");
    assert_eq!(
        ok(ms(c, &root, &["note", "demo-en", "--append", "retry at 3e-4"])),
        "lr looks too low\nretry at 3e-4\n"
    );
    assert_eq!(ok(ms(c, &root, &["note", "demo-en"])), "lr looks too low\nretry at 3e-4\n");
    let v = notes_file(&root, "en-4d5e6f");
    assert_eq!(v["note"], "lr looks too low\nretry at 3e-4");
    assert_eq!(v["tags"], serde_json::json!(["baseline"]));
    assert!(v["updated"].as_f64().unwrap() > 1.7e9, "{v}");

    // Bad input: exit 2, named, and the file as it was.
    let before = std::fs::read(root.join("en-4d5e6f/notes.json")).unwrap();
    for (args, says) in [
        (vec!["tag", "demo-en", "+a b"], "tag 'a b': holds a space"),
        (vec!["tag", "demo-en", "+"], "a tag cannot be empty"),
        (vec!["tag", "demo-en", "ok", "-tag:x"], "tag 'tag:x': holds ':'"),
        (vec!["tag", "demo-en", "+x", "-x"], "both added and removed"),
        (vec!["tag", "nosuchrun", "+x"], "no run 'nosuchrun'"),
        (vec!["note", "demo-en", "bell\x07"], "control character"),
        (vec!["ls", "--tag", "a b"], "--tag: tag 'a b': holds a space"),
    ] {
        let e = bad(ms(c, &root, &args));
        assert!(e.contains(says), "{args:?}: {e}");
    }
    assert_eq!(std::fs::read(root.join("en-4d5e6f/notes.json")).unwrap(), before);
    // A damaged notes file is named at its line and column, and left alone.
    std::fs::write(root.join("ko-0d1e2f/notes.json"), "{\"tags\": [\"a\",]}").unwrap();
    let e = bad(ms(c, &root, &["tag", "ko-0d1e2f", "+b"]));
    assert!(e.contains("ko-0d1e2f/notes.json:1:15"), "{e}");
    assert_eq!(std::fs::read_to_string(root.join("ko-0d1e2f/notes.json")).unwrap(), "{\"tags\": [\"a\",]}");

    // ls: the tags and ✎ (a note) in its last column; --tag keeps the runs carrying every tag
    // named; --json carries both.
    ok(ms(c, &root, &["tag", "demo-ml40", "+baseline", "+ml"]));
    let text = ok(ms(c, &root, &["ls"]));
    assert!(text.lines().next().unwrap().ends_with("TAGS"), "{text}");
    let line = |id: &str| text.lines().find(|l| l.starts_with(id)).unwrap().to_string();
    assert!(line("en-4d5e6f").ends_with("  baseline ✎"), "{text}");
    assert!(line("ml40-7a8b9c").ends_with("  baseline,ml"), "{text}");
    assert!(line("ko-0d1e2f").ends_with("  ⚠") && text.contains("⚠ ") && text.contains("notes.json:1:15"), "{text}");
    let only = ok(ms(c, &root, &["ls", "--tag", "baseline"]));
    let ids: Vec<&str> =
        only.lines().skip(1).filter(|l| !l.starts_with(' ')).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(ids, ["en-4d5e6f", "ml40-7a8b9c"], "{only}");
    for both in [vec!["ls", "--tag", "baseline,ml"], vec!["ls", "--tag", "ml", "--tag", "baseline"]] {
        let out = ok(ms(c, &root, &both));
        let ids: Vec<&str> =
            out.lines().skip(1).filter(|l| !l.starts_with(' ')).filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(ids, ["ml40-7a8b9c"], "{both:?}: {out}");
    }
    assert!(ok(ms(c, &root, &["ls", "--tag", "nope"])).starts_with("no runs tagged nope in "));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&ok(ms(c, &root, &["ls", "--json"]))).unwrap();
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(row("en-4d5e6f")["tags"], serde_json::json!(["baseline"]));
    assert_eq!(row("en-4d5e6f")["note"], "lr looks too low\nretry at 3e-4");
    assert_eq!(
        (row("base-1a2b3c")["tags"].clone(), row("base-1a2b3c")["note"].clone()),
        (serde_json::json!([]), serde_json::Value::Null)
    );
    assert!(row("ko-0d1e2f")["notes_error"].as_str().unwrap().contains("notes.json:1:15"));
    let tagged: Vec<serde_json::Value> =
        serde_json::from_str(&ok(ms(c, &root, &["ls", "--json", "--tag", "ml"]))).unwrap();
    assert_eq!(tagged.len(), 1);

    // An empty note removes it.
    let o = ms(c, &root, &["note", "demo-en", ""]);
    assert!(o.status.success() && stderr(&o).contains("en-4d5e6f: no note"), "{}", stderr(&o));
    assert_eq!(notes_file(&root, "en-4d5e6f")["note"], "");
}

/// A group (its name) is each of its runs: tagging it tags every run, printed per run.
#[test]
fn a_group_name_tags_every_run_of_the_group() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    fixtures::groups(&root).unwrap();
    let out = ok(ms(t.path(), &root, &["tag", "ml40", "+arm"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("ml40.s") && l.ends_with(": arm")), "{out}");
    let out = ok(ms(t.path(), &root, &["ls", "--tag", "arm"]));
    assert!(out.contains("group g:") && out.contains("ml40 ×3") && !out.contains("en.s1"), "{out}");
}

/// `report` shows each run's tags and note where it lists the run, and runs.csv has them.
#[test]
fn report_lists_each_runs_note_and_tags() {
    let (t, root) = root();
    ok(ms(t.path(), &root, &["note", "demo-ml40", "the multilingual arm <b>"]));
    ok(ms(t.path(), &root, &["tag", "demo-ml40", "+keep"]));
    let out = t.path().join("report");
    ok(ms(t.path(), &root, &["report", "--out", out.to_str().unwrap(), "demo-ml40", "demo-en"]));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("<code>keep</code>") && html.contains("the multilingual arm &lt;b&gt;"), "{html}");
    let csv = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",tags,note"), "{csv}");
    let ml: Vec<&str> = csv.lines().filter(|l| l.starts_with("ml40-7a8b9c,")).collect();
    assert!(!ml.is_empty() && ml.iter().all(|l| l.ends_with(",keep,the multilingual arm <b>")), "{csv}");
    assert!(csv.lines().filter(|l| l.starts_with("en-4d5e6f,")).all(|l| l.ends_with(",,")), "{csv}");
}

/// Many `mixscope tag` processes at once, and a writer in this process all the while: every
/// tag added survives, the one removed is gone, and the file is whole JSON at the end.
#[test]
fn concurrent_tag_processes_and_an_in_process_writer_lose_nothing() {
    let (t, root) = root();
    let c = t.path();
    ok(ms(c, &root, &["tag", "demo-ml40", "+old"]));
    let dir = root.join("ml40-7a8b9c");
    let n = 16;
    let mut children: Vec<std::process::Child> = (0..n)
        .map(|i| {
            let mut cmd = cmd(c);
            let tag = if i == 0 { "-old".to_string() } else { format!("+p{i}") };
            cmd.args(["tag", "ml40-7a8b9c", &tag, "--runs"]).arg(&root);
            cmd.stdout(std::process::Stdio::null()).spawn().unwrap()
        })
        .collect();
    let inproc = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            for j in 0..20 {
                let change = mixscope::runs::notes::Change::from_tag_args(&[format!("+t{j}")]).unwrap();
                mixscope::runs::notes::update(&dir, &change).unwrap();
            }
        })
    };
    for ch in &mut children {
        assert!(ch.wait().unwrap().success());
    }
    inproc.join().unwrap();
    let n_tags = mixscope::runs::notes::read(&dir).unwrap().tags;
    let mut want: Vec<String> = (1..n).map(|i| format!("p{i}")).chain((0..20).map(|j| format!("t{j}"))).collect();
    want.sort();
    assert_eq!(n_tags, want);
    assert_eq!(ok(ms(c, &root, &["tag", "demo-ml40"])).trim(), want.join(" "));
}

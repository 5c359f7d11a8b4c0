//! The report a reader opens: a small real root (a base, a group of two seeds and a run alone
//! fine-tuned from it), reported; its tables give every value with its interval, what the
//! interval covers, K, n and the lineage; its figures shade the intervals and span the
//! fine-tuning runs' own steps; and a real browser (headless Chromium, where one is installed)
//! loads the page with every figure.

use crate::common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A headless Chromium, where one is installed.
fn browser() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"].iter().find_map(|b| {
        let ok = Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success());
        ok.then(|| PathBuf::from(b))
    })
}

/// Chromium's flags for a page of local files, run as root in CI, with no GPU.
fn headless(b: &Path, profile: &Path) -> Command {
    let mut c = Command::new(b);
    c.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--allow-file-access-from-files", "--virtual-time-budget=15000"]);
    c
}

/// The text between `<pre id="mixscope-check">` and its end, in a dumped DOM.
fn check_text(dom: &str) -> Option<String> {
    let at = dom.find("id=\"mixscope-check\">")?;
    let rest = &dom[at + "id=\"mixscope-check\">".len()..];
    Some(rest[..rest.find("</pre>")?].to_string())
}

fn root_with_a_base_and_its_fine_tunings(t: &Path) -> PathBuf {
    let root = t.join("runs");
    let cfg = fixture("tiny.toml");
    let base = root.join("base");
    let sets =
        ["--set", "max_steps=20", "--set", "eval.every=10", "--set", "checkpoint.every=10", "--set", "name=base"];
    let mut args = vec!["train", cfg.to_str().unwrap(), "--run-dir", base.to_str().unwrap(), "-q"];
    args.extend(sets);
    ok(run(t, &args));
    let rs = root.to_str().unwrap();
    let fork = |extra: &[&str]| {
        let mut a = vec!["fork", "base", "--at", "20", "--max-steps", "40", "--runs", rs];
        a.extend(extra);
        ok(cmd(t).env("MIXSCOPE_CPU_BUDGET", "2").args(&a).output().unwrap())
    };
    fork(&["--mix", "en=0.5,es=0.5", "--seeds", "2", "--name", "ml"]);
    fork(&["--mix", "en=1", "--name", "en"]);
    let done = wait_for(Duration::from_secs(240), || {
        let rows = ls(t, &root);
        rows.len() == 4 && rows.iter().all(|r| r["state"] == "finished")
    });
    assert!(done, "{:?}", ls(t, &root));
    root
}

#[test]
fn the_report_shows_intervals_lineage_and_own_steps_and_loads_in_a_browser() {
    let t = tempfile::tempdir().unwrap();
    let root = root_with_a_base_and_its_fine_tunings(t.path());
    let out = t.path().join("report");
    let (rs, o) = (root.to_str().unwrap(), out.to_str().unwrap());
    ok(run(t.path(), &["report", "--runs", rs, "--out", o]));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();

    // The table: the group's values over its seeds, the run's sampling only, each with its
    // interval; K, n and where each came from.
    for want in [
        "ml ×2",
        "across seeds (95 % t over K = 2 runs)",
        "sampling only (1 seed)",
        "base @ 20",
        "<span class=ci>[",
        "<th>n</th>",
    ] {
        assert!(html.contains(want), "{want} in the page");
    }
    let rows = html.split("<tr>").filter(|r| r.contains("<span class=ci>[")).count();
    assert!(rows >= 3 * 3, "every task of every group and run has intervals ({rows} rows)");

    // The loss figure spans the fine-tuning runs' own steps (20–40) with the base's last steps
    // as context; the base's whole curve has a figure of its own.
    let loss = std::fs::read_to_string(out.join("loss.svg")).unwrap();
    let doc = roxmltree::Document::parse(&loss).unwrap();
    let texts: Vec<&str> = doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).collect();
    assert!(texts.iter().any(|t| t.contains("base (parent, context)")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("fork @ 20")), "{texts:?}");
    assert!(out.join("loss-run-base.svg").exists() && html.contains("loss-run-base.svg"));
    // The group's languages figure shades its across-seed intervals.
    let group_fig = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("group-") && n.ends_with(".svg"))
        .expect("a group figure");
    let svg = std::fs::read_to_string(out.join(&group_fig)).unwrap();
    assert!(svg.contains("fill-opacity") || svg.contains("opacity"), "bands are translucent fills");
    assert!(svg.contains("mean of 2 seeds"));

    // Two named: their comparison.
    let out2 = t.path().join("report2");
    ok(run(t.path(), &["report", "--runs", rs, "--out", out2.to_str().unwrap(), "ml", "en"]));
    assert!(out2.join("compare.svg").exists() && out2.join("compare.png").exists());

    // A real browser loads the page and every figure on it.
    let Some(b) = browser() else {
        eprintln!("skipped the browser check: no chromium, chromium-browser or google-chrome installed");
        return;
    };
    let script = "<script>window.addEventListener('load', () => { const i = [...document.images]; \
        const bad = i.filter(x => !(x.complete && x.naturalWidth > 0)).map(x => x.getAttribute('src')); \
        const p = document.createElement('pre'); p.id = 'mixscope-check'; \
        p.textContent = 'images ' + i.length + ' broken ' + bad.length + ' ' + bad.join(' '); \
        document.body.appendChild(p); });</script></body>";
    std::fs::write(out.join("check.html"), html.replace("</body>", script)).unwrap();
    let profile = t.path().join("chromium-profile");
    let dom =
        headless(&b, &profile).arg("--dump-dom").arg(format!("file://{}", out.join("check.html").display())).output();
    let dom = dom.expect("running the browser");
    let text = String::from_utf8_lossy(&dom.stdout);
    let got = check_text(&text)
        .unwrap_or_else(|| panic!("the page's check did not run:\n{}\n{}", text, String::from_utf8_lossy(&dom.stderr)));
    let words: Vec<&str> = got.split_whitespace().collect();
    let (n, broken): (usize, usize) = (words[1].parse().unwrap(), words[3].parse().unwrap());
    assert_eq!(n, html.matches("<img ").count(), "{got}");
    assert!(n >= 4 && broken == 0, "every figure loads in the browser: {got}");
    // And a screenshot of it, decoded: the page as a reader sees it.
    let shot = t.path().join("report.png");
    let st = headless(&b, &profile)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1400,2400")
        .arg(format!("file://{}", out.join("index.html").display()))
        .output()
        .unwrap();
    assert!(shot.exists(), "{}", String::from_utf8_lossy(&st.stderr));
    let mut r = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap())).read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1400, 2400));
    if let Some(dir) = std::env::var_os("MIXSCOPE_REPORT_SHOT") {
        std::fs::copy(&shot, Path::new(&dir).join("report.png")).unwrap();
    }
}

//! The real binary driven in tmux as a person would: select, mark two runs and compare, open
//! the fork dialog and fork; the screen shows it and the fork's run directory exists.

use crate::common;
use common::*;
use std::process::Command;
use std::time::Duration;

struct Tmux {
    socket: String,
}

/// The user's state directory of the tests' TUIs (where it keeps its view across restarts):
/// one per process, never the user's own.
fn state_home() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path().to_path_buf()
}

impl Tmux {
    fn new(cmdline: &str) -> Tmux {
        Tmux::with_state(cmdline, &state_home())
    }
    /// A session whose TUI keeps its view state in `state` (`XDG_STATE_HOME`): the tmux
    /// server, started here, hands its environment to the session's command.
    fn with_state(cmdline: &str, state: &std::path::Path) -> Tmux {
        // One tmux server per session: the tests of this file run in parallel.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("mixscope-test-{}-{n}", std::process::id());
        let st = Command::new("tmux")
            .env("XDG_STATE_HOME", state)
            .args(["-L", &socket, "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", cmdline])
            .status();
        match st {
            Ok(s) if s.success() => {}
            other => panic!("tmux is needed for this test (.ci/run installs it): {other:?}"),
        }
        Tmux { socket }
    }
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            assert!(Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", "-t", "t", k])
                .status()
                .unwrap()
                .success());
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    fn screen(&self) -> String {
        let o = Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn wait_for(&self, what: &str, timeout: Duration) -> String {
        let mut last = String::new();
        let ok = wait_for(timeout, || {
            last = self.screen();
            last.contains(what)
        });
        assert!(ok, "screen never showed {what:?}:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // The server is gone already when the TUI quit and its session ended.
        let _ =
            Command::new("tmux").args(["-L", &self.socket, "kill-server"]).stderr(std::process::Stdio::null()).status();
    }
}

#[test]
fn select_mark_compare_and_fork_in_tmux() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let cfg = fixture("tiny.toml");
    // Two configs (their learning rates differ): two runs, not one group of seeds.
    for (dir, seed, lr) in [("alpha", "seed=1", "lr=0.003"), ("beta", "seed=2", "lr=0.002")] {
        let rd = root.join(dir);
        ok(run(
            t.path(),
            &[
                "train",
                cfg.to_str().unwrap(),
                "--run-dir",
                rd.to_str().unwrap(),
                "-q",
                "--set",
                "max_steps=20",
                "--set",
                seed,
                "--set",
                lr,
                "--set",
                &format!("name={dir}"),
            ],
        ));
    }
    let cmdline = format!(
        "env MIXSCOPE_CACHE={} MIXSCOPE_CONFIG_DIR=/nonexistent/mixscope-user-config MIXSCOPE_CPU_BUDGET=1 HF_HUB_OFFLINE=1 {} tui --runs {}",
        t.path().display(),
        bin().display(),
        root.display()
    );
    let tm = Tmux::new(&cmdline);
    let s = tm.wait_for("Runs 2", Duration::from_secs(20));
    assert!(s.contains("alpha") && s.contains("beta"), "{s}");
    // Mark both runs and compare.
    tm.keys(&["Home", "Space", "Down", "Space", "c"]);
    let s = tm.wait_for("COMPARE", Duration::from_secs(10));
    assert!(s.contains("2 marked") && s.contains("Compare") && s.contains("ΔB"), "{s}");
    tm.keys(&["c"]);
    // Fork the selected run (beta) at its latest checkpoint with the default mixture.
    tm.keys(&["f"]);
    let s = tm.wait_for("Fork beta", Duration::from_secs(10));
    assert!(s.contains("step ◀ 20 ▶") && s.contains("✔ EN 60"), "{s}");
    tm.keys(&["Enter"]);
    let s = tm.wait_for("beta-fork", Duration::from_secs(30));
    assert!(s.contains("forked beta into beta-fork-"), "{s}");
    let forks: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("beta-fork-"))
        .collect();
    assert_eq!(forks.len(), 1);
    let fork_dir = forks[0].path();
    assert!(fork_dir.join("run.toml").exists() && fork_dir.join("checkpoints/20/state.json").exists());
    let first = events(&fork_dir)[0].clone();
    assert_eq!(first["kind"], "fork");
    assert_eq!(first["parent"], "beta");
    // Quit: the TUI exits, the terminal is restored, the fork keeps (or finished) training.
    tm.keys(&["q"]);
    assert!(
        wait_for(Duration::from_secs(60), || last_state(&fork_dir).as_deref() == Some("finished")),
        "{:?}",
        last_state(&fork_dir)
    );
}

#[test]
fn runs_survive_the_tui_and_a_new_tui_shows_them() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let cfg = fixture("tiny.toml");
    let rs = root.to_str().unwrap();
    let id = ok(run(
        t.path(),
        &["launch", cfg.to_str().unwrap(), "--runs", rs, "--set", "max_steps=100000", "--set", "name=long"],
    ));
    let _end = EndOnDrop::new(t.path(), &root, &id);
    let dir = root.join(id.trim());
    let steps = || losses(&dir).last().map_or(0, |l| l.0);
    assert!(wait_for(Duration::from_secs(60), || steps() > 0), "the run never trained");
    let cmdline = format!(
        "env MIXSCOPE_CACHE={} MIXSCOPE_CONFIG_DIR=/nonexistent/mixscope-user-config HF_HUB_OFFLINE=1 {} tui --runs {}",
        t.path().display(),
        bin().display(),
        rs
    );
    {
        let tm = Tmux::new(&cmdline);
        tm.wait_for("long", Duration::from_secs(20));
        // Dropping the session closes the TUI's terminal (SIGHUP) while the run trains.
    }
    let at_close = steps();
    assert!(wait_for(Duration::from_secs(30), || steps() > at_close + 5), "the run stopped with the TUI");
    let tm = Tmux::new(&cmdline);
    tm.keys(&["Home"]);
    let s = tm.wait_for("running", Duration::from_secs(20));
    assert!(s.contains("long"), "{s}");
    let ls = ok(run(t.path(), &["ls", "--runs", rs]));
    assert!(ls.lines().any(|l| l.contains("long") && l.contains("running")), "{ls}");
    // Stop it from the new TUI: `s`, then confirm.
    tm.keys(&["s", "y"]);
    assert!(
        wait_for(Duration::from_secs(30), || last_state(&dir).as_deref() == Some("stopped")),
        "{:?}",
        last_state(&dir)
    );
    tm.keys(&["q"]);
}

impl Tmux {
    /// A tmux pane flag, e.g. `alternate_on` (the full-screen UI's screen) or `cursor_flag`.
    fn flag(&self, name: &str) -> String {
        let f = format!("#{{{name}}}");
        let o = Command::new("tmux").args(["-L", &self.socket, "display", "-p", "-t", "t", &f]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

#[test]
fn a_panic_in_the_tui_restores_the_terminal_and_runs_keep_going() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let cfg = fixture("tiny.toml");
    let rs = root.to_str().unwrap();
    let id = ok(run(t.path(), &["launch", cfg.to_str().unwrap(), "--runs", rs, "--set", "max_steps=100000"]));
    let _end = EndOnDrop::new(t.path(), &root, &id);
    let dir = root.join(id.trim());
    let steps = || losses(&dir).last().map_or(0, |l| l.0);
    assert!(wait_for(Duration::from_secs(60), || steps() > 0), "the run never trained");
    // The shell stays after the TUI ends, so the pane shows what the TUI left behind.
    let cmdline = format!(
        "sh -c 'env RUST_BACKTRACE=0 MIXSCOPE_CACHE={} MIXSCOPE_CONFIG_DIR=/nonexistent/mixscope-user-config HF_HUB_OFFLINE=1 MIXSCOPE_TEST_PANIC=1 {} tui --runs {}; echo TUI-EXIT=$?; sleep 60'",
        t.path().display(),
        bin().display(),
        rs
    );
    let tm = Tmux::new(&cmdline);
    let s = tm.wait_for("TUI-EXIT=", Duration::from_secs(20));
    assert!(s.contains("injected panic"), "the panic message is shown:\n{s}");
    assert!(s.contains("TUI-EXIT=101"), "{s}");
    assert_eq!(tm.flag("alternate_on"), "0", "back on the normal screen");
    assert_eq!(tm.flag("cursor_flag"), "1", "the cursor is visible again");
    assert_eq!(tm.flag("mouse_any_flag"), "0", "mouse reporting is off again");
    let at_panic = steps();
    assert!(wait_for(Duration::from_secs(30), || steps() > at_panic + 3), "the run stopped with the TUI");
    ok(run(t.path(), &["stop", id.trim(), "--runs", rs]));
}

#[test]
fn a_sweep_launched_from_the_tui_appears_as_one_node_and_its_view_fills_in() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let rs = root.to_str().unwrap();
    let cmdline = format!(
        "env MIXSCOPE_CACHE={} MIXSCOPE_CONFIG_DIR=/nonexistent/mixscope-user-config HF_HUB_OFFLINE=1 {} tui --runs {}",
        t.path().display(),
        bin().display(),
        rs
    );
    let tm = Tmux::new(&cmdline);
    tm.wait_for("Start the demo", Duration::from_secs(20));
    // Decline the demo; `n` takes a sweep file as well as a run config.
    tm.keys(&["Escape", "n", "C-u", fixture("sweep-tiny.toml").to_str().unwrap(), "Enter"]);
    tm.wait_for("◆ tiny-sweep · 4 runs", Duration::from_secs(30));
    let s = tm.wait_for("4✔", Duration::from_secs(120));
    assert!(s.contains("tiny-sweep n=0") && s.contains("tiny-sweep n=48"), "{s}");
    // The sweep node is the first row: its view shows the groups against n.
    tm.keys(&["Home", "Up", "Up", "Up", "Up", "Up"]);
    let s = tm.wait_for("Sweep tiny-sweep", Duration::from_secs(10));
    assert!(s.contains("MR EN") && s.contains("x = n") && s.contains("4 finished"), "{s}");
    tm.keys(&["q"]);
    let ls = ok(run(t.path(), &["ls", "--runs", rs]));
    assert!(ls.contains("(tiny-sweep): 4 runs — 4 finished"), "{ls}");
}

#[test]
fn a_users_keymap_rebinds_keys_and_the_help_screen_shows_it() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    std::fs::create_dir_all(&root).unwrap();
    let conf = t.path().join("user-config");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("keymap.toml"),
        "[[key]]\nkeys = [\"h\"]\naction = \"help\"\nhelp = \"my help key\"\n\n\
         [[key]]\nkeys = [\"n\"]\naction = \"close\"\ncontext = \"demo\"\n",
    )
    .unwrap();
    let cmdline = format!(
        "env MIXSCOPE_CACHE={} MIXSCOPE_CONFIG_DIR={} HF_HUB_OFFLINE=1 {} tui --runs {}",
        t.path().display(),
        conf.display(),
        bin().display(),
        root.display()
    );
    let tm = Tmux::new(&cmdline);
    // The empty root offers the demo; its hint names the user's key for "not now".
    let s = tm.wait_for("Start the demo", Duration::from_secs(20));
    assert!(s.contains("n: not now"), "{s}");
    tm.keys(&["n"]);
    // `?` no longer opens the help; `h` does, and the help lists `h` with the user's text.
    tm.keys(&["?"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!tm.screen().contains("Keys ·"), "{}", tm.screen());
    tm.keys(&["h"]);
    let s = tm.wait_for("Keys ·", Duration::from_secs(10));
    assert!(s.lines().any(|l| l.contains("h ") && l.contains("my help key")), "{s}");
    assert!(s.contains("fork dialog:"), "{s}");
    tm.keys(&["Escape"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!tm.screen().contains("Keys ·"), "{}", tm.screen());
    tm.keys(&["q"]);
    // Nothing was started.
    assert_eq!(std::fs::read_dir(&root).unwrap().filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).count(), 0);
}

/// `launch --seeds 2`: two runs of one config that differ only in seed. The TUI lists them as
/// one group node (its name, ×2, its runs' states) whose curves are the mean with the
/// across-seed interval shaded (`⢕`) under it; expanding the node lists both runs.
#[test]
fn a_group_launched_with_seeds_shows_its_band_and_expands() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let rs = root.to_str().unwrap();
    let cfg = fixture("tiny.toml");
    let out =
        ok(run(t.path(), &["launch", cfg.to_str().unwrap(), "--runs", rs, "--seeds", "2", "--set", "max_steps=30"]));
    let ids: Vec<&str> = out.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(ids.len(), 2, "{out}");
    for id in &ids {
        let dir = root.join(id);
        assert!(
            wait_for(Duration::from_secs(180), || last_state(&dir).as_deref() == Some("finished")),
            "{id}: {:?}",
            last_state(&dir)
        );
    }
    let cmdline = format!(
        "env MIXSCOPE_CACHE={} MIXSCOPE_CONFIG_DIR=/nonexistent/mixscope-user-config HF_HUB_OFFLINE=1 {} tui --runs {}",
        t.path().display(),
        bin().display(),
        rs
    );
    let tm = Tmux::new(&cmdline);
    let s = tm.wait_for("tiny ×2", Duration::from_secs(20));
    assert!(s.contains("▸ tiny ×2") && s.contains("2 finished"), "{s}");
    assert!(!s.contains(ids[0]) && !s.contains(ids[1]), "collapsed: the runs are not listed\n{s}");
    // The group is the first row: selected. Its loss pane draws the mean and the band.
    tm.keys(&["Home"]);
    let s = tm.wait_for("mean of 2", Duration::from_secs(10));
    let shaded = s.lines().filter(|l| l.contains('⢕') && !l.contains("95% across seeds")).count();
    assert!(shaded >= 2, "the band's shading is drawn:\n{s}");
    assert!(s.contains("K=2 n="), "the table says K and n:\n{s}");
    // Expand: both runs, by seed (tiny.toml's seed is 1: seeds 1 and 2).
    tm.keys(&["Right"]);
    let s = tm.wait_for("▾ tiny ×2", Duration::from_secs(10));
    assert!(s.contains("seed 1 · tiny-") && s.contains("seed 2 · tiny-"), "{s}");
    tm.keys(&["q"]);
}

/// The first x label of the loss pane (the chart's axis line under the top pane on the right).
fn first_x_label(screen: &str) -> f64 {
    let lines: Vec<&str> = screen.lines().collect();
    let axis = lines.iter().position(|l| l.contains("└──")).expect("no chart axis on screen");
    let labels = lines[axis + 1].split('│').rev().nth(1).unwrap_or("");
    labels.split_whitespace().next().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("{screen}"))
}

/// A new user's fork: its loss pane first continues its base's curve (the base's 40 steps
/// squeeze the fork's own 10 to the right); `z` shows the fork's own steps, then the last
/// quarter of them. The range is kept: a new TUI on the root shows it again.
#[test]
fn the_x_range_key_on_a_fork_shows_its_own_steps_and_is_kept_across_restarts() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let rs = root.to_str().unwrap();
    let cfg = fixture("tiny.toml");
    let base = root.join("base");
    ok(run(
        t.path(),
        &["train", cfg.to_str().unwrap(), "--run-dir", base.to_str().unwrap(), "-q", "--set", "max_steps=40"],
    ));
    let out = ok(run(
        t.path(),
        &["fork", "base", "--at", "40", "--mix", "en=1", "--name", "own", "--max-steps", "50", "--runs", rs],
    ));
    let fork = root.join(out.trim());
    assert!(
        wait_for(Duration::from_secs(120), || last_state(&fork).as_deref() == Some("finished")),
        "{:?}",
        last_state(&fork)
    );
    let state = t.path().join("state");
    let cmdline = format!(
        "env MIXSCOPE_CACHE={} MIXSCOPE_CONFIG_DIR=/nonexistent/mixscope-user-config HF_HUB_OFFLINE=1 {} tui --runs {}",
        t.path().display(),
        bin().display(),
        rs
    );
    {
        let tm = Tmux::with_state(&cmdline, &state);
        tm.wait_for("Runs 2", Duration::from_secs(20));
        // The fork is the second row, under its base.
        tm.keys(&["Home", "Down"]);
        let s = tm.wait_for("Loss own", Duration::from_secs(10));
        assert!(first_x_label(&s) < 5.0, "the lineage starts at the base's first step:\n{s}");
        tm.keys(&["z"]);
        let s = tm.wait_for("own steps", Duration::from_secs(10));
        assert!((40.0..=41.0).contains(&first_x_label(&s)), "the fork's own steps:\n{s}");
        tm.keys(&["z"]);
        let s = tm.wait_for("last 25%", Duration::from_secs(10));
        assert!(first_x_label(&s) >= 45.0, "the last quarter of them:\n{s}");
        tm.keys(&["q"]);
        std::thread::sleep(Duration::from_millis(500));
    }
    let saved: Vec<_> = std::fs::read_dir(state.join("mixscope")).unwrap().flatten().collect();
    assert_eq!(saved.len(), 1, "one state file for the root");
    // A new TUI: the same range, the same run selected.
    let tm = Tmux::with_state(&cmdline, &state);
    let s = tm.wait_for("Loss own", Duration::from_secs(20));
    assert!(s.contains("last 25%") && first_x_label(&s) >= 45.0, "{s}");
    tm.keys(&["q"]);
}

/// A TUI on the standard fixture's runs (no training: their events are written whole).
fn fixture_tui(t: &tempfile::TempDir) -> (std::path::PathBuf, Tmux) {
    let root = t.path().join("runs");
    mixscope::tui::fixtures::standard(&root).unwrap();
    let cmdline = format!(
        "env MIXSCOPE_CACHE={} MIXSCOPE_CONFIG_DIR=/nonexistent/mixscope-user-config HF_HUB_OFFLINE=1 {} tui --runs {}",
        t.path().display(),
        bin().display(),
        root.display()
    );
    let tm = Tmux::new(&cmdline);
    tm.wait_for("Runs 5", Duration::from_secs(20));
    (root, tm)
}

/// `N` on a run: type a note and tags, save; the file on disk has them and the screen shows
/// them. A tag added from a shell meanwhile shows up too; `/tag:keep` keeps the runs tagged.
#[test]
fn a_note_and_tags_written_in_the_tui_are_saved_and_filter_the_tree() {
    let t = tempfile::tempdir().unwrap();
    let (root, tm) = fixture_tui(&t);
    // Rows: demo-base, demo-en, demo-ml40 (under the base), ml40-plus-ko, n400-seed1.
    tm.keys(&["Home", "Down", "Down", "N"]);
    tm.wait_for("Note and tags · demo-ml40", Duration::from_secs(10));
    tm.keys(&["multilingual arm, the one to keep", "Tab", "keep ml", "Enter"]);
    let s = tm.wait_for("saved the note and tags of demo-ml40", Duration::from_secs(20));
    assert!(s.contains("tags keep ml"), "{s}");
    let file = std::fs::read_to_string(root.join("ml40-7a8b9c").join("notes.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(v["note"], "multilingual arm, the one to keep");
    assert_eq!(v["tags"], serde_json::json!(["keep", "ml"]));
    let s = tm.wait_for("#keep #ml", Duration::from_secs(10));
    assert!(s.contains("✎ demo-ml40") && s.contains("✎ multilingual arm, the one to keep"), "{s}");
    // From a shell while the TUI runs: its collector reads the change.
    let out = ok(run(t.path(), &["tag", "demo-en", "+keep", "--runs", root.to_str().unwrap()]));
    assert_eq!(out.trim(), "keep");
    tm.wait_for("# demo-en", Duration::from_secs(20));
    // The filter: runs tagged keep only.
    tm.keys(&["/", "tag:keep"]);
    let s = tm.wait_for("runs tagged keep", Duration::from_secs(10));
    assert!(s.contains("demo-en") && s.contains("demo-ml40"), "{s}");
    // Their tree rows only (the log may name the others).
    assert!(!s.contains("◌ n400-seed1") && !s.contains("@500 ml40-plus-ko") && !s.contains("✔ demo-base"), "{s}");
    tm.keys(&["Enter", "q"]);
}

/// Compare on two runs whose configs differ: the keys that differ are listed above the charts.
#[test]
fn compare_shows_the_config_keys_that_differ_in_tmux() {
    let t = tempfile::tempdir().unwrap();
    let (_root, tm) = fixture_tui(&t);
    tm.keys(&["Home", "Down", "Space", "Down", "Space", "c"]);
    let s = tm.wait_for("≠ data.mixture", Duration::from_secs(10));
    let line = s.lines().find(|l| l.contains("≠ data.mixture")).unwrap();
    assert!(line.contains("A multilingual=0 ") && line.contains("B multilingual=0.4"), "{s}");
    assert!(s.contains("≠ name") && !s.contains("≠ seed"), "{s}");
    tm.keys(&["q"]);
}

/// The export key writes the focused pane's figure as SVG and PNG under the runs root's
/// `exports/`, and the log names the file: the loss pane, then the languages pane.
#[test]
fn the_export_key_writes_the_focused_panes_figure_and_the_log_names_it() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let cfg = fixture("tiny.toml");
    let rd = root.join("alpha");
    ok(run(
        t.path(),
        &[
            "train",
            cfg.to_str().unwrap(),
            "--run-dir",
            rd.to_str().unwrap(),
            "-q",
            "--set",
            "max_steps=20",
            "--set",
            "name=alpha",
        ],
    ));
    let cmdline = format!(
        "env MIXSCOPE_CACHE={} MIXSCOPE_CONFIG_DIR=/nonexistent/mixscope-user-config HF_HUB_OFFLINE=1 {} tui --runs {}",
        t.path().display(),
        bin().display(),
        root.display()
    );
    let tm = Tmux::new(&cmdline);
    tm.wait_for("Runs 1", Duration::from_secs(20));
    let exports = root.join("exports");
    let files = |pane: &str| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> =
            std::fs::read_dir(&exports).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        v.retain(|p: &std::path::PathBuf| {
            p.file_name().unwrap().to_string_lossy().starts_with(&format!("alpha-{pane}-"))
        });
        v.sort();
        v
    };
    // The run list has the keys; Tab focuses the loss pane.
    tm.keys(&["Home", "Tab", "e"]);
    for (pane, then) in [("loss", Some("Tab")), ("languages", None)] {
        let s = tm.wait_for(&format!("wrote {pane} pane: "), Duration::from_secs(30));
        let v = files(pane);
        assert_eq!(v.len(), 2, "an SVG and a PNG: {v:?}");
        let (png, svg) = (&v[0], &v[1]);
        assert!(svg.extension().unwrap() == "svg" && png.extension().unwrap() == "png");
        let name = svg.file_name().unwrap().to_string_lossy().into_owned();
        assert!(s.contains(&format!("exports/{name} + .png")), "the log names {name}:\n{s}");
        let text = std::fs::read_to_string(svg).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(doc.descendants().any(|n| n.has_tag_name("text") && n.text().is_some_and(|t| t.contains("alpha"))));
        let mut r = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap())).read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert!(info.width >= 600 && info.height >= 300, "{}×{}", info.width, info.height);
        if let Some(k) = then {
            tm.keys(&[k, "e"]);
        }
    }
    tm.keys(&["q"]);
}

/// What the model wrote, as a person reads it: two tiny real runs; tab to the languages
/// table, enter on its language: the held-out examples' prompts, answers and scores; the
/// failures filter; then compare the two runs and open A's and B's answers side by side,
/// filtered to where their scores differ.
#[test]
fn samples_view_from_the_languages_table_in_tmux() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    let cfg = fixture("tiny.toml");
    for (dir, seed, lr) in [("alpha", "seed=1", "lr=0.003"), ("beta", "seed=2", "lr=0.002")] {
        let rd = root.join(dir);
        let name = format!("name={dir}");
        let sets = ["max_steps=20", seed, lr, &name];
        let mut args = vec!["train", cfg.to_str().unwrap(), "--run-dir", rd.to_str().unwrap(), "-q"];
        for s in &sets {
            args.extend(["--set", s]);
        }
        ok(run(t.path(), &args));
        assert!(rd.join("samples/20.jsonl.zst").exists());
    }
    let cmdline = format!(
        "env MIXSCOPE_CACHE={} MIXSCOPE_CONFIG_DIR=/nonexistent/mixscope-user-config HF_HUB_OFFLINE=1 {} tui --runs {}",
        t.path().display(),
        bin().display(),
        root.display()
    );
    let tm = Tmux::new(&cmdline);
    tm.wait_for("Runs 2", Duration::from_secs(20));
    // The languages pane (tab, tab), its first language (English), enter.
    tm.keys(&["Tab", "Tab", "Enter"]);
    let s = tm.wait_for("Samples MR en", Duration::from_secs(10));
    let s = if s.contains("step 20") {
        s
    } else {
        tm.wait_for("step 20 (evaluation 2 of 2 stored)", Duration::from_secs(10))
    };
    assert!(s.contains("prompt") && s.contains("reference") && s.contains("answer") && s.contains("#0"), "{s}");
    assert!(s.contains("accuracy") && s.contains("n=4") && (s.contains("✗ fail") || s.contains("✓ pass")), "{s}");
    tm.keys(&["f"]);
    tm.wait_for("showing failures:", Duration::from_secs(5));
    tm.keys(&["Escape"]);
    let ok_closed = wait_for(Duration::from_secs(5), || !tm.screen().contains("Samples MR"));
    assert!(ok_closed, "{}", tm.screen());
    // Back to the run list (tab), mark both, compare; the compare table (tab, tab), enter.
    tm.keys(&["Tab", "Space", "Down", "Space", "c"]);
    tm.wait_for("COMPARE", Duration::from_secs(10));
    tm.keys(&["Tab", "Tab", "Enter"]);
    tm.wait_for("A vs B", Duration::from_secs(10));
    let s = tm.wait_for("step 20 (evaluation 2 of 2 stored)", Duration::from_secs(10));
    assert!(s.contains("A alpha") && s.contains("B beta") && s.contains("answers") && s.contains("n=4"), "{s}");
    tm.keys(&["d"]);
    tm.wait_for("scores differ:", Duration::from_secs(5));
    tm.keys(&["Escape", "q"]);
}

//! Between two runs, in the TUI drawn through TestBackend: a run's note and tags in the tree
//! and its panel, the notes dialog, the `tag:` filter, a change from a shell read through the
//! collector; and the compare view's list of config keys that differ.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mixscope::runs::notes::{self, Change, NoteEdit};
use mixscope::tui::app::{App, Request};
use mixscope::tui::collect::{Collector, Delta};
use mixscope::tui::dialogs::Dialog;
use mixscope::tui::keymap::Keymap;
use mixscope::tui::theme::Theme;
use mixscope::tui::{fixtures, ui};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::path::Path;

fn app(store: mixscope::tui::store::Store) -> App {
    let mut app = App::new(store, Theme::dark(), Keymap::default_map());
    app.now = fixtures::T0 + 1000.0;
    app.system.cores = 2;
    app.system.mem_total_gb = 23.5;
    app.system.mem_used_gb = 3.2;
    app.system.cpu_pct = Some(97.0);
    app
}

fn render(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.screen = ratatui::layout::Rect::new(0, 0, w, h);
    app.derive();
    t.draw(|f| ui::draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.replace(&app.store.root.display().to_string(), "runs")
}

fn snap(name: &str, app: &mut App, sizes: &[(u16, u16)]) {
    for &(w, h) in sizes {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), render(app, w, h));
    }
}

fn press(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn typed(app: &mut App, s: &str) {
    for c in s.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn select(app: &mut App, id_prefix: &str) {
    app.sel.selected = app.sel.rows.iter().position(|r| app.store.runs[r.run].id.starts_with(id_prefix)).unwrap();
    app.pick_task();
}

fn set(dir: &Path, note: Option<&str>, tags: &[&str]) {
    let mut c = Change::from_tag_args(tags).unwrap();
    c.note = note.map(|n| NoteEdit::Set(n.into()));
    notes::update(dir, &c).unwrap();
}

/// The standard fixture, demo-en with a note and two tags, demo-ml40 with a tag only.
fn noted() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    fixtures::standard(&root).unwrap();
    set(&root.join("en-4d5e6f"), Some("lr 1e-4 looks too low\nretry at 3e-4"), &["baseline", "keep"]);
    set(&root.join("ml40-7a8b9c"), None, &["keep"]);
    (t, root)
}

#[test]
fn notes_and_tags_show_in_the_tree_and_the_run_panel() {
    let (_t, root) = noted();
    let mut a = app(mixscope::tui::store::Store::load(&root));
    select(&mut a, "en-");
    let s = render(&mut a, 120, 40);
    assert!(s.contains("✎ demo-en") && s.contains("# demo-ml40") && !s.contains("✎ demo-base"), "{s}");
    assert!(s.contains("tags #baseline #keep") && s.contains("✎ lr 1e-4 looks too low ⏎ retry at 3e-4"), "{s}");
    snap("notes_run_panel", &mut a, &[(120, 40), (80, 24)]);
}

/// `N` opens the dialog on the selected run; saving is a request (the event loop writes the
/// file off the UI thread); the file written, the collector reads it and the tree shows it.
#[test]
fn the_notes_dialog_saves_through_a_request_and_the_collector_brings_it_back() {
    let (_t, root) = noted();
    let (mut collector, store) = Collector::load(&root);
    let mut a = app(store);
    select(&mut a, "ko-");
    press(&mut a, KeyCode::Char('N'));
    assert!(matches!(&a.dialog, Some(Dialog::Notes(_))));
    typed(&mut a, "SIGKILL at 560: OOM?");
    press(&mut a, KeyCode::Tab);
    typed(&mut a, "oom keep");
    snap("notes_dialog", &mut a, &[(120, 40)]);
    press(&mut a, KeyCode::Enter);
    assert!(a.dialog.is_none());
    let [Request::Notes { runs, change, .. }] = a.pending.as_slice() else { panic!("{:?}", a.pending) };
    assert_eq!(runs, &["ko-0d1e2f"]);
    // What the event loop does with the request (mixscope::tui's `perform`), then the
    // collector's look after a request.
    notes::update(&root.join("ko-0d1e2f"), change).unwrap();
    let deltas = collector.collect(true, true);
    assert!(deltas.iter().any(|d| matches!(d, Delta::Notes { .. })), "{deltas:?}");
    for d in deltas {
        a.apply(d);
    }
    a.on_data();
    let r = a.store.get("ko-0d1e2f").unwrap();
    assert_eq!((r.notes.note.as_str(), r.notes.tags.join(" ")), ("SIGKILL at 560: OOM?", "keep oom".into()));
    assert!(render(&mut a, 120, 40).contains("└✘ @500 ✎ ml40-plus"));
    // Nothing changed since: nothing read again.
    assert!(!collector.collect(true, true).iter().any(|d| matches!(d, Delta::Notes { .. })));
}

/// A tag written from a shell while the TUI runs: the watcher names the run, the collector
/// reads its notes, the `tag:` filter follows.
#[test]
fn the_tag_filter_shows_the_runs_carrying_it_and_follows_changes() {
    let (_t, root) = noted();
    let (mut collector, store) = Collector::load(&root);
    let mut a = app(store);
    let all = a.sel.rows.len();
    press(&mut a, KeyCode::Char('/'));
    typed(&mut a, "tag:keep");
    let ids = |a: &App| a.sel.rows.iter().map(|r| a.store.runs[r.run].id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ["en-4d5e6f", "ml40-7a8b9c"]);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("runs tagged keep") && !s.contains("n400-seed1"), "{s}");
    press(&mut a, KeyCode::Enter);
    // From a shell: another run tagged; the collector is told by the watcher.
    set(&root.join("sweep-3f4a5b"), None, &["keep"]);
    collector.touched(&root.join("sweep-3f4a5b").join("notes.json"));
    for d in collector.collect(false, false) {
        a.apply(d);
    }
    a.on_data();
    assert_eq!(ids(&a), ["en-4d5e6f", "ml40-7a8b9c", "sweep-3f4a5b"]);
    // Two tags: the runs carrying both; a bad name filters nothing and says why.
    press(&mut a, KeyCode::Char('/'));
    typed(&mut a, ",baseline");
    assert_eq!(ids(&a), ["en-4d5e6f"]);
    typed(&mut a, " x");
    assert_eq!(a.sel.rows.len(), all, "a bad tag: no filter");
    assert!(render(&mut a, 120, 40).contains("holds a space"));
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.sel.rows.len(), all);
}

fn compare(a: &mut App, x: &str, y: &str) {
    select(a, x);
    press(a, KeyCode::Char(' '));
    select(a, y);
    press(a, KeyCode::Char(' '));
    press(a, KeyCode::Char('c'));
    assert!(a.view.compare);
}

/// The compare view lists the config keys that differ (as `mixscope diff`), the equal ones
/// left out; more than fit: the rest named on one line.
#[test]
fn compare_lists_the_config_keys_that_differ() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    fixtures::standard(&root).unwrap();
    let mut a = app(mixscope::tui::store::Store::load(&root));
    compare(&mut a, "en-", "ml40-");
    let s = render(&mut a, 120, 40);
    let line = s.lines().find(|l| l.contains("≠ data.mixture")).unwrap_or_else(|| panic!("{s}"));
    assert!(line.contains("A multilingual=0 ") && line.contains("B multilingual=0.4"), "{line}");
    assert!(s.contains("≠ name") && !s.contains("≠ seed") && !s.contains("≠ train."), "{s}");
    // demo-en against ml40-plus-ko: their mixtures, held-out languages, names and lineage.
    let mut a = app(mixscope::tui::store::Store::load(&root));
    compare(&mut a, "en-", "ko-");
    let s = render(&mut a, 120, 40);
    let keys: Vec<&str> = a.derived.config_diff.iter().flatten().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["data.heldout", "data.mixture", "lineage.fork_step", "lineage.parent", "name"]);
    // As many as fit, then the rest by name.
    assert!(s.contains("≠ data.mixture") && s.contains("≠ +3 more: lineage.fork_step lineage.parent name"), "{s}");
    snap("compare_config_diff", &mut a, &[(120, 40), (80, 24)]);
    let tall = render(&mut a, 160, 60);
    let fork = tall.lines().find(|l| l.contains("≠ lineage.fork_step")).unwrap_or_else(|| panic!("{tall}"));
    assert!(fork.contains("A 300") && fork.contains("B 500") && tall.contains("≠ name"), "{tall}");
}

/// Groups: the keys that differ between the groups; the seeds they share are not among them.
#[test]
fn compare_of_groups_lists_what_differs_between_the_groups() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    fixtures::groups(&root).unwrap();
    let mut a = app(mixscope::tui::store::Store::load(&root));
    for name in ["ml40 ×3", "en ×3"] {
        let i = a.sel.rows.iter().position(|r| r.label == name).unwrap();
        a.sel.selected = i;
        press(&mut a, KeyCode::Char(' '));
    }
    press(&mut a, KeyCode::Char('c'));
    let _ = render(&mut a, 120, 40);
    let keys: Vec<&str> = a.derived.config_diff.iter().flatten().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["data.mixture", "name"]);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("≠ data.mixture") && !s.contains("≠ seed"), "{s}");
}

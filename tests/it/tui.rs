//! The TUI drawn through ratatui's TestBackend: snapshots of every screen at 120×40 and 80×24
//! on fixture runs (a fork branch, a failed run, the compare view), and the too-small message.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mixscope::runs::events::State;
use mixscope::tui::app::App;
use mixscope::tui::keymap::Keymap;
use mixscope::tui::store::Store;
use mixscope::tui::theme::Theme;
use mixscope::tui::{fixtures, ui};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

pub(crate) fn app(root: &std::path::Path) -> App {
    let mut store = Store::load(root);
    for r in &mut store.runs {
        // The fixture has no live processes: say which one is live.
        if r.id.starts_with("en-") {
            r.alive = true;
            r.state = State::Running;
            r.message = None;
        }
    }
    let mut app = App::new(store, Theme::dark(), Keymap::default_map());
    app.now = fixtures::T0 + 1000.0;
    app.system.cores = 2;
    app.system.mem_total_gb = 23.5;
    app.system.mem_used_gb = 3.2;
    app.system.cpu_pct = Some(97.0);
    app
}

pub(crate) fn render(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.screen = ratatui::layout::Rect::new(0, 0, w, h);
    app.derive();
    t.draw(|f| ui::draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(crate) fn render_buf(app: &mut App, w: u16, h: u16) -> ratatui::buffer::Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.screen = ratatui::layout::Rect::new(0, 0, w, h);
    app.derive();
    t.draw(|f| ui::draw(f, app)).unwrap();
    t.backend().buffer().clone()
}

pub(crate) fn key(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

pub(crate) fn select(app: &mut App, id_prefix: &str) {
    let i = app.sel.rows.iter().position(|r| app.store.runs[r.run].id.starts_with(id_prefix)).unwrap();
    app.sel.selected = i;
    app.pick_task();
}

fn fixture() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    fixtures::standard(&t.path().join("runs")).unwrap();
    t
}

fn both_sizes(name: &str, app: &mut App) {
    // Strip the temp dir's path from the title line.
    let root = app.store.root.display().to_string();
    for (w, h) in [(120, 40), (80, 24)] {
        let s = render(app, w, h).replace(&root, "runs");
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), s);
    }
}

#[test]
fn main_screen_with_a_fork_branch_and_a_failed_run() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    select(&mut a, "en-");
    let s = render(&mut a, 120, 40);
    // The tree nests forks under their parent at the fork step.
    assert!(s.contains("demo-base") && s.contains("@300") && s.contains("@500"), "{s}");
    assert!(s.contains("✘"), "the failed run shows its glyph");
    both_sizes("main", &mut a);
}

/// The x range key (`z`) on a fork: the whole lineage (its base's steps first), the fork's
/// own steps, the last 25 % of them; then the lineage again. The languages pane follows.
#[test]
fn the_x_range_key_shows_a_forks_own_steps_and_the_last_of_them() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    select(&mut a, "en-");
    let lineage = render(&mut a, 120, 40);
    key(&mut a, KeyCode::Char('z'));
    assert_eq!(a.view.x_range, mixscope::tui::app::XRange::Own);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("x: step · own steps"), "{s}");
    both_sizes("x_range_own", &mut a);
    key(&mut a, KeyCode::Char('z'));
    let s = render(&mut a, 120, 40);
    assert!(s.contains("x: step · last 25%"), "{s}");
    both_sizes("x_range_recent", &mut a);
    key(&mut a, KeyCode::Char('z'));
    assert_eq!(render(&mut a, 120, 40), lineage, "back to the lineage");
    // The compare view follows: the last 25 % of each side's steps.
    let mut c = comparing(&t);
    key(&mut c, KeyCode::Char('z'));
    key(&mut c, KeyCode::Char('z'));
    let s = render(&mut c, 120, 40);
    assert!(s.contains("COMPARE") && s.contains("last 25%"), "{s}");
    both_sizes("x_range_compare_recent", &mut c);
}

#[test]
fn failed_run_details_show_the_reason() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    select(&mut a, "ko-");
    let s = render(&mut a, 120, 40);
    assert!(s.contains("SIGKILL"), "{s}");
    both_sizes("failed", &mut a);
}

/// The fixture's English-only and multilingual runs, marked and compared.
pub(crate) fn comparing(t: &tempfile::TempDir) -> App {
    let mut a = app(&t.path().join("runs"));
    select(&mut a, "en-");
    key(&mut a, KeyCode::Char(' '));
    select(&mut a, "ml40-");
    key(&mut a, KeyCode::Char(' '));
    key(&mut a, KeyCode::Char('c'));
    a
}

#[test]
fn compare_view() {
    let t = fixture();
    let mut a = comparing(&t);
    assert!(a.view.compare);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("Compare") && s.contains("unseen avg") && s.contains("ΔB"), "{s}");
    both_sizes("compare", &mut a);
}

/// The delta cell after `row`'s label in the compare table: its text and foreground colour.
fn delta_cell(app: &mut App, row: &str) -> (String, ratatui::style::Color) {
    let mut t = Terminal::new(TestBackend::new(120, 40)).unwrap();
    app.derive();
    t.draw(|f| ui::draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    for y in 0..40 {
        let line: String = (0..120).map(|x| buf[(x, y)].symbol().to_string()).collect();
        let Some(at) = line.find(&format!("│{row} ")) else { continue };
        // Columns: label (17), A, B (6 each), then ΔB.
        let start = line[..at].chars().count() as u16 + 1 + 18 + 7 + 7;
        let text: String = (start..start + 7).map(|x| buf[(x, y)].symbol().to_string()).collect();
        return (text.trim().to_string(), buf[(start, y)].fg);
    }
    panic!("no row {row}");
}

#[test]
fn compare_marks_only_deltas_whose_interval_excludes_zero() {
    let t = fixture();
    let mut a = comparing(&t);
    let th = Theme::dark();
    // Spanish: 19 of 64 vs 46 of 64, far apart: marked, in the "better" colour.
    let (es, es_fg) = delta_cell(&mut a, "es");
    assert!(es.starts_with('+') && es.ends_with('*'), "{es}");
    assert_ne!(es_fg, th.dim);
    assert_eq!(es_fg, th.state(State::Running));
    let (seen, seen_fg) = delta_cell(&mut a, "seen avg");
    assert!(seen.ends_with('*') && seen_fg != th.dim, "{seen}");
    // Korean: one example apart: no mark, grey, however it is signed.
    let (ko, ko_fg) = delta_cell(&mut a, "ko");
    assert!(!ko.ends_with('*') && ko != "-", "{ko}");
    assert_eq!(ko_fg, th.dim);
    let (unseen, unseen_fg) = delta_cell(&mut a, "unseen avg");
    assert!(!unseen.ends_with('*') && unseen_fg == th.dim, "{unseen}");
    // The ratio to English has no interval: never marked.
    let (ratio, ratio_fg) = delta_cell(&mut a, "ratio to English");
    assert!(!ratio.ends_with('*') && ratio_fg == th.dim, "{ratio}");
}

#[test]
fn fork_dialog_validates_live() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    select(&mut a, "ml40-");
    key(&mut a, KeyCode::Char('f'));
    both_sizes("fork_dialog", &mut a);
    // Type a bad SPEC: the dialog says why and stays open.
    key(&mut a, KeyCode::Tab);
    for c in ",xx=1".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    let s = render(&mut a, 120, 40);
    assert!(s.contains("unknown language 'xx'"), "{s}");
    key(&mut a, KeyCode::Enter);
    assert!(a.pending.is_empty(), "an invalid mixture does not fork");
    for _ in 0..5 {
        key(&mut a, KeyCode::Backspace);
    }
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.pending.len(), 1, "{:?}", a.pending);
}

#[test]
fn help_is_generated_from_the_keymap() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    key(&mut a, KeyCode::Char('?'));
    // Tall enough for one column (at 40 rows the main screen's keys go in two columns, their
    // longer texts clipped).
    let s = render(&mut a, 120, 56);
    // Every binding's text, in its context's section (the dialogs' lines wrap: compare
    // without the line breaks and the borders).
    let flat = flat(&s);
    for b in Keymap::default_map().bindings {
        assert!(flat.contains(&b.help), "help lacks {:?}:\n{s}", b.help);
    }
    for title in
        ["fork dialog:", "launch dialog:", "filter:", "confirm stop:", "notes dialog:", "demo offer:", "samples:"]
    {
        assert!(s.contains(title), "help lacks the section {title:?}:\n{s}");
    }
    both_sizes("help", &mut a);
}

#[test]
fn languages_grid_and_latin_filter() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    select(&mut a, "ml40-");
    key(&mut a, KeyCode::Char('g'));
    key(&mut a, KeyCode::Char('a'));
    let s = render(&mut a, 120, 40);
    assert!(s.contains("Latin") && !s.contains("ja ") || s.contains("grid"), "{s}");
    both_sizes("grid_latin", &mut a);
}

#[test]
fn first_run_offers_the_demo() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::load(&t.path().join("empty"));
    let mut a = App::new(store, Theme::dark(), Keymap::default_map());
    a.dialog = Some(mixscope::tui::dialogs::Dialog::Demo(Default::default()));
    let s = render(&mut a, 120, 40);
    assert!(s.contains("Start the demo experiment?"), "{s}");
    both_sizes("demo_offer", &mut a);
}

#[test]
fn tiny_terminals_get_a_message_not_a_panic() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    for (w, h) in [(20, 5), (59, 30), (120, 10), (1, 1)] {
        let s = render(&mut a, w, h);
        if w > 10 && h > 2 {
            assert!(s.contains("too small"), "{w}x{h}: {s}");
        }
    }
    for th in ["light", "colorblind"] {
        a.theme = Theme::load(th).unwrap();
        render(&mut a, 80, 24);
    }
}

#[test]
fn the_system_strip_shows_each_gpu_and_the_runs_on_it() {
    let t = fixture();
    let mut app = app(&t.path().join("runs"));
    let i = app.store.runs.iter().position(|r| r.id.starts_with("en-")).unwrap();
    app.store.runs[i].device = "cuda:1".into();
    let name = app.store.runs[i].display_name().to_string();
    for index in 0..2 {
        app.system.gpus.push(mixscope::tui::app::GpuStat {
            index,
            name: "NVIDIA H100 80GB HBM3".into(),
            util_pct: 40.0 + index as f64 * 47.0,
            mem_used_gb: 12.25,
            mem_total_gb: 79.6,
        });
    }
    let s = render(&mut app, 160, 40);
    let strip = s.lines().find(|l| l.contains(" CPU ")).unwrap();
    assert!(strip.contains("GPU0 40% 12.2/80 GB  GPU1 87% 12.2/80 GB"), "{strip}");
    assert!(strip.contains(&format!("GPU1 87% 12.2/80 GB {name}")), "{strip}");
    assert!(!strip.contains("no GPU"), "{strip}");
}

#[test]
fn sweep_view_draws_score_against_n_per_group() {
    let t = fixture();
    let root = t.path().join("runs");
    fixtures::sweep(&root).unwrap();
    let mut a = app(&root);
    // The sweep's runs sit under one sweep node, in grid order.
    let i = a.sel.rows.iter().position(|r| r.sweep.is_some()).expect("a sweep row");
    let names: Vec<String> =
        a.sel.rows[i + 1..i + 5].iter().map(|r| a.store.runs[r.run].name.clone().unwrap_or_default()).collect();
    assert_eq!(names, ["paper n=0", "paper n=25", "paper n=100", "paper n=400"]);
    assert!(a.sel.rows[i + 1..i + 5].iter().all(|r| r.depth == a.sel.rows[i].depth + 1));
    a.sel.selected = i;
    let s = render(&mut a, 120, 40);
    assert!(s.contains("Sweep paper") && s.contains("MR EN") && s.contains("ρ seen~unseen"), "{s}");
    assert!(s.contains("◆ paper · 4 runs"), "{s}");
    // Every score with its 95 % interval (the fixture's MR sets carry one; its SM sets do not).
    assert!(s.contains("mean ± 95% CI") && s.contains("0.53±0.06"), "{s}");
    assert!(render(&mut a, 80, 24).contains("53±6"), "narrow: percent with the interval");
    // The table reads the runs at their best checkpoint: seen languages gain with n.
    // (Derived once when the selection changed, as every frame then shows it.)
    let an = a.derived.sweep.as_ref().filter(|an| an.id == "paper-9c8d7e").unwrap();
    let seen: Vec<f64> = an.curves.iter().filter(|c| c.task == "mr" && c.group == "seen").map(|c| c.mean).collect();
    assert_eq!(seen.len(), 4);
    assert!(seen.windows(2).all(|w| w[1] > w[0]), "{seen:?}");
    // Space on the sweep marks all four runs; c compares them.
    key(&mut a, KeyCode::Char(' '));
    assert_eq!(a.sel.marked.len(), 4);
    key(&mut a, KeyCode::Char('c'));
    assert!(a.view.compare);
    key(&mut a, KeyCode::Char('c'));
    both_sizes("sweep", &mut a);
}

#[test]
fn a_click_in_a_scrolled_run_list_selects_the_run_under_the_pointer() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let t = fixture();
    let root = t.path().join("runs");
    fixtures::sweep(&root).unwrap();
    let mut a = app(&root);
    // A short terminal: the list scrolls to keep the last run in view.
    a.sel.selected = a.sel.rows.len() - 1;
    let s = render(&mut a, 100, 16);
    let list = a.areas().runs;
    let visible = list.height as usize - 2;
    assert!(a.sel.rows.len() > visible, "the fixture must not fit: {} rows, {visible} visible\n{s}", a.sel.rows.len());
    let top = a.sel.rows.len() - visible;
    // The second visible line is row top + 1 of the tree, whatever the scroll.
    let click = MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: list.x + 3,
        row: list.y + 2,
        modifiers: KeyModifiers::NONE,
    };
    let line = s.lines().nth((list.y + 2) as usize).unwrap().to_string();
    a.on_mouse(click);
    assert_eq!(a.sel.selected, top + 1, "clicked on {line:?}");
    let name = a.sel.rows[a.sel.selected].sweep.as_ref().map(|_| String::new()).unwrap_or_else(|| {
        let r = &a.store.runs[a.sel.rows[a.sel.selected].run];
        r.name.clone().unwrap_or_default()
    });
    assert!(name.is_empty() || line.contains(&name), "selected {name:?}, clicked on {line:?}");
    // A click on the border below the list selects nothing new.
    let before = a.sel.selected;
    a.on_mouse(MouseEvent { row: list.y + list.height - 1, ..click });
    assert_eq!(a.sel.selected, before);
}

#[test]
fn two_runs_with_one_name_are_told_apart_by_their_ids() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    for (id, salt) in [("a", 1), ("b", 2)] {
        let spec = fixtures::Spec {
            id,
            name: "demo",
            parent: None,
            mixture: "multilingual=0.4",
            tasks: &["mr"],
            heldout: &["pt"],
            from: 0,
            to: 20,
            max_steps: 20,
            eval_every: 10,
            start_time: 1.8e9,
            seconds_per_step: 0.5,
            end: Some((State::Finished, None)),
            salt,
        };
        fixtures::write_run(&root, &spec).unwrap();
    }
    let mut a = app(&root);
    // Their configs are equal (no seed given: 0 both): one group, listed when expanded.
    let s = render(&mut a, 100, 24);
    assert!(s.contains("demo ×2"), "{s}");
    key(&mut a, KeyCode::Right);
    let s = render(&mut a, 100, 24);
    assert!(s.contains("seed 0 · a") && s.contains("seed 0 · b"), "{s}");
}

#[test]
fn the_first_frame_shows_the_root_being_read_then_its_runs() {
    let t = fixture();
    let root = t.path().join("runs");
    let mut a = App::new(Store::empty(&root), Theme::dark(), Keymap::default_map());
    a.loading = true;
    let s = render(&mut a, 120, 40);
    assert!(s.contains("reading the runs root…"), "{s}");
    assert!(!s.contains("no runs yet"), "{s}");
    // The loader's store arrives: the tree fills in.
    a.store = Store::load(&root);
    a.loading = false;
    a.on_data();
    let s = render(&mut a, 120, 40);
    assert!(s.contains("demo-base") && !s.contains("reading the runs root"), "{s}");
}

#[test]
fn panes_tile_the_screen_and_clicks_use_the_same_layout() {
    use ratatui::layout::Rect;
    use ui::{layout, View};
    for (w, h) in [(60, 16), (80, 24), (120, 40), (250, 80)] {
        let screen = Rect::new(0, 0, w, h);
        for view in [View::Main, View::Compare, View::Sweep("s".into())] {
            let a = layout(screen, &view);
            for r in [a.title, a.runs, a.detail, a.loss, a.langs, a.sys, a.log] {
                assert_eq!(r.intersection(screen), r, "{r:?} outside {screen:?} in {view:?}");
            }
            // The left column, the right column and the strips do not overlap.
            assert!(!a.runs.intersects(a.loss) && !a.runs.intersects(a.langs) && !a.detail.intersects(a.loss));
            assert!(!a.title.intersects(a.runs) && !a.sys.intersects(a.langs) && !a.log.intersects(a.sys));
            if view == View::Main {
                assert!(!a.loss.intersects(a.langs), "{view:?} {w}x{h}");
            }
        }
    }
    // Below the minimum size, nothing is placed.
    assert_eq!(layout(Rect::new(0, 0, 59, 30), &View::Main), ui::Areas::default());
}

#[test]
fn the_compare_table_is_derived_when_the_selection_changes_not_per_frame() {
    let t = fixture();
    let mut a = comparing(&t);
    render(&mut a, 120, 40);
    assert!(a.ui().derived_fresh());
    let rows = a.derived.compare.len();
    assert!(rows > 0);
    // Leaving compare: stale until derived again, then it holds no compare table.
    key(&mut a, KeyCode::Char('c'));
    assert!(!a.ui().derived_fresh());
    a.derive();
    assert!(a.derived.compare.is_empty());
    // New data (on_data) makes it stale too.
    key(&mut a, KeyCode::Char('c'));
    a.derive();
    assert_eq!(a.derived.compare.len(), rows);
    a.on_data();
    assert!(!a.ui().derived_fresh());
}

/// The paper's x axis: each language's curve placed by the examples of that language seen
/// (kept at its evaluations' steps), the loss by all examples seen.
#[test]
fn the_examples_axis_places_each_language_by_its_own_examples() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    select(&mut a, "ml40-");
    for _ in 0..3 {
        key(&mut a, KeyCode::Char('x'));
    }
    assert_eq!(a.view.x_axis, mixscope::tui::store::XAxis::Examples);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("examples of the language"), "{s}");
    let r = a.store.runs.iter().find(|r| r.id.starts_with("ml40-")).unwrap();
    let (step, _) = r.evals[&("mr".to_string(), "es".to_string())].value.last().unwrap();
    let es = r.timeline.x_of(step, mixscope::tui::store::XAxis::Examples, Some("es"), 0.0).unwrap();
    let en = r.timeline.x_of(step, mixscope::tui::store::XAxis::Examples, Some("en"), 0.0).unwrap();
    let all = r.timeline.x_of(step, mixscope::tui::store::XAxis::Examples, None, 0.0).unwrap();
    assert!(0.0 < es && es < en && en < all, "es {es}, en {en}, all {all}");
    insta::assert_snapshot!("examples_axis_120x40", s.replace(&a.store.root.display().to_string(), "runs"));
}

/// Two groups of three seeds (the multilingual arm, one of its runs still training; the
/// English-only arm), and the app on them.
fn groups_app() -> (tempfile::TempDir, App) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    fixtures::groups(&root).unwrap();
    let mut store = Store::load(&root);
    for r in &mut store.runs {
        r.alive = r.id.starts_with("ml40.s3");
        r.state = if r.alive { State::Running } else { State::Finished };
        r.message = None;
    }
    let mut a = App::new(store, Theme::dark(), Keymap::default_map());
    a.now = fixtures::T0 + 1000.0;
    a.system.cores = 2;
    a.system.mem_total_gb = 23.5;
    a.system.mem_used_gb = 3.2;
    a.system.cpu_pct = Some(97.0);
    (t, a)
}

fn select_group(app: &mut App, name: &str) {
    let i = app
        .sel
        .rows
        .iter()
        .position(|r| {
            r.group.as_deref().and_then(|g| app.groups.get(g)).is_some_and(|g| g.name.as_deref() == Some(name))
        })
        .unwrap_or_else(|| panic!("no group {name}"));
    app.sel.selected = i;
    app.pick_task();
}

#[test]
fn a_group_is_one_node_with_its_mean_and_band_in_both_panes() {
    let (_t, mut a) = groups_app();
    // Two group nodes, collapsed: the six runs are not listed.
    assert_eq!(a.sel.rows.len(), 2, "{:?}", a.sel.rows);
    select_group(&mut a, "ml40");
    let s = render(&mut a, 120, 40);
    assert!(s.contains("▸ ml40 ×3") && s.contains("1 running 2 finished"), "{s}");
    assert!(s.contains("Loss ml40 ×3") && s.contains("mean of 3 (ema 0.6)"), "{s}");
    // The band: cells inside the loss pane and the languages pane tinted with its colour
    // (the dark theme's background is the terminal's), the empty ones wholly inside it
    // shaded with `⢕`.
    let buf = render_buf(&mut a, 120, 40);
    let (loss, langs) = (a.areas().loss, a.areas().langs);
    let shaded = |r: ratatui::layout::Rect, glyph: bool| {
        let mut n = 0;
        for y in r.y + 1..r.y + r.height - 1 {
            for x in r.x + 1..r.x + r.width - 1 {
                let c = &buf[(x, y)];
                let tinted = matches!(c.bg, ratatui::style::Color::Rgb(..));
                if tinted && (!glyph || c.symbol() == "⢕") {
                    n += 1;
                }
            }
        }
        n
    };
    for (pane, r) in [("loss", loss), ("languages", langs)] {
        assert!(shaded(r, false) >= 20 && shaded(r, true) >= 5, "no band in the {pane} pane:\n{s}");
    }
    // The table: the members' means with their across-seed interval, K and n (in the header
    // when the table is narrow).
    assert!(s.contains("mean of 3 seeds") && s.contains("95% CI") && s.contains("K=3 n=64"), "{s}");
    let t = a.derived.group_table.clone().expect("a group's table");
    assert_eq!((t.k, t.members), (3, 3));
    let es = t.rows.iter().find(|r| r.row == "es").unwrap();
    assert_eq!((es.k, es.n), (3, Some(64)));
    let e = es.ci.unwrap();
    assert!(e.lo < es.value.unwrap() && es.value.unwrap() < e.hi);
    // The table reads the latest evaluation all three reached (the live run is at 350).
    assert_eq!(t.step, Some(350));
    let wide = render(&mut a, 160, 48);
    let line = wide.lines().find(|l| l.contains(" es ") && l.contains("seen")).unwrap();
    assert!(
        line.contains(&format!("{:.3}", es.value.unwrap())) && line.contains(" 3 ") && line.contains(" 64"),
        "{line}"
    );
    both_sizes("group", &mut a);
}

#[test]
fn a_group_shows_its_members_as_thin_lines_on_a_key() {
    let (_t, mut a) = groups_app();
    select_group(&mut a, "ml40");
    let before = render(&mut a, 120, 40);
    key(&mut a, KeyCode::Char('M'));
    assert!(a.view.members);
    let s = render(&mut a, 120, 40);
    assert_ne!(before, s, "the members are drawn");
    insta::assert_snapshot!("group_members_120x40", s.replace(&a.store.root.display().to_string(), "runs"));
}

#[test]
fn a_single_run_says_its_intervals_are_sampling_only() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    select(&mut a, "ml40-");
    let s = render(&mut a, 120, 40);
    assert!(s.contains("1 seed: sampling-only CIs"), "{s}");
    assert!(!s.contains("⢕"), "no band for a run alone:\n{s}");
}

#[test]
fn the_tree_expands_a_group_into_its_members_and_collapses_it() {
    let (_t, mut a) = groups_app();
    select_group(&mut a, "ml40");
    key(&mut a, KeyCode::Right);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("▾ ml40 ×3"), "{s}");
    for seed in 1..=3 {
        assert!(s.contains(&format!("seed {seed} · ml40.s{seed}-")), "{s}");
    }
    assert_eq!(a.sel.rows.len(), 5);
    assert!(a.sel.rows[1..4].iter().all(|r| r.depth == 1 && r.in_group.is_some()));
    both_sizes("group_expanded", &mut a);
    // A member is a run: its own view; left goes back to the (collapsed) group.
    key(&mut a, KeyCode::Down);
    assert!(a.ui().selected_run().is_some_and(|r| r.id.starts_with("ml40.s1")));
    let s = render(&mut a, 120, 40);
    assert!(s.contains("1 seed: sampling-only CIs"), "{s}");
    key(&mut a, KeyCode::Left);
    assert_eq!(a.sel.rows.len(), 2);
    assert!(a.ui().selected_group().is_some_and(|g| g.name.as_deref() == Some("ml40")));
}

fn comparing_groups(a: &mut App) {
    select_group(a, "ml40");
    key(a, KeyCode::Char(' '));
    select_group(a, "en");
    key(a, KeyCode::Char(' '));
    key(a, KeyCode::Char('c'));
}

#[test]
fn compare_view_of_two_groups() {
    let (_t, mut a) = groups_app();
    comparing_groups(&mut a);
    assert!(a.view.compare);
    let sides = a.ui().compare_sides();
    assert_eq!(sides.iter().map(|s| s.runs.len()).collect::<Vec<_>>(), [3, 3]);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("Holm-adjusted p<0.05 over the task's rows, across seeds"), "{s}");
    assert!(s.contains("A K=3") && s.contains("B K=3"), "{s}");
    // Each side is its members (the compare table's K), seen languages far apart: marked.
    let es = a.derived.compare.iter().find(|r| r.task == "mr" && r.row == "es").unwrap();
    assert_eq!(es.k, [3, 3]);
    assert!(es.latest_delta[0].is_some_and(|d| d.method.covers_seeds()));
    both_sizes("compare_groups", &mut a);
    // u: each delta's own interval, unadjusted.
    key(&mut a, KeyCode::Char('u'));
    let s = render(&mut a, 120, 40);
    assert!(s.contains("own 95% CI excludes 0, unadjusted, across seeds"), "{s}");
}

#[test]
fn compare_of_two_single_runs_says_its_marks_cover_sampling_only() {
    let t = fixture();
    let mut a = comparing(&t);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("Holm-adjusted p<0.05 over the task's rows, sampling only"), "{s}");
}

#[test]
fn launch_dialog_takes_seeds_validated_live() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    key(&mut a, KeyCode::Char('n'));
    key(&mut a, KeyCode::Tab);
    for c in "0,3,3".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    let s = render(&mut a, 120, 40);
    assert!(s.contains("seeds  0,3,3") && s.contains("a seed is given twice"), "{s}");
    key(&mut a, KeyCode::Backspace);
    key(&mut a, KeyCode::Char('7'));
    let s = render(&mut a, 120, 40);
    assert!(s.contains("3 runs, one group: seeds 0, 3, 7"), "{s}");
    // Back to the config field: a path that exists launches with the seeds.
    key(&mut a, KeyCode::Tab);
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.toml");
    a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    for c in cfg.display().to_string().chars() {
        key(&mut a, KeyCode::Char(c));
    }
    key(&mut a, KeyCode::Enter);
    assert_eq!(
        a.pending,
        [mixscope::tui::app::Request::Launch { config: cfg, sets: vec![], seeds: Some("0,3,7".into()) }]
    );
}

#[test]
fn forking_a_group_forks_every_member_and_a_run_takes_seeds() {
    let (_t, mut a) = groups_app();
    select_group(&mut a, "en");
    key(&mut a, KeyCode::Char('f'));
    let s = render(&mut a, 120, 40);
    assert!(s.contains("Fork en ×3") && s.contains("each keeps its member's seed"), "{s}");
    key(&mut a, KeyCode::Enter);
    match a.pending.as_slice() {
        [mixscope::tui::app::Request::ForkGroup { members, at, .. }] => {
            assert_eq!(members.len(), 3);
            assert_eq!(*at, Some(400), "the latest checkpoint every member has");
        }
        other => panic!("{other:?}"),
    }
    // A run: a seeds field (a count from the run's seed, or a list).
    a.pending.clear();
    key(&mut a, KeyCode::Right);
    key(&mut a, KeyCode::Down);
    key(&mut a, KeyCode::Char('f'));
    for _ in 0..3 {
        key(&mut a, KeyCode::Tab);
    }
    key(&mut a, KeyCode::Char('2'));
    let s = render(&mut a, 120, 40);
    assert!(s.contains("2 runs, one group: seeds 1, 2"), "{s}");
    key(&mut a, KeyCode::Enter);
    assert!(
        matches!(a.pending.as_slice(), [mixscope::tui::app::Request::Fork { seeds: Some(s), .. }] if s == "2"),
        "{:?}",
        a.pending
    );
}

/// Groups are recomputed when the runs change, not for new events; a group's curves follow a
/// member's new points (updated, not rebuilt) and stay equal to a fresh computation.
#[test]
fn group_curves_follow_new_events_incrementally() {
    use mixscope::runs::events::{Body, Event};
    use mixscope::tui::collect::Delta;
    let (_t, mut a) = groups_app();
    select_group(&mut a, "ml40");
    render(&mut a, 120, 40);
    assert!(!a.groups.refresh(&a.store), "nothing changed: not recomputed");
    let id = a.groups.list.iter().find(|g| g.name.as_deref() == Some("ml40")).unwrap().id.clone();
    let before = a.group_aggs.get(&id).unwrap().loss.mean.len();
    let live = a.store.runs.iter().find(|r| r.id.starts_with("ml40.s3")).unwrap().dir.clone();
    let ev = Event::new(
        351,
        Body::Train {
            loss: 1.5,
            lr: 1e-3,
            tokens: 351 * 2048,
            tokens_per_s: 2048.0,
            examples: Default::default(),
            grad_norm: None,
        },
    );
    assert!(a.apply(Delta::Events { dir: live, events: vec![ev.into()], bad: 0 }));
    a.on_data();
    assert!(!a.groups.refresh(&a.store), "events do not regroup");
    render(&mut a, 120, 40);
    let agg = a.group_aggs.get(&id).unwrap();
    assert_eq!(agg.loss.mean.len(), before, "step 351 was in the curve (the finished runs have it)");
    let i = agg.loss.mean.steps.position(351).unwrap();
    assert_eq!(agg.loss.k[i], 3);
    let members: Vec<_> = a.ui().members(a.groups.get(&id).unwrap());
    let vals: Vec<f64> = members.iter().map(|r| r.smooth.at(351).unwrap() as f64).collect();
    let e = mixscope::analysis::stats::seed_mean(&vals, 0.0).unwrap();
    assert_eq!((agg.loss.mean.ys[i], agg.loss.lo.ys[i]), (e.value as f32, e.lo as f32));
}

/// The help box's text, its lines joined (what is drawn beside the box, its borders and the
/// line breaks gone), so that wrapped texts read whole.
fn flat(s: &str) -> String {
    let rows: Vec<Vec<char>> = s.lines().map(|l| l.chars().collect()).collect();
    let Some((top, x0)) = rows.iter().enumerate().find_map(|(y, r)| {
        let at = r.windows(6).position(|w| w.iter().collect::<String>() == "╭ Keys")?;
        Some((y, at))
    }) else {
        return String::new();
    };
    // The box's own corner (a pane's border may go on beside it).
    let x1 = rows[top][x0..].iter().position(|c| *c == '╮').map_or(rows[top].len(), |p| x0 + p);
    rows[top + 1..]
        .iter()
        .take_while(|r| r.get(x0) == Some(&'│'))
        .map(|r| r[x0 + 1..x1.min(r.len())].iter().collect::<String>().trim().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// At 61×17 the help does not fit: it scrolls, and every binding can be read on some screen.
#[test]
fn the_help_scrolls_so_that_every_key_can_be_read_on_a_small_terminal() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    key(&mut a, KeyCode::Char('?'));
    let mut screens = Vec::new();
    for _ in 0..60 {
        screens.push(flat(&render(&mut a, 61, 17)));
        key(&mut a, KeyCode::Down);
    }
    assert!(matches!(a.dialog, Some(mixscope::tui::dialogs::Dialog::Help(_))), "scrolling keeps the help open");
    for b in Keymap::default_map().bindings {
        assert!(
            screens.iter().any(|s| s.contains(&b.help)),
            "no screen shows {:?}:\n{}",
            b.help,
            screens.join("\n---\n")
        );
    }
    // Back up to the top: the first line is there again.
    for _ in 0..60 {
        key(&mut a, KeyCode::Up);
    }
    assert!(render(&mut a, 61, 17).contains("quit"), "the top of the help");
}

/// A runs root that is a file is an error the TUI shows; it does not offer the demo there.
/// An empty (absent) root does offer it.
#[test]
fn a_runs_root_that_is_a_file_shows_the_error_not_the_demo() {
    use mixscope::tui::collect::Delta;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    std::fs::write(&root, "not a directory\n").unwrap();
    let mut a = App::new(Store::empty(&root), Theme::dark(), Keymap::default_map());
    a.loading = true;
    a.apply(Delta::Loaded(Store::load(&root)));
    a.on_data();
    let s = render(&mut a, 120, 40);
    assert!(!matches!(a.dialog, Some(mixscope::tui::dialogs::Dialog::Demo(_))), "no demo offer on a broken root");
    assert!(s.contains("Not a directory") && !s.contains("no runs yet"), "{s}");

    let empty = t.path().join("empty");
    let mut a = App::new(Store::empty(&empty), Theme::dark(), Keymap::default_map());
    a.loading = true;
    a.apply(Delta::Loaded(Store::load(&empty)));
    a.on_data();
    assert!(matches!(a.dialog, Some(mixscope::tui::dialogs::Dialog::Demo(_))), "an empty root offers the demo");
}

/// A run directory whose run.toml is missing is in the tree, failed, with the reason.
#[test]
fn a_run_without_its_run_toml_is_shown_as_damaged() {
    let t = fixture();
    let root = t.path().join("runs");
    let broken = root.join("broken-000000");
    std::fs::create_dir(&broken).unwrap();
    std::fs::copy(root.join("ko-0d1e2f/events.jsonl"), broken.join("events.jsonl")).unwrap();
    let mut a = app(&root);
    select(&mut a, "broken-");
    let r = &a.store.runs[a.sel.rows[a.sel.selected].run];
    assert_eq!(r.state, State::Failed);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("broken-000000") && s.contains("run.toml is missing"), "{s}");
}

/// The fork dialog on a checkpoint that holds weights only (a shipped base's step) says the
/// fork starts with fresh optimizer moments, and so does the fork's log line.
#[test]
fn the_fork_dialog_says_when_a_checkpoint_has_no_optimizer_state() {
    let t = fixture();
    let root = t.path().join("runs");
    let run = root.join("ml40-7a8b9c");
    for (step, optim) in [(300, false), (400, true)] {
        let d = run.join(format!("checkpoints/{step}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("state.json"), "{}").unwrap();
        std::fs::write(d.join("model.safetensors"), "").unwrap();
        if optim {
            std::fs::write(d.join("optimizer.safetensors"), "").unwrap();
        }
    }
    let mut a = app(&root);
    select(&mut a, "ml40-");
    key(&mut a, KeyCode::Char('f'));
    let s = render(&mut a, 120, 40);
    assert!(s.contains("◀ 400 ▶") && !s.contains("fresh optimizer"), "{s}");
    key(&mut a, KeyCode::BackTab);
    key(&mut a, KeyCode::Up);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("◀ 300 ▶") && s.contains("fresh optimizer moments"), "{s}");
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.pending.len(), 1, "{:?}", a.pending);
    let log = a.log.iter().map(|l| l.text.clone()).collect::<Vec<_>>().join("\n");
    assert!(log.contains("at step 300") && log.contains("fresh optimizer moments"), "{log}");
}

/// Mistakes in a user's keymap.toml name their line and column, as the README says.
#[test]
fn keymap_mistakes_name_their_line_and_column() {
    for (src, want) in [
        ("[[key]]\nkeys = [\"x\"]\naction = \"fly\"\n", "keymap.toml:3:10: key[0].action: unknown action 'fly'"),
        (
            "[[key]]\nkeys = [\"x\", \"ctrl-\"]\naction = \"quit\"\n",
            "keymap.toml:2:14: key[0].keys: cannot read key 'ctrl-'",
        ),
        ("[[key]]\nkeys = []\naction = \"quit\"\n", "keymap.toml:2:8: key[0].keys: bind at least one key"),
        (
            "[[key]]\nkeys = [\"x\"]\naction = \"quit\"\ncontext = \"nowhere\"\n",
            "keymap.toml:4:11: key[0].context: 'nowhere' is not one of",
        ),
    ] {
        let e = format!("{:#}", Keymap::default_map().apply_overrides("keymap.toml", src).unwrap_err());
        assert!(e.contains(want), "expected {want:?} in {e:?}");
    }
}

/// Events appended to a run the panes do not chart are folded at once and drawn with the next
/// clock frame; a charted run's events, and any status event, are drawn at once.
#[test]
fn only_what_the_panes_chart_is_drawn_at_once() {
    use mixscope::runs::events::{Body, Event, State};
    use mixscope::tui::collect::Delta;
    let (_t, mut a) = groups_app();
    select_group(&mut a, "ml40");
    render(&mut a, 120, 40);
    let charted: Vec<std::path::PathBuf> = a.ui().charted().iter().map(|r| r.dir.clone()).collect();
    let other = a.store.runs.iter().find(|r| !charted.contains(&r.dir)).unwrap().dir.clone();
    let train = |step| {
        Event::new(
            step,
            Body::Train {
                loss: 1.0,
                lr: 1e-3,
                tokens: step * 2048,
                tokens_per_s: 2048.0,
                examples: Default::default(),
                grad_norm: None,
            },
        )
    };
    let events = |dir: &std::path::PathBuf, evs: Vec<Event>| Delta::Events {
        dir: dir.clone(),
        events: evs.into_iter().map(Into::into).collect(),
        bad: 0,
    };
    assert!(!a.shows(&events(&other, vec![train(999)])), "another run's progress waits for the clock");
    assert!(a.shows(&events(&charted[0], vec![train(999)])), "a charted run's curve moves at once");
    let status = Event::new(999, Body::Status { state: State::Paused, message: None });
    assert!(a.shows(&events(&other, vec![train(999), status])), "a state change shows at once");
}

/// A warning event that arrives while the TUI watches marks its run in the tree (⚠), shows in
/// the run panel and the log, is drawn at once, and is handed to the terminal to tell.
#[test]
fn a_warning_marks_its_run_and_is_told() {
    use mixscope::runs::events::{Body, Event};
    use mixscope::tui::collect::Delta;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    fixtures::standard(&root).unwrap();
    let mut a = app(&root);
    assert!(a.apply(Delta::Loaded(Store::load(&root))));
    a.on_data();
    let s = render(&mut a, 120, 40);
    assert!(!s.contains('⚠'), "{s}");
    let r = a.store.runs.iter().find(|r| r.id.starts_with("en-")).unwrap();
    let (dir, name) = (r.dir.clone(), r.display_name().to_string());
    let msg = "the loss has stayed at 8.3178 for 50 steps";
    let w = Event::new(120, Body::Warning { message: msg.into(), value: Some(8.3178) });
    let d = Delta::Events { dir, events: vec![w.into()], bad: 0 };
    assert!(a.shows(&d), "a warning is drawn at once");
    assert!(a.apply(d));
    a.on_data();
    assert_eq!(a.notify, [format!("{name} at step 120: {msg}")]);
    let s = render(&mut a, 120, 40);
    assert!(s.contains(&format!("⚠ {name}")), "{s}");
    let logged = format!("⚠ {name} at step 120: {msg}");
    assert!(a.log.iter().any(|l| l.text == logged && l.error), "the log lists it: {:?}", a.log);
    // Selected, the run's panel says so.
    key(&mut a, KeyCode::Down);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("⚠ 1 warning, the last at step 120: the"), "{s}");
}

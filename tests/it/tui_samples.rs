//! The samples view through ratatui's TestBackend: enter on a language of the languages table
//! opens what the model wrote at the latest evaluation (one run, or A vs B in compare), read
//! from the fixture runs' stored answers by the collector's own reader; filters, steps, and a
//! run that stores none.

use crossterm::event::KeyCode;
use mixscope::tui::app::App;
use mixscope::tui::collect::answers;
use mixscope::tui::dialogs::Dialog;
use mixscope::tui::fixtures;
use mixscope::tui::store::Delta;

use crate::tui::{app, comparing, key, render, render_buf, select};

const LANGS: [&str; 8] = ["en", "es", "fr", "ja", "zh", "ar", "ko", "pt"];

/// The standard fixture with stored MR answers: the English-only run at its last three
/// evaluations, the multilingual one at its last two (the failed fork stores none).
fn fixture() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("runs");
    fixtures::standard(&root).unwrap();
    fixtures::answers(&root, "en-4d5e6f", &LANGS, &[600, 650, 700]).unwrap();
    fixtures::answers(&root, "ml40-7a8b9c", &LANGS, &[600, 650]).unwrap();
    t
}

/// What the event loop does with the view's request: the collector reads it, the app folds
/// the answer in.
fn deliver(a: &mut App) {
    let q = a.answers_wanted.take().expect("the view asked for its answers");
    a.apply(Delta::Answers(Box::new(answers::read(&q))));
}

fn view(a: &App) -> &mixscope::tui::dialogs::samples::SamplesView {
    match &a.dialog {
        Some(Dialog::Samples(v)) => v,
        other => panic!("no samples view: {other:?}"),
    }
}

fn snap(name: &str, a: &mut App, w: u16, h: u16) -> String {
    let root = a.store.root.display().to_string();
    let s = render(a, w, h).replace(&root, "runs");
    insta::assert_snapshot!(format!("{name}_{w}x{h}"), s);
    s
}

/// Tab to the languages table, down to Spanish, enter: the English-only run's Spanish MR
/// answers at its latest evaluation, each with prompt, reference, answer, score and language;
/// filtered to failures and passes; an earlier evaluation; esc closes.
#[test]
fn enter_on_a_language_shows_what_the_model_wrote() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    select(&mut a, "en-");
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Down);
    assert_eq!(a.ui().lang_cursor().as_deref(), Some("es"));
    // The cursor's row is highlighted in the table.
    let buf = render_buf(&mut a, 120, 40);
    let line = |y: u16| (0..120).map(|x| buf[(x, y)].symbol()).collect::<String>();
    let row = (0..40)
        .find(|y| {
            line(*y)
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w[0] == "es" && w[1].parse::<f64>().is_ok())
        })
        .unwrap();
    let es = (0..120).find(|x| buf[(*x, row)].symbol() == "e" && buf[(*x + 1, row)].symbol() == "s").unwrap();
    assert_eq!(buf[(es, row)].bg, a.theme.selection_bg);
    key(&mut a, KeyCode::Enter);
    assert_eq!(view(&a).query.lang, "es");
    assert_eq!(view(&a).query.sides.len(), 1);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("reading the stored answers"), "{s}");
    deliver(&mut a);
    let s = snap("samples_one_run", &mut a, 120, 40);
    assert!(s.contains("Samples MR es") && s.contains("step 700 (evaluation 3 of 3 stored)"), "{s}");
    assert!(s.contains("prompt") && s.contains("reference") && s.contains("answer") && s.contains("✓ pass"), "{s}");
    snap("samples_one_run", &mut a, 80, 24);
    // Failures, then passes: every listed example fails, then passes.
    key(&mut a, KeyCode::Char('f'));
    let s = render(&mut a, 120, 40);
    assert!(s.contains("showing failures: ") && !s.contains("✓ pass") && s.contains("✗ fail"), "{s}");
    key(&mut a, KeyCode::Char('f'));
    let s = render(&mut a, 120, 40);
    assert!(s.contains("showing passes: ") && s.contains("✓ pass") && !s.contains("✗ fail"), "{s}");
    // Scrolling moves the first example listed.
    let first = |s: &str| {
        s.lines().find_map(|l| {
            l.trim_start_matches('│')
                .trim_start()
                .strip_prefix('#')
                .map(|r| r.split_whitespace().next().unwrap().to_string())
        })
    };
    let before = first(&s);
    key(&mut a, KeyCode::Down);
    assert_ne!(first(&render(&mut a, 120, 40)), before);
    // An earlier evaluation, and back.
    key(&mut a, KeyCode::Left);
    assert!(render(&mut a, 120, 40).contains("step 650 (evaluation 2 of 3 stored)"));
    key(&mut a, KeyCode::Right);
    key(&mut a, KeyCode::Right);
    assert!(render(&mut a, 120, 40).contains("step 700 (evaluation 3 of 3 stored)"));
    key(&mut a, KeyCode::Esc);
    assert!(a.dialog.is_none());
    assert!(!render(&mut a, 120, 40).contains("Samples MR"));
}

/// In compare, A's and B's answers to the same prompts side by side at the latest evaluation
/// both store, and the filter to the examples whose scores differ.
#[test]
fn compare_shows_a_and_b_side_by_side_and_where_their_scores_differ() {
    let t = fixture();
    let mut a = comparing(&t);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Down);
    key(&mut a, KeyCode::Enter);
    let v = view(&a);
    assert_eq!((v.query.sides.len(), v.query.lang.as_str()), (2, "es"));
    deliver(&mut a);
    let s = snap("samples_a_vs_b", &mut a, 120, 40);
    assert!(s.contains("A vs B") && s.contains("step 650 (evaluation 2 of 2 stored)") && s.contains("answers"), "{s}");
    let v = view(&a).clone();
    let got = a.answers.clone().unwrap();
    let all = v.rows(&got).len();
    key(&mut a, KeyCode::Char('d'));
    let v = view(&a).clone();
    let differ = v.rows(&got);
    assert!(!differ.is_empty() && differ.len() < all, "{} of {all}", differ.len());
    let (sa, sb) = (got.sides[0].at(650).unwrap(), got.sides[1].at(650).unwrap());
    for i in differ.iter().copied() {
        assert_ne!(sa.answers[i].score, sb.answers[i].score);
    }
    let s = snap("samples_a_vs_b_differ", &mut a, 120, 40);
    assert!(s.contains(&format!("showing all, scores differ: {} of 64", differ.len())), "{s}");
}

/// A run written before answers were stored: the view says so, and how to regenerate them.
#[test]
fn a_run_without_stored_answers_says_so() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    select(&mut a, "ko-");
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Enter);
    deliver(&mut a);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("ml40-plus-ko stores no answers: it was written before evaluations stored them."), "{s}");
    assert!(
        s.contains("`mixscope samples ko-0d1e2f --task") && s.contains("regenerates them from a checkpoint"),
        "{s}"
    );
}

/// With the languages pane focused, up and down move its cursor, not the run selection; the
/// answer to an older request (another language) is not shown.
#[test]
fn the_languages_pane_takes_up_and_down_and_stale_answers_are_dropped() {
    let t = fixture();
    let mut a = app(&t.path().join("runs"));
    select(&mut a, "en-");
    let run = a.sel.selected;
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Tab);
    for _ in 0..20 {
        key(&mut a, KeyCode::Down);
    }
    assert_eq!(a.sel.selected, run);
    assert_eq!(a.ui().lang_cursor().as_deref(), Some("pt"), "the last row, and no further");
    key(&mut a, KeyCode::Up);
    assert_eq!(a.ui().lang_cursor().as_deref(), Some("ko"));
    key(&mut a, KeyCode::Enter);
    let mut stale = a.answers_wanted.clone().unwrap();
    stale.lang = "ja".into();
    a.apply(Delta::Answers(Box::new(answers::read(&stale))));
    assert!(a.answers.is_none());
    deliver(&mut a);
    assert!(a.answers.as_ref().is_some_and(|x| x.query.lang == "ko"));
    // Tab back to the run list: up and down select runs again.
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Down);
    assert_ne!(a.sel.selected, run);
}

/// A run of the open view evaluates again (its answers stored, then its eval events): the view
/// asks for its answers again and shows the new latest evaluation.
#[test]
fn a_new_evaluation_is_read_into_the_open_view() {
    use mixscope::runs::events::{Body, Event, EventWriter};
    let t = fixture();
    let root = t.path().join("runs");
    let mut a = app(&root);
    select(&mut a, "en-");
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Enter);
    deliver(&mut a);
    a.on_data();
    assert!(a.answers_wanted.is_none(), "nothing new: nothing read again");
    assert!(render(&mut a, 120, 40).contains("step 700 (evaluation 3 of 3 stored)"));
    let dir = root.join("en-4d5e6f");
    let eval = Body::Eval {
        task: "mr".into(),
        lang: "en".into(),
        group: "anchor".into(),
        loss: 1.0,
        metric: "accuracy".into(),
        value: 0.5,
        n: 64,
        lang_ok: Some(1.0),
        scores: None,
        ci: Some([0.38, 0.62]),
    };
    EventWriter::open(&dir.join("events.jsonl")).unwrap().write(&Event::new(750, eval)).unwrap();
    fixtures::answers(&root, "en-4d5e6f", &["en"], &[750]).unwrap();
    a.apply(Delta::Replaced(mixscope::tui::store::RunData::load(&dir)));
    a.on_data();
    deliver(&mut a);
    let s = render(&mut a, 120, 40);
    assert!(
        s.contains("step 750 (evaluation 4 of 4 stored)") && s.contains("accuracy 0.500 [0.380, 0.620] n=64"),
        "{s}"
    );
}

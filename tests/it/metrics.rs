//! The task metrics on the suite itself: every reference scores perfectly in its own language
//! and is never language-confused; a reference judged against another language is confused.

use mixscope::data::suite::{suite, GenOptions};
use mixscope::data::{lang, Task};
use mixscope::eval::{self, langid};

#[test]
fn references_score_perfectly_in_their_own_language() {
    let o = GenOptions { mr_levels: vec![1, 2, 3] };
    let mut bad = Vec::new();
    for l in lang::all() {
        for t in [Task::Mr, Task::Sm, Task::If] {
            for i in 0..150 {
                let ex = suite().train(&t, &l.code, 21, i, &o).unwrap();
                let s = eval::score(&ex, &ex.response);
                if !s.lang_ok || (s.value - 1.0).abs() > 1e-12 {
                    bad.push(format!("{} {t}: {:?} -> {:?}", l.code, ex.response, s));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} failures, e.g.\n{}",
        bad.len(),
        bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn summaries_in_another_language_are_confused() {
    let o = GenOptions::default();
    let codes = lang::codes();
    let sums: Vec<(String, Vec<String>)> = codes
        .iter()
        .map(|c| (c.to_string(), (0..60).map(|i| suite().train(&Task::Sm, c, 5, i, &o).unwrap().response).collect()))
        .collect();
    let mut weak = Vec::new();
    for (a, texts) in &sums {
        for b in &codes {
            let n = texts.iter().filter(|s| langid::is_confused(s, b)).count();
            if a == b && n > 0 {
                weak.push(format!("{a} judged against itself: {n} confused"));
            }
            if a != b && (n as f64) < 0.9 * texts.len() as f64 {
                weak.push(format!("{a} judged against {b}: only {n}/{} confused", texts.len()));
            }
        }
    }
    assert!(weak.is_empty(), "{}", weak.join("\n"));
}

#[test]
fn wrong_answers_score_zero() {
    let o = GenOptions::default();
    let ex = suite().train(&Task::Mr, "es", 1, 0, &o).unwrap();
    let wrong = ex.response.replace(&ex.meta.answer.unwrap().to_string(), &(ex.meta.answer.unwrap() + 1).to_string());
    assert_eq!(eval::score(&ex, &wrong).value, 0.0, "{wrong}");
    // An English answer to a Spanish instruction fails as in the paper.
    let ex = (0..200)
        .map(|i| suite().train(&Task::If, "es", 1, i, &o).unwrap())
        .find(|e| e.prompt.contains("lista"))
        .unwrap();
    let s = eval::score(&ex, "Sure, here is the list of things you asked for");
    assert_eq!(s.value, 0.0);
}

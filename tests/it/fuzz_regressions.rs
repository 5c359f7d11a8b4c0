//! Inputs that the cargo-fuzz targets (fuzz/fuzz_targets/, run with scripts/fuzz.sh) crashed
//! on, kept as regression tests. Each must give an error that names its place, or a
//! well-formed result. None may panic.

use std::path::Path;

use mixscope::config::Loaded;
use mixscope::data::mixture::{Mixture, SpecContext};
use mixscope::error::is_bad_input;

fn ctx() -> SpecContext {
    SpecContext { seen: vec!["es".into(), "fr".into(), "ja".into(), "zh".into()], ..SpecContext::default() }
}

/// The SPEC is rejected as bad input, with the error naming `place` (e.g. `column 17`).
fn rejected_at(spec: &str, place: &str) {
    match Mixture::parse(spec, &ctx()) {
        Ok(m) => panic!("{spec:?} was accepted: {m:?}"),
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(is_bad_input(&e), "{spec:?}: not bad input: {msg}");
            assert!(msg.contains(place), "{spec:?}: no {place:?} in {msg:?}");
        }
    }
}

/// The fuzz target's check (tests/fuzz.rs `mixture_specs_parse_or_fail_cleanly`): an error, or
/// finite non-negative weights (languages and tasks) that sum to 1.
fn parses_or_fails_cleanly(spec: &str) {
    if let Ok(m) = Mixture::parse(spec, &ctx()) {
        for (what, ws) in [
            ("languages", m.langs.iter().map(|(_, w)| *w).collect::<Vec<f64>>()),
            ("tasks", m.tasks.iter().map(|(_, w)| *w).collect()),
        ] {
            let sum: f64 = ws.iter().sum();
            assert!(ws.iter().all(|w| w.is_finite() && *w >= 0.0), "{spec:?}: {what} {ws:?}");
            assert!((sum - 1.0).abs() < 1e-9, "{spec:?}: {what} weights {ws:?} sum to {sum}");
        }
        m.summary();
    }
}

/// Found by the `mixture` target (2026-11-28; minimised with `cargo fuzz tmin`): a `budget=`
/// beyond u64 was clamped to u64::MAX by `as u64`, and `apportion` then overflowed summing the
/// shares ("attempt to add with overflow", src/data/mixture.rs `apportion`; a wrong budget where
/// overflow checks are off).
#[test]
fn regression_a_budget_beyond_u64_is_an_error() {
    rejected_at("multilingual=.2,budget=50122222222222222222", "column 17");
    rejected_at("multilingual=0.2,budget=50122222222222222222", "column 18");
}

/// Found by the `mixture` target (2026-11-28; minimised with `cargo fuzz tmin`): additive
/// counts beyond u64 were clamped by `as u64`, and the total of the counts overflowed ("attempt
/// to add with overflow", src/data/mixture.rs `Mixture::parse`, `let total: u64 = ...sum()`;
/// a wrapped total, and weights that do not sum to 1, where overflow checks are off).
#[test]
fn regression_additive_counts_beyond_u64_are_an_error() {
    rejected_at("es=1,ko=40000000000000000000,n=0,en=0", "column 6");
    rejected_at(" ja=5,en=0,fr=0,n= 4e40", "column 17");
    for spec in [
        "es=444444444444444444444444444444444444448,n=0,en=8",
        "en=4,n=255555555555555555555555555555555555555555555555555555555555,es=00",
        "en=50.,es=43333333333333333333333333333333300,n=40,zh=55.",
    ] {
        parses_or_fails_cleanly(spec);
    }
}

/// The `budget=` input above, through the config loader: validation names the place.
#[test]
fn regression_a_config_with_an_overflowing_mixture_fails_with_a_place() {
    let src = "[data]\nmixture = \"multilingual=.2,budget=50122222222222222222\"\n";
    let mut l = Loaded::parse("fuzz.toml", src, Path::new(".")).unwrap();
    let e = l.validate().unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("fuzz.toml:2:11: data.mixture"), "{msg}");
}

/// Not a fuzzer find (review of the same code, then confirmed against the `mixture` target's
/// check): weights whose sum overflows to infinity normalised to 0, and `retain(w > 0)` left a
/// mixture of no language at all (task weights likewise became 0).
#[test]
fn regression_weights_that_overflow_their_sum_are_not_an_empty_mixture() {
    parses_or_fails_cleanly("en=1e308,es=1e308");
    parses_or_fails_cleanly("en=1,tasks=mr:1e308+sm:1e308");
}

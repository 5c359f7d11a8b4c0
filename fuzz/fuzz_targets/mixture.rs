//! The mixture SPEC parser on arbitrary text: `Ok` or `Err`, never a panic, and what it accepts
//! is well-formed (tests/it/fuzz.rs `mixture_specs_parse_or_fail_cleanly`): finite, non-negative
//! language weights that sum to 1, and a summary that can be drawn.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mixscope::data::mixture::{Mixture, SpecContext};

fuzz_target!(|bytes: &[u8]| {
    let Ok(spec) = std::str::from_utf8(bytes) else { return };
    let ctx = SpecContext { seen: vec!["es".into(), "fr".into(), "ja".into(), "zh".into()], ..SpecContext::default() };
    if let Ok(m) = Mixture::parse(spec, &ctx) {
        let sum: f64 = m.langs.iter().map(|(_, w)| w).sum();
        assert!(m.langs.iter().all(|(_, w)| w.is_finite() && *w >= 0.0), "{spec:?}: {:?}", m.langs);
        assert!((sum - 1.0).abs() < 1e-9, "{spec:?}: weights sum to {sum}");
        m.summary();
    }
});

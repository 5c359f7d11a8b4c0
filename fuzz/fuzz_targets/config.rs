//! The config loader on arbitrary TOML text: `Loaded::parse`, `--set` overrides
//! (`apply_sets`) and `validate` return `Ok` or `Err`, never panic, and every error names its
//! place (tests/it/fuzz.rs `configs_load_or_fail_with_a_place`): `file:line:col` for what the TOML
//! parser rejects, the file (or the `--set` that made the value) for what validation rejects.
//!
//! Input: the TOML text, then optionally a NUL byte and `--set KEY=VALUE` overrides, one per
//! line.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mixscope::config::Loaded;

const FILE: &str = "fuzz.toml";

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let (src, sets) = match text.split_once('\0') {
        Some((src, sets)) => (src, sets.lines().map(String::from).collect::<Vec<_>>()),
        None => (text, Vec::new()),
    };
    // No `data.files` the fuzzer names may exist: resolve relative paths under a missing directory.
    let dir = Path::new("/nonexistent/mixscope-fuzz");
    let mut l = match Loaded::parse(FILE, src, dir) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(msg.contains(&format!("{FILE}:")), "no file:line in {msg:?} for\n{src}");
            return;
        }
    };
    if let Err(e) = l.apply_sets(&sets) {
        let msg = format!("{e:#}");
        assert!(msg.contains("--set "), "no --set in {msg:?} for {sets:?}");
        return;
    }
    if let Err(e) = l.validate() {
        let msg = format!("{e:#}");
        assert!(msg.contains(FILE) || msg.contains("--set "), "no place in {msg:?} for\n{src}\n{sets:?}");
    }
});

//! Property tests over hostile input (bounded, so they run in CI): the events readers (the
//! supervisor's and the TUI's byte scanner), the mixture SPEC parser and the config loader
//! never panic, and what they accept is well-formed.

use mixscope::config::Loaded;
use mixscope::data::mixture::{Mixture, SpecContext};
use mixscope::runs::events::{read_all, Body, Event, Examples};
use mixscope::tui::store::RunData;
use proptest::prelude::*;
use std::path::Path;

fn valid_lines() -> Vec<String> {
    let ex = Examples {
        lang: [("en".to_string(), 12u64), ("ja".to_string(), 3)].into_iter().collect(),
        task: [("mr".to_string(), 15u64)].into_iter().collect(),
    };
    let bodies = vec![
        Body::Train { loss: 2.5, lr: 1e-3, tokens: 4096, tokens_per_s: 1234.5, examples: ex, grad_norm: Some(0.5) },
        Body::Eval {
            task: "mr".into(),
            lang: "ja".into(),
            group: "seen".into(),
            loss: 1.25,
            metric: "accuracy".into(),
            value: 0.5,
            n: 32,
            lang_ok: Some(1.0),
            scores: None,
            ci: None,
        },
        Body::Eval {
            task: "sm".into(),
            lang: "es".into(),
            group: "seen".into(),
            loss: 1.5,
            metric: "rouge_l".into(),
            value: 0.25,
            n: 2,
            lang_ok: Some(0.5),
            scores: Some(vec![0.5, 0.0]),
            ci: Some([0.0, 0.5]),
        },
        Body::Checkpoint {
            path: "checkpoints/10".into(),
            eval_loss: Some(1.5),
            best: Some(mixscope::runs::events::Best { loss: Some(1.5), step: Some(10) }),
            warnings: 1,
        },
    ];
    bodies.into_iter().enumerate().map(|(i, b)| Event::new(i as u64 + 1, b).to_line()).collect()
}

/// Valid event lines, then damage: truncation, byte flips, inserted garbage.
fn damaged_events() -> impl Strategy<Value = Vec<u8>> {
    let lines = valid_lines();
    (
        proptest::collection::vec((0..lines.len(), any::<u16>(), any::<u8>(), 0u8..4), 1..40),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(move |(picks, junk)| {
            let mut out = Vec::new();
            for (i, pos, byte, how) in picks {
                let mut l = lines[i].clone().into_bytes();
                let p = pos as usize % l.len();
                match how {
                    0 => {}
                    1 => l.truncate(p),
                    2 => l[p] = byte,
                    _ => l.splice(p..p, junk.iter().copied()).for_each(drop),
                }
                out.extend_from_slice(&l);
            }
            out
        })
}

fn write_run(dir: &Path, events: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
}

proptest! {
    // 256 cases each by default; PROPTEST_CASES=100000 for a longer local run.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn event_readers_survive_damaged_files(bytes in damaged_events()) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("r");
        write_run(&dir, &bytes);
        let (events, bad, _torn) = read_all(&dir.join("events.jsonl")).unwrap();
        let lines = bytes.split(|&b| b == b'\n').filter(|l| !l.iter().all(|b| b.is_ascii_whitespace())).count();
        prop_assert!(events.len() + bad.len() <= lines);
        // The TUI's fast scanner reads the same file without panicking and never draws a
        // point the supervisor's parser rejected.
        let r = RunData::load(&dir);
        let trains = events.iter().filter(|e| matches!(e.body, Body::Train { .. })).count();
        prop_assert!(r.loss.len() <= trains, "{} points from {} train events", r.loss.len(), trains);
    }

    /// One train line as the writer writes it, damaged, after an intact one naming the same
    /// languages: the TUI draws a point exactly when the strict parser accepts the line, at the
    /// parser's step and (to f32) loss, with the parser's example counts per language. This is
    /// the TUI's exact-layout path (a writer's line matches it; the intact line primes its
    /// keys of the line before) against serde, byte by byte.
    #[test]
    fn a_damaged_train_line_is_a_point_exactly_when_the_parser_accepts_it(
        pos in any::<u16>(),
        byte in any::<u8>(),
        how in 0u8..3,
        junk in proptest::collection::vec(any::<u8>(), 1..6),
    ) {
        let intact = valid_lines()[0].replacen("\"step\":1,", "\"step\":0,", 1);
        let mut l = valid_lines()[0].clone().into_bytes();
        let p = pos as usize % l.len();
        match how {
            0 => l[p] = byte,
            1 => l.splice(p..p, junk.iter().copied()).for_each(drop),
            _ => {
                l.remove(p);
            }
        }
        l.push(b'\n');
        let file = [intact.as_bytes(), &l].concat();
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("r");
        write_run(&dir, &file);
        let (events, _, _) = read_all(&dir.join("events.jsonl")).unwrap();
        let r = RunData::load(&dir);
        // The parser's train events, folded as a series folds them (a step at or before the
        // last replaces the tail from there).
        let mut want: Vec<(u64, f32)> = Vec::new();
        let mut last_counts = None;
        for e in &events {
            if let Body::Train { loss, examples, .. } = &e.body {
                want.truncate(want.partition_point(|&(s, _)| s < e.step));
                want.push((e.step, *loss as f32));
                last_counts = Some(examples.lang.clone());
            }
        }
        let shown = String::from_utf8_lossy(&l);
        let got: Vec<(u64, f32)> = r.loss.steps.iter().zip(r.loss.ys.iter().copied()).collect();
        prop_assert_eq!(got, want, "{}", shown);
        for (lang, &n) in last_counts.iter().flatten() {
            let col = r.timeline.examples.current(lang);
            prop_assert_eq!(col, Some(n as f32), "{} of {}", lang, shown);
        }
    }

    #[test]
    fn event_readers_survive_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("r");
        write_run(&dir, &bytes);
        read_all(&dir.join("events.jsonl")).unwrap();
        RunData::load(&dir);
    }

    #[test]
    fn mixture_specs_parse_or_fail_cleanly(spec in "[a-z=,.0-9:+ eEnNaIf-]{0,48}") {
        let ctx = SpecContext { seen: vec!["es".into(), "fr".into(), "ja".into(), "zh".into()], ..SpecContext::default() };
        if let Ok(m) = Mixture::parse(&spec, &ctx) {
            let sum: f64 = m.langs.iter().map(|(_, w)| w).sum();
            prop_assert!(m.langs.iter().all(|(_, w)| w.is_finite() && *w >= 0.0), "{spec}: {:?}", m.langs);
            prop_assert!((sum - 1.0).abs() < 1e-9, "{spec}: weights sum to {sum}");
            m.summary();
        }
    }

    #[test]
    fn configs_load_or_fail_with_a_place(
        entries in proptest::collection::vec(
            (
                prop::sample::select(vec![
                    "seed", "threads", "name", "[train]\nmax_steps", "[train]\nlr", "[train]\nbatch_size",
                    "[data]\nmixture", "[data]\ntasks", "[data]\nseq_len", "[eval]\nevery", "[model.shape]\nhidden_size",
                    "[checkpoint]\nkeep_last", "[bogus]\nx",
                ]),
                prop::sample::select(vec![
                    "0", "1", "-3", "1e309", "nan", "inf", "\"en=1,es=nan\"", "\"multilingual=0.4\"", "[\"mr\"]",
                    "[]", "true", "\"\"", "{ a = 1 }", "1.5", "\"x", "99999999999999999999",
                ]),
            ),
            0..6,
        )
    ) {
        let src: String = entries.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        match Loaded::parse("fuzz.toml", &src, Path::new(".")) {
            Ok(mut l) => {
                if let Err(e) = l.validate() {
                    let msg = format!("{e:#}");
                    prop_assert!(msg.contains("fuzz.toml") || msg.contains('.'), "no place in {msg:?} for\n{src}");
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.contains("fuzz.toml:"), "no file:line in {msg:?} for\n{src}");
            }
        }
    }
}

/// Found by `event_readers_survive_damaged_files` (CI and local runs, 2026-11-27): lines the
/// strict parser rejects that the TUI's scanner drew — a number overflowing f64, a float where
/// an unsigned integer belongs, repeated fields, null for a required number, a wrong-typed
/// field the scanner used to skip, a repeated `examples.lang`.
#[test]
fn regression_lines_the_strict_parser_rejects_are_not_points() {
    let ok = r#"{"v":1,"step":1,"time":1.5,"kind":"train","loss":2.5,"lr":0.001,"tokens":4096,"tokens_per_s":1234.5,"examples":{"lang":{"en":12,"ja":3},"task":{"mr":15}},"grad_norm":0.5}"#;
    let bad = [
        ok.replace("\"time\":1.5", "\"time\":1795806788e6724274"),
        ok.replace("\"tokens\":4096", "\"tokens\":4e96"),
        ok.replace("\"tokens\":4096", "\"tokens\":4096.0"),
        ok.replace("\"lr\":0.001,", "\"lr\":0.001,\"{#v\":1,\"step\":1,"),
        ok.replace("\"loss\":2.5", "\"loss\":null"),
        ok.replace("\"grad_norm\":0.5", "\"grad_norm\":\"x\""),
        ok.replace("\"task\":{\"mr\":15}", "\"lang\":{\"es\":1}"),
        ok.replace("\"en\":12", "\"en\":-12"),
        // The TUI reads a writer's train line by its exact layout; near misses of it:
        ok.replace("\"time\":1.5", "\"time\":01.5"),
        ok.replace("\"en\":12", "\"en\":012"),
        ok.replace("\"loss\":2.5", "\"loss\":2."),
        ok.replace("\"loss\":2.5", "\"loss\":2.5e"),
        ok.replace("\"step\":1,", "\"step\":18446744073709551616,"),
        ok.replace("\"en\":12", "\"e\u{1}n\":12"),
        ok.replace("\"en\":12", "\"\\\":12"),
        ok.replace("\"grad_norm\":0.5}", "\"grad_norm\":0.5"),
        ok.replace("\"grad_norm\":0.5}", "\"grad_norm\":0.5}}"),
    ];
    // ... and near misses that are still valid JSON, which the general scanner reads.
    let good = [
        ok.replace("\"time\":1.5", "\"time\": 1.5"),
        ok.replace("\"en\":12,\"ja\":3", "\"ja\":3,\"en\":12"),
        ok.replace("\"en\":12", "\"en-x-longname\":12"),
        ok.replace("\"en\":12", "\"\\u0065n\":12"),
        ok.replace("\"en\":12", "\"\u{e9}\":12"),
        ok.replace(",\"grad_norm\":0.5", ""),
        ok.replace("\"loss\":2.5", "\"loss\":25e-1"),
        ok.replace("\"step\":1,", "\"step\":18446744073709551615,"),
        format!("{ok} \r"),
    ];
    for line in &good {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("r");
        write_run(&dir, format!("{line}\n").as_bytes());
        let (events, bad, _) = read_all(&dir.join("events.jsonl")).unwrap();
        assert_eq!((events.len(), bad.len()), (1, 0), "{line}");
        let r = RunData::load(&dir);
        assert_eq!(r.loss.len(), 1, "{line}");
        assert_eq!(r.loss.ys, [2.5], "{line}");
        assert_eq!(
            r.timeline.x_of(events[0].step, mixscope::tui::store::XAxis::Examples, None, 0.0),
            Some(15.0),
            "{line}"
        );
    }
    for line in std::iter::once(ok.to_string()).chain(bad) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("r");
        write_run(&dir, format!("{line}\n").as_bytes());
        let (events, _, _) = read_all(&dir.join("events.jsonl")).unwrap();
        let r = RunData::load(&dir);
        assert_eq!(r.loss.len(), events.len(), "{line}");
        assert_eq!(events.len(), usize::from(line == ok), "{line}");
    }
}

//! Synthetic run directories with deterministic events: the TUI's snapshot tests, its end-to-end
//! test and its benchmark draw them. The curves look like real training (a decaying loss with
//! noise; accuracies rising faster for English and seen languages than for unseen ones).

use std::io::Write;
use std::path::Path;

use anyhow::Result;

use crate::config::{Lineage, RunConfig};
use crate::runs::events::{Body, Event, Examples, State};
use crate::runs::RunDir;

/// The time the fixtures start (a fixed Unix time, so snapshots are stable).
pub const T0: f64 = 1_800_000_000.0;

fn noise(step: u64, salt: u64) -> f64 {
    let mut z = step.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^= z >> 31;
    z = z.wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 29;
    (z % 10_000) as f64 / 10_000.0 - 0.5
}

/// What to write for one synthetic run.
pub struct Spec<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub parent: Option<(&'a str, u64)>,
    pub mixture: &'a str,
    pub tasks: &'a [&'a str],
    pub heldout: &'a [&'a str],
    pub from: u64,
    pub to: u64,
    pub max_steps: u64,
    pub eval_every: u64,
    pub start_time: f64,
    pub seconds_per_step: f64,
    /// The final status (none: still running, no final status).
    pub end: Option<(State, Option<&'a str>)>,
    pub salt: u64,
}

fn lang_skill(lang: &str, mixture: &str) -> f64 {
    // Additive (en=400,n=N): seen languages gain with N, saturating; Portuguese follows partly.
    if let Some(n) = mixture.split(',').find_map(|i| i.strip_prefix("n=")).and_then(|v| v.parse::<f64>().ok()) {
        let lift = 1.0 - (-n / 120.0).exp();
        return match lang {
            "en" => 1.0,
            "es" | "fr" | "ja" | "zh" => 0.35 + 0.5 * lift,
            "pt" => 0.35 + 0.25 * lift,
            _ => 0.3 + 0.05 * lift,
        };
    }
    let seen = mixture.contains(&format!("{lang}="))
        || (mixture.starts_with("multilingual=0.") && ["es", "fr", "ja", "zh"].contains(&lang));
    match lang {
        "en" => 1.0,
        _ if seen => 0.85,
        "pt" => 0.6,
        _ => 0.35,
    }
}

/// Write one synthetic run directory.
pub fn write_run(root: &Path, s: &Spec) -> Result<RunDir> {
    write_seeded(root, s, 0)
}

/// Write one synthetic run directory with a training seed: runs that differ only in their seed
/// are one group, and a seed other than 0 shifts the run's scores a little (its own draw of
/// the training's randomness), so that a group has a spread to show.
pub fn write_seeded(root: &Path, s: &Spec, seed: u64) -> Result<RunDir> {
    let run = RunDir::new(root.join(s.id));
    crate::util::create_private_dir(&run.path)?;
    let mut cfg = RunConfig {
        name: Some(s.name.to_string()),
        seed,
        threads: 1,
        device: crate::config::DeviceSpec::Cpu,
        ..RunConfig::default()
    };
    let shift = if seed == 0 { 0.0 } else { 0.25 * noise(seed, 0x5eed) };
    cfg.data.mixture = s.mixture.to_string();
    cfg.data.tasks = s.tasks.iter().map(|t| t.to_string()).collect();
    cfg.data.heldout = s.heldout.iter().map(|t| t.to_string()).collect();
    cfg.train.max_steps = s.max_steps;
    cfg.eval.every = s.eval_every;
    cfg.lineage = s.parent.map(|(p, at)| Lineage { parent: p.to_string(), fork_step: at });
    run.write_config(&cfg)?;
    let mix = cfg.mixture()?;
    let langs = crate::config::eval_langs(&cfg, &mix);
    let mut out = std::io::BufWriter::new(std::fs::File::create(run.events_path())?);
    let mut t = s.start_time;
    let mut emit = |e: Event| -> Result<()> { Ok(out.write_all(e.to_line().as_bytes())?) };
    let mut best = crate::runs::events::Best::default();
    if let Some((p, at)) = s.parent {
        emit(Event {
            v: 1,
            step: at,
            time: t,
            body: Body::Fork { parent: p.into(), parent_step: at, mixture: mix.spec.clone(), fresh_optimizer: false },
        })?;
    }
    if s.to > s.from {
        emit(Event {
            v: 1,
            step: s.from,
            time: t,
            body: Body::Status { state: State::Running, message: Some("started".into()) },
        })?;
    }
    let mut examples = Examples::default();
    for step in s.from + 1..=s.to {
        t += s.seconds_per_step;
        for (l, w) in &mix.langs {
            let n = examples.lang.entry(l.clone()).or_insert(step * 32 / 3);
            *n += (32.0 * w).round() as u64;
        }
        let loss = 1.2 + 4.5 * (-(step as f64) / 180.0).exp() + 0.15 * noise(step, s.salt) + 5.0 * shift;
        emit(Event {
            v: 1,
            step,
            time: t,
            body: Body::Train {
                loss,
                lr: 1e-3,
                tokens: step * 2048,
                tokens_per_s: 2048.0 / s.seconds_per_step,
                examples: examples.clone(),
                grad_norm: Some(1.0),
            },
        })?;
        if s.eval_every > 0 && step % s.eval_every == 0 {
            let mut sel = Vec::new();
            for task in s.tasks {
                for l in &langs {
                    let group = crate::config::group_of(l, &cfg, &mix).as_str();
                    let k = (lang_skill(l, s.mixture) + shift).clamp(0.0, 1.0);
                    let progress = 1.0 - (-(step as f64) / 250.0).exp();
                    let value = (k * progress * 0.9 + 0.03 * noise(step, s.salt ^ l.len() as u64)).clamp(0.0, 1.0);
                    let eloss = 1.4 + (1.2 - k) * 1.5 + 3.0 * (-(step as f64) / 200.0).exp();
                    if group != "unseen" {
                        sel.push(eloss);
                    }
                    let (metric, value) = match *task {
                        "mr" => ("accuracy", value),
                        "sm" => ("rouge_l", value * 0.8),
                        "if" => ("if_pass", value * 0.9),
                        _ => ("loss", eloss),
                    };
                    // 64 generations a set, as the demo evaluates: accuracy is k of 64 with
                    // Wilson's interval; graded metrics get a bootstrap-like ±0.06.
                    let (value, ci) = match metric {
                        "accuracy" => {
                            let k = (value * EVAL_N as f64).round() as u64;
                            let (lo, hi) = crate::analysis::stats::wilson(k, EVAL_N).unwrap_or((0.0, 1.0));
                            (k as f64 / EVAL_N as f64, Some([lo, hi]))
                        }
                        "loss" => (value, None),
                        _ => (value, Some([(value - 0.06).max(0.0), (value + 0.06).min(1.0)])),
                    };
                    emit(Event {
                        v: 1,
                        step,
                        time: t,
                        body: Body::Eval {
                            task: task.to_string(),
                            lang: l.clone(),
                            group: group.into(),
                            loss: eloss,
                            metric: metric.into(),
                            value,
                            n: EVAL_N,
                            lang_ok: Some(k.min(1.0)),
                            scores: None,
                            ci,
                        },
                    })?;
                }
            }
            let mean = sel.iter().sum::<f64>() / sel.len().max(1) as f64;
            best = best.after(step, Some(mean));
            emit(Event {
                v: 1,
                step,
                time: t,
                body: Body::Checkpoint {
                    path: format!("checkpoints/{step}"),
                    eval_loss: Some(mean),
                    best: Some(best),
                    warnings: 0,
                },
            })?;
        }
    }
    if let Some((state, msg)) = s.end {
        emit(Event { v: 1, step: s.to, time: t, body: Body::Status { state, message: msg.map(String::from) } })?;
    }
    out.flush()?;
    Ok(run)
}

/// Generations per (task, language) in the fixtures' evaluations.
const EVAL_N: u64 = 64;

/// The standard fixture: a base model, two SFT forks (one live, one paused), a fork of a fork,
/// a failed run and a queued one.
pub fn standard(root: &Path) -> Result<()> {
    let all = ["en", "es", "fr", "ja", "zh", "ar", "ko", "pt"];
    let _ = all;
    write_run(
        root,
        &Spec {
            id: "base-1a2b3c",
            name: "demo-base",
            parent: None,
            mixture: "en=1,es=1,fr=1,ja=1,zh=1,ar=1,ko=1,pt=1",
            tasks: &["lm"],
            heldout: &[],
            from: 0,
            to: 300,
            max_steps: 300,
            eval_every: 100,
            start_time: T0,
            seconds_per_step: 0.5,
            end: Some((State::Finished, None)),
            salt: 1,
        },
    )?;
    write_run(
        root,
        &Spec {
            id: "en-4d5e6f",
            name: "demo-en",
            parent: Some(("base-1a2b3c", 300)),
            mixture: "multilingual=0",
            tasks: &["mr", "sm", "if"],
            heldout: &["ar", "ko", "pt"],
            from: 300,
            to: 700,
            max_steps: 900,
            eval_every: 50,
            start_time: T0 + 200.0,
            seconds_per_step: 1.0,
            end: None,
            salt: 2,
        },
    )?;
    write_run(
        root,
        &Spec {
            id: "ml40-7a8b9c",
            name: "demo-ml40",
            parent: Some(("base-1a2b3c", 300)),
            mixture: "multilingual=0.4",
            tasks: &["mr", "sm", "if"],
            heldout: &["ar", "ko", "pt"],
            from: 300,
            to: 650,
            max_steps: 900,
            eval_every: 50,
            start_time: T0 + 210.0,
            seconds_per_step: 1.1,
            end: Some((State::Paused, None)),
            salt: 3,
        },
    )?;
    write_run(
        root,
        &Spec {
            id: "ko-0d1e2f",
            name: "ml40-plus-ko",
            parent: Some(("ml40-7a8b9c", 500)),
            mixture: "en=0.3,es=0.1,fr=0.1,ja=0.1,zh=0.1,ko=0.3",
            tasks: &["mr", "sm", "if"],
            heldout: &["ar", "pt"],
            from: 500,
            to: 560,
            max_steps: 900,
            eval_every: 50,
            start_time: T0 + 800.0,
            seconds_per_step: 1.0,
            end: Some((State::Failed, Some("the trainer was killed by signal 9 (SIGKILL)"))),
            salt: 4,
        },
    )?;
    write_run(
        root,
        &Spec {
            id: "sweep-3f4a5b",
            name: "n400-seed1",
            parent: None,
            mixture: "en=0.5,es=0.5",
            tasks: &["mr"],
            heldout: &["pt"],
            from: 0,
            to: 0,
            max_steps: 500,
            eval_every: 50,
            start_time: T0 + 900.0,
            seconds_per_step: 1.0,
            end: Some((State::Queued, None)),
            salt: 5,
        },
    )?;
    Ok(())
}

/// A finished 4-point sweep (additive N per seen language: 0, 25, 100, 400) with its record.
pub fn sweep(root: &Path) -> Result<()> {
    let id = "paper-9c8d7e";
    let mut runs = Vec::new();
    for (i, n) in ["0", "25", "100", "400"].iter().enumerate() {
        let run_id = format!("paper-n-{n}-{:06x}", 0xa0 + i);
        let mixture = format!("en=400,n={n}");
        let name = format!("paper n={n}");
        let run = write_run(
            root,
            &Spec {
                id: &run_id,
                name: &name,
                parent: None,
                mixture: &mixture,
                tasks: &["mr", "sm"],
                heldout: &["ar", "ko", "pt"],
                from: 0,
                to: 300,
                max_steps: 300,
                eval_every: 100,
                start_time: T0 + 100.0 * i as f64,
                seconds_per_step: 0.5,
                end: Some((State::Finished, None)),
                salt: 10 + i as u64,
            },
        )?;
        let mut cfg = run.read_config()?;
        cfg.sweep = Some(crate::config::SweepTag {
            id: id.into(),
            name: "paper".into(),
            point: [("n".to_string(), n.to_string())].into(),
        });
        run.write_config(&cfg)?;
        runs.push((format!("n={n}"), run_id));
    }
    let spec = crate::sweep::SweepSpec::parse(
        "sweep-paper.toml",
        "name = \"paper\"\nconfig = \"demo.toml\"\n[set]\nmixture = \"en=400,n={n}\"\n[grid]\nn = [0, 25, 100, 400]\n",
        Path::new("configs"),
    )?;
    let record = crate::sweep::SweepRecord {
        id: id.into(),
        name: "paper".into(),
        created: T0,
        source: "configs/sweep-paper.toml".into(),
        spec,
        runs,
    };
    let dir = crate::sweep::sweep_dir(root, id);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("sweep.json"), serde_json::to_string_pretty(&record)?)?;
    Ok(())
}

/// Two groups of three seeds each (1, 2, 3), their configs equal but for the seed: the
/// multilingual=0.4 arm (two finished, one still running) and the English-only arm (finished).
pub fn groups(root: &Path) -> Result<()> {
    for (arm, mixture, salt) in [("ml40", "multilingual=0.4", 20), ("en", "multilingual=0", 30)] {
        for seed in 1..=3u64 {
            let id = format!("{arm}.s{seed}-{:06x}", salt * 16 + seed);
            let live = arm == "ml40" && seed == 3;
            let spec = Spec {
                id: &id,
                name: arm,
                parent: None,
                mixture,
                tasks: &["mr", "sm", "if"],
                heldout: &["ar", "ko", "pt"],
                from: 0,
                to: if live { 350 } else { 400 },
                max_steps: 400,
                eval_every: 50,
                start_time: T0 + 10.0 * seed as f64 + if arm == "en" { 5.0 } else { 0.0 },
                seconds_per_step: 1.0 + 0.1 * seed as f64,
                end: if live { None } else { Some((State::Finished, None)) },
                salt: salt + seed,
            };
            write_seeded(root, &spec, seed)?;
        }
    }
    Ok(())
}

/// Stored answers (`runs::samples`) for a fixture run's MR evaluations of `langs` at `steps`:
/// 64 arithmetic questions per language, as many answered right as the run's eval event at
/// that step scored (which ones depends on the run's id), some answered in another language.
pub fn answers(root: &Path, run: &str, langs: &[&str], steps: &[u64]) -> Result<()> {
    use crate::runs::samples::{Answer, AnswerSet};
    let dir = RunDir::new(root.join(run));
    let (events, _, _) = crate::runs::events::read_all(&dir.events_path())?;
    let salt = run.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    for &step in steps {
        let mut sets = Vec::new();
        for &lang in langs {
            let found = events.iter().find_map(|e| match &e.body {
                Body::Eval { task, lang: l, group, value, n, .. } if e.step == step && task == "mr" && l == lang => {
                    Some((group.clone(), *value, *n))
                }
                _ => None,
            });
            let Some((group, value, n)) = found else { continue };
            let right = (value * n as f64).round() as usize;
            // Which examples are right: a shuffle of their indices by the run.
            let mut order: Vec<u64> = (0..n).collect();
            order.sort_by_key(|i| (i.wrapping_mul(2654435761) ^ salt.wrapping_mul(step + 1)) % 1009);
            let answers = (0..n)
                .map(|i| {
                    let (a, b) = (3 + (i * 7) % 40, 2 + (i * 11) % 30);
                    let ok = order.iter().position(|x| *x == i).is_some_and(|p| p < right);
                    let got = if ok { a + b } else { a + b + 1 + (i % 3) };
                    Answer {
                        prompt: format!(
                            "[{lang}] Ana has {a} apples and buys {b} more. How many apples does she have now?"
                        ),
                        reference: format!("{a} + {b} = {}. The answer is {}.", a + b, a + b),
                        generation: format!("{a} + {b} = {got}. The answer is {got}."),
                        score: if ok { 1.0 } else { 0.0 },
                        lang_ok: (i + salt) % 9 != 0,
                    }
                })
                .collect();
            sets.push(AnswerSet { task: "mr".into(), lang: lang.into(), group, metric: "accuracy".into(), answers });
        }
        crate::runs::samples::write(&dir, step, &sets)?;
    }
    Ok(())
}

//! `mixscope bench real`: training and greedy generation at the shapes people fine-tune,
//! SmolLM2-135M and Qwen2.5-0.5B (their `config.json` values: full vocabularies, tied
//! embeddings, grouped KV heads, Qwen2's q/k/v biases), f32 on the CPU, side by side in one run
//! with PyTorch eager and `torch.compile` (`scripts/torch_cpu_peer.py`, the same step: random
//! tokens at full length, mean cross-entropy, global-norm clipping at 1.0, AdamW).
//!
//! Every configuration runs in a process of its own (mixscope's through this binary's hidden
//! `--one` mode), so each peak RSS (`VmHWM`, `ru_maxrss`) is that configuration's alone. The peer
//! runs with the Python named by `MIXSCOPE_PEER_PYTHON` (default `python3`); without torch and
//! transformers there, its rows say so and the ratios are absent.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{median, proc_status_mib, run_json, Row};
use crate::model::{Arch, ModelConfig};
use crate::train::{Kernels, Model};

/// A real model's shape and the batch it is measured at.
struct Shape {
    name: &'static str,
    cfg: ModelConfig,
    batch: usize,
    seq: usize,
    /// Targets: tokens/s over PyTorch eager and over `torch.compile` (`None`: no target).
    over_eager: Option<f64>,
    over_compile: f64,
}

fn shapes(quick: bool) -> Vec<Shape> {
    let mut smol = ModelConfig::llama(49152, 576, 1536, 30, 9, 3, 8192, true);
    smol.rope_theta = 100_000.0;
    smol.rms_norm_eps = 1e-5;
    let mut qwen = ModelConfig::llama(151_936, 896, 4864, 24, 14, 2, 32768, true);
    qwen.architecture = Arch::Qwen2;
    qwen.attention_bias = true;
    qwen.rope_theta = 1_000_000.0;
    // Batches: the 135M shape at the 8 × 256; the 0.5B one at 4 × 256, which holds its
    // weights, gradients, AdamW moments and activations in well under 24 GB.
    let (b1, b2, seq) = if quick { (2, 1, 64) } else { (8, 4, 256) };
    vec![
        Shape { name: "smollm2-135m", cfg: smol, batch: b1, seq, over_eager: Some(1.3), over_compile: 1.1 },
        Shape { name: "qwen2.5-0.5b", cfg: qwen, batch: b2, seq, over_eager: None, over_compile: 1.0 },
    ]
}

/// Generation: prompts decoded together, their length, and the new tokens each.
const GEN: (usize, usize, usize) = (16, 64, 64);
const GEN_QUICK: (usize, usize, usize) = (2, 8, 8);

fn tokens(n: usize, vocab: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..vocab as u32)).collect()
}

/// One configuration, measured in this process: `train` or `generate` at a shape. Prints one
/// JSON object, as the peer script does.
pub fn one(shape: &str, mode: &str, quick: bool) -> Result<()> {
    let s = shapes(quick).into_iter().find(|s| s.name == shape).with_context(|| format!("no shape '{shape}'"))?;
    crate::train::trainer::set_thread_budget(super::train::bench_threads());
    crate::train::tune_allocator();
    let out = match mode {
        "train" => {
            let (warm, steps) = if quick { (1, 1) } else { (2, 3) };
            let m = median(super::train::measure(&s.cfg, (s.batch, s.seq), Kernels::Fused, warm, steps)?);
            // `ENGINE_PROFILE=1`: where the steps' time went, per fused op (stderr).
            let cpu: std::collections::BTreeMap<_, _> = crate::train::ops::prof::cpu_report().into_iter().collect();
            for (name, secs, calls) in crate::train::ops::prof::report(false) {
                let busy = cpu.get(name).map_or(0.0, |c| c / secs.max(1e-9));
                eprintln!(
                    "{name:28} {:9.1} ms a step  {calls:6} calls  {busy:4.2} CPUs busy",
                    secs * 1e3 / (warm + steps) as f64
                );
            }
            serde_json::json!({
                "tokens_per_s": (s.batch * s.seq) as f64 / m.total(), "step_ms": m.total() * 1e3,
                "forward_ms": m.fwd * 1e3, "backward_ms": m.bwd * 1e3, "optimizer_ms": m.opt * 1e3,
            })
        }
        "generate" => {
            let varmap = VarMap::new();
            let model = Model::new(&s.cfg, &varmap, &Device::Cpu, DType::F32, 0)?;
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let v = s.cfg.vocab_size;
            let (b, p, new) = if quick { GEN_QUICK } else { GEN };
            let prompts: Vec<Vec<u32>> = (0..b).map(|_| tokens(p, v, &mut rng)).collect();
            model.generate(&prompts[..1], 2, &[])?; // warm-up
            let t0 = Instant::now();
            let got = model.generate(&prompts, new, &[])?;
            let secs = t0.elapsed().as_secs_f64();
            let n: usize = got.iter().map(Vec::len).sum();
            serde_json::json!({ "tokens_per_s": n as f64 / secs, "new_tokens": n, "seconds": secs })
        }
        other => anyhow::bail!("no mode '{other}': train or generate"),
    };
    let mut out = out;
    out["peak_rss_mib"] = proc_status_mib("VmHWM:").into();
    out["params"] = s.cfg.num_params().into();
    println!("{out}");
    Ok(())
}

/// One configuration measured by this binary in a process of its own (`bench real --one`).
fn ours(shape: &str, mode: &str, quick: bool) -> Result<serde_json::Value, String> {
    let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    c.args(["bench", "real", "--one", &format!("{shape}:{mode}")]);
    if quick {
        c.arg("--quick");
    }
    run_json(c)
}

fn peer_script() -> PathBuf {
    if let Some(p) = std::env::var_os("MIXSCOPE_PEER_SCRIPT") {
        return p.into();
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts").join("torch_cpu_peer.py");
    if built.exists() {
        built
    } else {
        PathBuf::from("scripts/torch_cpu_peer.py")
    }
}

/// Whether the peer's Python has torch and transformers.
fn peer_python() -> Result<String, String> {
    let py = std::env::var("MIXSCOPE_PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import torch, transformers"])
        .output()
        .map_err(|e| format!("{py}: {e}"))?
        .status
        .success();
    if ok {
        Ok(py)
    } else {
        Err(format!("{py} has no torch + transformers (set MIXSCOPE_PEER_PYTHON)"))
    }
}

/// mixscope's training tokens/s at a shape, from the rows measured above.
fn tps_of(rows: &[Row], shape: &str) -> f64 {
    rows.iter()
        .find(|r| {
            let is = |k: &str, v: &str| r.extra.get(k).is_some_and(|x| x == v);
            r.what == "train tok/s" && is("shape", shape) && is("engine", "mixscope")
        })
        .map_or(f64::NAN, |r| r.value)
}

/// The demo's evaluation settings (configs/demo.toml): sets, generations per set, new tokens at
/// most, and training steps between evaluations; and the demo SFT's real input tokens per
/// step and per example (`bench train`'s padding row: 954 a step of 16).
const DEMO_EVAL: (usize, usize, usize, usize) = (24, 64, 40, 375);
const DEMO_STEP_TOKENS: f64 = 954.0;

/// An evaluation round's share of a run's wall time at a shape, estimated from the rates
/// measured above: the demo's round (24 sets: 64 greedy generations each of at most 40 new
/// tokens, and the loss of 64 examples each, a forward at a third of a training step's cost
/// per token) against its 375 training steps between rounds. An upper bound: answers that
/// stop early cost less.
fn eval_share(shape: &str, train_tps: f64, gen_tps: f64) -> Row {
    let (sets, n, new, every) = DEMO_EVAL;
    let per_example = DEMO_STEP_TOKENS / 16.0;
    let gen_s = (sets * n * new) as f64 / gen_tps;
    let loss_s = (sets * n) as f64 * per_example / (3.0 * train_tps);
    let train_s = every as f64 * DEMO_STEP_TOKENS / train_tps;
    let share = 100.0 * (gen_s + loss_s) / (gen_s + loss_s + train_s);
    Row::new(
        "real",
        "eval share",
        format!(
            "shape={shape}: the demo's evaluation round (generation {gen_s:.0} s + loss {loss_s:.0} s at most) against its {every} training steps between rounds ({train_s:.0} s), from the rates above"
        ),
        share,
        "% of wall time",
        "-",
        share.is_finite(),
    )
    .with("shape", shape)
}

/// "; median of rounds: a, b, c tok/s" where there were several rounds.
fn round_list(v: &serde_json::Value) -> String {
    let Some(all) = v["rounds"].as_array().filter(|a| a.len() > 1) else { return String::new() };
    let each: Vec<String> = all.iter().map(|x| format!("{:.1}", x.as_f64().unwrap_or(f64::NAN))).collect();
    format!("; median of {} alternated rounds: {} tok/s", all.len(), each.join(", "))
}

fn f(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

/// The median of the rounds' ratios (None when there are none or one is not a number).
fn paired_median(ratios: &[f64]) -> Option<f64> {
    if ratios.is_empty() || ratios.iter().any(|r| !r.is_finite()) {
        return None;
    }
    let mut v = ratios.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The round of median tokens/s (its JSON, with every round's tokens/s added as `rounds`), or
/// the first error.
fn median_round(rs: Vec<Result<serde_json::Value, String>>) -> Result<serde_json::Value, String> {
    let mut ok = rs.into_iter().collect::<Result<Vec<_>, String>>()?;
    let all: Vec<f64> = ok.iter().map(|v| f(v, "tokens_per_s")).collect();
    ok.sort_by(|a, b| f(a, "tokens_per_s").total_cmp(&f(b, "tokens_per_s")));
    let mut m = ok.swap_remove(ok.len() / 2);
    m["rounds"] = all.into();
    Ok(m)
}

/// Runs the bench: `rounds` alternated rounds of each shape's training configurations
/// (`--rounds`), the shapes named in `only` (all when empty).
pub fn run(quick: bool, rounds: usize, only: &[String]) -> Result<Vec<Row>> {
    let rounds = rounds.max(1);
    let threads = super::train::bench_threads();
    let peer = peer_python();
    let script = peer_script();
    let mut rows = Vec::new();
    for s in shapes(quick).into_iter().filter(|s| only.is_empty() || only.iter().any(|o| o == s.name)) {
        let what = format!(
            "shape={} params={:.0}M batch={}x{} threads={threads} f32",
            s.name,
            s.cfg.num_params() as f64 / 1e6,
            s.batch,
            s.seq
        );
        // Each round runs the three configurations one after another; with several rounds, each
        // configuration's row is its median round (a VM's speed drifts by 10-25 % within an hour,
        // which one round per configuration reads as a difference between engines).
        let mut runs: Vec<(&str, Vec<Result<serde_json::Value, String>>)> =
            vec![("mixscope", vec![]), ("pytorch eager", vec![]), ("torch.compile", vec![])];
        for round in 1..=rounds {
            let of = if rounds > 1 { format!(" (round {round} of {rounds})") } else { String::new() };
            eprintln!("{}: training, mixscope{of} …", s.name);
            runs[0].1.push(ours(s.name, "train", quick));
            for (i, mode) in [(1, "eager"), (2, "compile")] {
                eprintln!("{}: training, PyTorch {mode}{of} …", s.name);
                let r = match &peer {
                    Ok(py) => {
                        let mut c = Command::new(py);
                        c.arg(&script).args([s.name, mode]);
                        c.args(["--batch", &s.batch.to_string(), "--seq", &s.seq.to_string()]);
                        c.args(["--threads", &threads.to_string()]);
                        if quick {
                            c.args(["--warm", "1", "--steps", "1"]);
                        }
                        run_json(c)
                    }
                    Err(e) => Err(e.clone()),
                };
                runs[i].1.push(r);
            }
        }
        let engines: Vec<(&str, Result<serde_json::Value, String>)> =
            runs.into_iter().map(|(name, rs)| (name, median_round(rs))).collect();
        for (name, r) in &engines {
            rows.push(match r {
                Ok(v) => Row::new(
                    "real",
                    "train tok/s",
                    format!(
                        "{what} {name}: step {:.0} ms (fwd {:.0} / bwd {:.0} / opt {:.0} ms), peak RSS {:.0} MiB{}",
                        f(v, "step_ms"),
                        f(v, "forward_ms"),
                        f(v, "backward_ms"),
                        f(v, "optimizer_ms"),
                        f(v, "peak_rss_mib"),
                        round_list(v)
                    ),
                    f(v, "tokens_per_s"),
                    "tokens/s",
                    "-",
                    true,
                )
                .with("shape", s.name)
                .with("engine", *name)
                .with("tokens_per_s", f(v, "tokens_per_s"))
                .with("step_ms", f(v, "step_ms"))
                .with("forward_ms", f(v, "forward_ms"))
                .with("backward_ms", f(v, "backward_ms"))
                .with("optimizer_ms", f(v, "optimizer_ms"))
                .with("peak_rss_mib", f(v, "peak_rss_mib")),
                Err(e) => {
                    Row::new("real", "train tok/s", format!("{what} {name}: {e}"), f64::NAN, "tokens/s", "-", false)
                        .with("shape", s.name)
                        .with("engine", *name)
                }
            });
        }
        let tps = |i: usize| engines[i].1.as_ref().map_or(f64::NAN, |v| f(v, "tokens_per_s"));
        let rss = |i: usize| engines[i].1.as_ref().map_or(f64::NAN, |v| f(v, "peak_rss_mib"));
        let each = |i: usize| -> Vec<f64> {
            let rounds = engines[i].1.as_ref().ok().and_then(|v| v["rounds"].as_array().cloned()).unwrap_or_default();
            rounds.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
        };
        // The ratio of the engines' median rounds, and with several rounds each round's own
        // ratio (the engines ran minutes apart within a round, hours apart across rounds): a
        // target is met only when the ratio of medians and the median of the rounds' ratios
        // both meet it.
        let ratio = |what: &str, detail: String, peer: usize, target: Option<f64>| {
            let value = tps(0) / tps(peer);
            let paired: Vec<f64> = each(0).iter().zip(each(peer)).map(|(a, b)| a / b).collect();
            let (detail, typical) = match paired_median(&paired) {
                Some(m) if paired.len() > 1 => {
                    let list: Vec<String> = paired.iter().map(|r| format!("{r:.2}")).collect();
                    (format!("{detail}; round by round {} (median {m:.2})", list.join(", ")), m)
                }
                _ => (detail, value),
            };
            let t = target.map_or("-".to_string(), |t| format!(">= {t}"));
            let met = target.is_none_or(|t| value >= t && typical >= t);
            Row::new("real", what, detail, value, "ratio", &t, met)
                .with("shape", s.name)
                .with("median_of_round_ratios", typical)
        };
        rows.push(ratio("vs eager", format!("{what}: mixscope tokens/s over PyTorch eager's"), 1, s.over_eager));
        rows.push(ratio(
            "vs compile",
            format!("{what}: mixscope tokens/s over torch.compile's"),
            2,
            Some(s.over_compile),
        ));
        let rss_ratio = rss(0) / rss(1);
        rows.push(
            Row::new(
                "real",
                "RSS ratio",
                format!("{what}: mixscope's peak RSS over PyTorch eager's"),
                rss_ratio,
                "ratio",
                "<= 1",
                rss_ratio <= 1.0,
            )
            .with("shape", s.name),
        );
    }
    // Greedy generation with the KV cache at the 135M shape, as evaluation decodes.
    let s = &shapes(quick)[0];
    if !only.is_empty() && !only.iter().any(|o| o == s.name) {
        return Ok(rows);
    }
    let (b, p, new) = if quick { GEN_QUICK } else { GEN };
    let what = format!("shape={} {b} prompts of {p} tokens, {new} new tokens each, greedy, KV cache", s.name);
    eprintln!("{}: generation …", s.name);
    let ours = ours(s.name, "generate", quick);
    let theirs = match &peer {
        Ok(py) => {
            let mut c = Command::new(py);
            c.arg(&script).args([s.name, "generate"]);
            c.args(["--batch", &b.to_string(), "--seq", &p.to_string(), "--new", &new.to_string()]);
            c.args(["--threads", &threads.to_string()]);
            run_json(c)
        }
        Err(e) => Err(e.clone()),
    };
    let mut gen = [f64::NAN; 2];
    for (k, (name, r)) in [("mixscope", &ours), ("transformers generate", &theirs)].into_iter().enumerate() {
        rows.push(match r {
            Ok(v) => {
                gen[k] = f(v, "tokens_per_s");
                Row::new("real", "gen tok/s", format!("{what}: {name}"), gen[k], "tokens/s", "-", true)
                    .with("shape", s.name)
                    .with("engine", name)
            }
            Err(e) => Row::new("real", "gen tok/s", format!("{what}: {name}: {e}"), f64::NAN, "tokens/s", "-", false)
                .with("shape", s.name)
                .with("engine", name),
        });
    }
    let r = gen[0] / gen[1];
    rows.push(
        Row::new("real", "gen ratio", format!("{what}: mixscope over transformers"), r, "ratio", ">= 1", r >= 1.0)
            .with("shape", s.name),
    );
    rows.push(eval_share(s.name, tps_of(&rows, s.name), gen[0]));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::paired_median;

    #[test]
    fn the_median_of_the_rounds_ratios() {
        assert_eq!(paired_median(&[1.75, 1.27, 1.23]), Some(1.27));
        assert_eq!(paired_median(&[1.0, 2.0]), Some(1.5));
        assert_eq!(paired_median(&[]), None);
        assert_eq!(paired_median(&[1.2, f64::NAN]), None);
    }
}

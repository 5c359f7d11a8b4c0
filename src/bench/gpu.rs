//! `mixscope bench gpu`: training throughput and model FLOPs utilisation (MFU) of the engine on
//! a GPU, at the shape of Qwen2.5-0.5B (hidden 896, 24 layers, 14 heads / 2 KV heads, ffn 4864,
//! vocabulary 151936, tied embeddings, q/k/v biases), batch 2 x sequence 1024. Two precisions: bf16
//! compute over f32 master weights (mixed, the default of a bf16 config), and bf16 parameters.
//!
//! Its peer is `scripts/torch_peer.py` (PyTorch eager, the same shape, batch, loss and
//! optimizer); `scripts/gpu-bench.sh` runs both on one machine, side by side.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{median, Row, Step};
use crate::train::{AdamW, AdamWConfig, Arch, Model, ModelConfig};

/// The Qwen2.5-0.5B shape (its `config.json`).
pub fn qwen25_05b() -> ModelConfig {
    ModelConfig {
        vocab_size: 151_936,
        hidden_size: 896,
        intermediate_size: 4864,
        num_hidden_layers: 24,
        num_attention_heads: 14,
        num_key_value_heads: 2,
        max_position_embeddings: 32_768,
        rope_theta: 1_000_000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
        architecture: Arch::Qwen2,
        attention_bias: true,
    }
}

/// `MIXSCOPE_BENCH_RECOMPUTE=1`: gradient checkpointing (each block's forward again in the
/// backward), which lets batch 8 x 1024 fit.
fn recompute() -> bool {
    std::env::var("MIXSCOPE_BENCH_RECOMPUTE").is_ok_and(|v| v == "1")
}

/// Options from the environment: `MIXSCOPE_BENCH_BATCH` (default 2: the composite path keeps
/// every intermediate, and batch 8 does not fit in 80 GB), `MIXSCOPE_BENCH_SEQ`
/// (default 1024), `MIXSCOPE_BENCH_DEVICE` (default cuda:0).
fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(d)
}

fn measure(
    cfg: &ModelConfig,
    dev: &Device,
    master: DType,
    batch: usize,
    seq: usize,
    warmup: usize,
    steps: usize,
) -> Result<Vec<Step>> {
    let varmap = VarMap::new();
    let mut model = Model::new(cfg, &varmap, dev, master, 0)?;
    model.set_compute_dtype(DType::BF16)?;
    model.set_recompute(recompute());
    let mut opt = AdamW::new(&varmap, AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() })?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let v = cfg.vocab_size as u32;
    let mut out = Vec::new();
    for i in 0..warmup + steps {
        let ids: Vec<u32> = (0..batch * seq).map(|_| rng.random_range(0..v)).collect();
        let tg: Vec<u32> = (0..batch * seq).map(|_| rng.random_range(0..v)).collect();
        let ids = Tensor::from_vec(ids, (batch, seq), dev)?;
        let tg = Tensor::from_vec(tg, (batch, seq), dev)?;
        let w = Tensor::ones((batch, seq), DType::F32, dev)?;
        dev.synchronize()?;
        let t0 = Instant::now();
        // With checkpointing the forward runs inside `loss_and_grads`: the step is timed as backward.
        let (loss, t1, grads) = if model.recompute() {
            let (loss, grads) = model.loss_and_grads(&ids, None, &tg, &w, 1.0)?;
            (Tensor::new(loss as f32, dev)?, t0, grads)
        } else {
            let loss = model.loss(&ids, &tg, &w)?;
            dev.synchronize()?;
            let t1 = Instant::now();
            let grads = loss.backward()?;
            (loss, t1, grads)
        };
        dev.synchronize()?;
        let t2 = Instant::now();
        opt.step_clipped(&grads, 1e-5, Some(1.0))?;
        dev.synchronize()?;
        let t3 = Instant::now();
        if i == 0 {
            let l = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            eprintln!("  first step loss {l:.3} (ln V = {:.3})", (cfg.vocab_size as f64).ln());
        }
        if i >= warmup {
            out.push(Step { fwd: (t1 - t0).as_secs_f64(), bwd: (t2 - t1).as_secs_f64(), opt: (t3 - t2).as_secs_f64() });
        }
    }
    Ok(out)
}

pub fn run(quick: bool) -> Result<Vec<Row>> {
    let spec = std::env::var("MIXSCOPE_BENCH_DEVICE").unwrap_or_else(|_| "cuda:0".into());
    let parsed: crate::config::DeviceSpec = spec.parse().map_err(crate::error::bad_input)?;
    let dev = crate::train::trainer::select_device(parsed)?;
    if dev.is_cpu() {
        crate::bail_input!("bench gpu: device '{spec}' is the CPU; this bench measures a GPU");
    }
    let idx = spec.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
    let gpu = crate::gpu::sample().into_iter().find(|g| g.index == idx);
    let name = gpu.as_ref().map_or_else(|| "unknown GPU".to_string(), |g| g.name.clone());
    let peak = crate::gpu::peak_bf16_tflops(&name);
    let cfg = qwen25_05b();
    let batch = env_usize("MIXSCOPE_BENCH_BATCH", 2);
    let seq = env_usize("MIXSCOPE_BENCH_SEQ", 1024);
    let (warmup, steps) = if quick { (1, 3) } else { (3, 10) };
    let tokens = (batch * seq) as f64;
    let flops_per_token = cfg.train_flops_per_token(seq);
    let mut rows = Vec::new();
    for (mname, master) in [("mixed", DType::F32), ("bf16", DType::BF16)] {
        eprintln!("bench gpu: {name}, {mname}, batch {batch} x seq {seq}");
        let m = match measure(&cfg, &dev, master, batch, seq, warmup, steps) {
            Ok(v) => median(v),
            Err(e) if format!("{e:?}").contains("OUT_OF_MEMORY") => {
                anyhow::bail!("{name}: out of GPU memory at batch {batch} x seq {seq}; set MIXSCOPE_BENCH_BATCH lower")
            }
            Err(e) => return Err(e),
        };
        let tps = tokens / m.total();
        let tflops = flops_per_token * tps / 1e12;
        let mem = crate::gpu::sample().into_iter().find(|g| g.index == idx).map_or(f64::NAN, |g| g.mem_used_gb);
        let detail = format!(
            "shape=qwen2.5-0.5b precision={mname}{} {name} batch={batch} seq={seq} params={:.0}M step={:.0}ms (fwd {:.0} / bwd {:.0} / opt {:.0} ms) {:.1} TFLOP/s, GPU memory {:.1} GiB",
            if recompute() { " checkpointed (forward inside bwd)" } else { "" },
            cfg.num_params() as f64 / 1e6,
            m.total() * 1e3,
            m.fwd * 1e3,
            m.bwd * 1e3,
            m.opt * 1e3,
            tflops,
            mem,
        );
        rows.push(
            Row::new("gpu", "tokens/s", detail, tps, "tokens/s", "-", true)
                .with("shape", "qwen2.5-0.5b")
                .with("precision", mname)
                .with("gpu", name.clone())
                .with("batch", batch)
                .with("seq", seq)
                .with("checkpointing", recompute())
                .with("tokens_per_s", tps)
                .with("step_ms", m.total() * 1e3)
                .with("forward_ms", m.fwd * 1e3)
                .with("backward_ms", m.bwd * 1e3)
                .with("optimizer_ms", m.opt * 1e3)
                .with("tflop_per_s", tflops),
        );
        let (mfu, met) = match peak {
            Some(p) => (tflops / p * 100.0, tflops / p >= 0.45),
            None => (f64::NAN, false),
        };
        rows.push(
            Row::new(
                "gpu",
                "MFU",
                format!(
                    "precision={mname}: 6·N + attention FLOPs per token over the bf16 dense peak ({})",
                    peak.map_or("unknown: set MIXSCOPE_PEAK_TFLOPS".into(), |p| format!("{p} TFLOP/s"))
                ),
                mfu,
                "%",
                ">=45",
                met,
            )
            .with("precision", mname),
        );
    }
    Ok(rows)
}

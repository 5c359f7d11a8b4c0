//! `mixscope bench memory`: a training step's activation memory with and without gradient
//! checkpointing (`train.gradient_checkpointing`), on the composite kernels (the path GPUs take)
//! in bf16 over f32 master weights, measured on the CPU.
//!
//! The shape is Qwen2.5-0.5B's at a quarter of its width, vocabulary and sequence length, with
//! all 24 layers, 14 query heads on 2 KV heads, q/k/v biases and tied embeddings: hidden 224,
//! ffn 1216, vocabulary 37,984, batch 8 × 256 (the batch 8 × 1024 scaled as the width
//! is). Each configuration runs in a process of its own (this binary's hidden `--one` mode) so
//! that its peak resident set is its own: the first step's forward and backward, from the
//! resident set just before it (weights and AdamW moments) to the peak (`VmHWM`) when the
//! backward returns. Activation memory is that rise less the gradients (4 bytes a parameter,
//! all held when the backward returns, with or without checkpointing). A second step is timed.

use std::process::Command;
use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{proc_status_mib, run_json, Row};
use crate::model::{Arch, ModelConfig};
use crate::train::{AdamW, AdamWConfig, Kernels, Model};

/// Qwen2.5-0.5B at a quarter of its width, vocabulary and (in [`shape`]) sequence length.
fn config(layers: usize) -> ModelConfig {
    let mut c = ModelConfig::llama(37_984, 224, 1216, layers, 14, 2, 4096, true);
    c.architecture = Arch::Qwen2;
    c.attention_bias = true;
    c.rope_theta = 1_000_000.0;
    c.rms_norm_eps = 1e-6;
    c
}

/// (model, batch, sequence length): `quick` is a smaller look, not the reported figures.
fn shape(quick: bool) -> (ModelConfig, usize, usize) {
    if quick {
        (config(4), 8, 64)
    } else {
        (config(24), 8, 256)
    }
}

/// How a configuration computes a step's gradients.
const MODES: [(&str, &str); 3] = [
    ("graph", "one graph, one backward (`loss` then `backward`; before checkpointing)"),
    ("parts", "no checkpointing, the output layer a chunk of rows at a time"),
    ("checkpointed", "gradient checkpointing, the output layer in chunks"),
];

/// One configuration (a mode of [`MODES`]) measured in this process; prints a JSON object.
pub fn one(mode: &str, quick: bool) -> Result<()> {
    let Some(m) = MODES.iter().position(|(m, _)| *m == mode) else {
        anyhow::bail!("bench memory: no mode '{mode}'");
    };
    crate::train::trainer::set_thread_budget(super::train::bench_threads());
    let (cfg, batch, seq) = shape(quick);
    let varmap = VarMap::new();
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let v = cfg.vocab_size as u32;
    let mut tokens = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(0..v)).collect() };
    let n = batch * seq;
    let ids = Tensor::from_vec(tokens(n), (batch, seq), &dev)?;
    let tg = Tensor::from_vec(tokens(n), (batch, seq), &dev)?;
    let w = Tensor::ones((batch, seq), DType::F32, &dev)?;
    let mut model = Model::new(&cfg, &varmap, &dev, DType::F32, 0)?;
    model.set_compute_dtype(DType::BF16)?;
    model.set_kernels(Kernels::Composite);
    model.set_recompute(m == 2);
    let grads_of = |model: &Model| -> Result<(f64, candle_core::backprop::GradStore)> {
        if m == 0 {
            let loss = model.loss(&ids, &tg, &w)?;
            Ok((loss.to_dtype(DType::F64)?.to_scalar::<f64>()?, loss.backward()?))
        } else {
            Ok(model.loss_and_grads(&ids, None, &tg, &w, 1.0)?)
        }
    };
    let mut opt = AdamW::new(&varmap, AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() })?;
    let base = proc_status_mib("VmRSS:");
    let t0 = Instant::now();
    let (loss, grads) = grads_of(&model)?;
    let first = t0.elapsed().as_secs_f64();
    let peak = proc_status_mib("VmHWM:");
    opt.step_clipped(&grads, 1e-5, Some(1.0))?;
    drop(grads);
    let t1 = Instant::now();
    let (_, grads) = grads_of(&model)?;
    let second = t1.elapsed().as_secs_f64();
    drop(grads);
    let grad_mib = cfg.num_params() as f64 * 4.0 / (1 << 20) as f64;
    let out = serde_json::json!({
        "loss": loss, "base_mib": base, "peak_mib": peak, "grad_mib": grad_mib,
        "activation_mib": peak - base - grad_mib, "tokens": n, "params": cfg.num_params(),
        "first_step_s": first, "step_s": second,
    });
    println!("{out}");
    Ok(())
}

fn child(mode: &str, quick: bool) -> Result<serde_json::Value> {
    let mut c = Command::new(std::env::current_exe()?);
    c.args(["bench", "memory", "--one", mode]);
    if quick {
        c.arg("--quick");
    }
    run_json(c).map_err(|e| anyhow::anyhow!("bench memory: measuring '{mode}': {e}"))
}

pub fn run(quick: bool) -> Result<Vec<Row>> {
    let (cfg, batch, seq) = shape(quick);
    eprintln!(
        "bench memory: Qwen2.5-0.5B at a quarter width ({} layers, {:.1}M params), batch {batch} x {seq}, bf16 over f32, composite kernels",
        cfg.num_hidden_layers,
        cfg.num_params() as f64 / 1e6
    );
    let got = MODES.iter().map(|(m, _)| child(m, quick)).collect::<Result<Vec<_>>>()?;
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let tokens = (batch * seq) as f64;
    let (graph, parts, ckpt) = (&got[0], &got[1], &got[2]);
    if f(parts, "loss").to_bits() != f(ckpt, "loss").to_bits() {
        anyhow::bail!(
            "bench memory: the loss differs with checkpointing ({} vs {})",
            f(parts, "loss"),
            f(ckpt, "loss")
        );
    }
    let mut rows = Vec::new();
    for ((mode, what), v) in MODES.iter().zip(&got) {
        let act = f(v, "activation_mib");
        rows.push(
            Row::new(
                "memory",
                &format!("activations, {mode}"),
                format!(
                    "{what}: peak {:.0} MiB over {:.0} MiB of weights and moments, less {:.0} MiB of gradients; {:.0} KiB a token; step {:.1} s",
                    f(v, "peak_mib"),
                    f(v, "base_mib"),
                    f(v, "grad_mib"),
                    act * 1024.0 / tokens,
                    f(v, "step_s")
                ),
                act,
                "MiB",
                "",
                true,
            )
            .with("mode", *mode)
            .with("peak_mib", f(v, "peak_mib"))
            .with("base_mib", f(v, "base_mib"))
            .with("grad_mib", f(v, "grad_mib"))
            .with("step_s", f(v, "step_s")),
        );
    }
    let ratio = f(graph, "activation_mib") / f(ckpt, "activation_mib");
    rows.push(Row::new(
        "memory",
        "activation memory saved",
        format!(
            "one graph over checkpointed, batch {batch} (without checkpointing, the chunked output layer alone saves {:.2}x)",
            f(graph, "activation_mib") / f(parts, "activation_mib")
        ),
        ratio,
        "x",
        ">=3",
        ratio >= 3.0,
    ));
    let slow = f(ckpt, "step_s") / f(parts, "step_s");
    rows.push(Row::new(
        "memory",
        "checkpointed step time",
        "forward + backward, checkpointed over not (one more forward of the blocks; same loss, bit for bit)".into(),
        slow,
        "x",
        "",
        true,
    ));
    Ok(rows)
}

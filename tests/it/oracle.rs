//! An independent oracle for the model forward: candle-transformers' Llama
//! (`candle_transformers::models::llama`) and Qwen2 (`candle_transformers::models::qwen2`), a
//! separate implementation of the same architectures, load the same model directory (a
//! transformers-shaped `config.json` and `model.safetensors` of random, seeded weights, written
//! here with Hugging Face names) and must give mixscope's logits, at every position, in f32 on
//! the CPU. mixscope's side goes through its real loading path: `model::files::check_model_dir`
//! (the config and the tensor headers) and `train::pretrained::load_pretrained` into
//! `Model::new`'s variables, as the trainer does.
//!
//! What candle-transformers 0.11 does with config.json, and how the configs here are chosen:
//! - Its models are inference only, and return the logits of the last position only: every
//!   position is compared by running each prefix `ids[.., ..=t]` with a fresh cache at position
//!   index 0 (no KV-cache reuse; causal attention makes that the logits at `t`).
//! - Llama: `rope_theta` (as f32, like transformers and mixscope), `rms_norm_eps`,
//!   `num_key_value_heads` and `tie_word_embeddings` are read from config.json. It has no
//!   q/k/v biases (it ignores `attention_bias`), so biased attention is checked with Qwen2 only.
//! - Qwen2: `rope_theta` and `rms_norm_eps` are read; q/k/v always carry biases. It ties the
//!   output layer by the *absence* of `lm_head.weight` rather than by `tie_word_embeddings`, so
//!   a tied model here has no `lm_head.weight`, as transformers' `save_pretrained` writes it.
//!   It always applies `sliding_window` (ignoring `use_sliding_window: false`) and needs it to
//!   be a number (newer transformers write `null`): configs here set it to
//!   `max_position_embeddings`, as Qwen2 checkpoints on the hub do, so no window is in effect
//!   for either implementation.
//! - Neither reads `head_dim`: it is `hidden_size / num_attention_heads`, as mixscope requires.
//!
//! The tolerance is on the max absolute error of the logits, 1e-4, with logits of order 1–10
//! (asserted), so the error relative to the largest logit is smaller still.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::{llama, qwen2};
use mixscope::train::{Arch, Kernels, Model, ModelConfig};

use crate::engine_common::{rand_ids, randn, to_vec};

/// Max absolute error allowed between mixscope's and the oracle's logits.
const TOL: f32 = 1e-4;

#[derive(Clone, Copy, Debug)]
struct Variant {
    name: &'static str,
    arch: Arch,
    tied: bool,
    heads: usize,
    kv_heads: usize,
    rope_theta: f64,
    eps: f64,
}

const HIDDEN: usize = 64;
const INTERMEDIATE: usize = 96;
const LAYERS: usize = 2;
const VOCAB: usize = 101;
const MAX_POS: usize = 256;

/// Head dim 16 (4 heads) takes mixscope's whole-block fused kernels where there are no biases;
/// head dim 8 (8 heads) its per-op fused kernels.
const VARIANTS: [Variant; 5] = [
    Variant { name: "llama untied", arch: Arch::Llama, tied: false, heads: 4, kv_heads: 4, rope_theta: 1e4, eps: 1e-6 },
    Variant { name: "llama tied", arch: Arch::Llama, tied: true, heads: 4, kv_heads: 4, rope_theta: 5e5, eps: 1e-5 },
    Variant {
        name: "llama gqa 8/2",
        arch: Arch::Llama,
        tied: false,
        heads: 8,
        kv_heads: 2,
        rope_theta: 1e4,
        eps: 1e-5,
    },
    Variant {
        name: "qwen2 tied gqa 4/2",
        arch: Arch::Qwen2,
        tied: true,
        heads: 4,
        kv_heads: 2,
        rope_theta: 1e6,
        eps: 1e-6,
    },
    Variant { name: "qwen2 untied", arch: Arch::Qwen2, tied: false, heads: 4, kv_heads: 4, rope_theta: 1e6, eps: 1e-6 },
];

/// config.json with the fields transformers (4.4x) writes for the architecture.
fn config_json(v: &Variant, vocab: usize, hidden: usize, inter: usize, layers: usize) -> serde_json::Value {
    let mut c = serde_json::json!({
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": MAX_POS,
        "num_attention_heads": v.heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": v.kv_heads,
        "rms_norm_eps": v.eps,
        "rope_scaling": null,
        "rope_theta": v.rope_theta,
        "tie_word_embeddings": v.tied,
        "torch_dtype": "float32",
        "transformers_version": "4.46.3",
        "use_cache": true,
        "vocab_size": vocab,
    });
    let extra = match v.arch {
        Arch::Llama => serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "attention_bias": false,
            "head_dim": hidden / v.heads,
            "mlp_bias": false,
            "pretraining_tp": 1,
        }),
        Arch::Qwen2 => serde_json::json!({
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "max_window_layers": layers,
            "sliding_window": MAX_POS,
            "use_sliding_window": false,
        }),
    };
    for (k, x) in extra.as_object().unwrap() {
        c[k] = x.clone();
    }
    c
}

/// The tensors a transformers checkpoint of this config holds (names and shapes listed here,
/// not taken from mixscope), with random values: matrices normal(0, `std`), norm weights
/// 1 + normal(0, 0.2), biases normal(0, 0.5) (large enough to move the logits).
fn hf_tensors(v: &Variant, vocab: usize, h: usize, inter: usize, layers: usize, std: f64) -> Vec<(String, Tensor)> {
    let kv = h / v.heads * v.kv_heads;
    let mut shapes: Vec<(String, Vec<usize>)> = vec![("model.embed_tokens.weight".into(), vec![vocab, h])];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for (n, s) in [
            ("self_attn.q_proj.weight", vec![h, h]),
            ("self_attn.k_proj.weight", vec![kv, h]),
            ("self_attn.v_proj.weight", vec![kv, h]),
            ("self_attn.o_proj.weight", vec![h, h]),
            ("mlp.gate_proj.weight", vec![inter, h]),
            ("mlp.up_proj.weight", vec![inter, h]),
            ("mlp.down_proj.weight", vec![h, inter]),
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
        ] {
            shapes.push((format!("{p}.{n}"), s));
        }
        if v.arch == Arch::Qwen2 {
            for (n, s) in [("q_proj", h), ("k_proj", kv), ("v_proj", kv)] {
                shapes.push((format!("{p}.self_attn.{n}.bias"), vec![s]));
            }
        }
    }
    shapes.push(("model.norm.weight".into(), vec![h]));
    if !v.tied {
        shapes.push(("lm_head.weight".into(), vec![vocab, h]));
    }
    shapes
        .into_iter()
        .enumerate()
        .map(|(i, (n, s))| {
            let seed = 7_000 + i as u64;
            let t = if n.ends_with("norm.weight") {
                (randn(&s, seed, 0.2) + 1.0).unwrap()
            } else if n.ends_with(".bias") {
                randn(&s, seed, 0.5)
            } else {
                randn(&s, seed, std)
            };
            (n, t)
        })
        .collect()
}

/// A model directory as transformers' `save_pretrained` leaves it: config.json, and
/// model.safetensors (f32, sorted names, `format: pt` metadata, no `lm_head.weight` if tied).
fn write_model_dir(dir: &Path, v: &Variant, vocab: usize, h: usize, inter: usize, layers: usize, std: f64) {
    std::fs::create_dir_all(dir).unwrap();
    let config = config_json(v, vocab, h, inter, layers);
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let mut tensors = hf_tensors(v, vocab, h, inter, layers, std);
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::serialize_to_file(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        Some(meta),
        &dir.join("model.safetensors"),
    )
    .unwrap();
}

/// mixscope's model of a directory, through its real loading path.
fn load_mixscope(dir: &Path) -> (ModelConfig, Model) {
    let cfg = mixscope::model::files::check_model_dir(dir).unwrap();
    let m = load_mixscope_as(dir, &cfg);
    (cfg, m)
}

fn load_mixscope_as(dir: &Path, cfg: &ModelConfig) -> Model {
    let vm = VarMap::new();
    let m = Model::new(cfg, &vm, &Device::Cpu, DType::F32, 0).unwrap();
    mixscope::train::pretrained::load_pretrained(&vm, &m, dir, DType::F32).unwrap();
    m
}

/// candle-transformers' model of the same directory.
enum Oracle {
    Llama(llama::Llama, llama::Config),
    Qwen2(qwen2::ModelForCausalLM),
}

impl Oracle {
    fn load(dir: &Path, mixscope_cfg: &ModelConfig) -> Oracle {
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let dev = Device::Cpu;
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &dev).unwrap();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let m = mixscope_cfg;
        match m.architecture {
            Arch::Llama => {
                let c = serde_json::from_str::<llama::LlamaConfig>(&text).unwrap().into_config(false);
                // What it read from config.json is what mixscope read.
                assert_eq!(c.rope_theta, m.rope_theta as f32, "rope_theta");
                assert_eq!(c.rms_norm_eps, m.rms_norm_eps, "rms_norm_eps");
                assert_eq!(c.tie_word_embeddings, m.tie_word_embeddings, "tie_word_embeddings");
                assert_eq!(c.num_key_value_heads, m.num_key_value_heads, "num_key_value_heads");
                assert!(c.rope_scaling.is_none());
                assert!(!m.attention_bias, "candle-transformers' Llama has no q/k/v biases");
                Oracle::Llama(llama::Llama::load(vb, &c).unwrap(), c)
            }
            Arch::Qwen2 => {
                let c: qwen2::Config = serde_json::from_str(&text).unwrap();
                assert_eq!(c.rope_theta, m.rope_theta, "rope_theta");
                assert_eq!(c.rms_norm_eps, m.rms_norm_eps, "rms_norm_eps");
                assert_eq!(c.tie_word_embeddings, m.tie_word_embeddings, "tie_word_embeddings");
                assert_eq!(c.num_key_value_heads, m.num_key_value_heads, "num_key_value_heads");
                assert!(c.sliding_window >= c.max_position_embeddings, "no sliding window in effect");
                assert_eq!(vb.contains_tensor("lm_head.weight"), !m.tie_word_embeddings, "its tie rule");
                Oracle::Qwen2(qwen2::ModelForCausalLM::new(&c, vb).unwrap())
            }
        }
    }

    /// Logits of the last position `[B, V]` of `ids` `[B, T]` placed at position `index`. At
    /// index 0 the model starts afresh: Qwen2's cache is cleared, and Llama's `cache`, when
    /// `None`, becomes one that keeps no keys and values. Later indices continue the cache.
    fn last_logits(&mut self, ids: &Tensor, cache: &mut Option<llama::Cache>, index: usize) -> Tensor {
        match self {
            Oracle::Llama(m, c) => {
                let cache = cache.get_or_insert_with(|| llama::Cache::new(false, DType::F32, c, &Device::Cpu).unwrap());
                m.forward(ids, index, cache).unwrap()
            }
            Oracle::Qwen2(m) => {
                if index == 0 {
                    m.clear_kv_cache();
                }
                m.forward(ids, index).unwrap().squeeze(1).unwrap()
            }
        }
    }

    /// Logits at every position `[B, T, V]`: each prefix run alone, from position 0.
    fn all_logits(&mut self, ids: &Tensor) -> Tensor {
        let t = ids.dim(1).unwrap();
        let rows: Vec<Tensor> =
            (1..=t).map(|k| self.last_logits(&ids.narrow(1, 0, k).unwrap(), &mut None, 0)).collect();
        Tensor::stack(&rows, 1).unwrap()
    }

    /// Greedy decoding of one prompt with its KV cache: `max_new` tokens, each with the margin
    /// of its logit over the runner-up.
    fn generate(&mut self, prompt: &[u32], max_new: usize) -> Vec<(u32, f32)> {
        let mut cache = match self {
            Oracle::Llama(_, c) => Some(llama::Cache::new(true, DType::F32, c, &Device::Cpu).unwrap()),
            Oracle::Qwen2(_) => None,
        };
        let ids = Tensor::new(prompt, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let mut logits = self.last_logits(&ids, &mut cache, 0);
        let mut out = Vec::with_capacity(max_new);
        for step in 0..max_new {
            let (best, margin) = argmax_margin(&to_vec(&logits));
            out.push((best, margin));
            if step + 1 < max_new {
                let next = Tensor::new(&[[best]], &Device::Cpu).unwrap();
                logits = self.last_logits(&next, &mut cache, prompt.len() + step);
            }
        }
        out
    }
}

fn argmax_margin(row: &[f32]) -> (u32, f32) {
    let best = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b });
    let second = (0..row.len()).filter(|&i| i != best).map(|i| row[i]).fold(f32::NEG_INFINITY, f32::max);
    (best as u32, row[best] - second)
}

/// (max absolute error, max absolute error / max |oracle|).
fn errors(ours: &Tensor, oracle: &Tensor) -> (f32, f32) {
    assert_eq!(ours.dims(), oracle.dims());
    let (a, b) = (to_vec(ours), to_vec(oracle));
    assert!(a.iter().chain(&b).all(|x| x.is_finite()), "non-finite logits");
    let abs = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    (abs, abs / scale)
}

#[test]
fn logits_match_candle_transformers_llama_and_qwen2() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = rand_ids(2, 13, VOCAB, 3);
    for (i, v) in VARIANTS.iter().enumerate() {
        let dir = tmp.path().join(format!("model-{i}"));
        write_model_dir(&dir, v, VOCAB, HIDDEN, INTERMEDIATE, LAYERS, 0.15);
        let (cfg, mut ours) = load_mixscope(&dir);
        assert_eq!(cfg.architecture, v.arch, "{}", v.name);
        assert_eq!(cfg.attention_bias, v.arch == Arch::Qwen2, "{}", v.name);
        let mut oracle = Oracle::load(&dir, &cfg);
        let want = oracle.all_logits(&ids);
        let scale = to_vec(&want).iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(scale > 1.0 && scale < 50.0, "{}: logits of order 1-10, not {scale}", v.name);
        for k in [Kernels::Fused, Kernels::Composite] {
            ours.set_kernels(k);
            let (abs, rel) = errors(&ours.logits(&ids).unwrap(), &want);
            println!("{:<20} {k:<10?} max abs error {abs:.2e} (max |logit| {scale:.2}: relative {rel:.2e})", v.name);
            assert!(abs < TOL, "{} ({k:?}): max abs error {abs:e} >= {TOL:e}", v.name);
        }
        // The comparison is sharp: a model whose positions are encoded differently fails it.
        let mut wrong = cfg.clone();
        wrong.rope_theta *= 2.0;
        let (abs, _) = errors(&load_mixscope_as(&dir, &wrong).logits(&ids).unwrap(), &want);
        println!("{:<20} rope_theta x2: max abs error {abs:.2e}", v.name);
        assert!(abs > 100.0 * TOL, "{}: rope_theta x2 still within {abs:e}", v.name);
    }
}

#[test]
fn greedy_generation_matches_candle_transformers_with_its_kv_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts: Vec<Vec<u32>> = vec![vec![5, 17, 42, 99, 3], vec![64], vec![8, 8, 8, 1, 0, 100, 33, 2, 71]];
    let max_new = 12;
    for (i, v) in VARIANTS.iter().enumerate() {
        let dir = tmp.path().join(format!("model-{i}"));
        write_model_dir(&dir, v, VOCAB, HIDDEN, INTERMEDIATE, LAYERS, 0.15);
        let (cfg, ours) = load_mixscope(&dir);
        let mut oracle = Oracle::load(&dir, &cfg);
        // mixscope decodes the prompts as one left-padded batch.
        let got = ours.generate(&prompts, max_new, &[]).unwrap();
        for (p, g) in prompts.iter().zip(&got) {
            let want = oracle.generate(p, max_new);
            // Two implementations may break a near-tie differently (1e-6 apart): compare the
            // tokens up to the first one the oracle chose by a margin under 1e-3.
            let sure = want.iter().position(|&(_, m)| m < 1e-3).unwrap_or(want.len());
            assert!(sure >= max_new / 2, "{}: a near-tie at step {sure} of {want:?}", v.name);
            let want: Vec<u32> = want.iter().map(|&(t, _)| t).collect();
            assert_eq!(g[..sure], want[..sure], "{}: prompt {p:?}", v.name);
            println!("{:<20} prompt of {}: {sure} of {max_new} greedy tokens compared, equal", v.name, p.len());
        }
    }
}

/// Greedy decoding speed, mixscope's `Model::generate` against candle-transformers' Llama with
/// its KV cache, on the same model and prompts at the tiny run shape (hidden 256, 4 layers).
/// Prints only; run with `cargo test --release --test it oracle::generation_speed -- --ignored
/// --nocapture`.
#[test]
#[ignore = "a measurement: prints tokens/s, asserts nothing about time"]
fn generation_speed_against_candle_transformers() {
    use std::time::Instant;
    let tmp = tempfile::tempdir().unwrap();
    let v = Variant {
        name: "llama tiny shape",
        arch: Arch::Llama,
        tied: false,
        heads: 4,
        kv_heads: 4,
        rope_theta: 1e4,
        eps: 1e-6,
    };
    let vocab = 2048;
    write_model_dir(tmp.path(), &v, vocab, 256, 688, 4, 0.06);
    let (cfg, ours) = load_mixscope(tmp.path());
    let oracle = Oracle::load(tmp.path(), &cfg);
    let (batch, plen, max_new) = (8, 32, 64);
    let ids = rand_ids(batch, plen, vocab, 9);
    let prompts: Vec<Vec<u32>> =
        (0..batch).map(|r| to_vec(&ids.i(r).unwrap()).iter().map(|&x| x as u32).collect()).collect();
    let tokens = (batch * max_new) as f64;
    let Oracle::Llama(m, c) = &oracle else { unreachable!() };
    // Its Llama decodes a batch of prompts of one length (it has no padding mask).
    let candle_greedy = |ids: &Tensor| {
        let mut cache = llama::Cache::new(true, DType::F32, c, &Device::Cpu).unwrap();
        let mut logits = m.forward(ids, 0, &mut cache).unwrap();
        for step in 0..max_new - 1 {
            let next = logits.argmax(1).unwrap().unsqueeze(1).unwrap();
            logits = m.forward(&next, plen + step, &mut cache).unwrap();
        }
    };
    let ways: [(&str, &dyn Fn()); 4] = [
        ("mixscope Model::generate, one batch", &(|| drop(ours.generate(&prompts, max_new, &[]).unwrap()))),
        (
            "mixscope Model::generate, one prompt at a time",
            &(|| {
                for p in &prompts {
                    ours.generate(std::slice::from_ref(p), max_new, &[]).unwrap();
                }
            }),
        ),
        ("candle-transformers llama, one batch", &(|| candle_greedy(&ids))),
        (
            "candle-transformers llama, one prompt at a time",
            &(|| (0..batch).for_each(|r| candle_greedy(&ids.narrow(0, r, 1).unwrap()))),
        ),
    ];
    println!(
        "{batch} prompts of {plen} tokens, {max_new} new tokens each, f32 CPU, {} threads",
        rayon::current_num_threads()
    );
    // Rounds alternate the four ways (after one warm-up round), so that a busy machine slows
    // them alike; the median round and the range are printed.
    let rounds = 5;
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); ways.len()];
    for round in 0..=rounds {
        for (i, (_, f)) in ways.iter().enumerate() {
            let t = Instant::now();
            f();
            if round > 0 {
                secs[i].push(t.elapsed().as_secs_f64());
            }
        }
    }
    for ((what, _), s) in ways.iter().zip(&mut secs) {
        s.sort_by(f64::total_cmp);
        let (lo, med, hi) = (tokens / s[rounds - 1], tokens / s[rounds / 2], tokens / s[0]);
        println!("{what:<48} {med:>7.1} tokens/s (median of {rounds}; {lo:.1}-{hi:.1})");
    }
}

//! Whole-model tests: gradients reach every parameter, match finite differences and the
//! composite path; loss at init; determinism; generation with a KV cache; configs and weights.
use crate::engine_common as common;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use common::*;
use mixscope::data::tokenizer::Encoded;
use mixscope::train::batch::{padded_tokens, plan_micro_batches, step_gradients, StepGradients};
use mixscope::train::{AdamW, AdamWConfig, Arch, Kernels, Model, ModelConfig};
use std::collections::BTreeMap;

/// hidden 32, 2 query heads sharing 1 kv head (head dim 16: the packed fused attention).
fn tiny(arch: Arch, tied: bool) -> ModelConfig {
    let mut c = ModelConfig::llama(23, 32, 40, 2, 2, 1, 64, tied);
    if arch == Arch::Qwen2 {
        c.architecture = Arch::Qwen2;
        c.attention_bias = true;
    }
    c
}

fn build(cfg: &ModelConfig, seed: u64) -> (VarMap, Model) {
    let vm = VarMap::new();
    let m = Model::new(cfg, &vm, &Device::Cpu, DType::F32, seed).unwrap();
    (vm, m)
}

/// Replaces every weight with larger random values (so that gradients and logits are far
/// from degenerate): matrices std `std`, norms 1 ± 0.3, biases std 0.3.
fn scramble(vm: &VarMap, seed: u64, std: f64) {
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (i, n) in names.into_iter().enumerate() {
        let v = &data[n];
        let dims = v.dims().to_vec();
        let t = if n.ends_with("norm.weight") {
            (randn(&dims, seed + i as u64, 0.3) + 1.0).unwrap()
        } else if n.ends_with(".bias") {
            randn(&dims, seed + i as u64, 0.3)
        } else {
            randn(&dims, seed + i as u64, std)
        };
        v.set(&t).unwrap();
    }
}

fn sorted_vars(vm: &VarMap) -> BTreeMap<String, Var> {
    vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[test]
fn every_parameter_gets_a_nonzero_gradient_in_both_modes() -> Result<()> {
    for (arch, tied, heads) in [(Arch::Llama, false, 2), (Arch::Qwen2, true, 2), (Arch::Llama, true, 4)] {
        let mut cfg = tiny(arch, tied);
        cfg.num_attention_heads = heads; // 4 heads: head dim 8, the unblocked kernels
        cfg.num_key_value_heads = heads / 2;
        let (vm, mut model) = build(&cfg, 1);
        scramble(&vm, 100, 0.2); // zero-initialised biases would get zero-free grads anyway
        let (ids, tg, w) = lm_batch(3, 11, cfg.vocab_size, 2, Some(&[12, 7, 3]));
        for k in [Kernels::Fused, Kernels::Composite] {
            model.set_kernels(k);
            let grads = model.loss(&ids, &tg, &w)?.backward()?;
            let vars = sorted_vars(&vm);
            assert_eq!(vars.len(), mixscope::train::param_specs(&cfg).len());
            for (name, v) in &vars {
                let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{arch:?} {k:?}: no gradient for {name}"));
                assert_eq!(g.dims(), v.dims());
                let gv = to_vec(g);
                assert!(gv.iter().all(|x| x.is_finite()), "{name}: non-finite grad");
                assert!(gv.iter().any(|x| *x != 0.0), "{arch:?} {k:?}: zero gradient for {name}");
            }
        }
    }
    Ok(())
}

#[test]
fn fused_and_composite_models_agree() -> Result<()> {
    for (arch, tied, heads) in [(Arch::Llama, false, 2), (Arch::Qwen2, true, 2), (Arch::Qwen2, false, 4)] {
        let mut cfg = tiny(arch, tied);
        cfg.num_attention_heads = heads;
        cfg.num_key_value_heads = heads / 2;
        let (vm, mut model) = build(&cfg, 3);
        scramble(&vm, 200, 0.2);
        let (ids, tg, w) = lm_batch(3, 13, cfg.vocab_size, 4, Some(&[14, 9, 2]));
        model.set_kernels(Kernels::Fused);
        let lf = model.loss(&ids, &tg, &w)?;
        let gf = lf.backward()?;
        model.set_kernels(Kernels::Composite);
        let lc = model.loss(&ids, &tg, &w)?;
        let gc = lc.backward()?;
        assert_close("loss", &lf, &lc, 1e-5)?;
        for (name, v) in sorted_vars(&vm) {
            assert_close(
                &format!("{arch:?} grad {name}"),
                gf.get(v.as_tensor()).unwrap(),
                gc.get(v.as_tensor()).unwrap(),
                1e-4,
            )?;
        }
    }
    Ok(())
}

#[test]
fn gradients_match_finite_differences() -> Result<()> {
    // head dim 16 (blocked, packed kernels) and 8 (row kernels), GQA where heads = 2
    for (arch, tied, k, heads, kv) in [
        (Arch::Llama, false, Kernels::Fused, 1, 1),
        (Arch::Qwen2, true, Kernels::Fused, 2, 1),
        (Arch::Llama, false, Kernels::Composite, 2, 1),
    ] {
        let mut cfg = tiny(arch, tied);
        cfg.vocab_size = 13;
        cfg.hidden_size = 16;
        cfg.intermediate_size = 24;
        cfg.num_attention_heads = heads;
        cfg.num_key_value_heads = kv;
        let (vm, mut model) = build(&cfg, 5);
        model.set_kernels(k);
        scramble(&vm, 300, 0.4);
        let (ids, tg, w) = lm_batch(2, 7, cfg.vocab_size, 6, Some(&[8, 5]));
        let loss = |m: &Model| -> f64 { m.loss(&ids, &tg, &w).unwrap().to_scalar::<f32>().unwrap() as f64 };
        let grads = model.loss(&ids, &tg, &w)?.backward()?;
        let eps = 1e-2f32;
        let mut checked = 0;
        for (name, v) in sorted_vars(&vm) {
            let g = to_vec(grads.get(v.as_tensor()).unwrap());
            let base = to_vec(v.as_tensor());
            // the two largest-gradient coordinates and two fixed others
            let mut idx: Vec<usize> = (0..g.len()).collect();
            idx.sort_by(|&a, &b| g[b].abs().partial_cmp(&g[a].abs()).unwrap());
            let mut sample = vec![idx[0], idx[1.min(idx.len() - 1)], g.len() / 3, (g.len() * 7) / 9];
            sample.dedup();
            for &i in &sample {
                // central difference with Richardson extrapolation: (4·D(h/2) − D(h)) / 3
                let central = |h: f32| -> Result<f64> {
                    let mut p = base.clone();
                    p[i] = base[i] + h;
                    v.set(&Tensor::from_vec(p.clone(), v.dims(), &Device::Cpu)?)?;
                    let lp = loss(&model);
                    p[i] = base[i] - h;
                    v.set(&Tensor::from_vec(p, v.dims(), &Device::Cpu)?)?;
                    let lm = loss(&model);
                    v.set(&Tensor::from_vec(base.clone(), v.dims(), &Device::Cpu)?)?;
                    Ok((lp - lm) / (2.0 * h as f64))
                };
                // smaller steps where the gradient (and so, usually, the curvature) is large
                let h = eps / (g[i].abs()).max(1.0);
                let (d1, d2) = (central(h)?, central(h / 2.0)?);
                let fd = (4.0 * d2 - d1) / 3.0;
                let an = g[i] as f64;
                let scale = fd.abs().max(an.abs());
                if scale > 2e-2 {
                    let rel = (fd - an).abs() / scale;
                    assert!(
                        rel < 1e-2,
                        "{arch:?} {k:?} {name}[{i}]: analytic {an:e} vs finite difference {fd:e} (rel {rel:e})"
                    );
                    checked += 1;
                } else {
                    assert!(
                        (fd - an).abs() < 2e-4,
                        "{arch:?} {k:?} {name}[{i}]: analytic {an:e} vs finite difference {fd:e}"
                    );
                }
            }
        }
        assert!(
            checked >= mixscope::train::param_specs(&cfg).len(),
            "too few coordinates with a large gradient: {checked}"
        );
    }
    Ok(())
}

/// Examples of many lengths, with a prompt (weight 0) and a response (weight 1).
fn sft_examples(vocab: u32, lens: &[usize]) -> Vec<Encoded> {
    lens.iter()
        .enumerate()
        .map(|(n, &len)| {
            let ids: Vec<u32> = (0..len).map(|i| ((i * 7 + n * 3 + 1) as u32) % vocab).collect();
            let prompt_len = len / 2;
            let weights = (1..len).map(|i| if i >= prompt_len { 1.0 } else { 0.0 }).collect();
            Encoded { ids, weights, prompt_len, truncated: false }
        })
        .collect()
}

#[test]
fn micro_batches_of_like_length_give_the_whole_batch_loss_and_gradient() -> Result<()> {
    let cfg = tiny(Arch::Qwen2, false);
    let (vm, model) = build(&cfg, 9);
    scramble(&vm, 40, 0.2);
    let lens = [30, 6, 5, 8, 28, 7, 6, 31, 5, 9];
    let encs = sft_examples(cfg.vocab_size as u32, &lens);
    let inputs: Vec<usize> = lens.iter().map(|l| l - 1).collect();
    let groups = plan_micro_batches(&inputs, 8, 16);
    assert_eq!(groups.len(), 2, "the long examples are split from the short: {groups:?}");
    assert!(padded_tokens(&inputs, &groups) * 2 < inputs.len() * 30);

    let whole = step_gradients(&model, &encs, &[(0..lens.len()).collect()], 0, false).unwrap();
    let split = step_gradients(&model, &encs, &groups, 0, false).unwrap();
    assert_eq!(whole.tokens, split.tokens);
    assert!((whole.loss - split.loss).abs() < 1e-5 * whole.loss, "{} vs {}", whole.loss, split.loss);
    assert_same_gradients(&vm, whole, split, "");
    Ok(())
}

/// Every parameter of `vm` has a non-zero gradient in `a`, which `b` matches within 1e-4 of
/// its largest entry.
fn assert_same_gradients(vm: &VarMap, a: StepGradients, b: StepGradients, what: &str) {
    let (ga, gb) = (a.grads.unwrap(), b.grads.unwrap());
    for (name, var) in sorted_vars(vm) {
        let (a, b) = (to_vec(ga.get(&var).unwrap()), to_vec(gb.get(&var).unwrap()));
        let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(scale > 0.0 && diff <= 1e-4 * scale, "{what} {name}: max diff {diff} of {scale}");
    }
}

/// A packed micro-batch (examples end to end in one row, no padding) gives the padded batch's
/// loss and gradient, for every layout the fused kernels pack: Llama and Qwen2 (biased q/k/v),
/// tied and untied, grouped-query attention.
#[test]
fn packed_batches_give_the_padded_batch_loss_and_gradient() -> Result<()> {
    for (arch, tied) in [(Arch::Llama, false), (Arch::Qwen2, true), (Arch::Qwen2, false)] {
        // head dim 16 (the fused kernels' block), 4 query heads on 2 KV heads
        let mut cfg = ModelConfig::llama(29, 64, 48, 2, 4, 2, 64, tied);
        if arch == Arch::Qwen2 {
            cfg.architecture = Arch::Qwen2;
            cfg.attention_bias = true;
        }
        let (vm, model) = build(&cfg, 11);
        assert!(model.can_pack());
        scramble(&vm, 41, 0.2);
        let lens = [30, 6, 5, 8, 28, 2, 31];
        let encs = sft_examples(cfg.vocab_size as u32, &lens);
        let all: Vec<Vec<usize>> = vec![(0..lens.len()).collect()];
        let padded = step_gradients(&model, &encs, &all, 0, false).unwrap();
        let packed = step_gradients(&model, &encs, &all, 0, true).unwrap();
        assert_eq!(padded.tokens, packed.tokens);
        let what = format!("{arch:?} tied={tied}");
        assert!((padded.loss - packed.loss).abs() < 1e-5 * padded.loss, "{what}: {} vs {}", padded.loss, packed.loss);
        // the same packed step again: bit for bit
        let again = step_gradients(&model, &encs, &all, 0, true).unwrap();
        assert_eq!(again.loss.to_bits(), packed.loss.to_bits(), "{what}: packed steps repeat exactly");
        assert_same_gradients(&vm, padded, packed, &what);
    }
    // a model the fused kernels cannot pack (head dim 8) trains on padded batches
    let cfg = ModelConfig::llama(29, 32, 48, 2, 4, 2, 64, false);
    let (_vm, model) = build(&cfg, 12);
    assert!(!model.can_pack());
    let encs = sft_examples(29, &[9, 4]);
    let s = step_gradients(&model, &encs, &[vec![0, 1]], 0, true).unwrap();
    assert!(s.loss.is_finite());
    Ok(())
}

/// Gradient checkpointing (each block's forward run again in the backward) gives the whole
/// graph's loss and gradients bit for bit: fused and composite kernels, padded and packed
/// batches, tied and untied, biased q/k/v, grouped-query attention, and bf16 compute over f32
/// master weights (the composite path GPUs take).
#[test]
fn recomputed_blocks_give_the_same_gradients_bit_for_bit() -> Result<()> {
    let cases = [
        (Arch::Llama, false, Kernels::Fused, true, DType::F32),
        (Arch::Qwen2, true, Kernels::Fused, true, DType::F32),
        (Arch::Qwen2, true, Kernels::Fused, false, DType::F32),
        (Arch::Llama, true, Kernels::Composite, false, DType::F32),
        (Arch::Qwen2, false, Kernels::Composite, false, DType::F32),
        (Arch::Qwen2, true, Kernels::Composite, false, DType::BF16),
    ];
    for (arch, tied, kernels, pack, compute) in cases {
        let mut cfg = ModelConfig::llama(29, 64, 48, 3, 4, 2, 64, tied);
        if arch == Arch::Qwen2 {
            cfg.architecture = Arch::Qwen2;
            cfg.attention_bias = true;
        }
        let (vm, mut model) = build(&cfg, 13);
        scramble(&vm, 42, 0.2);
        model.set_compute_dtype(compute)?;
        model.set_kernels(kernels);
        model.set_head_chunk_rows(7); // the composite output layer in several chunks
        let what = format!("{arch:?} tied={tied} {kernels:?} pack={pack} {compute:?}");
        let encs = sft_examples(cfg.vocab_size as u32, &[30, 6, 5, 8, 28, 2, 31]);
        let groups = vec![vec![0, 4, 6], vec![1, 2, 3, 5]];
        let whole = step_gradients(&model, &encs, &groups, 0, pack).unwrap();
        model.set_recompute(true);
        let again = step_gradients(&model, &encs, &groups, 0, pack).unwrap();
        model.set_recompute(false);
        assert_eq!(whole.loss.to_bits(), again.loss.to_bits(), "{what}: loss {} vs {}", whole.loss, again.loss);
        let (ga, gb) = (whole.grads.unwrap(), again.grads.unwrap());
        for (name, var) in sorted_vars(&vm) {
            let bits = |g: &candle_core::backprop::GradStore| -> Vec<u32> {
                let t = g.get(&var).unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
                to_vec(&t.to_dtype(DType::F32).unwrap()).iter().map(|x| x.to_bits()).collect()
            };
            let a = bits(&ga);
            assert!(a.iter().any(|&x| x & 0x7fff_ffff != 0), "{what}: {name} has a zero gradient");
            assert!(a == bits(&gb), "{what}: {name}'s gradient differs when blocks are recomputed");
        }
    }
    Ok(())
}

/// A training step builds the fused ops' stacked weights (`[Wq; Wk; Wv; wn]`, the q/k/v biases)
/// as leaves of their own and hands their gradients to the parameters as views: the same
/// gradients, bit for bit (a zero's sign aside), as the whole graph's `loss` then `backward`,
/// where the stacks are `cat`s that candle differentiates; with and without recomputed blocks.
#[test]
fn a_steps_gradients_are_the_whole_graphs_bit_for_bit() -> Result<()> {
    for (arch, tied, recompute) in
        [(Arch::Llama, false, false), (Arch::Qwen2, true, false), (Arch::Llama, true, true), (Arch::Qwen2, false, true)]
    {
        let cfg = tiny(arch, tied);
        let (vm, mut model) = build(&cfg, 19);
        scramble(&vm, 44, 0.2);
        model.set_kernels(Kernels::Fused);
        model.set_recompute(recompute);
        let (ids, tg, w) = lm_batch(3, 12, cfg.vocab_size, 6, Some(&[12, 9, 4]));
        let loss = model.loss(&ids, &tg, &w)?;
        let whole = (&loss * 0.5)?.backward()?;
        let (value, step) = model.loss_and_grads(&ids, None, &tg, &w, 0.5)?;
        let what = format!("{arch:?} tied={tied} recompute={recompute}");
        assert_eq!(value, loss.to_scalar::<f32>()? as f64, "{what}: loss");
        // +0 and -0 compare equal: candle sums a `cat`'s gradient into zeros (-0 + 0 = +0)
        let bits =
            |v: Vec<f32>| -> Vec<u32> { v.into_iter().map(|x| if x == 0.0 { 0 } else { x.to_bits() }).collect() };
        for (name, var) in sorted_vars(&vm) {
            let a = bits(to_vec(whole.get(&var).unwrap_or_else(|| panic!("{what}: {name} has no gradient"))));
            let b = bits(to_vec(step.get(&var).unwrap_or_else(|| panic!("{what}: {name} has no step gradient"))));
            assert_eq!(var.dims(), step.get(&var).unwrap().dims(), "{what}: {name}'s gradient shape");
            assert!(a.iter().any(|&x| x != 0), "{what}: {name} has a zero gradient");
            assert!(a == b, "{what}: {name}'s step gradient differs from the whole graph's");
        }
    }
    Ok(())
}

/// On the composite kernels a step's output layer runs a chunk of rows at a time, on the rows
/// with a loss weight only: the loss and every gradient are the whole graph's (`loss` then
/// `backward`) to float rounding, however the rows are cut.
#[test]
fn the_composite_output_layer_in_chunks_gives_the_whole_graphs_gradients() -> Result<()> {
    for (tied, chunk) in [(true, 3), (false, 5), (true, 1000)] {
        let mut cfg = ModelConfig::llama(29, 64, 48, 2, 4, 2, 64, tied);
        cfg.architecture = Arch::Qwen2;
        cfg.attention_bias = true;
        let (vm, mut model) = build(&cfg, 17);
        scramble(&vm, 43, 0.2);
        model.set_kernels(Kernels::Composite);
        model.set_head_chunk_rows(chunk);
        // prompts (weight 0) and padding skip the output layer
        let (ids, tg, w) = lm_batch(3, 12, cfg.vocab_size, 5, Some(&[12, 9, 4]));
        let w = (w * Tensor::from_vec(
            (0..36).map(|i| (i % 12 >= 2) as u32 as f32).collect::<Vec<_>>(),
            (3, 12),
            &Device::Cpu,
        )?)?;
        let loss = model.loss(&ids, &tg, &w)?;
        let whole = (&loss * 0.5)?.backward()?;
        let (value, parts) = model.loss_and_grads(&ids, None, &tg, &w, 0.5)?;
        let l = loss.to_scalar::<f32>()? as f64;
        assert!((value - l).abs() <= 1e-6 * l, "chunk {chunk}: loss {value} vs {l}");
        for (name, var) in sorted_vars(&vm) {
            let (a, b) = (to_vec(whole.get(&var).unwrap()), to_vec(parts.get(&var).unwrap()));
            let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
            let diff = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(scale > 0.0 && diff <= 1e-5 * scale, "chunk {chunk} tied={tied} {name}: {diff} of {scale}");
        }
    }
    Ok(())
}

#[test]
fn loss_at_init_is_ln_vocab() -> Result<()> {
    for k in [Kernels::Fused, Kernels::Composite] {
        let cfg = ModelConfig::llama(512, 64, 96, 2, 4, 4, 128, false);
        let (_vm, mut model) = build(&cfg, 7);
        model.set_kernels(k);
        let (ids, tg, w) = lm_batch(4, 32, cfg.vocab_size, 8, None);
        let l = model.loss(&ids, &tg, &w)?.to_scalar::<f32>()? as f64;
        let want = (cfg.vocab_size as f64).ln();
        assert!((l - want).abs() < 0.1, "{k:?}: loss {l} vs ln(V) {want}");
    }
    Ok(())
}

#[test]
fn token_nll_and_eval_loss_match_loss() -> Result<()> {
    let cfg = tiny(Arch::Qwen2, false);
    let (vm, model) = build(&cfg, 9);
    scramble(&vm, 400, 0.2);
    let (ids, tg, w) = lm_batch(3, 10, cfg.vocab_size, 10, Some(&[11, 6, 4]));
    let nll = model.token_nll(&ids, &tg)?;
    assert_eq!(nll.dims(), &[3, 10]);
    let mean = ((&nll * &w)?.sum_all()? / w.sum_all()?.to_scalar::<f32>()? as f64)?;
    assert_close("weighted nll", &mean, &model.loss(&ids, &tg, &w)?, 1e-5)?;
    // The evaluation loss (output layer on weighted positions only, no gradient) is the same.
    let eval = model.eval_loss(&ids, &tg, &w)?;
    let l = model.loss(&ids, &tg, &w)?.to_scalar::<f32>()? as f64;
    assert!((eval - l).abs() <= 1e-5 * l.abs(), "eval loss {eval} vs loss {l}");
    Ok(())
}

pub fn train(cfg: &ModelConfig, steps: usize, k: Kernels) -> Result<VarMap> {
    let (vm, mut model) = build(cfg, 11);
    model.set_kernels(k);
    let mut opt = AdamW::new(&vm, AdamWConfig::default())?;
    for s in 0..steps {
        let (ids, tg, w) = lm_batch(4, 24, cfg.vocab_size, 1000 + s as u64, Some(&[25, 20, 13, 25]));
        let grads = model.loss(&ids, &tg, &w)?.backward()?;
        opt.step_clipped(&grads, 3e-3, Some(1.0))?;
    }
    Ok(vm)
}

fn weights_bits(vm: &VarMap) -> BTreeMap<String, Vec<u32>> {
    sorted_vars(vm).into_iter().map(|(k, v)| (k, to_vec(v.as_tensor()).iter().map(|x| x.to_bits()).collect())).collect()
}

#[test]
fn training_is_deterministic() -> Result<()> {
    let cfg = tiny(Arch::Qwen2, false);
    for k in [Kernels::Fused, Kernels::Composite] {
        let a = weights_bits(&train(&cfg, 20, k)?);
        let b = weights_bits(&train(&cfg, 20, k)?);
        assert!(a == b, "{k:?}: two identical runs differ");
        // and the run did move the weights
        let (vm0, _) = build(&cfg, 11);
        assert!(weights_bits(&vm0) != a);
    }
    Ok(())
}

#[test]
fn training_is_identical_with_one_and_two_threads() -> Result<()> {
    // Our kernels use fixed chunking; candle's matmul splits work by the RAYON_NUM_THREADS
    // setting, not by the pool it runs in, so this compares pools of 1 and 2 threads. The
    // bench's `--hash` mode compares separate processes with RAYON_NUM_THREADS=1 and 2.
    let cfg = tiny(Arch::Llama, false);
    let run = |n: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        pool.install(|| weights_bits(&train(&cfg, 5, Kernels::Fused).unwrap()))
    };
    assert!(run(1) == run(2), "1 vs 2 threads differ");
    Ok(())
}

/// Greedy decoding with the training forward (no cache), one prompt.
fn greedy_reference(model: &Model, prompt: &[u32], max_new: usize) -> Result<Vec<u32>> {
    let mut seq = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..max_new {
        let ids = Tensor::from_vec(seq.clone(), (1, seq.len()), &Device::Cpu)?;
        let logits = model.logits(&ids)?; // [1, T, V]
        let last = to_vec(&logits.narrow(1, seq.len() - 1, 1)?);
        let best = (0..last.len()).fold(0, |b, i| if last[i] > last[b] { i } else { b }) as u32;
        out.push(best);
        seq.push(best);
    }
    Ok(out)
}

#[test]
fn batched_generation_equals_one_at_a_time_and_the_uncached_forward() -> Result<()> {
    for arch in [Arch::Llama, Arch::Qwen2] {
        let cfg = tiny(arch, arch == Arch::Qwen2);
        let (vm, model) = build(&cfg, 12);
        scramble(&vm, 500, 0.5);
        let prompts: Vec<Vec<u32>> =
            vec![vec![1, 2, 3, 4, 5], vec![7], vec![3, 9, 11, 13, 15, 17, 19, 21, 2], vec![22, 0, 5]];
        let batched = model.generate(&prompts, 9, &[])?;
        for (p, b) in prompts.iter().zip(&batched) {
            let single = model.generate(std::slice::from_ref(p), 9, &[])?;
            assert_eq!(&single[0], b, "{arch:?}: batched vs single for prompt {p:?}");
            assert_eq!(b.len(), 9);
            assert_eq!(&greedy_reference(&model, p, 9)?, b, "{arch:?}: cached vs uncached for prompt {p:?}");
        }
        // stop tokens: stop at the first occurrence, not included
        let stop = batched[2][3];
        let first = batched[2].iter().position(|&x| x == stop).unwrap();
        let stopped = model.generate(&prompts, 9, &[stop])?;
        assert_eq!(stopped[2], batched[2][..first].to_vec());
        for (s, b) in stopped.iter().zip(&batched) {
            let cut = b.iter().position(|&x| x == stop).unwrap_or(b.len());
            assert_eq!(s, &b[..cut].to_vec());
        }
        // beyond max_position_embeddings (64) the tables are extended
        let long = model.generate(&[vec![1; 60]], 10, &[])?;
        assert_eq!(long[0].len(), 10);
        // the tensor path (GPUs, half precision) decodes as the CPU decoder does, rows leaving
        // the batch as they stop included
        assert_eq!(model.generate_via_tensors(&prompts, 9, &[])?, batched, "{arch:?}: tensor path");
        assert_eq!(model.generate_via_tensors(&prompts, 9, &[stop])?, stopped, "{arch:?}: tensor path, stopped");
        assert_eq!(model.generate_via_tensors(&[vec![1; 60]], 10, &[])?, long, "{arch:?}: tensor path, long");
    }
    Ok(())
}

#[test]
fn config_json_round_trip_and_errors() {
    let json = r#"{"architectures":["Qwen2ForCausalLM"],"vocab_size":100,"hidden_size":64,
        "intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
        "rope_theta":1000000.0,"rms_norm_eps":1e-6,"tie_word_embeddings":true,"hidden_act":"silu"}"#;
    let c = ModelConfig::from_hf_json(json).unwrap();
    assert_eq!(c.architecture, Arch::Qwen2);
    assert!(c.attention_bias && c.tie_word_embeddings);
    assert_eq!(c.max_position_embeddings, 32768);
    assert_eq!(c.rope_theta, 1e6);
    let back = ModelConfig::from_hf_json(&c.to_hf_json()).unwrap();
    assert_eq!(back, c);
    let minimal = r#"{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,
        "intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}"#;
    let l = ModelConfig::from_hf_json(minimal).unwrap();
    assert_eq!(
        (l.num_key_value_heads, l.max_position_embeddings, l.rope_theta, l.attention_bias),
        (2, 2048, 10_000.0, false)
    );
    let err = ModelConfig::from_hf_json(&minimal.replace("LlamaForCausalLM", "MistralForCausalLM")).unwrap_err();
    assert!(err.to_string().contains("MistralForCausalLM"), "{err}");
    assert!(ModelConfig::from_hf_json(&minimal.replace("\"vocab_size\":10,", "")).is_err());
    // num_params matches the created variables
    for cfg in [c, l] {
        let (vm, _) = build(&cfg, 1);
        let n: usize = sorted_vars(&vm).values().map(|v| v.elem_count()).sum();
        assert_eq!(n, cfg.num_params());
    }
}

#[test]
fn weights_are_checked_by_name_and_shape() -> Result<()> {
    let cfg = tiny(Arch::Qwen2, false);
    let (vm, model) = build(&cfg, 13);
    let dir = std::env::temp_dir().join(format!("engine-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    vm.save(&path)?;
    // round trip: same logits
    let vm2 = mixscope::train::load_varmap_safetensors(&path, &Device::Cpu, DType::F32)?;
    let m2 = Model::from_varmap_checked(&cfg, &vm2)?;
    let ids = rand_ids(2, 5, cfg.vocab_size, 1);
    assert_close("reloaded logits", &m2.logits(&ids)?, &model.logits(&ids)?, f32::MIN_POSITIVE)?;
    // a wrong shape, a missing and an unknown tensor are all named
    {
        let mut d = vm2.data().lock().unwrap();
        d.remove("model.layers.1.mlp.up_proj.weight");
        d.insert("model.layers.0.self_attn.k_proj.weight".into(), Var::zeros((3, 32), DType::F32, &Device::Cpu)?);
        d.insert("model.layers.0.self_attn.q_norm.weight".into(), Var::zeros(32, DType::F32, &Device::Cpu)?);
    }
    let err = Model::from_varmap_checked(&cfg, &vm2).err().expect("must fail").to_string();
    for needle in
        ["model.layers.1.mlp.up_proj.weight", "model.layers.0.self_attn.k_proj.weight", "[3, 32]", "[16, 32]", "q_norm"]
    {
        assert!(err.contains(needle), "error should mention {needle}: {err}");
    }
    // Model::new refuses to overwrite
    assert!(Model::new(&cfg, &vm, &Device::Cpu, DType::F32, 1).is_err());
    // init statistics
    let e = to_vec(sorted_vars(&vm)["model.embed_tokens.weight"].as_tensor());
    let std = (e.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / e.len() as f64).sqrt();
    assert!((std - 0.02).abs() < 0.002, "embed std {std}");
    assert!(to_vec(sorted_vars(&vm)["model.layers.0.self_attn.q_proj.bias"].as_tensor()).iter().all(|x| *x == 0.0));
    assert!(to_vec(sorted_vars(&vm)["model.norm.weight"].as_tensor()).iter().all(|x| *x == 1.0));
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

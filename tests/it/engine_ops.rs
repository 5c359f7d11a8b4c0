//! Fused vs composite: forward values and gradients of every op agree (max relative error
//! < 1e-4) on odd shapes (T not a multiple of any tile, GQA, batch 3).
use crate::engine_common as common;
use candle_core::{Result, Tensor, Var};
use common::*;
use mixscope::train::ops::{self, Kernels, RopeTables};

const TOL: f32 = 1e-4;

/// Runs `f` on the vars with both kernel modes, backprops `sum(out * r)` and compares the
/// outputs and the gradients of every var.
fn check(name: &str, vars: &[Var], f: impl Fn(&[Tensor], Kernels) -> Result<Tensor>) -> Result<()> {
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let fused = f(&ts, Kernels::Fused)?;
    let comp = f(&ts, Kernels::Composite)?;
    assert_close(&format!("{name} forward"), &fused, &comp, TOL)?;
    let r = randn(fused.dims(), 999, 1.0);
    let gf = (fused * &r)?.sum_all()?.backward()?;
    let gc = (comp * &r)?.sum_all()?.backward()?;
    for (i, v) in vars.iter().enumerate() {
        let a = gf.get(v.as_tensor()).unwrap_or_else(|| panic!("{name}: no fused grad for input {i}"));
        let b = gc.get(v.as_tensor()).unwrap_or_else(|| panic!("{name}: no composite grad for input {i}"));
        assert_close(&format!("{name} grad of input {i}"), a, b, TOL)?;
        assert!(to_vec(a).iter().any(|x| *x != 0.0), "{name}: zero grad for input {i}");
    }
    Ok(())
}

#[test]
fn rms_norm_fused_matches_composite() -> Result<()> {
    let x = var(&[3, 37, 50], 1, 1.0);
    let w = Var::from_tensor(&(randn(&[50], 2, 0.3) + 1.0)?)?;
    check("rms_norm", &[x, w], |t, k| ops::rms_norm(&t[0], &t[1], 1e-6, k))
}

#[test]
fn rope_fused_matches_composite_on_strided_input() -> Result<()> {
    let tables = RopeTables::new(16, 64, 10_000.0, &candle_core::Device::Cpu, candle_core::DType::F32)?;
    // A packed projection [B, T, 3*H, D] narrowed to the q heads: strided (last dim
    // contiguous), like a narrow of the model's packed qkv.
    let packed = var(&[3, 37, 3 * 4, 16], 3, 1.0);
    check("rope strided", &[packed], |t, k| {
        let q = t[0].narrow(2, 4, 4)?;
        assert!(!q.is_contiguous());
        ops::rope(&q, &tables, k)
    })?;
    let x = var(&[3, 37, 2, 16], 4, 1.0);
    check("rope contiguous", &[x], |t, k| ops::rope(&t[0], &tables, k))
}

#[test]
fn swiglu_fused_matches_composite() -> Result<()> {
    let g = var(&[3 * 37, 45], 5, 2.0);
    let u = var(&[3 * 37, 45], 6, 1.0);
    check("swiglu", &[g, u], |t, k| ops::swiglu(&t[0], &t[1], k))
}

#[test]
fn attention_fused_matches_composite_gqa() -> Result<()> {
    // B=3, T=37, 6 query heads sharing 2 kv heads, head dim 16.
    let q = var(&[3, 37, 6, 16], 7, 1.0);
    let k = var(&[3, 37, 2, 16], 8, 1.0);
    let v = var(&[3, 37, 2, 16], 9, 1.0);
    check("attention gqa", &[q, k, v], |t, kk| ops::causal_attention(&t[0], &t[1], &t[2], kk))
}

#[test]
fn attention_fused_matches_composite_mha_long() -> Result<()> {
    let q = var(&[2, 131, 2, 32], 10, 1.5);
    let k = var(&[2, 131, 2, 32], 11, 1.5);
    let v = var(&[2, 131, 2, 32], 12, 1.0);
    check("attention mha", &[q, k, v], |t, kk| ops::causal_attention(&t[0], &t[1], &t[2], kk))
}

#[test]
fn cross_entropy_fused_matches_composite() -> Result<()> {
    let (n, v) = (3 * 37, 97);
    let logits = var(&[n, v], 13, 3.0);
    let (_, targets, mut weights) = lm_batch(3, 37, v, 14, Some(&[38, 20, 5]));
    // non-uniform weights too
    weights = (weights * randn(&[3, 37], 15, 1.0).abs()?)?;
    let (t, w) = (targets.flatten_all()?, weights.flatten_all()?);
    let logits_t = logits.as_tensor().clone();
    let fused = ops::cross_entropy(&logits_t, &t, &w, Kernels::Fused)?;
    let comp = ops::cross_entropy(&logits_t, &t, &w, Kernels::Composite)?;
    assert_close("xent forward", &fused, &comp, TOL)?;
    // scale the upstream gradient by 3 to exercise the bwd scaling
    let gf = (fused * 3.0)?.backward()?;
    let gc = (comp * 3.0)?.backward()?;
    assert_close("xent grad", gf.get(&logits_t).unwrap(), gc.get(&logits_t).unwrap(), TOL)?;
    // rows of weight 0 get no gradient
    let g = to_vec(gf.get(&logits_t).unwrap());
    let wv = to_vec(&w);
    for r in 0..n {
        if wv[r] == 0.0 {
            assert!(g[r * v..(r + 1) * v].iter().all(|x| *x == 0.0));
        }
    }
    // token_nll agrees with the composite per-token NLL
    let nll = ops::token_nll_from_logits(&logits_t, &t)?;
    let nllc = ops::xent::nll_composite(&logits_t, &t)?;
    assert_close("token nll", &nll, &nllc, TOL)?;
    Ok(())
}

#[test]
fn cross_entropy_rejects_out_of_vocab_target() {
    let logits = randn(&[2, 5], 1, 1.0);
    let t = Tensor::new(&[1u32, 5], &candle_core::Device::Cpu).unwrap();
    let w = Tensor::new(&[1f32, 1.0], &candle_core::Device::Cpu).unwrap();
    assert!(ops::cross_entropy(&logits, &t, &w, Kernels::Fused).is_err());
}

#[test]
fn attention_fused_matches_composite_head_dim_64_and_fallback_8() -> Result<()> {
    // head dim 64 (blocked kernel), T=37, batch 3, GQA 4:1
    let q = var(&[3, 37, 4, 64], 16, 1.0);
    let k = var(&[3, 37, 1, 64], 17, 1.0);
    let v = var(&[3, 37, 1, 64], 18, 1.0);
    check("attention d64", &[q, k, v], |t, kk| ops::causal_attention(&t[0], &t[1], &t[2], kk))?;
    // head dim 8: the unblocked fallback kernel
    let q = var(&[3, 19, 4, 8], 19, 1.0);
    let k = var(&[3, 19, 2, 8], 20, 1.0);
    let v = var(&[3, 19, 2, 8], 21, 1.0);
    check("attention d8", &[q, k, v], |t, kk| ops::causal_attention(&t[0], &t[1], &t[2], kk))
}

#[test]
fn linear_fused_matches_composite() -> Result<()> {
    let x = var(&[3 * 37, 50], 22, 1.0);
    let w = var(&[29, 50], 23, 0.5);
    let b = var(&[29], 24, 0.5);
    check("linear", &[x, w, b], |t, k| ops::linear(&t[0], &t[1], Some(&t[2]), k))
}

#[test]
fn lm_head_cross_entropy_fused_matches_composite() -> Result<()> {
    let (n, h, v) = (3 * 37, 24, 97);
    let hs = var(&[n, h], 25, 1.0);
    let w = var(&[v, h], 26, 0.5);
    let (_, targets, weights) = lm_batch(3, 37, v, 27, Some(&[38, 20, 5]));
    let weights = (weights * randn(&[3, 37], 28, 1.0).abs()?)?;
    let (t, wt) = (targets.flatten_all()?, weights.flatten_all()?);
    for chunk in [Some(7), Some(1000), None] {
        let f =
            ops::lmhead::lm_head_cross_entropy_chunked(hs.as_tensor(), w.as_tensor(), &t, &wt, Kernels::Fused, chunk)?;
        let c = ops::lm_head_cross_entropy(hs.as_tensor(), w.as_tensor(), &t, &wt, Kernels::Composite)?;
        assert_close("lm_head xent forward", &f, &c, TOL)?;
        let gf = (f * 0.7)?.backward()?;
        let gc = (c * 0.7)?.backward()?;
        for (name, x) in [("h", &hs), ("w", &w)] {
            assert_close(
                &format!("lm_head xent grad {name} chunk {chunk:?}"),
                gf.get(x.as_tensor()).unwrap(),
                gc.get(x.as_tensor()).unwrap(),
                TOL,
            )?;
        }
    }
    // no gradient wanted: loss only, same value
    let f = ops::lm_head_cross_entropy(&hs.as_tensor().detach(), &w.as_tensor().detach(), &t, &wt, Kernels::Fused)?;
    let c = ops::lm_head_cross_entropy(hs.as_tensor(), w.as_tensor(), &t, &wt, Kernels::Composite)?;
    assert_close("lm_head xent no-grad forward", &f, &c, TOL)?;
    Ok(())
}

#[test]
fn packed_qkv_rope_attention_matches_composite() -> Result<()> {
    // B=3, T=37, Hq=4, Hkv=2, D=16 (fused), and D=8 (falls back to the separate ops)
    for (d, seed) in [(16usize, 30u64), (32, 31), (8, 32)] {
        let tables = RopeTables::new(d, 64, 10_000.0, &candle_core::Device::Cpu, candle_core::DType::F32)?;
        let qkv = var(&[3 * 37, (4 + 2 * 2) * d], seed, 1.0);
        check(&format!("qkv attention d{d}"), &[qkv], |t, k| {
            ops::qkv_rope_attention(&t[0], &ops::Seqs::uniform(3, 37), 4, 2, &tables, k)
        })?;
    }
    Ok(())
}

/// Sequences of different lengths in one packed row: each one's output and gradient are
/// exactly those of the sequence run alone (positions from 0, no attention across).
#[test]
fn varlen_attention_equals_each_sequence_alone() -> Result<()> {
    let (hq, hkv, d) = (4usize, 2usize, 16usize);
    let width = (hq + 2 * hkv) * d;
    let lens = [5usize, 23, 1, 40, 9];
    let n: usize = lens.iter().sum();
    let tables = RopeTables::new(d, 64, 10_000.0, &candle_core::Device::Cpu, candle_core::DType::F32)?;
    let qkv = var(&[n, width], 50, 1.0);
    let dout = randn(&[n, hq * d], 51, 1.0);
    let seqs = ops::Seqs::from_lens(&lens);
    assert_eq!((seqs.rows(), seqs.max_len(), seqs.uniform_dims()), (n, 40, None));
    let out = ops::qkv_rope_attention(qkv.as_tensor(), &seqs, hq, hkv, &tables, Kernels::Fused)?;
    let grad = (&out * &dout)?.sum_all()?.backward()?;
    let grad = grad.get(qkv.as_tensor()).unwrap();
    let mut start = 0;
    for &t in &lens {
        let part = Var::from_tensor(&qkv.as_tensor().narrow(0, start, t)?.detach())?;
        let alone =
            ops::qkv_rope_attention(part.as_tensor(), &ops::Seqs::uniform(1, t), hq, hkv, &tables, Kernels::Fused)?;
        let g = (&alone * dout.narrow(0, start, t)?)?.sum_all()?.backward()?;
        let g = g.get(part.as_tensor()).unwrap();
        let same = |a: &Tensor, b: &Tensor| -> Result<bool> {
            Ok(a.flatten_all()?.to_vec1::<f32>()? == b.flatten_all()?.to_vec1::<f32>()?)
        };
        assert!(same(&out.narrow(0, start, t)?, &alone)?, "output of the sequence at row {start} (length {t})");
        assert!(same(&grad.narrow(0, start, t)?, g)?, "gradient of the sequence at row {start} (length {t})");
        start += t;
    }
    // the composite path keeps padded batches only, and says so
    let err = ops::qkv_rope_attention(qkv.as_tensor(), &seqs, hq, hkv, &tables, Kernels::Composite).unwrap_err();
    assert!(err.to_string().contains("fused"), "{err}");
    // a sequence longer than the RoPE tables is refused
    let long = ops::Seqs::from_lens(&[65, n - 65]);
    assert!(ops::qkv_rope_attention(qkv.as_tensor(), &long, hq, hkv, &tables, Kernels::Fused).is_err());
    Ok(())
}

#[test]
fn packed_swiglu_matches_composite() -> Result<()> {
    let gu = var(&[3 * 37, 2 * 45], 33, 2.0);
    check("swiglu packed", &[gu], |t, k| ops::swiglu_packed(&t[0], k))
}

#[test]
fn fused_mlp_matches_composite() -> Result<()> {
    let h = var(&[3 * 37, 24], 34, 1.0);
    let wgu = var(&[2 * 45, 24], 35, 0.3);
    let wd = var(&[24, 45], 36, 0.3);
    check("mlp", &[h, wgu, wd], |t, k| ops::mlp(&t[0], &t[1], &t[2], k))
}

#[test]
fn fused_blocks_match_composite() -> Result<()> {
    // attention block: B=3, T=37, Hq=4, Hkv=2, D=16, H=64
    let tables = RopeTables::new(16, 64, 10_000.0, &candle_core::Device::Cpu, candle_core::DType::F32)?;
    let x = var(&[3 * 37, 64], 40, 1.0);
    let wq = randn(&[(4 + 2 * 2) * 16, 64], 41, 0.2);
    let wn = (randn(&[1, 64], 42, 0.3) + 1.0)?;
    let w_qkvn = Var::from_tensor(&Tensor::cat(&[&wq, &wn], 0)?)?;
    let w_o = var(&[64, 4 * 16], 43, 0.2);
    check("attn block", &[x, w_qkvn, w_o], |t, k| {
        ops::attn_block(&t[0], &t[1], &t[2], &ops::Seqs::uniform(3, 37), 4, 2, 1e-6, &tables, k)
    })?;
    // MLP block: I = 45
    let x = var(&[3 * 37, 24], 44, 1.0);
    let wgu = randn(&[2 * 45, 24], 45, 0.3);
    let wn = (randn(&[1, 24], 46, 0.3) + 1.0)?;
    let w_gun = Var::from_tensor(&Tensor::cat(&[&wgu, &wn], 0)?)?;
    let wd = var(&[24, 45], 47, 0.3);
    check("mlp block", &[x, w_gun, wd], |t, k| ops::mlp_block(&t[0], &t[1], &t[2], 1e-6, k))
}

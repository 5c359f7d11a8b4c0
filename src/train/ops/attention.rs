//! Causal scaled-dot-product attention with grouped-query heads (GQA).
//!
//! Fused CPU kernel: one task per (batch, head) in the forward, per (batch, kv-head) in the
//! backward (so the K/V gradients of a group are summed in a fixed order without atomics).
//! Scores are produced one query row at a time into a row buffer of length ≤ T (never a T×T
//! matrix); the forward keeps the per-row log-sum-exp in the op for the backward, which
//! recomputes the probabilities from it (FlashAttention-2 style).

use super::simd::{self, axpy, dispatch, exp};
use super::{cpu_f32, cpu_tensor, with_f32, Kernels};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;
use std::sync::Mutex;

/// Causal attention. `q` `[B, T, Hq, D]`, `k`/`v` `[B, T, Hkv, D]` with `Hq % Hkv == 0`;
/// returns `[B, T, Hq, D]`; softmax scale 1/√D.
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, kernels: Kernels) -> Result<Tensor> {
    let (b, t, hq, d) = q.dims4()?;
    let (bk, tk, hkv, dk) = k.dims4()?;
    if (bk, tk, dk) != (b, t, d) || v.dims() != k.dims() || hkv == 0 || hq % hkv != 0 {
        candle_core::bail!("causal_attention: q {:?} k {:?} v {:?}", q.dims(), k.dims(), v.dims());
    }
    match kernels.effective(q.device(), q.dtype()) {
        Kernels::Fused => q.contiguous()?.apply_op3(
            &k.contiguous()?,
            &v.contiguous()?,
            AttnOp { dims: Dims { b, t, hq, hkv, d }, lse: Mutex::new(None) },
        ),
        Kernels::Composite => causal_attention_composite(q, k, v),
    }
}

/// `[B, Hkv, T, D]` → `[B, Hkv·g, T, D]` (each kv head repeated for its g query heads).
pub fn repeat_kv(x: &Tensor, g: usize) -> Result<Tensor> {
    if g == 1 {
        return Ok(x.clone());
    }
    let (b, h, t, d) = x.dims4()?;
    x.unsqueeze(2)?.broadcast_as((b, h, g, t, d))?.reshape((b, h * g, t, d))
}

/// Differentiable composite reference (materialises the `[B, H, T, T]` scores).
pub fn causal_attention_composite(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (_b, t, hq, d) = q.dims4()?;
    let hkv = k.dim(2)?;
    let q = q.transpose(1, 2)?.contiguous()?;
    let k = repeat_kv(&k.transpose(1, 2)?.contiguous()?, hq / hkv)?;
    let v = repeat_kv(&v.transpose(1, 2)?.contiguous()?, hq / hkv)?;
    let scale = 1.0 / (d as f64).sqrt();
    let att = (q.matmul(&k.t()?)? * scale)?;
    let mask: Vec<f32> = (0..t * t).map(|x| if x % t > x / t { f32::NEG_INFINITY } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, (t, t), q.device())?.to_dtype(q.dtype())?;
    let att = att.broadcast_add(&mask)?;
    let att = softmax_composite(&att)?;
    att.matmul(&v)?.transpose(1, 2)
}

/// Softmax over the last dim, differentiable (max detached).
pub fn softmax_composite(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&s)
}

#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    t: usize,
    hq: usize,
    hkv: usize,
    d: usize,
}

impl Dims {
    #[inline(always)]
    fn q_row(&self, b: usize, t: usize, h: usize) -> usize {
        ((b * self.t + t) * self.hq + h) * self.d
    }
    #[inline(always)]
    fn kv_row(&self, b: usize, t: usize, h: usize) -> usize {
        ((b * self.t + t) * self.hkv + h) * self.d
    }
}

struct AttnOp {
    dims: Dims,
    /// per (b, hq, t) log-sum-exp of the scaled scores, set by the forward.
    lse: Mutex<Option<Vec<f32>>>,
}

/// Copies the `[T, D]` rows of one kv head into `rows` and its transpose `[D, T]` into `tr`.
#[inline(always)]
fn gather_head(src: &[f32], dm: &Dims, b: usize, h: usize, rows: &mut [f32], tr: &mut [f32]) {
    let (t, d) = (dm.t, dm.d);
    for j in 0..t {
        let s = &src[dm.kv_row(b, j, h)..dm.kv_row(b, j, h) + d];
        rows[j * d..(j + 1) * d].copy_from_slice(s);
        for c in 0..d {
            tr[c * t + j] = s[c];
        }
    }
}

/// Scaled scores of query row `qi` against keys `0..n` into `s[..n]` (`kt` is `[D, T]`).
#[inline(always)]
fn scores<const F: bool>(qi: &[f32], kt: &[f32], t: usize, n: usize, scale: f32, s: &mut [f32]) {
    let s = &mut s[..n];
    s.fill(0.0);
    for (c, &qc) in qi.iter().enumerate() {
        axpy::<F>(s, qc * scale, &kt[c * t..c * t + n]);
    }
}

#[inline(always)]
fn fwd_task<const F: bool>(q: &[f32], k: &[f32], v: &[f32], dm: &Dims, bh: usize, out: &mut [f32], lse: &mut [f32]) {
    let (t, d) = (dm.t, dm.d);
    let (b, h) = (bh / dm.hq, bh % dm.hq);
    let kvh = h / (dm.hq / dm.hkv);
    let mut krows = vec![0f32; t * d];
    let mut kt = vec![0f32; t * d];
    gather_head(k, dm, b, kvh, &mut krows, &mut kt);
    let scale = 1.0 / (d as f32).sqrt();
    let mut s = vec![0f32; t];
    for i in 0..t {
        let n = i + 1;
        let qi = &q[dm.q_row(b, i, h)..dm.q_row(b, i, h) + d];
        scores::<F>(qi, &kt, t, n, scale, &mut s);
        let m = s[..n].iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
        let mut sum = 0f32;
        for x in s[..n].iter_mut() {
            *x = exp::<F>(*x - m);
            sum += *x;
        }
        let o = &mut out[i * d..(i + 1) * d];
        o.fill(0.0);
        for (j, &p) in s[..n].iter().enumerate() {
            let vj = dm.kv_row(b, j, kvh);
            axpy::<F>(o, p, &v[vj..vj + d]);
        }
        let inv = 1.0 / sum;
        o.iter_mut().for_each(|x| *x *= inv);
        lse[i] = m + sum.ln();
    }
}
dispatch!(fn fwd_task_d => fwd_task(q: &[f32], k: &[f32], v: &[f32], dm: &Dims, bh: usize, out: &mut [f32], lse: &mut [f32]));

/// Backward of one (batch, kv head): `dq` is `[g, T, D]`, `dk`/`dv` `[T, D]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bwd_task<const F: bool>(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    dout: &[f32],
    lse: &[f32],
    dm: &Dims,
    bkv: usize,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let (t, d) = (dm.t, dm.d);
    let g = dm.hq / dm.hkv;
    let (b, kvh) = (bkv / dm.hkv, bkv % dm.hkv);
    let mut krows = vec![0f32; t * d];
    let mut kt = vec![0f32; t * d];
    let mut vrows = vec![0f32; t * d];
    let mut vt = vec![0f32; t * d];
    gather_head(k, dm, b, kvh, &mut krows, &mut kt);
    gather_head(v, dm, b, kvh, &mut vrows, &mut vt);
    let scale = 1.0 / (d as f32).sqrt();
    let mut p = vec![0f32; t];
    let mut dp = vec![0f32; t];
    for gi in 0..g {
        let h = kvh * g + gi;
        for i in 0..t {
            let n = i + 1;
            let r = dm.q_row(b, i, h);
            let (qi, oi, doi) = (&q[r..r + d], &o[r..r + d], &dout[r..r + d]);
            let l = lse[(b * dm.hq + h) * t + i];
            scores::<F>(qi, &kt, t, n, scale, &mut p);
            for x in p[..n].iter_mut() {
                *x = exp::<F>(*x - l);
            }
            // dp_j = dO_i · V_j
            scores::<F>(doi, &vt, t, n, 1.0, &mut dp);
            let di = simd::dot::<F>(doi, oi);
            let dqi = &mut dq[(gi * t + i) * d..(gi * t + i + 1) * d];
            for j in 0..n {
                let pj = p[j];
                let ds = pj * (dp[j] - di) * scale;
                axpy::<F>(&mut dv[j * d..(j + 1) * d], pj, doi);
                axpy::<F>(dqi, ds, &krows[j * d..(j + 1) * d]);
                axpy::<F>(&mut dk[j * d..(j + 1) * d], ds, qi);
            }
        }
    }
}
dispatch!(fn bwd_task_d => bwd_task(
    q: &[f32], k: &[f32], v: &[f32], o: &[f32], dout: &[f32], lse: &[f32], dm: &Dims, bkv: usize,
    dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]));

impl AttnOp {
    fn forward(&self, q: &[f32], k: &[f32], v: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let dm = self.dims;
        let (t, d) = (dm.t, dm.d);
        let mut lse = vec![0f32; dm.b * dm.hq * t];
        let mut heads = vec![0f32; dm.b * dm.hq * t * d]; // [B, Hq, T, D]
        heads
            .par_chunks_mut(t * d)
            .zip(lse.par_chunks_mut(t))
            .enumerate()
            .for_each(|(bh, (o, l))| fwd_task_d(q, k, v, &dm, bh, o, l));
        // [B, Hq, T, D] -> [B, T, Hq, D]
        let mut out = vec![0f32; heads.len()];
        out.par_chunks_mut(dm.hq * d).enumerate().for_each(|(bt, row)| {
            let (b, i) = (bt / t, bt % t);
            for h in 0..dm.hq {
                let src = ((b * dm.hq + h) * t + i) * d;
                row[h * d..(h + 1) * d].copy_from_slice(&heads[src..src + d]);
            }
        });
        (out, lse)
    }
}

impl CustomOp3 for AttnOp {
    fn name(&self) -> &'static str {
        "engine-causal-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let q = cpu_f32(s1, l1, "attention q")?;
        let k = cpu_f32(s2, l2, "attention k")?;
        let v = cpu_f32(s3, l3, "attention v")?;
        let (out, lse) = self.forward(q, k, v);
        *self.lse.lock().unwrap() = Some(lse);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        o: &Tensor,
        dout: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dm = self.dims;
        let (t, d, g) = (dm.t, dm.d, dm.hq / dm.hkv);
        let lse = match self.lse.lock().unwrap().clone() {
            Some(l) => l,
            None => {
                with_f32(q, "attn", |q| with_f32(k, "attn", |k| with_f32(v, "attn", |v| self.forward(q, k, v).1)))???
            }
        };
        let (dq, dk, dv) = with_f32(q, "attention bwd q", |q| {
            with_f32(k, "attention bwd k", |k| {
                with_f32(v, "attention bwd v", |v| {
                    with_f32(o, "attention bwd o", |o| {
                        with_f32(dout, "attention bwd dout", |dout| {
                            let ntask = dm.b * dm.hkv;
                            let mut dq_h = vec![0f32; ntask * g * t * d]; // [B, Hkv, g, T, D]
                            let mut dk_h = vec![0f32; ntask * t * d]; // [B, Hkv, T, D]
                            let mut dv_h = vec![0f32; ntask * t * d];
                            dq_h.par_chunks_mut(g * t * d)
                                .zip(dk_h.par_chunks_mut(t * d).zip(dv_h.par_chunks_mut(t * d)))
                                .enumerate()
                                .for_each(|(bkv, (dq, (dk, dv)))| {
                                    bwd_task_d(q, k, v, o, dout, &lse, &dm, bkv, dq, dk, dv)
                                });
                            // back to [B, T, H, D]
                            let mut dq = vec![0f32; dq_h.len()];
                            dq.par_chunks_mut(dm.hq * d).enumerate().for_each(|(bt, row)| {
                                let (b, i) = (bt / t, bt % t);
                                for h in 0..dm.hq {
                                    let src = ((b * dm.hq + h) * t + i) * d;
                                    row[h * d..(h + 1) * d].copy_from_slice(&dq_h[src..src + d]);
                                }
                            });
                            let untile = |src: &[f32]| {
                                let mut out = vec![0f32; src.len()];
                                out.par_chunks_mut(dm.hkv * d).enumerate().for_each(|(bt, row)| {
                                    let (b, i) = (bt / t, bt % t);
                                    for h in 0..dm.hkv {
                                        let s = ((b * dm.hkv + h) * t + i) * d;
                                        row[h * d..(h + 1) * d].copy_from_slice(&src[s..s + d]);
                                    }
                                });
                                out
                            };
                            (dq, untile(&dk_h), untile(&dv_h))
                        })
                    })
                })
            })
        })?????;
        Ok((Some(cpu_tensor(dq, q.dims())?), Some(cpu_tensor(dk, k.dims())?), Some(cpu_tensor(dv, v.dims())?)))
    }
}

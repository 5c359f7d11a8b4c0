//! Whole residual sub-blocks as single ops, so that only the residual stream `[N, H]` (and the
//! weights) cross the autograd graph between them:
//!
//! * [`attn_block`]: `x + Attn(RMSNorm(x; wn))·Woᵀ`, with `Attn` the packed-qkv RoPE causal
//!   attention over `RMSNorm(x)·[Wq; Wk; Wv]ᵀ`;
//! * [`mlp_block`]: `x + (silu(h·Wgᵀ) ⊙ h·Wuᵀ)·Wdᵀ` with `h = RMSNorm(x; wn)`.
//!
//! The norm weight travels as the last row of the packed input-projection weight
//! (`[Wq; Wk; Wv; wn]`, `[Wg; Wu; wn]`), which keeps each block a `CustomOp3`. candle adds every
//! gradient flowing along a graph edge into a fresh zero tensor; with the blocks fused, the
//! large intermediates (qkv, attention output, the `[N, 2I]` and `[N, I]` MLP activations, the
//! normed inputs) never become graph edges. No q/k/v biases (Qwen2 uses the unfused ops).
#![allow(clippy::type_complexity)]

use super::attention::{PackedAttn, Seqs};
use super::{cpu_f32, cpu_tensor, rmsnorm, sgemm, with_f32, Kernels, RopeTables};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;
use std::sync::Mutex;

/// y += x (parallel, fixed chunks).
fn add_into(y: &mut [f32], x: &[f32]) {
    y.par_chunks_mut(1 << 14).zip(x.par_chunks(1 << 14)).for_each(|(a, b)| {
        for (o, v) in a.iter_mut().zip(b) {
            *o += v;
        }
    });
}

/// Splits a packed `[rows + 1, H]` weight into (`[rows, H]`, norm weight `[H]`).
fn split_norm(w: &Tensor) -> Result<(Tensor, Tensor)> {
    let r = w.dim(0)? - 1;
    Ok((w.narrow(0, 0, r)?, w.narrow(0, r, 1)?.squeeze(0)?))
}

/// `x + Attn(RMSNorm(x))·Woᵀ` for `x` `[N, H]`, whose rows are the sequences `seqs`;
/// `w_qkvn` = `[Wq; Wk; Wv; wn]`.
#[allow(clippy::too_many_arguments)]
pub fn attn_block(
    x: &Tensor,
    w_qkvn: &Tensor,
    w_o: &Tensor,
    seqs: &Seqs,
    hq: usize,
    hkv: usize,
    eps: f64,
    tables: &RopeTables,
    kernels: Kernels,
) -> Result<Tensor> {
    let (_n, h) = x.dims2()?;
    let d = tables.head_dim;
    let width = (hq + 2 * hkv) * d;
    if w_qkvn.dims() != [width + 1, h] || w_o.dims() != [h, hq * d] {
        candle_core::bail!("attn_block: x {:?} w_qkvn {:?} w_o {:?}", x.dims(), w_qkvn.dims(), w_o.dims());
    }
    let fused = match kernels.effective(x.device(), x.dtype()) {
        Kernels::Fused => PackedAttn::new(seqs, hq, hkv, tables),
        Kernels::Composite => None,
    };
    match fused {
        Some(attn) => x.contiguous()?.apply_op3(
            &w_qkvn.contiguous()?,
            &w_o.contiguous()?,
            AttnBlock { attn, eps: eps as f32, saved: Mutex::new(None) },
        ),
        None => {
            let (w, wn) = split_norm(w_qkvn)?;
            let hn = super::rms_norm(x, &wn, eps, kernels)?;
            let qkv = super::linear(&hn, &w, None, kernels)?;
            let a = super::qkv_rope_attention(&qkv, seqs, hq, hkv, tables, kernels)?;
            x + super::linear(&a, w_o, None, kernels)?
        }
    }
}

/// `x + MLP(RMSNorm(x))` for `x` `[N, H]`; `w_gun` = `[Wg; Wu; wn]`, `w_down` `[H, I]`.
pub fn mlp_block(x: &Tensor, w_gun: &Tensor, w_down: &Tensor, eps: f64, kernels: Kernels) -> Result<Tensor> {
    let (_n, h) = x.dims2()?;
    let i = w_down.dim(D::Minus1)?;
    if w_gun.dims() != [2 * i + 1, h] || w_down.dims() != [h, i] {
        candle_core::bail!("mlp_block: x {:?} w_gun {:?} w_down {:?}", x.dims(), w_gun.dims(), w_down.dims());
    }
    match kernels.effective(x.device(), x.dtype()) {
        Kernels::Fused => x.contiguous()?.apply_op3(
            &w_gun.contiguous()?,
            &w_down.contiguous()?,
            MlpBlock { eps: eps as f32, saved: Mutex::new(None) },
        ),
        Kernels::Composite => {
            let (w, wn) = split_norm(w_gun)?;
            let hn = super::rms_norm(x, &wn, eps, kernels)?;
            x + super::mlp(&hn, &w, w_down, kernels)?
        }
    }
}

struct AttnBlock {
    attn: PackedAttn,
    eps: f32,
    /// (normed x [N, H], qkv [N, width], attention output [N, Hq·D])
    saved: Mutex<Option<(Vec<f32>, Vec<f32>, Vec<f32>)>>,
}

impl CustomOp3 for AttnBlock {
    fn name(&self) -> &'static str {
        "engine-attn-block"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        so: &CpuStorage,
        lo: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("attn block fwd");
        let x = cpu_f32(sx, lx, "attn_block x")?;
        let w = cpu_f32(sw, lw, "attn_block w_qkvn")?;
        let wo = cpu_f32(so, lo, "attn_block w_o")?;
        let (n, h) = (lx.dims()[0], lx.dims()[1]);
        let width = lw.dims()[0] - 1;
        let hn = rmsnorm::forward_rows(x, &w[width * h..], self.eps);
        let qkv = sgemm::x_wt(&hn, w, n, h, width);
        let a = self.attn.forward(&qkv);
        let oa = a.len() / n;
        let mut y = sgemm::x_wt(&a, wo, n, oa, h);
        add_into(&mut y, x);
        *self.saved.lock().unwrap() = Some((hn, qkv, a));
        Ok((CpuStorage::F32(y), Shape::from((n, h))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w_qkvn: &Tensor,
        w_o: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let _prof = super::prof::timer("attn block bwd");
        let (n, h) = x.dims2()?;
        let width = w_qkvn.dim(0)? - 1;
        let (x, w_qkvn, w_o) = (x.detach(), w_qkvn.detach(), w_o.detach());
        let (w, wn) = split_norm(&w_qkvn)?;
        let (hn, qkv, a) = match self.saved.lock().unwrap().take() {
            Some(s) => s,
            None => {
                let hn = with_f32(&x, "attn_block", |xv| {
                    with_f32(&wn, "attn_block", |wv| rmsnorm::forward_rows(xv, wv, self.eps))
                })??;
                let qkv = with_f32(&w, "attn_block", |wv| sgemm::x_wt(&hn, wv, n, h, width))?;
                let a = self.attn.forward(&qkv);
                (hn, qkv, a)
            }
        };
        let oa = a.len() / n;
        let a = cpu_tensor(a, &[n, oa])?;
        // Independent products run side by side: a thread done with its share of one takes
        // tasks of the other instead of waiting at the end of each (same bits either way).
        let (da, dw_o) = rayon::join(|| sgemm::mm(dy, false, &w_o, false), || sgemm::mm(dy, true, &a, false));
        let (da, dw_o) = (da?, dw_o?); // [N, Hq·D], [H, Hq·D]
        let dqkv =
            with_f32(&a, "attn_block", |av| with_f32(&da, "attn_block", |dav| self.attn.backward(&qkv, av, dav)))??;
        drop(qkv);
        let dqkv = cpu_tensor(dqkv, &[n, width])?;
        let hn = cpu_tensor(hn, &[n, h])?;
        // dW with room for the norm weight's gradient as its last row
        let (dw, dhn) =
            rayon::join(|| sgemm::mm_reserve(&dqkv, true, &hn, false, h), || sgemm::mm(&dqkv, false, &w, false));
        let (mut dw, dhn) = (dw?, dhn?); // [width, H], [N, H]
        let (dx, dwn) = with_f32(&x, "attn_block", |xv| {
            with_f32(&wn, "attn_block", |wv| {
                with_f32(&dhn, "attn_block", |dv| rmsnorm::backward_rows(xv, wv, dv, self.eps))
            })
        })???;
        let dx = (cpu_tensor(dx, &[n, h])? + dy)?;
        dw.extend_from_slice(&dwn);
        let dw_full = cpu_tensor(dw, &[width + 1, h])?;
        Ok((Some(dx), Some(dw_full), Some(dw_o)))
    }
}

struct MlpBlock {
    eps: f32,
    /// (normed x [N, H], gu [N, 2I], act [N, I])
    saved: Mutex<Option<(Vec<f32>, Vec<f32>, Vec<f32>)>>,
}

impl CustomOp3 for MlpBlock {
    fn name(&self) -> &'static str {
        "engine-mlp-block"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sd: &CpuStorage,
        ld: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("mlp block fwd");
        let x = cpu_f32(sx, lx, "mlp_block x")?;
        let w = cpu_f32(sw, lw, "mlp_block w_gun")?;
        let wd = cpu_f32(sd, ld, "mlp_block w_down")?;
        let (n, h) = (lx.dims()[0], lx.dims()[1]);
        let two_i = lw.dims()[0] - 1;
        let i = two_i / 2;
        let hn = rmsnorm::forward_rows(x, &w[two_i * h..], self.eps);
        let gu = sgemm::x_wt(&hn, w, n, h, two_i);
        let act = super::mlp::swiglu_rows(&gu, n, i);
        let mut y = sgemm::x_wt(&act, wd, n, i, h);
        add_into(&mut y, x);
        *self.saved.lock().unwrap() = Some((hn, gu, act));
        Ok((CpuStorage::F32(y), Shape::from((n, h))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w_gun: &Tensor,
        w_down: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let _prof = super::prof::timer("mlp block bwd");
        let (n, h) = x.dims2()?;
        let i = w_down.dim(1)?;
        let (x, w_gun, w_down) = (x.detach(), w_gun.detach(), w_down.detach());
        let (w, wn) = split_norm(&w_gun)?;
        let (hn, gu, act) = match self.saved.lock().unwrap().take() {
            Some(s) => s,
            None => {
                let hn = with_f32(&x, "mlp_block", |xv| {
                    with_f32(&wn, "mlp_block", |wv| rmsnorm::forward_rows(xv, wv, self.eps))
                })??;
                let gu = with_f32(&w, "mlp_block", |wv| sgemm::x_wt(&hn, wv, n, h, 2 * i))?;
                let act = super::mlp::swiglu_rows(&gu, n, i);
                (hn, gu, act)
            }
        };
        let act = cpu_tensor(act, &[n, i])?;
        let (dact, dw_down) = rayon::join(|| sgemm::mm(dy, false, &w_down, false), || sgemm::mm(dy, true, &act, false));
        let (dact, dw_down) = (dact?, dw_down?);
        drop(act);
        let dgu = with_f32(&dact, "mlp_block", |da| super::mlp::swiglu_bwd_rows(&gu, da, n, i))?;
        drop(gu);
        let dgu = cpu_tensor(dgu, &[n, 2 * i])?;
        let hn = cpu_tensor(hn, &[n, h])?;
        let (dw, dhn) =
            rayon::join(|| sgemm::mm_reserve(&dgu, true, &hn, false, h), || sgemm::mm(&dgu, false, &w, false));
        let (mut dw, dhn) = (dw?, dhn?); // [2I, H] with room for a row, [N, H]
        let (dx, dwn) = with_f32(&x, "mlp_block", |xv| {
            with_f32(&wn, "mlp_block", |wv| {
                with_f32(&dhn, "mlp_block", |dv| rmsnorm::backward_rows(xv, wv, dv, self.eps))
            })
        })???;
        let dx = (cpu_tensor(dx, &[n, h])? + dy)?;
        dw.extend_from_slice(&dwn);
        let dw_full = cpu_tensor(dw, &[2 * i + 1, h])?;
        Ok((Some(dx), Some(dw_full), Some(dw_down)))
    }
}

//! The output layer fused with the token-weighted cross-entropy:
//! loss = Σ_i w_i · nll(h_i · Wᵀ, t_i) / Σ_i w_i, for `h` `[N, H]`, `W` `[V, H]`.
//!
//! The fused forward walks the rows in chunks: logits of a chunk (one matmul), softmax/NLL and
//! d(loss)/d(logits) in place, then the chunk's contributions to dh (= dlogits·W) and dW
//! (+= dlogitsᵀ·h), for the rows whose weight is non-zero only (the others add nothing to the
//! loss). The `[N, V]` logits never exist at once, nothing of that size goes
//! through the autograd graph, and the gradients are ready when `backward` asks for them
//! (scaled there by the upstream gradient). When neither input needs a gradient the forward
//! computes the loss only.

use super::sgemm::{self, Mat};
use super::simd::{self, dispatch, exp};
use super::Kernels;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// Rows per chunk: about 4 M logits (16 MB) at a time, and at least 256 rows, so that a large
/// vocabulary's chunk still adds to dW `[V, H]` as a matmul with a long enough inner dimension
/// (at 27 rows a chunk, Qwen2.5's 151,936 tokens, the step spent its time reading and writing
/// dW).
fn default_chunk(v: usize) -> usize {
    ((4 << 20) / v.max(1)).max(256)
}

/// Weighted mean NLL of `h · wᵀ` (see the module doc). `targets` u32 `[N]`, `weights` `[N]`.
pub fn lm_head_cross_entropy(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
    kernels: Kernels,
) -> Result<Tensor> {
    lm_head_cross_entropy_chunked(h, w, targets, weights, kernels, None)
}

/// As [`lm_head_cross_entropy`] with an explicit chunk size (tests).
pub fn lm_head_cross_entropy_chunked(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
    kernels: Kernels,
    chunk: Option<usize>,
) -> Result<Tensor> {
    let (n, hd) = h.dims2()?;
    let (v, hd2) = w.dims2()?;
    if hd != hd2 {
        candle_core::bail!("lm_head_cross_entropy: h {:?} vs w {:?}", h.dims(), w.dims());
    }
    match kernels.effective(h.device(), h.dtype()) {
        Kernels::Composite => {
            let logits = h.matmul(&w.t()?)?;
            super::cross_entropy(&logits, targets, weights, Kernels::Composite)
        }
        Kernels::Fused => {
            let (t, wt) = super::xent::read_targets(targets, weights, n, v, "lm_head_cross_entropy")?;
            let wsum: f64 = wt.iter().map(|&x| x as f64).sum();
            // Only rows with a weight reach the output layer: in SFT the prompt and the padding
            // (most positions) skip its matmuls and softmax. Their dh is zero either way; the
            // gather's backward puts the others' back in place.
            let live: Vec<u32> = (0..n as u32).filter(|&i| wt[i as usize] != 0.0).collect();
            let (h, t, wt) = if live.len() < n && !live.is_empty() {
                let idx = Tensor::new(live.as_slice(), h.device())?;
                let t = live.iter().map(|&i| t[i as usize]).collect();
                let wt = live.iter().map(|&i| wt[i as usize]).collect();
                (h.index_select(&idx, 0)?, t, wt)
            } else {
                (h.clone(), t, wt)
            };
            let op = LmHeadXent {
                targets: t,
                weights: wt,
                wsum,
                chunk: chunk.unwrap_or_else(|| default_chunk(v)).max(1),
                want_grad: h.track_op() || w.track_op(),
                grads: Mutex::new(None),
            };
            h.contiguous()?.apply_op2(&w.contiguous()?, op)
        }
    }
}

struct LmHeadXent {
    targets: Vec<u32>,
    weights: Vec<f32>,
    wsum: f64,
    chunk: usize,
    want_grad: bool,
    /// (dh [N, H], dW [V, H]) for an upstream gradient of 1.
    grads: Mutex<Option<(Vec<f32>, Vec<f32>)>>,
}

const ROWS: usize = 8;

/// One row: returns nll; when `grad`, overwrites the row with (softmax − onehot)·scale.
#[inline(always)]
fn row<const F: bool>(x: &mut [f32], t: usize, scale: f32, grad: bool, out: &mut f32) {
    let m = simd::max(x);
    let xt = x[t];
    if grad {
        for e in x.iter_mut() {
            *e = exp::<F>(*e - m);
        }
        let s = simd::sum(x);
        let k = scale / s;
        for e in x.iter_mut() {
            *e *= k;
        }
        x[t] -= scale;
        *out = m + s.ln() - xt;
    } else {
        let s = simd::sum_by(x, |y| exp::<F>(y - m));
        *out = m + s.ln() - xt;
    }
}
dispatch!(fn row_d => row(x: &mut [f32], t: usize, scale: f32, grad: bool, out: &mut f32));

/// The output layer's weight `W` `[V, H]`, packed once for the step's chunks: as the right side
/// of the logits (`h·Wᵀ`) and of dh (`dlogits·W`). Empty where the products go to gemm.
struct PackedW {
    wt: Option<sgemm::PackedB>,
    w: Option<sgemm::PackedB>,
}

impl LmHeadXent {
    /// One chunk of rows `h_c` `[rows, H]`: its nll and, when `dw` is given, its dh rows, with its
    /// dW contribution (`dlogitsᵀ·h_c`) added to `dw.0` (written over it when `dw.1` is false).
    #[allow(clippy::too_many_arguments)]
    fn chunk(
        &self,
        h_c: &[f32],
        w: &[f32],
        (v, hd): (usize, usize),
        packed: &PackedW,
        r0: usize,
        rows: usize,
        dw: Option<(&mut [f32], bool)>,
    ) -> (Vec<f32>, Option<Vec<f32>>) {
        let grad = dw.is_some();
        let inv = if self.wsum > 0.0 { 1.0 / self.wsum } else { 0.0 };
        let mut logits = {
            let _p = super::prof::timer("lm_head matmul");
            sgemm::matmul_packed(rows, v, hd, Mat::rows(h_c, hd), Mat::t(w, hd), packed.wt.as_ref())
        };
        let mut nll = vec![0f32; rows];
        {
            let _p = super::prof::timer("lm_head softmax");
            let (t, wt) = (&self.targets[r0..r0 + rows], &self.weights[r0..r0 + rows]);
            logits.par_chunks_mut(ROWS * v).zip(nll.par_chunks_mut(ROWS)).enumerate().for_each(|(c, (x, o))| {
                for (k, (xr, o)) in x.chunks_exact_mut(v).zip(o.iter_mut()).enumerate() {
                    let i = c * ROWS + k;
                    if wt[i] == 0.0 && grad {
                        xr.fill(0.0);
                        *o = 0.0;
                    } else {
                        row_d(xr, t[i] as usize, (wt[i] as f64 * inv) as f32, grad, o);
                    }
                }
            });
        }
        let Some((dw, accumulate)) = dw else {
            return (nll, None);
        };
        let _p = super::prof::timer("lm_head grad matmuls");
        // dW (+)= dlogitsᵀ [V, rows] · h_c [rows, H] and dh_c = dlogits [rows, V] · W [V, H], side
        // by side (a thread done with its share of one takes tasks of the other)
        let logits = &logits;
        let ((), dhc) = rayon::join(
            || sgemm::matmul_into(v, hd, rows, Mat::t(logits, v), Mat::rows(h_c, hd), dw, accumulate),
            || sgemm::matmul_packed(rows, hd, v, Mat::rows(logits, v), Mat::rows(w, hd), packed.w.as_ref()),
        );
        (nll, Some(dhc))
    }

    /// Per-row NLL (and, when `want_grad`, dh and dW for unit upstream gradient). The chunks run
    /// in order, each product spread over the threads; dW is summed in two halves (even chunks
    /// into one buffer, odd into the other, added at the end), the order in which the two
    /// lanes of earlier versions summed it, so the bits of every checkpoint trained before stay.
    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        sh: &CpuStorage,
        lh: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        grad: bool,
    ) -> Result<(Vec<f32>, Option<(Vec<f32>, Vec<f32>)>)> {
        let (n, hd) = (lh.dims()[0], lh.dims()[1]);
        let v = lw.dims()[0];
        let h = super::cpu_f32(sh, lh, "lm_head_cross_entropy h")?;
        let w = super::cpu_f32(sw, lw, "lm_head_cross_entropy w")?;
        let rows = self.chunk.min(n);
        let packed = {
            let _p = super::prof::timer("lm_head packing");
            let wt = if n > 0 { sgemm::PackedB::new(rows, hd, v, Mat::t(w, hd)) } else { None };
            let wp = if grad && n > 0 { sgemm::PackedB::new(rows, v, hd, Mat::rows(w, hd)) } else { None };
            PackedW { wt, w: wp }
        };
        let starts: Vec<usize> = (0..n).step_by(self.chunk).collect();
        let mut nll = Vec::with_capacity(n);
        let mut dh = if grad { Vec::with_capacity(n * hd) } else { Vec::new() };
        let lanes = if !grad { 0 } else { starts.len().min(2) };
        let mut even = super::zeros(if lanes > 0 { v * hd } else { 0 });
        let mut odd = super::zeros(if lanes > 1 { v * hd } else { 0 });
        for (c, &r0) in starts.iter().enumerate() {
            let rows = self.chunk.min(n - r0);
            let dw = match grad {
                false => None,
                true if c % 2 == 0 => Some((&mut even[..], c >= 2)),
                true => Some((&mut odd[..], c >= 2)),
            };
            let (part, dhc) = self.chunk(&h[r0 * hd..(r0 + rows) * hd], w, (v, hd), &packed, r0, rows, dw);
            nll.extend_from_slice(&part);
            if let Some(dhc) = dhc {
                dh.extend_from_slice(&dhc);
            }
        }
        if !grad {
            return Ok((nll, None));
        }
        if lanes == 0 {
            even = vec![0f32; v * hd]; // no rows at all
        } else if lanes == 2 {
            even.par_chunks_mut(1 << 14).zip(odd.par_chunks(1 << 14)).for_each(|(a, b)| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            });
        }
        Ok((nll, Some((dh, even))))
    }
}

impl CustomOp2 for LmHeadXent {
    fn name(&self) -> &'static str {
        "engine-lm-head-cross-entropy"
    }

    fn cpu_fwd(&self, sh: &CpuStorage, lh: &Layout, sw: &CpuStorage, lw: &Layout) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("lm_head+xent fwd");
        let (nll, grads) = self.run(sh, lh, sw, lw, self.want_grad)?;
        let mut total = 0f64;
        for (l, w) in nll.iter().zip(&self.weights) {
            if *w != 0.0 {
                total += *w as f64 * *l as f64;
            }
        }
        let loss = if self.wsum > 0.0 { total / self.wsum } else { 0.0 };
        *self.grads.lock().unwrap() = grads;
        Ok((CpuStorage::F32(vec![loss as f32]), Shape::from(())))
    }

    fn bwd(&self, h: &Tensor, w: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _prof = super::prof::timer("lm_head+xent bwd");
        let (dh, dw) = match self.grads.lock().unwrap().take() {
            Some(x) => x,
            None => {
                // forward ran without gradients (or backward is called twice): recompute
                let (hs, hl) = h.storage_and_layout();
                let (ws, wl) = w.storage_and_layout();
                match (&*hs, &*ws) {
                    (candle_core::Storage::Cpu(a), candle_core::Storage::Cpu(b)) => {
                        self.run(a, hl, b, wl, true)?.1.unwrap()
                    }
                    _ => candle_core::bail!("lm_head_cross_entropy: CPU only"),
                }
            }
        };
        let g = super::scalar_f32(g)?;
        let dh = super::cpu_tensor(dh, h.dims())?;
        let dw = super::cpu_tensor(dw, w.dims())?;
        if g == 1.0 {
            Ok((Some(dh), Some(dw)))
        } else {
            Ok((Some((dh * g as f64)?), Some((dw * g as f64)?)))
        }
    }
}

//! RMSNorm: y = x / sqrt(mean(x²) + eps) * w, over the last dimension.

use super::simd::{self, dispatch, madd};
use super::{cpu_f32, cpu_tensor, with_f32, Kernels, ROW_CHUNK};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

/// RMSNorm of `x` (`[..., H]`) with weight `w` (`[H]`).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, kernels: Kernels) -> Result<Tensor> {
    match kernels.effective(x.device(), x.dtype()) {
        Kernels::Fused => {
            let x = x.contiguous()?;
            x.apply_op2(&w.contiguous()?, RmsNormOp { eps: eps as f32 })
        }
        Kernels::Composite => rms_norm_composite(x, w, eps),
    }
}

/// Differentiable composite reference.
/// Half-precision inputs are normalised in f32 and cast back before the weight (as
/// transformers' `LlamaRMSNorm` does).
pub fn rms_norm_composite(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = if dt == DType::F32 || dt == DType::F64 { x.clone() } else { x.to_dtype(DType::F32)? };
    let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let r = (ms + eps)?.sqrt()?.recip()?;
    xf.broadcast_mul(&r)?.to_dtype(dt)?.broadcast_mul(w)
}

struct RmsNormOp {
    eps: f32,
}

#[inline(always)]
fn fwd_rows<const F: bool>(x: &[f32], w: &[f32], y: &mut [f32], eps: f32) {
    let h = w.len();
    for (xr, yr) in x.chunks_exact(h).zip(y.chunks_exact_mut(h)) {
        let r = 1.0 / (simd::sumsq::<F>(xr) / h as f32 + eps).sqrt();
        for ((y, x), w) in yr.iter_mut().zip(xr).zip(w) {
            *y = x * r * w;
        }
    }
}
dispatch!(pub(crate) fn fwd_rows_d => fwd_rows(x: &[f32], w: &[f32], y: &mut [f32], eps: f32));

/// Backward of a chunk of rows: writes dx, accumulates dw (in row order) into `dw`.
#[inline(always)]
fn bwd_rows<const F: bool>(x: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32], dw: &mut [f32], eps: f32) {
    let h = w.len();
    let w = &w[..h];
    let inv_h = 1.0 / h as f32;
    for ((xr, dyr), dxr) in x.chunks_exact(h).zip(dy.chunks_exact(h)).zip(dx.chunks_exact_mut(h)) {
        let r = 1.0 / (simd::sumsq::<F>(xr) * inv_h + eps).sqrt();
        // c = mean(dy * w * xhat) = r * mean(dy * w * x)
        let (xr, dyr, dxr, dw) = (&xr[..h], &dyr[..h], &mut dxr[..h], &mut dw[..h]);
        let mut acc = [0f32; 8];
        let chunks = h / 8;
        for c in 0..chunks {
            let (x8, dy8, w8): (&[f32; 8], &[f32; 8], &[f32; 8]) = (
                xr[c * 8..c * 8 + 8].try_into().unwrap(),
                dyr[c * 8..c * 8 + 8].try_into().unwrap(),
                w[c * 8..c * 8 + 8].try_into().unwrap(),
            );
            for l in 0..8 {
                acc[l] = madd::<F>(dy8[l] * w8[l], x8[l], acc[l]);
            }
        }
        let mut tail = 0f32;
        for i in chunks * 8..h {
            tail = madd::<F>(dyr[i] * w[i], xr[i], tail);
        }
        let s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
        let c = s * r * inv_h;
        for i in 0..h {
            let xhat = xr[i] * r;
            dxr[i] = r * (dyr[i] * w[i] - xhat * c);
            dw[i] = madd::<F>(dyr[i], xhat, dw[i]);
        }
    }
}
dispatch!(pub(crate) fn bwd_rows_d => bwd_rows(x: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32], dw: &mut [f32], eps: f32));

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "engine-rms-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("rms_norm fwd");
        let x = cpu_f32(s1, l1, "rms_norm x")?;
        let w = cpu_f32(s2, l2, "rms_norm w")?;
        let h = *l1.dims().last().unwrap_or(&0);
        if l2.dims() != [h] {
            candle_core::bail!("rms_norm: weight shape {:?} for input {:?}", l2.dims(), l1.dims());
        }
        let mut y = super::zeros(x.len());
        if h > 0 {
            y.par_chunks_mut(ROW_CHUNK * h)
                .zip(x.par_chunks(ROW_CHUNK * h))
                .for_each(|(yc, xc)| fwd_rows_d(xc, w, yc, self.eps));
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _prof = super::prof::timer("rms_norm bwd");
        let h = w.dim(0)?;
        let (dx, dw) = with_f32(x, "rms_norm bwd x", |x| {
            with_f32(w, "rms_norm bwd w", |w| {
                with_f32(dy, "rms_norm bwd dy", |dy| {
                    let mut dx = super::zeros(x.len());
                    let partials: Vec<Vec<f32>> = dx
                        .par_chunks_mut(ROW_CHUNK * h)
                        .zip(x.par_chunks(ROW_CHUNK * h).zip(dy.par_chunks(ROW_CHUNK * h)))
                        .map(|(dxc, (xc, dyc))| {
                            let mut dw = vec![0f32; h];
                            bwd_rows_d(xc, w, dyc, dxc, &mut dw, self.eps);
                            dw
                        })
                        .collect();
                    let mut dw = vec![0f32; h];
                    for p in &partials {
                        for i in 0..h {
                            dw[i] += p[i];
                        }
                    }
                    (dx, dw)
                })
            })
        })???;
        Ok((Some(cpu_tensor(dx, x.dims())?), Some(cpu_tensor(dw, &[h])?)))
    }
}

/// RMSNorm forward on raw rows (`x` `[N, H]`), row-parallel.
pub(crate) fn forward_rows(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let h = w.len();
    let mut y = super::zeros(x.len());
    if h > 0 {
        y.par_chunks_mut(ROW_CHUNK * h)
            .zip(x.par_chunks(ROW_CHUNK * h))
            .for_each(|(yc, xc)| fwd_rows_d(xc, w, yc, eps));
    }
    y
}

/// RMSNorm backward on raw rows: (dx, dw), with dw reduced in a fixed chunk order.
pub(crate) fn backward_rows(x: &[f32], w: &[f32], dy: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let h = w.len();
    let mut dx = super::zeros(x.len());
    let mut dw = vec![0f32; h];
    if h == 0 {
        return (dx, dw);
    }
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(ROW_CHUNK * h)
        .zip(x.par_chunks(ROW_CHUNK * h).zip(dy.par_chunks(ROW_CHUNK * h)))
        .map(|(dxc, (xc, dyc))| {
            let mut p = vec![0f32; h];
            bwd_rows_d(xc, w, dyc, dxc, &mut p, eps);
            p
        })
        .collect();
    for p in &partials {
        for (a, b) in dw.iter_mut().zip(p) {
            *a += b;
        }
    }
    (dx, dw)
}

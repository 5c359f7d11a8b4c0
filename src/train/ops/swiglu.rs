//! SwiGLU gate: silu(gate) * up.

use super::simd::{dispatch, sigmoid};
use super::{cpu_f32, cpu_tensor, with_f32, Kernels};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const CHUNK: usize = 16 * 1024;

/// `silu(gate) * up` (same shapes).
pub fn swiglu(gate: &Tensor, up: &Tensor, kernels: Kernels) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        candle_core::bail!("swiglu: gate {:?} vs up {:?}", gate.dims(), up.dims());
    }
    match kernels.effective(gate.device(), gate.dtype()) {
        Kernels::Fused => gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGluOp),
        Kernels::Composite => swiglu_composite(gate, up),
    }
}

/// Differentiable composite reference.
pub fn swiglu_composite(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.silu()? * up
}

struct SwiGluOp;

#[inline(always)]
fn fwd_chunk<const F: bool>(g: &[f32], u: &[f32], y: &mut [f32]) {
    for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
        *y = g * sigmoid::<F>(g) * u;
    }
}
dispatch!(pub(crate) fn fwd_chunk_d => fwd_chunk(g: &[f32], u: &[f32], y: &mut [f32]));

#[inline(always)]
fn bwd_chunk<const F: bool>(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]) {
    let n = dg.len();
    let (g, u, dy, du) = (&g[..n], &u[..n], &dy[..n], &mut du[..n]);
    for i in 0..n {
        let s = sigmoid::<F>(g[i]);
        let silu = g[i] * s;
        du[i] = dy[i] * silu;
        dg[i] = dy[i] * u[i] * (s * (1.0 + g[i] * (1.0 - s)));
    }
}
dispatch!(pub(crate) fn bwd_chunk_d => bwd_chunk(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]));

impl CustomOp2 for SwiGluOp {
    fn name(&self) -> &'static str {
        "engine-swiglu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("swiglu fwd");
        let g = cpu_f32(s1, l1, "swiglu gate")?;
        let u = cpu_f32(s2, l2, "swiglu up")?;
        let mut y = super::zeros(g.len());
        y.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|(y, (g, u))| fwd_chunk_d(g, u, y));
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, gate: &Tensor, up: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _prof = super::prof::timer("swiglu bwd");
        let (dg, du) = with_f32(gate, "swiglu bwd", |g| {
            with_f32(up, "swiglu bwd", |u| {
                with_f32(dy, "swiglu bwd", |dy| {
                    let mut dg = super::zeros(g.len());
                    let mut du = super::zeros(g.len());
                    dg.par_chunks_mut(CHUNK)
                        .zip(du.par_chunks_mut(CHUNK))
                        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)).zip(dy.par_chunks(CHUNK)))
                        .for_each(|((dg, du), ((g, u), dy))| bwd_chunk_d(g, u, dy, dg, du));
                    (dg, du)
                })
            })
        })???;
        Ok((Some(cpu_tensor(dg, gate.dims())?), Some(cpu_tensor(du, up.dims())?)))
    }
}

/// `silu(gate) * up` on a packed projection `gu` `[N, 2I]` (gate columns first, as
/// `x·[Wgate; Wup]ᵀ` produces them); returns `[N, I]`. The fused backward returns the packed
/// gradient directly.
pub fn swiglu_packed(gu: &Tensor, kernels: Kernels) -> Result<Tensor> {
    let (_n, two_i) = gu.dims2()?;
    if two_i % 2 != 0 {
        candle_core::bail!("swiglu_packed: odd width {two_i}");
    }
    let i = two_i / 2;
    match kernels.effective(gu.device(), gu.dtype()) {
        Kernels::Fused => gu.contiguous()?.apply_op1(SwiGluPacked),
        Kernels::Composite => swiglu_composite(&gu.narrow(1, 0, i)?, &gu.narrow(1, i, i)?),
    }
}

struct SwiGluPacked;

const PROWS: usize = 16;

impl candle_core::CustomOp1 for SwiGluPacked {
    fn name(&self) -> &'static str {
        "engine-swiglu-packed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("swiglu fwd");
        let x = cpu_f32(s, l, "swiglu packed")?;
        let (n, w) = (l.dims()[0], l.dims()[1]);
        let i = w / 2;
        let mut y = super::zeros(n * i);
        if i > 0 {
            y.par_chunks_mut(PROWS * i).zip(x.par_chunks(PROWS * w)).for_each(|(yc, xc)| {
                for (yr, xr) in yc.chunks_exact_mut(i).zip(xc.chunks_exact(w)) {
                    let (g, u) = xr.split_at(i);
                    fwd_chunk_d(g, u, yr);
                }
            });
        }
        Ok((CpuStorage::F32(y), Shape::from((n, i))))
    }

    fn bwd(&self, gu: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let _prof = super::prof::timer("swiglu bwd");
        let (n, w) = gu.dims2()?;
        let i = w / 2;
        let d = with_f32(gu, "swiglu packed bwd", |x| {
            with_f32(dy, "swiglu packed bwd", |dy| {
                let mut d = super::zeros(n * w);
                if i > 0 {
                    d.par_chunks_mut(PROWS * w).zip(x.par_chunks(PROWS * w).zip(dy.par_chunks(PROWS * i))).for_each(
                        |(dc, (xc, dyc))| {
                            for ((dr, xr), dyr) in
                                dc.chunks_exact_mut(w).zip(xc.chunks_exact(w)).zip(dyc.chunks_exact(i))
                            {
                                let (g, u) = xr.split_at(i);
                                let (dg, du) = dr.split_at_mut(i);
                                bwd_chunk_d(g, u, dyr, dg, du);
                            }
                        },
                    );
                }
                d
            })
        })??;
        Ok(Some(cpu_tensor(d, &[n, w])?))
    }
}

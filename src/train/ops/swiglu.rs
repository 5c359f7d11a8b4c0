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
    for i in 0..y.len() {
        y[i] = g[i] * sigmoid::<F>(g[i]) * u[i];
    }
}
dispatch!(fn fwd_chunk_d => fwd_chunk(g: &[f32], u: &[f32], y: &mut [f32]));

#[inline(always)]
fn bwd_chunk<const F: bool>(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]) {
    for i in 0..dg.len() {
        let s = sigmoid::<F>(g[i]);
        let silu = g[i] * s;
        du[i] = dy[i] * silu;
        dg[i] = dy[i] * u[i] * (s * (1.0 + g[i] * (1.0 - s)));
    }
}
dispatch!(fn bwd_chunk_d => bwd_chunk(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]));

impl CustomOp2 for SwiGluOp {
    fn name(&self) -> &'static str {
        "engine-swiglu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = cpu_f32(s1, l1, "swiglu gate")?;
        let u = cpu_f32(s2, l2, "swiglu up")?;
        let mut y = vec![0f32; g.len()];
        y.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|(y, (g, u))| fwd_chunk_d(g, u, y));
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, gate: &Tensor, up: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dg, du) = with_f32(gate, "swiglu bwd", |g| {
            with_f32(up, "swiglu bwd", |u| {
                with_f32(dy, "swiglu bwd", |dy| {
                    let mut dg = vec![0f32; g.len()];
                    let mut du = vec![0f32; g.len()];
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

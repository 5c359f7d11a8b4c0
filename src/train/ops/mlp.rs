//! The whole SwiGLU MLP as one op: `y = (silu(h·Wgᵀ) ⊙ (h·Wuᵀ)) · Wdᵀ`, with the gate and up
//! weights packed as `w_gu = [Wg; Wu]` (`[2I, H]`) and `w_down` `[H, I]`.
//!
//! Fusing keeps the two large intermediates (`[N, 2I]` and `[N, I]`) out of the autograd graph:
//! candle accumulates every gradient that flows along a graph edge into a fresh zero tensor,
//! which for these two costs more memory traffic than the SwiGLU itself.

use super::swiglu::{bwd_chunk_d, fwd_chunk_d};
use super::{cpu_f32, cpu_tensor, Kernels};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// SwiGLU MLP of `h` `[N, H]`; see the module doc.
pub fn mlp(h: &Tensor, w_gu: &Tensor, w_down: &Tensor, kernels: Kernels) -> Result<Tensor> {
    let (_n, hd) = h.dims2()?;
    let (two_i, hd2) = w_gu.dims2()?;
    let (hd3, i) = w_down.dims2()?;
    if hd2 != hd || hd3 != hd || two_i != 2 * i {
        candle_core::bail!("mlp: h {:?}, w_gu {:?}, w_down {:?}", h.dims(), w_gu.dims(), w_down.dims());
    }
    match kernels.effective(h.device(), h.dtype()) {
        Kernels::Fused => {
            h.contiguous()?.apply_op3(&w_gu.contiguous()?, &w_down.contiguous()?, MlpOp { saved: Mutex::new(None) })
        }
        Kernels::Composite => {
            let gu = super::linear(h, w_gu, None, Kernels::Composite)?;
            let act = super::swiglu_packed(&gu, Kernels::Composite)?;
            super::linear(&act, w_down, None, Kernels::Composite)
        }
    }
}

struct MlpOp {
    /// (gu [N, 2I], act [N, I]) from the forward.
    saved: Mutex<Option<(Vec<f32>, Vec<f32>)>>,
}

const ROWS: usize = 16;

/// act = silu(gate) ⊙ up, row by row from the packed `gu`.
pub(crate) fn swiglu_rows(gu: &[f32], n: usize, i: usize) -> Vec<f32> {
    let mut act = super::zeros(n * i);
    if i > 0 {
        act.par_chunks_mut(ROWS * i).zip(gu.par_chunks(ROWS * 2 * i)).for_each(|(ac, gc)| {
            for (ar, gr) in ac.chunks_exact_mut(i).zip(gc.chunks_exact(2 * i)) {
                let (g, u) = gr.split_at(i);
                fwd_chunk_d(g, u, ar);
            }
        });
    }
    act
}

impl MlpOp {
    fn forward(
        &self,
        sh: &CpuStorage,
        lh: &Layout,
        sgu: &CpuStorage,
        lgu: &Layout,
    ) -> Result<(Vec<f32>, Vec<f32>, usize, usize)> {
        let (n, hd) = (lh.dims()[0], lh.dims()[1]);
        let i = lgu.dims()[0] / 2;
        let gu = super::sgemm::x_wt(cpu_f32(sh, lh, "mlp h")?, cpu_f32(sgu, lgu, "mlp w_gu")?, n, hd, 2 * i);
        let act = swiglu_rows(&gu, n, i);
        Ok((gu, act, n, i))
    }
}

impl CustomOp3 for MlpOp {
    fn name(&self) -> &'static str {
        "engine-swiglu-mlp"
    }

    fn cpu_fwd(
        &self,
        sh: &CpuStorage,
        lh: &Layout,
        sgu: &CpuStorage,
        lgu: &Layout,
        sd: &CpuStorage,
        ld: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("mlp fwd");
        cpu_f32(sh, lh, "mlp h")?;
        cpu_f32(sgu, lgu, "mlp w_gu")?;
        cpu_f32(sd, ld, "mlp w_down")?;
        let (gu, act, n, i) = self.forward(sh, lh, sgu, lgu)?;
        let hd = ld.dims()[0];
        let y = super::sgemm::x_wt(&act, cpu_f32(sd, ld, "mlp w_down")?, n, i, hd);
        *self.saved.lock().unwrap() = Some((gu, act));
        Ok((CpuStorage::F32(y), Shape::from((n, hd))))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w_gu: &Tensor,
        w_down: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let _prof = super::prof::timer("mlp bwd");
        let (n, _hd) = h.dims2()?;
        let i = w_down.dim(1)?;
        let (h, w_gu, w_down) = (h.detach(), w_gu.detach(), w_down.detach());
        let (gu, act) = match self.saved.lock().unwrap().take() {
            Some(x) => x,
            None => {
                let gu = super::sgemm::mm(&h, false, &w_gu, true)?.flatten_all()?.to_vec1::<f32>()?;
                let act = swiglu_rows(&gu, n, i);
                (gu, act)
            }
        };
        let act = cpu_tensor(act, &[n, i])?;
        let dact = super::sgemm::mm(dy, false, &w_down, false)?; // [N, I]
        let dw_down = super::sgemm::mm(dy, true, &act, false)?; // [H, I]
        drop(act);
        let dgu = super::with_f32(&dact, "mlp bwd", |da| swiglu_bwd_rows(&gu, da, n, i))?;
        drop(gu);
        let dgu = cpu_tensor(dgu, &[n, 2 * i])?;
        let dw_gu = super::sgemm::mm(&dgu, true, &h, false)?; // [2I, H]
        let dh = super::sgemm::mm(&dgu, false, &w_gu, false)?; // [N, H]
        Ok((Some(dh), Some(dw_gu), Some(dw_down)))
    }
}

/// Packed SwiGLU backward: d[gate | up] `[N, 2I]` from gu `[N, 2I]` and d(act) `[N, I]`.
pub(crate) fn swiglu_bwd_rows(gu: &[f32], da: &[f32], n: usize, i: usize) -> Vec<f32> {
    let mut d = super::zeros(n * 2 * i);
    if i > 0 {
        d.par_chunks_mut(ROWS * 2 * i).zip(gu.par_chunks(ROWS * 2 * i).zip(da.par_chunks(ROWS * i))).for_each(
            |(dc, (gc, dac))| {
                for ((dr, gr), dar) in dc.chunks_exact_mut(2 * i).zip(gc.chunks_exact(2 * i)).zip(dac.chunks_exact(i)) {
                    let (g, u) = gr.split_at(i);
                    let (dg, du) = dr.split_at_mut(i);
                    bwd_chunk_d(g, u, dar, dg, du);
                }
            },
        );
    }
    d
}

//! Linear layer `y = x·wᵀ (+ b)` for `x` `[N, in]`, `w` `[out, in]` (PyTorch layout).
//!
//! The fused op multiplies the storages directly (`sgemm`: gemm's bits, faster on AVX2 CPUs)
//! and, in the backward, produces `dw = dyᵀ·x` in the weight's own layout (no transposed
//! gradient views, one graph node instead of transpose + matmul).

use super::Kernels;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `x [N, in] · wᵀ (+ b)`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, kernels: Kernels) -> Result<Tensor> {
    let y = match kernels.effective(x.device(), x.dtype()) {
        Kernels::Fused => x.apply_op2(w, LinearOp)?,
        Kernels::Composite => x.matmul(&w.t()?)?,
    };
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

struct LinearOp;

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "engine-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("linear fwd");
        let (&[n, k], &[o, k2]) = (l1.dims(), l2.dims()) else {
            candle_core::bail!("linear: x {:?}, w {:?} (2-D expected)", l1.dims(), l2.dims());
        };
        if k != k2 {
            candle_core::bail!("linear: x {:?} vs w {:?}", l1.dims(), l2.dims());
        }
        let (x, w) = (super::cpu_f32(s1, l1, "linear x")?, super::cpu_f32(s2, l2, "linear w")?);
        Ok((CpuStorage::F32(super::sgemm::x_wt(x, w, n, k, o)), Shape::from((n, o))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _prof = super::prof::timer("linear bwd");
        let (x, w) = (x.detach(), w.detach());
        let dx = super::sgemm::mm(dy, false, &w, false)?;
        let dw = super::sgemm::mm(dy, true, &x, false)?;
        Ok((Some(dx), Some(dw)))
    }
}

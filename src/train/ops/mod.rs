//! Differentiable operators of the training forward, each in two implementations:
//! `Kernels::Fused` (candle `CustomOp`s with hand-written CPU f32 kernels and backward passes,
//! parallelised with rayon, deterministic for any thread count) and `Kernels::Composite` (plain
//! differentiable candle ops: the test oracle and the path used on non-CPU devices).

pub mod attention;
pub mod block;
pub mod linear;
pub mod lmhead;
pub mod mlp;
pub mod prof;
pub mod rmsnorm;
pub mod rope;
pub(crate) mod sgemm;
pub(crate) mod simd;
pub mod swiglu;
pub mod xent;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, Layout, Result, Storage, Tensor};

pub use attention::{causal_attention, qkv_rope_attention, Seqs};
pub use block::{attn_block, mlp_block};
pub use linear::linear;
pub use lmhead::lm_head_cross_entropy;
pub use mlp::mlp;
pub use rmsnorm::rms_norm;
pub use rope::{rope, RopeTables};
pub use swiglu::{swiglu, swiglu_packed};
pub use xent::{cross_entropy, token_nll_from_logits};

/// Which implementation of the hot operators to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// Custom CPU ops with backward (f32, CPU only).
    #[default]
    Fused,
    /// Composite candle ops (any device, any float dtype).
    Composite,
}

impl Kernels {
    /// The kernels actually usable for tensors of `dtype` on `device`: fused ops are CPU/f32
    /// only (they have no `cuda_fwd`), so anything else falls back to the composite path.
    pub fn effective(self, device: &Device, dtype: DType) -> Kernels {
        match self {
            Kernels::Fused if device.is_cpu() && dtype == DType::F32 => Kernels::Fused,
            _ => Kernels::Composite,
        }
    }
}

/// Number of rows processed by one task in row-parallel kernels. Fixed (not derived from the
/// thread count) so that reductions over rows are identical for any number of threads.
pub(crate) const ROW_CHUNK: usize = 64;

/// Contiguous f32 view of a CPU storage.
pub(crate) fn cpu_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("{what}: fused kernels need f32, got {:?}", s.dtype()),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: fused kernels need a contiguous input"),
    }
}

/// Runs `f` on the contiguous f32 data of a CPU tensor (copying only when not contiguous).
pub fn with_f32<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = if t.is_contiguous() { t.clone() } else { t.contiguous()? };
    let (guard, layout) = t.storage_and_layout();
    match &*guard {
        Storage::Cpu(s) => Ok(f(cpu_f32(s, layout, what)?)),
        _ => candle_core::bail!("{what}: fused kernels run on CPU only"),
    }
}

/// A zero-filled vector; large ones are filled by the rayon pool rather than by one thread's
/// `calloc` memset (which leaves the other cores idle).
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    use rayon::prelude::*;
    if n < (1 << 16) {
        return vec![0f32; n];
    }
    let mut v = Vec::with_capacity(n);
    v.par_extend(rayon::iter::repeat_n(0f32, n));
    v
}

/// Scalar value of a one-element f32 tensor.
pub(crate) fn scalar_f32(t: &Tensor) -> Result<f32> {
    t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>().map(|v| v[0])
}

pub(crate) fn cpu_tensor(v: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(v, shape, &Device::Cpu)
}

/// Maximum relative error `max|a-b| / max(max|b|, tiny)` between two tensors (test helper).
pub fn max_rel_err(a: &Tensor, b: &Tensor) -> Result<f32> {
    let a = a.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let b = b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    if a.len() != b.len() {
        candle_core::bail!("max_rel_err: {} vs {} elements", a.len(), b.len());
    }
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    let diff = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    if a.iter().chain(&b).any(|x| !x.is_finite()) {
        return Ok(f32::INFINITY);
    }
    Ok(diff / scale)
}

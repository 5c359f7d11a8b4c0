//! Rotary position embedding, Hugging Face "rotate_half" convention:
//! out[i] = x[i]·cos − x[i+D/2]·sin, out[i+D/2] = x[i+D/2]·cos + x[i]·sin (i < D/2).

use super::{cpu_tensor, with_f32, Kernels};
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// cos/sin tables `[max_pos, head_dim/2]` (f32), as transformers computes them.
#[derive(Clone, Debug)]
pub struct RopeTables {
    pub head_dim: usize,
    pub max_pos: usize,
    cos_v: Arc<Vec<f32>>,
    sin_v: Arc<Vec<f32>>,
    /// `[max_pos, head_dim/2]` on the model's device and dtype (composite path).
    pub cos: Tensor,
    pub sin: Tensor,
}

impl RopeTables {
    pub fn new(head_dim: usize, max_pos: usize, theta: f64, device: &Device, dtype: DType) -> Result<Self> {
        let half = head_dim / 2;
        // transformers: inv_freq = 1 / base ** (arange(0, dim, 2).float() / dim), in f32.
        let inv: Vec<f32> = (0..half).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32)).collect();
        let mut cos_v = Vec::with_capacity(max_pos * half);
        let mut sin_v = Vec::with_capacity(max_pos * half);
        for p in 0..max_pos {
            for &f in &inv {
                let a = (p as f32 * f) as f64;
                cos_v.push(a.cos() as f32);
                sin_v.push(a.sin() as f32);
            }
        }
        let cos = Tensor::from_slice(&cos_v, (max_pos, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_slice(&sin_v, (max_pos, half), device)?.to_dtype(dtype)?;
        Ok(Self { head_dim, max_pos, cos_v: Arc::new(cos_v), sin_v: Arc::new(sin_v), cos, sin })
    }
}

impl RopeTables {
    /// The cos table as a shared f32 vector `[max_pos · head_dim/2]`.
    pub(crate) fn cos_vec(&self) -> Arc<Vec<f32>> {
        self.cos_v.clone()
    }
    /// The sin table as a shared f32 vector `[max_pos · head_dim/2]`.
    pub(crate) fn sin_vec(&self) -> Arc<Vec<f32>> {
        self.sin_v.clone()
    }
}

/// RoPE on `x` of shape `[B, T, H, D]` at positions `0..T`. The fused path reads `x` through its
/// strides (a `narrow` of a packed qkv projection needs no copy) and returns a contiguous tensor.
pub fn rope(x: &Tensor, tables: &RopeTables, kernels: Kernels) -> Result<Tensor> {
    let (_b, t, _h, d) = x.dims4()?;
    if d != tables.head_dim || t > tables.max_pos {
        candle_core::bail!(
            "rope: input {:?} vs tables head_dim {} max_pos {}",
            x.dims(),
            tables.head_dim,
            tables.max_pos
        );
    }
    match kernels.effective(x.device(), x.dtype()) {
        Kernels::Fused => {
            let x = if x.stride()[3] == 1 { x.clone() } else { x.contiguous()? };
            x.apply_op1(RopeOp { cos: tables.cos_v.clone(), sin: tables.sin_v.clone(), sign: 1.0 })
        }
        Kernels::Composite => rope_composite(x, &tables.cos.narrow(0, 0, t)?, &tables.sin.narrow(0, 0, t)?),
    }
}

/// Differentiable composite reference; `cos`/`sin` are `[T, D/2]` (or broadcastable to
/// `[B, T, 1, D/2]`, e.g. `[B, T, 1, D/2]` for per-row positions).
pub fn rope_composite(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, t, _h, d) = x.dims4()?;
    let half = d / 2;
    let (cos, sin) = if cos.rank() == 2 {
        (cos.reshape((1, t, 1, half))?, sin.reshape((1, t, 1, half))?)
    } else {
        (cos.reshape((b, t, 1, half))?, sin.reshape((b, t, 1, half))?)
    };
    let x1 = x.narrow(3, 0, half)?;
    let x2 = x.narrow(3, half, half)?;
    let o1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
    let o2 = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
    Tensor::cat(&[o1, o2], 3)
}

struct RopeOp {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    /// +1 forward rotation, −1 its transpose (backward).
    sign: f32,
}

/// Rotates every `[D]` row of a strided `[B,T,H,D]` view (`x_at(b,t,h)` gives the row start)
/// into the contiguous `out`.
fn rotate(
    src: &[f32],
    dims: [usize; 4],
    strides: [usize; 3],
    start: usize,
    cos: &[f32],
    sin: &[f32],
    sign: f32,
) -> Vec<f32> {
    let [b, t, h, d] = dims;
    let half = d / 2;
    let mut out = super::zeros(b * t * h * d);
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(h * d).enumerate().for_each(|(bt, o)| {
        let (bi, ti) = (bt / t, bt % t);
        let c = &cos[ti * half..ti * half + half];
        let s = &sin[ti * half..ti * half + half];
        for hi in 0..h {
            let base = start + bi * strides[0] + ti * strides[1] + hi * strides[2];
            let xr = &src[base..base + d];
            let or = &mut o[hi * d..hi * d + d];
            let (o1, o2) = or.split_at_mut(half);
            let (x1, x2) = xr.split_at(half);
            for i in 0..half {
                let si = sign * s[i];
                o1[i] = x1[i] * c[i] - x2[i] * si;
                o2[i] = x2[i] * c[i] + x1[i] * si;
            }
        }
    });
    out
}

impl CustomOp1 for RopeOp {
    fn name(&self) -> &'static str {
        "engine-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("rope fwd");
        let data = match s {
            CpuStorage::F32(v) => v.as_slice(),
            _ => candle_core::bail!("rope: fused kernel needs f32"),
        };
        let dims: [usize; 4] =
            l.dims().try_into().map_err(|_| candle_core::Error::Msg("rope: rank 4 expected".into()))?;
        let st = l.stride();
        if st[3] != 1 {
            candle_core::bail!("rope: last dimension must be contiguous");
        }
        let out = rotate(data, dims, [st[0], st[1], st[2]], l.start_offset(), &self.cos, &self.sin, self.sign);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let _prof = super::prof::timer("rope bwd");
        let (b, t, h, d) = x.dims4()?;
        let dx = with_f32(dy, "rope bwd", |g| {
            rotate(g, [b, t, h, d], [t * h * d, h * d, d], 0, &self.cos, &self.sin, -self.sign)
        })?;
        Ok(Some(cpu_tensor(dx, &[b, t, h, d])?))
    }
}

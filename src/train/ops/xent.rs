//! Token-weighted cross-entropy over the vocabulary:
//! loss = Σ_i w_i · (logsumexp(logits_i) − logits_i[t_i]) / Σ_i w_i.
//!
//! The fused forward computes the gradient w.r.t. the logits in the same pass over the
//! `[N, V]` matrix (softmax − one-hot, scaled by w_i / Σw) and keeps it in the op until the
//! backward asks for it, so the logits are read once and no log-softmax matrix is built.

use super::simd::{self, dispatch, exp};
use super::{cpu_f32, cpu_tensor, scalar_f32, Kernels};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;
use std::sync::Mutex;

const ROWS: usize = 16;

/// Weighted mean negative log-likelihood. `logits` `[N, V]` (f32 for the fused path),
/// `targets` u32 `[N]`, `weights` `[N]` (0 = ignore). Returns a scalar; 0 when Σw = 0.
/// Every target must be `< V` (also those of weight 0).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, weights: &Tensor, kernels: Kernels) -> Result<Tensor> {
    let (n, v) = logits.dims2()?;
    let (t, w) = read_targets(targets, weights, n, v, "cross_entropy")?;
    match kernels.effective(logits.device(), logits.dtype()) {
        Kernels::Fused => {
            let wsum: f64 = w.iter().map(|&x| x as f64).sum();
            logits.contiguous()?.apply_op1(XentOp { targets: t, weights: w, wsum, dlogits: Mutex::new(None) })
        }
        Kernels::Composite => {
            let targets = Tensor::from_vec(t, n, logits.device())?;
            let nll = nll_composite(logits, &targets)?;
            let weights = weights.flatten_all()?.to_dtype(nll.dtype())?;
            let wsum = weights.sum_all()?;
            let denom = wsum.maximum(1e-12)?;
            (nll * &weights)?.sum_all()?.div(&denom)
        }
    }
}

/// A loss's targets (u32) and weights (f32) on the host, checked: `n` of each, every target
/// `< v`. `what` names the loss in errors.
pub(crate) fn read_targets(
    targets: &Tensor,
    weights: &Tensor,
    n: usize,
    v: usize,
    what: &str,
) -> Result<(Vec<u32>, Vec<f32>)> {
    let t = targets.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    let w = weights.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    if t.len() != n || w.len() != n {
        candle_core::bail!("{what}: {n} rows, {} targets, {} weights", t.len(), w.len());
    }
    if let Some((i, &bad)) = t.iter().enumerate().find(|(_, &x)| x as usize >= v) {
        candle_core::bail!("cross_entropy: target {bad} at position {i} is out of the vocabulary ({v})");
    }
    Ok((t, w))
}

/// Per-row NLL `[N]`, differentiable composite ops (half-precision logits are upcast to f32:
/// a log-sum-exp over a large vocabulary in bf16 loses the loss's low digits).
pub fn nll_composite(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logits = &match logits.dtype() {
        DType::F32 | DType::F64 => logits.clone(),
        _ => logits.to_dtype(DType::F32)?,
    };
    let m = logits.max_keepdim(D::Minus1)?.detach();
    let z = logits.broadcast_sub(&m)?;
    let lse = z.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let zt = z.gather(&targets.unsqueeze(1)?.contiguous()?, 1)?;
    (lse - zt)?.squeeze(1)
}

/// Per-row NLL `[N]` without gradient (fused on CPU/f32, composite elsewhere).
pub fn token_nll_from_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, v) = logits.dims2()?;
    if !(logits.device().is_cpu() && logits.dtype() == DType::F32) {
        return nll_composite(&logits.detach(), &targets.flatten_all()?.to_dtype(DType::U32)?);
    }
    let t = targets.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    if t.len() != n || t.iter().any(|&x| x as usize >= v) {
        candle_core::bail!("token_nll: {} targets for {n} rows (or target ≥ vocab {v})", t.len());
    }
    let out = super::with_f32(logits, "token_nll", |x| {
        let mut out = vec![0f32; n];
        out.par_chunks_mut(ROWS).enumerate().for_each(|(c, o)| {
            for (k, o) in o.iter_mut().enumerate() {
                let i = c * ROWS + k;
                let row = &x[i * v..(i + 1) * v];
                *o = row_lse_d(row) - row[t[i] as usize];
            }
        });
        out
    })?;
    cpu_tensor(out, &[n])
}

fn row_lse_d(row: &[f32]) -> f32 {
    let mut out = 0f32;
    row_lse_into(row, &mut out);
    out
}

#[inline(always)]
fn row_lse<const F: bool>(row: &[f32], out: &mut f32) {
    let m = simd::max(row);
    let s = simd::sum_by(row, |x| exp::<F>(x - m));
    *out = m + s.ln();
}
dispatch!(fn row_lse_into => row_lse(row: &[f32], out: &mut f32));

/// One row: returns nll, writes (softmax − onehot)·scale into `d`.
#[inline(always)]
fn row_fwd<const F: bool>(row: &[f32], t: usize, scale: f32, d: &mut [f32], out: &mut f32) {
    let m = simd::max(row);
    let d = &mut d[..row.len()];
    for (o, &x) in d.iter_mut().zip(row) {
        *o = exp::<F>(x - m);
    }
    let s = simd::sum(d);
    let k = scale / s;
    for x in d.iter_mut() {
        *x *= k;
    }
    d[t] -= scale;
    *out = m + s.ln() - row[t];
}
dispatch!(fn row_fwd_d => row_fwd(row: &[f32], t: usize, scale: f32, d: &mut [f32], out: &mut f32));

struct XentOp {
    targets: Vec<u32>,
    weights: Vec<f32>,
    wsum: f64,
    dlogits: Mutex<Option<Vec<f32>>>,
}

impl XentOp {
    /// (loss, dloss/dlogits)
    fn compute(&self, x: &[f32], v: usize) -> (f32, Vec<f32>) {
        let n = self.targets.len();
        let inv = if self.wsum > 0.0 { 1.0 / self.wsum } else { 0.0 };
        let mut d = vec![0f32; n * v];
        let partial: Vec<f64> = d
            .par_chunks_mut(ROWS * v)
            .enumerate()
            .map(|(c, dc)| {
                let mut acc = 0f64;
                for (k, drow) in dc.chunks_exact_mut(v).enumerate() {
                    let i = c * ROWS + k;
                    let w = self.weights[i];
                    if w == 0.0 {
                        continue; // row stays zero
                    }
                    let mut nll = 0f32;
                    row_fwd_d(
                        &x[i * v..(i + 1) * v],
                        self.targets[i] as usize,
                        (w as f64 * inv) as f32,
                        drow,
                        &mut nll,
                    );
                    acc += w as f64 * nll as f64;
                }
                acc
            })
            .collect();
        let total: f64 = partial.iter().sum();
        ((total * inv) as f32, d)
    }
}

impl CustomOp1 for XentOp {
    fn name(&self) -> &'static str {
        "engine-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("xent fwd");
        let x = cpu_f32(s, l, "cross_entropy logits")?;
        let v = l.dims()[1];
        let (loss, d) = self.compute(x, v);
        *self.dlogits.lock().unwrap() = Some(d);
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    fn bwd(&self, logits: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let _prof = super::prof::timer("xent bwd");
        let (n, v) = logits.dims2()?;
        let d = match self.dlogits.lock().unwrap().take() {
            Some(d) => d,
            None => super::with_f32(logits, "cross_entropy bwd", |x| self.compute(x, v).1)?,
        };
        let g = scalar_f32(g)?;
        let mut d = d;
        if g != 1.0 {
            d.par_chunks_mut(ROWS * v).for_each(|c| c.iter_mut().for_each(|x| *x *= g));
        }
        Ok(Some(cpu_tensor(d, &[n, v])?))
    }
}

//! AdamW with decoupled weight decay (not applied to 1-D parameters: norms and biases), bias
//! correction, global-norm gradient clipping, per-step learning rate, and exact save/load of its
//! state. State is keyed by parameter name, sorted, so runs are reproducible (VarMap order is
//! arbitrary).
//!
//! Gradient accumulation over micro-batches: either scale each micro-batch loss by its share of
//! the tokens (`loss_i · Σw_i / Σw_total`) and sum the [`GradStore`]s with [`GradAccum`] (or
//! `GradStore::extend`), or sum the scaled losses before one `backward`.

use super::ops::ROW_CHUNK;
use crate::model::resolve_freeze;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Result, Tensor, Var};
use candle_nn::VarMap;
use rayon::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

/// Hyper-parameters (the learning rate is given at every step).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// PyTorch's defaults except weight decay 0.1.
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 }
    }
}

enum Moments {
    /// CPU f32 parameters: moments updated in place by one fused pass.
    Cpu { m: Vec<f32>, v: Vec<f32> },
    /// Any other device/dtype: f32 tensors updated with tensor ops.
    Tensor { m: Tensor, v: Tensor },
}

struct Param {
    name: String,
    var: Var,
    decay: bool,
    /// Left as it is (`train.freeze`): no update, and not in the gradient norm.
    frozen: bool,
    state: Moments,
}

/// AdamW optimizer over the variables of a `VarMap`.
pub struct AdamW {
    cfg: AdamWConfig,
    params: Vec<Param>,
    step: u64,
}

/// Sums gradients over micro-batches.
#[derive(Default)]
pub struct GradAccum {
    grads: Option<GradStore>,
}

impl GradAccum {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds the gradients of one micro-batch.
    pub fn add(&mut self, g: GradStore) -> Result<()> {
        match &mut self.grads {
            None => self.grads = Some(g),
            Some(acc) => acc.extend(g)?,
        }
        Ok(())
    }
    /// The summed gradients (None if nothing was added); resets the accumulator.
    pub fn take(&mut self) -> Option<GradStore> {
        self.grads.take()
    }
}

fn is_cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// Σ x² in f64 with a fixed chunking (thread-count independent).
fn sumsq_f64(x: &[f32]) -> f64 {
    let parts: Vec<f64> =
        x.par_chunks(ROW_CHUNK * 256).map(|c| c.iter().map(|&v| v as f64 * v as f64).sum::<f64>()).collect();
    parts.iter().sum()
}

struct Update<'a> {
    g: &'a [f32],
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
    k: Coeffs,
}

#[derive(Clone, Copy)]
struct Coeffs {
    b1: f32,
    b2: f32,
    eps: f32,
    gscale: f32,
    decay_mul: f32,
    step_size: f32,
    bc2_sqrt: f32,
}

impl InplaceOp1 for Update<'_> {
    fn name(&self) -> &'static str {
        "engine-adamw"
    }
    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let w = match s {
            CpuStorage::F32(w) => w,
            _ => candle_core::bail!("adamw: f32 expected"),
        };
        let (a, b) =
            l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("adamw: non-contiguous var".into()))?;
        let w = &mut w[a..b];
        let mut m = self.m.borrow_mut();
        let mut v = self.v.borrow_mut();
        let k = self.k;
        const C: usize = 16 * 1024;
        w.par_chunks_mut(C).zip(m.par_chunks_mut(C).zip(v.par_chunks_mut(C))).zip(self.g.par_chunks(C)).for_each(
            |((w, (m, v)), g)| {
                let n = w.len();
                let (m, v, g) = (&mut m[..n], &mut v[..n], &g[..n]);
                for i in 0..n {
                    let gi = g[i] * k.gscale;
                    m[i] = k.b1 * m[i] + (1.0 - k.b1) * gi;
                    v[i] = k.b2 * v[i] + (1.0 - k.b2) * gi * gi;
                    let denom = v[i].sqrt() / k.bc2_sqrt + k.eps;
                    w[i] = w[i] * k.decay_mul - k.step_size * m[i] / denom;
                }
            },
        );
        Ok(())
    }
}

impl AdamW {
    /// Tracks every variable of `varmap` (sorted by name).
    pub fn new(varmap: &VarMap, cfg: AdamWConfig) -> Result<Self> {
        let data = varmap.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let mut params = Vec::with_capacity(names.len());
        for name in names {
            let var = data[name].clone();
            let t = var.as_tensor();
            let state = if is_cpu_f32(t) {
                Moments::Cpu { m: vec![0.0; t.elem_count()], v: vec![0.0; t.elem_count()] }
            } else {
                let z = Tensor::zeros(t.shape(), DType::F32, t.device())?;
                Moments::Tensor { m: z.clone(), v: z }
            };
            params.push(Param { name: name.clone(), decay: t.rank() >= 2, frozen: false, var, state });
        }
        Ok(AdamW { cfg, params, step: 0 })
    }

    /// Leave the parameters whose names start with one of `prefixes` as they are. A prefix
    /// that names no parameter is an error (`train.freeze`), listing the names.
    pub fn freeze(&mut self, prefixes: &[String]) -> anyhow::Result<()> {
        let names: Vec<String> = self.params.iter().map(|p| p.name.clone()).collect();
        for f in resolve_freeze(prefixes, &names)? {
            for p in self.params.iter_mut().filter(|p| p.name.starts_with(f.as_str())) {
                p.frozen = true;
            }
        }
        Ok(())
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }
    /// Number of steps taken (restored by [`AdamW::load`]).
    pub fn step_count(&self) -> u64 {
        self.step
    }
    /// Parameter names in update order.
    pub fn param_names(&self) -> Vec<&str> {
        self.params.iter().map(|p| p.name.as_str()).collect()
    }

    /// Global L2 norm of the gradients of the tracked parameters.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0f64;
        // Other devices: per-parameter sums stay on the device, read back once (one sync).
        let mut on_device: Vec<Tensor> = Vec::new();
        for p in self.params.iter().filter(|p| !p.frozen) {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                if is_cpu_f32(g) {
                    total += super::ops::with_f32(g, "grad norm", sumsq_f64)?;
                } else if g.device().is_cpu() {
                    total += g.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
                } else {
                    on_device.push(g.to_dtype(DType::F32)?.sqr()?.sum_all()?);
                }
            }
        }
        if !on_device.is_empty() {
            total += Tensor::stack(&on_device, 0)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        }
        Ok(total.sqrt())
    }

    /// One AdamW step at learning rate `lr`; parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step_clipped(grads, lr, None).map(|_| ())
    }

    /// One step after scaling the gradients so that their global norm is at most `max_norm`
    /// (PyTorch's `clip_grad_norm_` rule). Returns the norm before clipping.
    pub fn step_clipped(&mut self, grads: &GradStore, lr: f64, max_norm: Option<f64>) -> Result<f64> {
        let norm = self.grad_norm(grads)?;
        if !norm.is_finite() {
            // Nothing is applied: the weights and moments stay as they were.
            return Ok(norm);
        }
        let gscale = match max_norm {
            Some(mx) if norm > mx => mx / (norm + 1e-6),
            _ => 1.0,
        };
        self.step += 1;
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        for p in self.params.iter_mut().filter(|p| !p.frozen) {
            let Some(g) = grads.get(p.var.as_tensor()) else { continue };
            let decay_mul = if p.decay { 1.0 - lr * c.weight_decay } else { 1.0 };
            match &mut p.state {
                Moments::Cpu { m, v } => {
                    let k = Coeffs {
                        b1: c.beta1 as f32,
                        b2: c.beta2 as f32,
                        eps: c.eps as f32,
                        gscale: gscale as f32,
                        decay_mul: decay_mul as f32,
                        step_size: (lr / bc1) as f32,
                        bc2_sqrt: bc2.sqrt() as f32,
                    };
                    super::ops::with_f32(g, "adamw grad", |g| {
                        let op = Update { g, m: RefCell::new(m.as_mut_slice()), v: RefCell::new(v.as_mut_slice()), k };
                        p.var.as_tensor().inplace_op1(&op)
                    })??;
                }
                Moments::Tensor { m, v } => {
                    let w = p.var.as_tensor();
                    let g = (g.to_dtype(DType::F32)? * gscale)?;
                    *m = ((&*m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
                    *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                    let denom = ((v.sqrt()? / bc2.sqrt())? + c.eps)?;
                    let upd = ((&*m / denom)? * (lr / bc1))?;
                    let neww = ((w.to_dtype(DType::F32)? * decay_mul)? - upd)?.to_dtype(w.dtype())?;
                    p.var.set(&neww)?;
                }
            }
        }
        Ok(norm)
    }

    /// Saves the moments (`<name>.m`, `<name>.v`, f32) and the step (`__step__`, i64) as
    /// safetensors.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut out: HashMap<String, Tensor> = HashMap::new();
        for p in &self.params {
            let shape = p.var.as_tensor().shape().clone();
            let (m, v) = match &p.state {
                Moments::Cpu { m, v } => (
                    Tensor::from_slice(m, &shape, &candle_core::Device::Cpu)?,
                    Tensor::from_slice(v, &shape, &candle_core::Device::Cpu)?,
                ),
                Moments::Tensor { m, v } => (m.clone(), v.clone()),
            };
            out.insert(format!("{}.m", p.name), m);
            out.insert(format!("{}.v", p.name), v);
        }
        out.insert("__step__".into(), Tensor::new(&[self.step as i64], &candle_core::Device::Cpu)?);
        candle_core::safetensors::save(&out, path)
    }

    /// Restores a state written by [`AdamW::save`] for the same parameters (names and shapes
    /// must match exactly; extra or missing entries are errors).
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let mut data = candle_core::safetensors::load(path, &candle_core::Device::Cpu)?;
        let step = data
            .remove("__step__")
            .ok_or_else(|| candle_core::Error::Msg("optimizer state: missing __step__".into()))?;
        let step = step.flatten_all()?.to_vec1::<i64>()?[0];
        let mut problems = Vec::new();
        let mut staged = Vec::new();
        for p in &self.params {
            let shape = p.var.as_tensor().shape().clone();
            let mut get = |suffix: &str| match data.remove(&format!("{}.{suffix}", p.name)) {
                None => {
                    problems.push(format!("missing {}.{suffix}", p.name));
                    None
                }
                Some(t) if t.shape() != &shape || t.dtype() != DType::F32 => {
                    problems.push(format!(
                        "{}.{suffix}: {:?} {:?}, expected {:?} F32",
                        p.name,
                        t.dims(),
                        t.dtype(),
                        shape.dims()
                    ));
                    None
                }
                Some(t) => Some(t),
            };
            let (m, v) = (get("m"), get("v"));
            staged.push((m, v));
        }
        let mut extra: Vec<&String> = data.keys().collect();
        extra.sort();
        problems.extend(extra.into_iter().map(|k| format!("unknown entry {k}")));
        if !problems.is_empty() {
            candle_core::bail!("optimizer state does not match the parameters: {}", problems.join("; "));
        }
        for (p, (m, v)) in self.params.iter_mut().zip(staged) {
            let (m, v) = (m.unwrap(), v.unwrap());
            p.state = match p.state {
                Moments::Cpu { .. } => Moments::Cpu { m: m.flatten_all()?.to_vec1()?, v: v.flatten_all()?.to_vec1()? },
                Moments::Tensor { .. } => {
                    let dev = p.var.as_tensor().device();
                    Moments::Tensor { m: m.to_device(dev)?, v: v.to_device(dev)? }
                }
            };
        }
        self.step = step as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// `train.freeze`: the named parameters stay bit for bit as they were, the others move; a
    /// name that matches nothing is bad input naming the field.
    #[test]
    fn frozen_parameters_are_left_as_they_are() {
        let varmap = VarMap::new();
        let init = candle_nn::Init::Const(0.5);
        let emb = varmap.get((2, 3), "model.embed_tokens.weight", init, DType::F32, &Device::Cpu).unwrap();
        let w = varmap.get((2, 3), "model.layers.0.mlp.up_proj.weight", init, DType::F32, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(&varmap, AdamWConfig::default()).unwrap();
        opt.freeze(&["model.embed_tokens".to_string()]).unwrap();
        let before = (emb.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        let loss = ((&emb * 2.0).unwrap() + (&w * 3.0).unwrap()).unwrap().sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let all = AdamW::new(&varmap, AdamWConfig::default()).unwrap().grad_norm(&grads).unwrap();
        assert!(opt.grad_norm(&grads).unwrap() < all, "a frozen parameter's gradient is not in the norm");
        opt.step(&grads, 1e-2).unwrap();
        assert_eq!(emb.to_vec2::<f32>().unwrap(), before.0, "frozen");
        assert_ne!(w.to_vec2::<f32>().unwrap(), before.1, "trained");
        let err = opt.freeze(&["model.embed".to_string(), "encoder.".to_string()]).unwrap_err();
        assert!(crate::error::is_bad_input(&err), "{err:#}");
        assert!(format!("{err:#}").contains("train.freeze: 'encoder.' names no parameter"), "{err:#}");
    }

    #[test]
    fn lm_head_names_the_embedding_of_a_tied_model() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let freeze = names(&["model.embed_tokens", "lm_head"]);
        let untied = names(&["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]);
        assert_eq!(resolve_freeze(&freeze, &untied).unwrap(), freeze);
        let tied = names(&["model.embed_tokens.weight", "model.norm.weight"]);
        assert_eq!(
            resolve_freeze(&freeze, &tied).unwrap(),
            names(&["model.embed_tokens", "model.embed_tokens.weight"])
        );
        assert_eq!(resolve_freeze(&names(&["lm_head.weight"]), &tied).unwrap(), names(&["model.embed_tokens.weight"]));
        let err = resolve_freeze(&names(&["lm_head.bias"]), &tied).unwrap_err();
        assert!(format!("{err:#}").contains("'lm_head.bias' names no parameter"), "{err:#}");
    }
}

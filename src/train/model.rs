//! Llama / Qwen2 decoder with Hugging Face weight names: training forward (differentiable
//! w.r.t. every parameter), token NLL for evaluation, and batched greedy generation with a KV
//! cache.

use super::ops::{self, Kernels, RopeTables, Seqs};
use crate::model::{param_specs, Init, ModelConfig};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, IndexOp, Result, Tensor, Var};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};

/// Errors of [`Model::from_varmap_checked`]: every problem is listed.
#[derive(Debug, thiserror::Error)]
#[error("weights do not match the config: {}", .problems.join("; "))]
pub struct WeightMismatch {
    pub problems: Vec<String>,
}

struct Layer {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    qb: Option<Tensor>,
    kb: Option<Tensor>,
    vb: Option<Tensor>,
    o: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
    ln1: Tensor,
    ln2: Tensor,
}

impl Layer {
    /// The layer's parameters.
    fn params(&self) -> impl Iterator<Item = &Tensor> {
        let fixed = [&self.q, &self.k, &self.v, &self.o, &self.gate, &self.up, &self.down, &self.ln1, &self.ln2];
        fixed.into_iter().chain([&self.qb, &self.kb, &self.vb].into_iter().flatten())
    }

    /// The same weights outside the autograd graph (shared storage): a forward through them
    /// records nothing, so its intermediates are freed as it goes.
    fn detached(&self) -> Layer {
        let od = |t: &Option<Tensor>| t.as_ref().map(Tensor::detach);
        Layer {
            q: self.q.detach(),
            k: self.k.detach(),
            v: self.v.detach(),
            qb: od(&self.qb),
            kb: od(&self.kb),
            vb: od(&self.vb),
            o: self.o.detach(),
            gate: self.gate.detach(),
            up: self.up.detach(),
            down: self.down.detach(),
            ln1: self.ln1.detach(),
            ln2: self.ln2.detach(),
        }
    }
}

/// How [`Model::block`] builds the stacked weights its fused ops take (`[Wq; Wk; Wv; wn]`,
/// `[Wg; Wu; wn]`, `[Wq; Wk; Wv]` and the q/k/v biases).
enum Stacks {
    /// `Tensor::cat` in the graph: any backward reaches the parts.
    Graph,
    /// Plain copies, each a leaf of its own, recorded with its parts; [`Stacks::spread`] hands
    /// each leaf's gradient to its parts as views of it. A step's backward then does no
    /// `cat` backward (a zero-filled buffer and an add for every part, on the main thread),
    /// with the same values. Only where the parts are the parameters themselves (CPU, f32
    /// parameters and compute).
    Leaves(RefCell<Vec<(Var, Vec<Tensor>)>>),
}

impl Stacks {
    fn leaves() -> Self {
        Stacks::Leaves(RefCell::new(Vec::new()))
    }

    /// `parts` one after another along dim 0: a vector among matrices as one row; vectors
    /// alone as one vector.
    fn stack(&self, parts: &[&Tensor]) -> Result<Tensor> {
        let matrices = parts.iter().any(|p| p.rank() == 2);
        match self {
            Stacks::Graph => {
                let rows: Vec<Tensor> = parts
                    .iter()
                    .map(|p| if matrices && p.rank() == 1 { p.unsqueeze(0) } else { Ok((*p).clone()) })
                    .collect::<Result<_>>()?;
                Tensor::cat(&rows, 0)
            }
            Stacks::Leaves(made) => {
                let width = parts.iter().map(|p| p.dim(p.rank() - 1)).collect::<Result<Vec<_>>>()?;
                let rows: usize =
                    parts.iter().map(|p| if p.rank() == 2 { p.dim(0) } else { Ok(1) }).sum::<Result<_>>()?;
                if matrices && width.iter().any(|&w| w != width[0]) {
                    candle_core::bail!("stack: parts of different widths {width:?}");
                }
                let len: usize = parts.iter().map(|p| p.elem_count()).sum();
                let mut data = Vec::with_capacity(len);
                for p in parts {
                    ops::with_f32(p, "stack", |v| data.extend_from_slice(v))?;
                }
                let shape: Vec<usize> = if matrices { vec![rows, width[0]] } else { vec![len] };
                let var = Var::from_vec(data, shape, &Device::Cpu)?;
                let t = var.as_tensor().clone();
                made.borrow_mut().push((var, parts.iter().map(|p| (*p).clone()).collect()));
                Ok(t)
            }
        }
    }

    /// Moves the gradient of every stack made since the last call from `grads` to its parts
    /// (views of it, no copy).
    fn spread(&self, grads: &mut GradStore) -> Result<()> {
        let Stacks::Leaves(made) = self else { return Ok(()) };
        for (var, parts) in made.borrow_mut().drain(..) {
            let Some(g) = grads.remove(var.as_tensor()) else { continue };
            let mut start = 0;
            for p in parts {
                let rows = if g.rank() == 2 && p.rank() == 1 { 1 } else { p.dim(0)? };
                let part = g.narrow(0, start, rows)?.reshape(p.shape())?;
                start += rows;
                // (a part used elsewhere in the graph too already has a gradient)
                let part = match grads.remove(&p) {
                    Some(other) => (other + part)?,
                    None => part,
                };
                grads.insert(&p, part);
            }
        }
        Ok(())
    }
}

/// The decoder. Parameters are the `VarMap`'s variables (shared storage): optimizer updates
/// through `Var::set` are seen by the model.
pub struct Model {
    cfg: ModelConfig,
    kernels: Kernels,
    device: Device,
    /// The parameters' dtype (the master copy the optimizer updates).
    dtype: DType,
    /// The dtype the forward computes in: weights are cast to it on use (differentiably, so
    /// gradients reach the master weights), e.g. bf16 compute over f32 parameters.
    compute: DType,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Option<Tensor>,
    rope: RopeTables,
    /// Gradient checkpointing: see [`Model::set_recompute`].
    recompute: bool,
    /// Rows a chunk of the composite output layer in [`Model::loss_and_grads`] (None: about
    /// 16 M logits a chunk).
    head_chunk: Option<usize>,
}

fn name_seed(seed: u64, name: &str) -> u64 {
    // FNV-1a of the name, mixed with the seed: each tensor has its own stream, independent
    // of the order in which tensors are created.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Standard normal samples (Box–Muller over the seeded ChaCha8 stream), scaled by `std`.
pub fn normal_vec(rng: &mut ChaCha8Rng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        out.push((r * a.cos() * std) as f32);
        out.push((r * a.sin() * std) as f32);
    }
    out.truncate(n);
    out
}

impl Model {
    /// Creates every parameter in `varmap` under its HF name, initialised deterministically
    /// from `seed` (normal std 0.02 for matrices, 1 for norms, 0 for biases). Fails if a name
    /// already exists in the map.
    pub fn new(cfg: &ModelConfig, varmap: &VarMap, device: &Device, dtype: DType, seed: u64) -> Result<Self> {
        cfg.validate().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        {
            let mut data = varmap.data().lock().unwrap();
            for spec in param_specs(cfg) {
                if data.contains_key(&spec.name) {
                    candle_core::bail!("Model::new: {} already exists in the VarMap", spec.name);
                }
                let n: usize = spec.shape.iter().product();
                let values = match spec.init {
                    Init::Normal => normal_vec(&mut ChaCha8Rng::seed_from_u64(name_seed(seed, &spec.name)), n, 0.02),
                    Init::Ones => vec![1f32; n],
                    Init::Zeros => vec![0f32; n],
                };
                let t = Tensor::from_vec(values, spec.shape.as_slice(), device)?.to_dtype(dtype)?;
                data.insert(spec.name.clone(), Var::from_tensor(&t)?);
            }
        }
        Self::from_varmap_checked(cfg, varmap)
    }

    /// Builds the model over the variables of `varmap` (e.g. loaded with
    /// [`load_varmap_safetensors`]): every expected name must exist with the right shape, and
    /// no other name may be present (`lm_head.weight` is tolerated, and ignored, when the
    /// embeddings are tied). All problems are reported together.
    pub fn from_varmap_checked(cfg: &ModelConfig, varmap: &VarMap) -> Result<Self> {
        cfg.validate().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let data = varmap.data().lock().unwrap();
        let specs = param_specs(cfg);
        let mut problems = Vec::new();
        let mut found: BTreeMap<String, Tensor> = BTreeMap::new();
        for s in &specs {
            match data.get(&s.name) {
                None => problems.push(format!("missing tensor {} (expected shape {:?})", s.name, s.shape)),
                Some(v) if v.dims() != s.shape.as_slice() => {
                    problems.push(format!("tensor {} has shape {:?}, expected {:?}", s.name, v.dims(), s.shape))
                }
                Some(v) => {
                    found.insert(s.name.clone(), v.as_tensor().clone());
                }
            }
        }
        let expected: HashSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let mut unknown: Vec<String> = data
            .iter()
            .filter(|(k, _)| !expected.contains(k.as_str()))
            .filter(|(k, v)| {
                !(cfg.tie_word_embeddings
                    && k.as_str() == "lm_head.weight"
                    && v.dims() == [cfg.vocab_size, cfg.hidden_size])
            })
            .map(|(k, v)| format!("unknown tensor {k} (shape {:?})", v.dims()))
            .collect();
        unknown.sort();
        problems.extend(unknown);
        let dtypes: HashSet<DType> = found.values().map(|t| t.dtype()).collect();
        if dtypes.len() > 1 {
            problems.push(format!("mixed dtypes {dtypes:?}"));
        }
        if !problems.is_empty() {
            return Err(candle_core::Error::wrap(WeightMismatch { problems }));
        }
        drop(data);
        let mut take = |n: &str| found.remove(n).expect("checked above");
        let embed = take("model.embed_tokens.weight");
        let device = embed.device().clone();
        let dtype = embed.dtype();
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let pre = format!("model.layers.{l}");
            let bias = |take: &mut dyn FnMut(&str) -> Tensor, n: &str| {
                if cfg.attention_bias {
                    Some(take(&format!("{pre}.self_attn.{n}_proj.bias")))
                } else {
                    None
                }
            };
            let qb = bias(&mut take, "q");
            let kb = bias(&mut take, "k");
            let vb = bias(&mut take, "v");
            layers.push(Layer {
                q: take(&format!("{pre}.self_attn.q_proj.weight")),
                k: take(&format!("{pre}.self_attn.k_proj.weight")),
                v: take(&format!("{pre}.self_attn.v_proj.weight")),
                qb,
                kb,
                vb,
                o: take(&format!("{pre}.self_attn.o_proj.weight")),
                gate: take(&format!("{pre}.mlp.gate_proj.weight")),
                up: take(&format!("{pre}.mlp.up_proj.weight")),
                down: take(&format!("{pre}.mlp.down_proj.weight")),
                ln1: take(&format!("{pre}.input_layernorm.weight")),
                ln2: take(&format!("{pre}.post_attention_layernorm.weight")),
            });
        }
        let norm = take("model.norm.weight");
        let lm_head = if cfg.tie_word_embeddings { None } else { Some(take("lm_head.weight")) };
        let rope = RopeTables::new(cfg.head_dim(), cfg.max_position_embeddings, cfg.rope_theta, &device, dtype)?;
        Ok(Model {
            cfg: cfg.clone(),
            kernels: Kernels::Fused.effective(&device, dtype),
            device,
            dtype,
            compute: dtype,
            embed,
            layers,
            norm,
            lm_head,
            rope,
            recompute: false,
            head_chunk: None,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// The dtype of the forward's arithmetic.
    pub fn compute_dtype(&self) -> DType {
        self.compute
    }
    /// Computes in `dt` over parameters kept in their own dtype (mixed precision: bf16 or f16
    /// compute over f32 master weights). Fused kernels need f32 compute; others fall back to
    /// the composite path.
    pub fn set_compute_dtype(&mut self, dt: DType) -> Result<()> {
        if dt != self.compute {
            let c = &self.cfg;
            self.rope = RopeTables::new(c.head_dim(), c.max_position_embeddings, c.rope_theta, &self.device, dt)?;
            self.compute = dt;
            self.kernels = self.kernels.effective(&self.device, dt);
        }
        Ok(())
    }

    /// A weight in the compute dtype (the same tensor when no cast is needed).
    fn cw(&self, t: &Tensor) -> Result<Tensor> {
        if t.dtype() == self.compute {
            Ok(t.clone())
        } else {
            t.to_dtype(self.compute)
        }
    }

    fn ocw(&self, t: &Option<Tensor>) -> Result<Option<Tensor>> {
        t.as_ref().map(|t| self.cw(t)).transpose()
    }
    /// The kernels in use (Fused on CPU/f32, Composite otherwise by default).
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }
    /// Selects the kernels; Fused silently becomes Composite where unsupported (non-CPU
    /// device or non-f32 dtype).
    pub fn set_kernels(&mut self, k: Kernels) {
        self.kernels = k.effective(&self.device, self.compute);
    }

    /// Gradient checkpointing (activation recomputation per block) in
    /// [`Model::loss_and_grads`]: the forward keeps each block's input only, and the backward
    /// runs each block's forward again, from the last, before differentiating it. Activation
    /// memory falls from every intermediate of every block to one block's plus an `[N, H]`
    /// input per block, for one more forward pass of the blocks. The gradients are the same,
    /// bit for bit: the same operations run in the same order.
    pub fn set_recompute(&mut self, on: bool) {
        self.recompute = on;
    }

    pub fn recompute(&self) -> bool {
        self.recompute
    }

    /// Rows a chunk of the composite output layer (tests).
    #[doc(hidden)]
    pub fn set_head_chunk_rows(&mut self, rows: usize) {
        self.head_chunk = Some(rows.max(1));
    }

    fn lm_head_weight(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    /// Final hidden states `[B·T, H]` (after the last norm) for the training forward.
    fn hidden(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        self.hidden_seqs(ids, &Seqs::uniform(b, t), &Stacks::Graph)
    }

    /// Whether [`Model::loss_packed`] can run: the fused CPU kernels with a head dim they
    /// block (a multiple of 16) keep sequences of different lengths apart in one row.
    pub fn can_pack(&self) -> bool {
        self.kernels == Kernels::Fused && self.cfg.head_dim() % 16 == 0
    }

    /// `ids` (N tokens in any shape) flattened to u32 after checking them against `seqs`.
    fn flat_ids(&self, ids: &Tensor, seqs: &Seqs) -> Result<Tensor> {
        if seqs.max_len() > self.rope.max_pos {
            candle_core::bail!(
                "sequence length {} exceeds max_position_embeddings {}",
                seqs.max_len(),
                self.rope.max_pos
            );
        }
        let ids = ids.flatten_all()?.to_dtype(DType::U32)?;
        if ids.dim(0)? != seqs.rows() {
            candle_core::bail!("{} token ids for sequences of {} rows", ids.dim(0)?, seqs.rows());
        }
        Ok(ids)
    }

    /// Final hidden states `[N, H]` of `ids` (N tokens in any shape), whose rows are the
    /// sequences `seqs`: positions restart at each and attention stays within each.
    fn hidden_seqs(&self, ids: &Tensor, seqs: &Seqs, stacks: &Stacks) -> Result<Tensor> {
        let ids = self.flat_ids(ids, seqs)?;
        let mut x = self.cw(&self.embed.index_select(&ids, 0)?)?; // [N, H]
        for l in &self.layers {
            x = self.block(&x, &self.cast_layer(l)?, seqs, stacks)?;
        }
        ops::rms_norm(&x, &self.cw(&self.norm)?, self.cfg.rms_norm_eps, self.kernels)
    }

    /// One decoder layer on the residual stream `x` `[N, H]`, its weights `l` in the compute dtype.
    fn block(&self, x: &Tensor, l: &Layer, seqs: &Seqs, stacks: &Stacks) -> Result<Tensor> {
        let k = self.kernels;
        let cfg = &self.cfg;
        let (nh, nkv, hd) = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim());
        let n = seqs.rows();
        if k == Kernels::Fused && !cfg.attention_bias && hd % 16 == 0 {
            // whole residual sub-blocks as single ops (norm weight as the last row)
            let w_qkvn = stacks.stack(&[&l.q, &l.k, &l.v, &l.ln1])?;
            let x = ops::attn_block(x, &w_qkvn, &l.o, seqs, nh, nkv, cfg.rms_norm_eps, &self.rope, k)?;
            let w_gun = stacks.stack(&[&l.gate, &l.up, &l.ln2])?;
            return ops::mlp_block(&x, &w_gun, &l.down, cfg.rms_norm_eps, k);
        }
        let h = ops::rms_norm(x, &l.ln1, cfg.rms_norm_eps, k)?;
        let a = if k == Kernels::Fused {
            // one projection for q, k and v; RoPE + attention read it in place
            let w = stacks.stack(&[&l.q, &l.k, &l.v])?;
            let bias = match (&l.qb, &l.kb, &l.vb) {
                (Some(q), Some(kb), Some(v)) => Some(stacks.stack(&[q, kb, v])?),
                _ => None,
            };
            let qkv = ops::linear(&h, &w, bias.as_ref(), k)?;
            ops::qkv_rope_attention(&qkv, seqs, nh, nkv, &self.rope, k)?
        } else {
            let Some((b, t)) = seqs.uniform_dims() else {
                candle_core::bail!("sequences of different lengths in one row need the fused kernels");
            };
            let q = ops::linear(&h, &l.q, l.qb.as_ref(), k)?.reshape((b, t, nh, hd))?;
            let kk = ops::linear(&h, &l.k, l.kb.as_ref(), k)?.reshape((b, t, nkv, hd))?;
            let v = ops::linear(&h, &l.v, l.vb.as_ref(), k)?.reshape((b, t, nkv, hd))?;
            let q = ops::rope(&q, &self.rope, k)?;
            let kk = ops::rope(&kk, &self.rope, k)?;
            ops::causal_attention(&q, &kk, &v, k)?.reshape((n, nh * hd))?
        };
        let x = (x + ops::linear(&a, &l.o, None, k)?)?;
        let h = ops::rms_norm(&x, &l.ln2, cfg.rms_norm_eps, k)?;
        let y = if k == Kernels::Fused {
            let w = stacks.stack(&[&l.gate, &l.up])?;
            ops::mlp(&h, &w, &l.down, k)?
        } else {
            let g = ops::linear(&h, &l.gate, None, k)?;
            let u = ops::linear(&h, &l.up, None, k)?;
            ops::linear(&ops::swiglu(&g, &u, k)?, &l.down, None, k)?
        };
        x + y
    }

    /// A layer's weights in the compute dtype.
    fn cast_layer(&self, l: &Layer) -> Result<Layer> {
        Ok(Layer {
            q: self.cw(&l.q)?,
            k: self.cw(&l.k)?,
            v: self.cw(&l.v)?,
            qb: self.ocw(&l.qb)?,
            kb: self.ocw(&l.kb)?,
            vb: self.ocw(&l.vb)?,
            o: self.cw(&l.o)?,
            gate: self.cw(&l.gate)?,
            up: self.cw(&l.up)?,
            down: self.cw(&l.down)?,
            ln1: self.cw(&l.ln1)?,
            ln2: self.cw(&l.ln2)?,
        })
    }

    /// Training loss: `Σ w·nll / Σ w` over `[B, T]` positions (`ids`, `targets` u32, `weights`
    /// f32 with 0 = ignore; right padding). Differentiable w.r.t. every parameter.
    pub fn loss(&self, ids: &Tensor, targets: &Tensor, weights: &Tensor) -> Result<Tensor> {
        self.head_loss(&self.hidden(ids)?, self.lm_head_weight(), targets, weights)
    }

    /// [`Model::loss`] on a packed batch: `ids`, `targets` and `weights` hold N positions (any
    /// shape), the sequences `seqs` one after another with no padding (see [`Model::can_pack`]).
    pub fn loss_packed(&self, ids: &Tensor, seqs: &Seqs, targets: &Tensor, weights: &Tensor) -> Result<Tensor> {
        self.head_loss(&self.hidden_seqs(ids, seqs, &Stacks::Graph)?, self.lm_head_weight(), targets, weights)
    }

    /// The training loss of `ids` (rows `seqs`, or `[B, T]` rows of one length when `None`) and
    /// the gradients of `scale` × the loss with respect to every parameter.
    ///
    /// On the fused kernels without checkpointing this is the loss's `backward`. Otherwise the
    /// step runs in parts, the output layer apart from the blocks: the blocks' forward (with its
    /// graph, or with [`Model::set_recompute`] keeping only each block's input); the final norm,
    /// output layer and loss differentiated down to the last block's output (on the composite
    /// kernels a chunk of rows at a time, the rows without a loss weight skipped, so no more
    /// than a chunk's logits and their gradient are ever held); then the blocks' backward
    /// (whole, or a block at a time, each block's forward run again first); the embedding rows'
    /// gradient last. With and without checkpointing the same operations run in the same
    /// order, so the gradients are the same bit for bit.
    pub fn loss_and_grads(
        &self,
        ids: &Tensor,
        seqs: Option<&Seqs>,
        targets: &Tensor,
        weights: &Tensor,
        scale: f64,
    ) -> Result<(f64, GradStore)> {
        let uniform;
        let seqs = match seqs {
            Some(s) => s,
            None => {
                let (b, t) = ids.dims2()?;
                uniform = Seqs::uniform(b, t);
                &uniform
            }
        };
        // The stacked weights as leaves of their own where the layers' weights are the
        // parameters themselves.
        let stacks = if self.device.is_cpu() && self.dtype == DType::F32 && self.compute == DType::F32 {
            Stacks::leaves()
        } else {
            Stacks::Graph
        };
        if !self.recompute && self.kernels == Kernels::Fused {
            // The CPU's fused output layer holds no logits: one graph, one backward.
            let h = self.hidden_seqs(ids, seqs, &stacks)?;
            let loss = self.head_loss(&h, self.lm_head_weight(), targets, weights)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            let mut grads = (loss * scale)?.backward()?;
            stacks.spread(&mut grads)?;
            return Ok((value, grads));
        }
        let ids = self.flat_ids(ids, seqs)?;
        let rows = self.embed.detach().index_select(&ids, 0)?;
        // The blocks' forward: with its graph from the embedding rows, or outside any graph
        // keeping each block's input.
        let (top, saved) = if self.recompute {
            let mut x = self.cw(&rows)?;
            let mut inputs = Vec::with_capacity(self.layers.len());
            for l in &self.layers {
                let y = self.block(&x, &self.cast_layer(&l.detached())?, seqs, &Stacks::Graph)?;
                inputs.push(x);
                x = y;
            }
            (x, Saved::Inputs(inputs))
        } else {
            let rows = Var::from_tensor(&rows)?;
            let mut x = self.cw(rows.as_tensor())?;
            for l in &self.layers {
                x = self.block(&x, &self.cast_layer(l)?, seqs, &stacks)?;
            }
            (x, Saved::Graph(rows))
        };
        drop(rows);
        // The final norm, the output layer and the loss, down to the last block's output.
        let top_leaf = Var::from_tensor(&top)?;
        let (value, mut grads) = self.head_grads(top_leaf.as_tensor(), targets, weights, scale)?;
        let mut g = take_grad(&mut grads, top_leaf.as_tensor())?;
        drop(top_leaf);
        // The blocks' backward, with the gradient that reached their output (Σ y·g has
        // gradient g with respect to y, exactly).
        let rows = match saved {
            Saved::Graph(rows) => {
                let mut bg = (top * &g)?.sum_all()?.backward()?;
                stacks.spread(&mut bg)?;
                move_grads(&mut bg, &mut grads, self.layers.iter().flat_map(Layer::params));
                g = take_grad(&mut bg, rows.as_tensor())?;
                None
            }
            Saved::Inputs(inputs) => {
                drop(top);
                // Each block from the last: its forward again, with a graph, then its backward.
                for (l, x) in self.layers.iter().zip(inputs).rev() {
                    let input = Var::from_tensor(&x)?;
                    drop(x);
                    let y = self.block(input.as_tensor(), &self.cast_layer(l)?, seqs, &stacks)?;
                    let mut bg = (y * &g)?.sum_all()?.backward()?;
                    stacks.spread(&mut bg)?;
                    g = take_grad(&mut bg, input.as_tensor())?;
                    move_grads(&mut bg, &mut grads, l.params());
                }
                // the embedding rows' cast (a no-op in f32), differentiated alike
                let rows = Var::from_tensor(&self.embed.detach().index_select(&ids, 0)?)?;
                let mut eg = (self.cw(rows.as_tensor())? * &g)?.sum_all()?.backward()?;
                g = take_grad(&mut eg, rows.as_tensor())?;
                Some(rows)
            }
        };
        drop(rows);
        // The embedding rows' gradient is added into the embedding's (which already holds the
        // output layer's share when the two are tied), as candle's backward orders them.
        let acc = match grads.remove(&self.embed) {
            Some(acc) => acc,
            None => self.embed.zeros_like()?,
        };
        grads.insert(&self.embed, acc.index_add(&ids, &g, 0)?);
        Ok((value, grads))
    }

    /// The final norm, output layer and weighted cross-entropy on the last block's output
    /// `top` (a leaf): the loss and the gradients of `scale` × the loss, `top`'s among them.
    /// The fused kernels' output layer runs whole (it holds no logits); the composite one a
    /// chunk of rows at a time, on the rows with a loss weight only.
    fn head_grads(&self, top: &Tensor, targets: &Tensor, weights: &Tensor, scale: f64) -> Result<(f64, GradStore)> {
        let h = ops::rms_norm(top, &self.cw(&self.norm)?, self.cfg.rms_norm_eps, self.kernels)?;
        if self.kernels == Kernels::Fused {
            let loss = self.head_loss(&h, self.lm_head_weight(), targets, weights)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            return Ok((value, (loss * scale)?.backward()?));
        }
        let (n, hidden) = h.dims2()?;
        let v = self.cfg.vocab_size;
        let (t, w) = ops::xent::read_targets(targets, weights, n, v, "loss")?;
        let denom = w.iter().sum::<f32>().max(1e-12);
        let live: Vec<u32> = (0..n as u32).filter(|&i| w[i as usize] != 0.0).collect();
        // about 16 M logits a chunk (64 MiB in f32)
        let chunk = self.head_chunk.unwrap_or(((1usize << 24) / v.max(1)).clamp(16, live.len().max(16)));
        let dev = h.device();
        let hd = h.detach();
        let head = self.lm_head_weight();
        let head_c = self.cw(head)?; // cast once; each chunk's backward reaches `head` through it
        let mut value = 0f64;
        let mut dh = Tensor::zeros((n, hidden), h.dtype(), dev)?;
        let mut dhead: Option<Tensor> = None;
        for idx in live.chunks(chunk) {
            let it = Tensor::new(idx, dev)?;
            let hc = Var::from_tensor(&hd.index_select(&it, 0)?)?;
            let logits = hc.as_tensor().matmul(&head_c.t()?)?;
            let tc = Tensor::new(idx.iter().map(|&i| t[i as usize]).collect::<Vec<u32>>(), dev)?;
            let nll = ops::xent::nll_composite(&logits, &tc)?;
            let wc =
                Tensor::new(idx.iter().map(|&i| w[i as usize]).collect::<Vec<f32>>(), dev)?.to_dtype(nll.dtype())?;
            let loss = ((nll * wc)?.sum_all()? / denom as f64)?;
            value += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            let mut cg = (loss * scale)?.backward()?;
            dh = dh.index_add(&it, &take_grad(&mut cg, hc.as_tensor())?, 0)?;
            let gw = cg
                .remove(head)
                .ok_or_else(|| candle_core::Error::Msg("loss: no gradient for the output layer".into()))?;
            dhead = Some(match dhead {
                Some(acc) => (acc + gw)?,
                None => gw,
            });
        }
        // The norm's backward (and its weight's gradient), from the rows' gradients.
        let mut grads = (h * dh)?.sum_all()?.backward()?;
        if let Some(gw) = dhead {
            grads.insert(head, gw);
        }
        Ok((value, grads))
    }

    /// [`Model::loss`] without gradients, for evaluation: the output layer runs only where a
    /// weight is non-zero (the response), its logits a chunk at a time.
    pub fn eval_loss(&self, ids: &Tensor, targets: &Tensor, weights: &Tensor) -> Result<f64> {
        let h = self.hidden(ids)?.detach();
        let loss = self.head_loss(&h, &self.lm_head_weight().detach(), targets, weights)?;
        loss.to_dtype(DType::F64)?.to_scalar::<f64>()
    }

    /// The output layer and the weighted cross-entropy on final hidden states `h` `[B·T, H]`.
    fn head_loss(&self, h: &Tensor, head: &Tensor, targets: &Tensor, weights: &Tensor) -> Result<Tensor> {
        let (t, w) = (targets.flatten_all()?, weights.flatten_all()?);
        ops::lm_head_cross_entropy(h, &self.cw(head)?, &t, &w, self.kernels)
    }

    /// Logits `[B, T, V]` of the training forward (no cache).
    pub fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let h = self.hidden(ids)?;
        h.matmul(&self.cw(self.lm_head_weight())?.t()?)?.reshape((b, t, self.cfg.vocab_size))?.detach().contiguous()
    }

    /// Per-token negative log-likelihood `[B, T]` (no gradient), for evaluation losses.
    pub fn token_nll(&self, ids: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let h = self.hidden(ids)?.detach();
        let logits = h.matmul(&self.cw(&self.lm_head_weight().detach())?.t()?)?;
        ops::token_nll_from_logits(&logits, &targets.flatten_all()?)?.reshape((b, t))
    }

    /// Batched greedy decoding with a KV cache. Returns, for each prompt, the new tokens: at most
    /// `max_new`, ending before the first token in `stop` (the stop token is not included).
    /// Prompts of different lengths are left-padded; padded positions are masked out and each
    /// row has its own positions, so results equal those of decoding each prompt alone.
    pub fn generate(&self, prompts: &[Vec<u32>], max_new: usize, stop: &[u32]) -> Result<Vec<Vec<u32>>> {
        self.generate_via(prompts, max_new, stop, self.device.is_cpu() && self.compute == DType::F32)
    }

    /// [`Model::generate`] through the tensor path on any device and dtype (the path GPUs and
    /// half precision take), for tests that compare it with the CPU decoder.
    #[doc(hidden)]
    pub fn generate_via_tensors(&self, prompts: &[Vec<u32>], max_new: usize, stop: &[u32]) -> Result<Vec<Vec<u32>>> {
        self.generate_via(prompts, max_new, stop, false)
    }

    fn generate_via(&self, prompts: &[Vec<u32>], max_new: usize, stop: &[u32], plain: bool) -> Result<Vec<Vec<u32>>> {
        let bsz = prompts.len();
        if bsz == 0 || max_new == 0 {
            return Ok(vec![Vec::new(); bsz]);
        }
        if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
            candle_core::bail!("generate: prompt {i} is empty");
        }
        let v = self.cfg.vocab_size as u32;
        if let Some(&bad) = prompts.iter().flatten().find(|&&x| x >= v) {
            candle_core::bail!("generate: token {bad} is out of the vocabulary ({v})");
        }
        let lens: Vec<usize> = prompts.iter().map(|p| p.len()).collect();
        let lmax = *lens.iter().max().unwrap();
        let pads: Vec<usize> = lens.iter().map(|&l| lmax - l).collect();
        let need = lmax + max_new;
        let rope = if need > self.rope.max_pos {
            RopeTables::new(self.cfg.head_dim(), need, self.cfg.rope_theta, &self.device, self.compute)?
        } else {
            self.rope.clone()
        };
        let mut dec = match plain {
            true => Decoder::Cpu(Box::new(self.cpu_decoder(&rope)?), None),
            false => {
                Decoder::Tensor(Box::new(InferWeights::new(self)?), (0..self.layers.len()).map(|_| None).collect())
            }
        };

        // Prefill: the prompts left-padded to the longest.
        let mut ids = Vec::with_capacity(bsz * lmax);
        for (r, p) in prompts.iter().enumerate() {
            ids.extend((0..lmax).map(|t| if t < pads[r] { 0 } else { p[t - pads[r]] }));
        }
        let mut next = self.decode_step(&mut dec, &rope, &ids, lmax, &pads, need)?;

        let mut out: Vec<Vec<u32>> = vec![Vec::new(); bsz];
        let mut done = vec![false; bsz];
        // The prompts still decoded, by batch row; `next` is indexed by batch row too.
        let mut rows: Vec<usize> = (0..bsz).collect();
        let mut finished = 0usize; // rows of the batch that are done
        for step in 0..max_new {
            for (i, &r) in rows.iter().enumerate() {
                if !done[r] {
                    if stop.contains(&next[i]) {
                        done[r] = true;
                        finished += 1;
                    } else {
                        out[r].push(next[i]);
                    }
                }
            }
            if step + 1 == max_new || finished == rows.len() {
                break;
            }
            // Once a quarter of the batch is done, the finished rows leave it: the remaining
            // steps cost what the rows still decoding need (no row depends on another).
            if finished * 4 >= rows.len() {
                let keep: Vec<usize> = (0..rows.len()).filter(|&i| !done[rows[i]]).collect();
                dec.keep_rows(&keep)?;
                next = keep.iter().map(|&i| next[i]).collect();
                rows = keep.iter().map(|&i| rows[i]).collect();
                finished = 0;
            }
            let first: Vec<usize> = rows.iter().map(|&r| pads[r]).collect();
            next = self.decode_step(&mut dec, &rope, &next, 1, &first, need)?;
        }
        Ok(out)
    }

    /// The weights as the CPU decoder reads them (see `decode.rs`).
    fn cpu_decoder(&self, rope: &RopeTables) -> Result<super::decode::Weights> {
        let v = |t: &Tensor| -> Result<Vec<f32>> { t.detach().to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>() };
        // a weight `[out, in]` as `[in, out]` panels
        let xw = |t: &Tensor| -> Result<super::decode::Panels> {
            let (o, i) = t.dims2()?;
            Ok(super::decode::Panels::new(&v(&t.detach().t()?.contiguous()?)?, i, o))
        };
        let cfg = &self.cfg;
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let qkv_bias = match (&l.qb, &l.kb, &l.vb) {
                    (Some(q), Some(k), Some(b)) => Some(v(&Tensor::cat(&[q, k, b], 0)?)?),
                    _ => None,
                };
                Ok(super::decode::Layer {
                    ln1: v(&l.ln1)?,
                    qkv: xw(&Tensor::cat(&[&l.q, &l.k, &l.v], 0)?)?,
                    qkv_bias,
                    o: xw(&l.o)?,
                    ln2: v(&l.ln2)?,
                    gate_up: xw(&Tensor::cat(&[&l.gate, &l.up], 0)?)?,
                    down: xw(&l.down)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(super::decode::Weights {
            hidden: cfg.hidden_size,
            inter: cfg.intermediate_size,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim(),
            eps: cfg.rms_norm_eps as f32,
            embed: v(&self.embed)?,
            layers,
            norm: v(&self.norm)?,
            head: xw(self.lm_head_weight())?,
            cos: rope.cos_vec(),
            sin: rope.sin_vec(),
        })
    }

    /// One decoding step over `t` new tokens of each row (`ids` `[rows, t]`; row i's slots
    /// before `first[i]` are left padding): each row's most likely next token.
    fn decode_step(
        &self,
        dec: &mut Decoder,
        rope: &RopeTables,
        ids: &[u32],
        t: usize,
        first: &[usize],
        cap: usize,
    ) -> Result<Vec<u32>> {
        let b = first.len();
        match dec {
            Decoder::Cpu(w, cache) => {
                let c = cache.get_or_insert_with(|| w.new_cache(b, cap));
                Ok(w.step(c, ids, t, first))
            }
            Decoder::Tensor(w, cache) => {
                let len = cache.iter().flatten().next().map_or(0, |c| c.len);
                let s = len + t; // keys after this step
                let mut pos = Vec::with_capacity(b * t);
                let mut mask = vec![0f32; b * t * s];
                for (r, &f) in first.iter().enumerate() {
                    for i in 0..t {
                        let slot = len + i;
                        pos.push(slot.saturating_sub(f) as u32);
                        for j in 0..s {
                            // causal; pad keys masked; a pad query sees itself only
                            if !(j <= slot && (j >= f || j == slot)) {
                                mask[(r * t + i) * s + j] = f32::NEG_INFINITY;
                            }
                        }
                    }
                }
                let ids = Tensor::from_vec(ids.to_vec(), (b, t), &self.device)?;
                let pos = Tensor::from_vec(pos, (b, t), &self.device)?;
                let mask = Tensor::from_vec(mask, (b, 1, t, s), &self.device)?.to_dtype(self.compute)?;
                argmax_rows(&self.infer_step(w, &ids, &pos, &mask, rope, cache, cap)?)
            }
        }
    }

    /// One cached forward over `ids` `[B, T]` at positions `pos` `[B, T]`; returns the logits of
    /// the last position `[B, V]`. The first call fills `cache` (room for `cap` positions).
    #[allow(clippy::too_many_arguments)]
    fn infer_step(
        &self,
        w: &InferWeights,
        ids: &Tensor,
        pos: &Tensor,
        mask: &Tensor,
        rope: &RopeTables,
        cache: &mut [Option<KvCache>],
        cap: usize,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t) = ids.dims2()?;
        let (nh, nkv, hd) = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim());
        let eps = cfg.rms_norm_eps as f32;
        let posf = pos.flatten_all()?;
        let cos = rope.cos.index_select(&posf, 0)?.reshape((b, t, 1, hd / 2))?;
        let sin = rope.sin.index_select(&posf, 0)?.reshape((b, t, 1, hd / 2))?;
        let mut x = w.embed.index_select(&ids.flatten_all()?, 0)?; // [B·T, H]
        let scale = 1.0 / (hd as f64).sqrt();
        for (li, l) in w.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &l.ln1, eps)?;
            let q = linear_xw(&h, &l.q, l.qb.as_ref())?.reshape((b, t, nh, hd))?;
            let k = linear_xw(&h, &l.k, l.kb.as_ref())?.reshape((b, t, nkv, hd))?;
            let v = linear_xw(&h, &l.v, l.vb.as_ref())?.reshape((b, t, nkv, hd))?;
            let q = ops::rope::rope_composite(&q, &cos, &sin)?.transpose(1, 2)?.contiguous()?;
            let k = ops::rope::rope_composite(&k, &cos, &sin)?.transpose(1, 2)?.contiguous()?;
            let v = v.transpose(1, 2)?.contiguous()?;
            let c = match &mut cache[li] {
                Some(c) => c,
                slot => slot.insert(KvCache::new(&k, cap)?),
            };
            let (k, v) = c.append(&k, &v)?;
            // Grouped-query attention without copying the keys and values for every query head:
            // the `g` query heads of a KV head (heads j·g .. j·g + g − 1, as `repeat_kv` orders
            // them) become `g · t` query rows against that head's keys.
            let g = nh / nkv;
            let s = k.dim(2)?;
            let q = q.reshape((b, nkv, g * t, hd))?;
            let mask = if g == 1 {
                mask.clone()
            } else {
                mask.unsqueeze(2)?.broadcast_as((b, 1, g, t, s))?.reshape((b, 1, g * t, s))?
            };
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let a = att.matmul(&v)?.reshape((b, nh, t, hd))?.transpose(1, 2)?.reshape((b * t, nh * hd))?;
            x = (x + linear_xw(&a, &l.o, None)?)?;
            let h = candle_nn::ops::rms_norm(&x, &l.ln2, eps)?;
            let y = (linear_xw(&h, &l.gate, None)?.silu()? * linear_xw(&h, &l.up, None)?)?;
            x = (x + linear_xw(&y, &l.down, None)?)?;
        }
        let last = x.reshape((b, t, cfg.hidden_size))?.i((.., t - 1, ..))?.contiguous()?;
        let h = candle_nn::ops::rms_norm(&last, &w.norm, eps)?;
        h.matmul(&w.lm_head)
    }
}

/// What [`Model::loss_and_grads`] keeps of the blocks' forward for their backward.
enum Saved {
    /// The graph, from these embedding rows (a leaf).
    Graph(Var),
    /// Each block's input (checkpointing).
    Inputs(Vec<Tensor>),
}

/// Moves the gradients of `params` found in `from` into `to`.
fn move_grads<'a>(from: &mut GradStore, to: &mut GradStore, params: impl Iterator<Item = &'a Tensor>) {
    for w in params {
        if let Some(g) = from.remove(w) {
            to.insert(w, g);
        }
    }
}

/// The gradient of `t` in `grads` (removed from it).
fn take_grad(grads: &mut GradStore, t: &Tensor) -> Result<Tensor> {
    grads.remove(t).ok_or_else(|| candle_core::Error::Msg("recompute: no gradient reached a block's input".into()))
}

/// How `generate` decodes: on plain buffers (CPU f32; `decode.rs`), or through tensors.
enum Decoder {
    Cpu(Box<super::decode::Weights>, Option<super::decode::Cache>),
    Tensor(Box<InferWeights>, Vec<Option<KvCache>>),
}

impl Decoder {
    /// Keeps the batch rows `keep` (in that order).
    fn keep_rows(&mut self, keep: &[usize]) -> Result<()> {
        match self {
            Decoder::Cpu(_, cache) => cache.iter_mut().for_each(|c| c.keep_rows(keep)),
            Decoder::Tensor(_, cache) => {
                let Some(device) = cache.iter().flatten().next().map(|c| c.k.device().clone()) else {
                    return Ok(());
                };
                let idx: Vec<u32> = keep.iter().map(|&i| i as u32).collect();
                let idx = Tensor::new(idx.as_slice(), &device)?;
                for c in cache.iter_mut().flatten() {
                    c.keep_rows(&idx)?;
                }
            }
        }
        Ok(())
    }
}

/// One layer's keys and values for decoding, `[B, Hkv, cap, D]` each, allocated once and
/// written in place as positions are added (a step copies its own keys only, not the cache).
struct KvCache {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl KvCache {
    fn new(like: &Tensor, cap: usize) -> Result<Self> {
        let (b, h, _, d) = like.dims4()?;
        let z = || Tensor::zeros((b, h, cap, d), like.dtype(), like.device());
        Ok(KvCache { k: z()?, v: z()?, len: 0 })
    }

    /// Adds `k`, `v` `[B, Hkv, T, D]` after the cached positions; returns every position's.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        if self.len + t > self.k.dim(2)? {
            candle_core::bail!("KV cache: {} + {t} positions exceed its {}", self.len, self.k.dim(2)?);
        }
        self.k.slice_set(k, 2, self.len)?;
        self.v.slice_set(v, 2, self.len)?;
        self.len += t;
        Ok((self.k.narrow(2, 0, self.len)?, self.v.narrow(2, 0, self.len)?))
    }

    /// Keeps the batch rows `idx` (in that order).
    fn keep_rows(&mut self, idx: &Tensor) -> Result<()> {
        self.k = self.k.index_select(idx, 0)?;
        self.v = self.v.index_select(idx, 0)?;
        Ok(())
    }
}

/// The weights for decoding, detached (the inference path builds no graph); see `new`.
struct InferWeights {
    embed: Tensor,
    /// Matrices `[in, out]`.
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
}

impl InferWeights {
    /// The matrices as `[in, out]` (`x · w`), laid out contiguously on the CPU: gemm then reads
    /// them as they are instead of packing every weight matrix at every decoding step (measured
    /// at SmolLM2-135M's shape: packing took a quarter of greedy decoding's time). Elsewhere a
    /// transposed view, as before.
    fn new(m: &Model) -> Result<Self> {
        let d = |t: &Tensor| m.cw(&t.detach());
        let cpu = m.device.is_cpu();
        let xw = |t: &Tensor| -> Result<Tensor> {
            let t = t.detach().t()?;
            if cpu {
                t.contiguous()
            } else {
                Ok(t)
            }
        };
        let layers = m.layers.iter().map(|l| m.cast_layer(l)).collect::<Result<Vec<_>>>()?;
        let layers = layers
            .into_iter()
            .map(|l| {
                let od = |t: &Option<Tensor>| t.as_ref().map(|t| t.detach());
                Ok(Layer {
                    q: xw(&l.q)?,
                    k: xw(&l.k)?,
                    v: xw(&l.v)?,
                    qb: od(&l.qb),
                    kb: od(&l.kb),
                    vb: od(&l.vb),
                    o: xw(&l.o)?,
                    gate: xw(&l.gate)?,
                    up: xw(&l.up)?,
                    down: xw(&l.down)?,
                    ln1: l.ln1.detach(),
                    ln2: l.ln2.detach(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(InferWeights { embed: d(&m.embed)?, layers, norm: d(&m.norm)?, lm_head: xw(&d(m.lm_head_weight())?)? })
    }
}

/// `x [N, in] · w (+ b)` with `w` `[in, out]` (the inference path's layout).
fn linear_xw(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(w)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    let rows = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut best = 0usize;
            for (i, &x) in r.iter().enumerate() {
                if x > r[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect())
}

/// Loads every tensor of a safetensors file as a variable (unlike `VarMap::load`, which only
/// fills names already present). Pair with [`Model::from_varmap_checked`].
pub fn load_varmap_safetensors(path: impl AsRef<std::path::Path>, device: &Device, dtype: DType) -> Result<VarMap> {
    let tensors = candle_core::safetensors::load(path, device)?;
    let vm = VarMap::new();
    {
        let mut data = vm.data().lock().unwrap();
        for (name, t) in tensors {
            data.insert(name, Var::from_tensor(&t.to_dtype(dtype)?)?);
        }
    }
    Ok(vm)
}

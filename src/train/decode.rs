//! Greedy decoding on the CPU in f32, on plain buffers: the whole cached forward of a step as a
//! few matrix products (gemm, straight into the residual) and one pass each for the norms,
//! attention and SwiGLU, with no tensor graph between them.
//!
//! At SmolLM2-135M's shape and 16 rows a decoding step's matrix products took about 60 % of
//! its time through candle; the rest went to some thirty small tensor ops a layer (norms,
//! RoPE, transposes, the masked attention, copies of the KV cache). Here a layer is five
//! products and four row passes, the KV cache is written in place, and the output layer is a
//! parallel pass over vocabulary chunks that keeps each row's best token (the `[B, V]` logits
//! are never held). `Model::generate` uses it for CPU f32 models and the tensor path elsewhere;
//! the two agree (tested).

use rayon::prelude::*;

use super::ops::attention::{mk, BC, BR};
use super::ops::simd::{self, dispatch, exp, sigmoid};

/// A layer's weights, the matrices `[in, out]` row-major.
pub(crate) struct Layer {
    pub ln1: Vec<f32>,
    /// `[H, (Hq + 2·Hkv)·D]`: the q heads, then the k heads, then the v heads.
    pub qkv: Panels,
    pub qkv_bias: Option<Vec<f32>>,
    /// `[Hq·D, H]`
    pub o: Panels,
    pub ln2: Vec<f32>,
    /// `[H, 2·I]`: gate, then up.
    pub gate_up: Panels,
    /// `[I, H]`
    pub down: Panels,
}

/// The model's weights for decoding.
pub(crate) struct Weights {
    pub hidden: usize,
    pub inter: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub eps: f32,
    /// `[V, H]`
    pub embed: Vec<f32>,
    pub layers: Vec<Layer>,
    pub norm: Vec<f32>,
    /// The output layer `[H, V]`.
    pub head: Panels,
    /// RoPE tables `[positions, D/2]`.
    pub cos: std::sync::Arc<Vec<f32>>,
    pub sin: std::sync::Arc<Vec<f32>>,
}

/// Keys and values of every layer, `[B, Hkv, cap, D]` each, filled up to `len` slots.
pub(crate) struct Cache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    rows: usize,
    cap: usize,
    len: usize,
}

/// A weight matrix `[K, N]` laid out for products with few rows: its columns in panels of 16,
/// each panel `[K, 16]` contiguous (the last one zero-padded), so that a product streams every
/// weight once, in order, from memory. Decoding a few rows is bound by reading the weights:
/// through gemm on the `[K, N]` layout a step read them at about 5 GB/s.
pub(crate) struct Panels {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

/// Rows (a multiple of the 6-row block) and panels per task of a panel product.
const TASK_ROWS: usize = 16 * BR;
const TASK_PANELS: usize = 8;

/// Raw output of a panel product, written by tasks at disjoint (row, column) blocks.
#[derive(Clone, Copy)]
struct Dst {
    ptr: *mut f32,
    len: usize,
    ld: usize,
    add: bool,
}
// SAFETY: the tasks of one product write disjoint blocks (see `panel_task`).
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

impl Panels {
    /// From a row-major `[K, N]` matrix.
    pub(crate) fn new(w: &[f32], k: usize, n: usize) -> Panels {
        assert_eq!(w.len(), k * n);
        let np = n.div_ceil(BC);
        let mut data = vec![0f32; np * k * BC];
        for (p, panel) in data.chunks_exact_mut(k * BC).enumerate() {
            let cols = BC.min(n - p * BC);
            for (i, row) in panel.chunks_exact_mut(BC).enumerate() {
                row[..cols].copy_from_slice(&w[i * n + p * BC..i * n + p * BC + cols]);
            }
        }
        Panels { k, n, data }
    }

    fn panels(&self) -> usize {
        self.n.div_ceil(BC)
    }

    fn panel(&self, p: usize) -> &[f32] {
        &self.data[p * self.k * BC..(p + 1) * self.k * BC]
    }

    /// `x` `[m, K]` padded with zero rows to a multiple of the 6-row block.
    fn padded<'a>(&self, x: &'a [f32], m: usize, buf: &'a mut Vec<f32>) -> &'a [f32] {
        let mp = m.div_ceil(BR) * BR;
        if mp == m {
            return &x[..m * self.k];
        }
        buf.resize(mp * self.k, 0.0);
        buf[..m * self.k].copy_from_slice(&x[..m * self.k]);
        buf
    }

    /// `dst[m, N] = x[m, K] · W` (+ `dst` when `add`), `dst` with leading dim `ldd`.
    pub(crate) fn mul(&self, x: &[f32], m: usize, dst: &mut [f32], ldd: usize, add: bool) {
        assert!(x.len() >= m * self.k && ldd >= self.n && (m == 0 || dst.len() >= (m - 1) * ldd + self.n));
        let mut buf = Vec::new();
        let xs = self.padded(x, m, &mut buf);
        let out = Dst { ptr: dst.as_mut_ptr(), len: dst.len(), ld: ldd, add };
        let tasks: Vec<(usize, usize)> = (0..xs.len() / self.k)
            .step_by(TASK_ROWS)
            .flat_map(|r0| (0..self.panels()).step_by(TASK_PANELS).map(move |p0| (r0, p0)))
            .collect();
        tasks.par_iter().for_each(|&(r0, p0)| panel_task_d(self, xs, m, r0, p0, out));
    }

    /// Each of the `m` rows of `x · W`'s largest entry and its column (the first, on ties),
    /// computed a chunk of columns at a time (the `[m, N]` product is never held).
    pub(crate) fn argmax(&self, x: &[f32], m: usize) -> Vec<u32> {
        let mut buf = Vec::new();
        let xs = self.padded(x, m, &mut buf);
        let per = VOCAB_CHUNK / BC;
        let best: Vec<Vec<(f32, u32)>> = (0..self.panels().div_ceil(per))
            .into_par_iter()
            .map(|c| {
                let (p0, p1) = (c * per, ((c + 1) * per).min(self.panels()));
                let cols = (p1 * BC).min(self.n) - p0 * BC;
                let mut block = vec![0f32; m * cols];
                let out = Dst { ptr: block.as_mut_ptr(), len: block.len(), ld: cols, add: false };
                for p in p0..p1 {
                    // into this task's own block: columns counted from the chunk's first
                    panel_rows_d(self, xs, m, 0, xs.len() / self.k, p, p0 * BC, out);
                }
                block
                    .chunks_exact(cols)
                    .map(|r| {
                        let mut b = 0;
                        for (i, &v) in r.iter().enumerate() {
                            if v > r[b] {
                                b = i;
                            }
                        }
                        (r[b], (p0 * BC + b) as u32)
                    })
                    .collect()
            })
            .collect();
        (0..m)
            .map(|r| {
                let mut top = best[0][r];
                for c in &best[1..] {
                    if c[r].0 > top.0 {
                        top = c[r];
                    }
                }
                top.1
            })
            .collect()
    }
}

/// Rows `r0..r1` (block-aligned, of the padded `xs`) times panel `p`, written to `out` at
/// columns shifted left by `shift` (rows past `m` and columns past N are not written).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn panel_rows<const F: bool>(w: &Panels, xs: &[f32], m: usize, r0: usize, r1: usize, p: usize, shift: usize, out: Dst) {
    let (k, panel) = (w.k, w.panel(p));
    let cols = BC.min(w.n - p * BC);
    for rb in (r0..r1).step_by(BR) {
        let acc = mk::<F>(&xs[rb * k..], k, k, panel, BC, 0);
        for (r, acc) in acc.iter().enumerate().take(m.saturating_sub(rb).min(BR)) {
            let at = (rb + r) * out.ld + p * BC - shift;
            assert!(at + cols <= out.len);
            // SAFETY: in bounds (asserted); each (row, panel) block is written by one task only.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.ptr.add(at), cols) };
            if out.add {
                dst.iter_mut().zip(acc).for_each(|(d, a)| *d += a);
            } else {
                dst.copy_from_slice(&acc[..cols]);
            }
        }
    }
}
dispatch!(fn panel_rows_d => panel_rows(w: &Panels, xs: &[f32], m: usize, r0: usize, r1: usize, p: usize, shift: usize, out: Dst));

/// One task of [`Panels::mul`]: rows `r0..` (up to `TASK_ROWS`) times panels `p0..` (up to
/// `TASK_PANELS`). Tasks cover disjoint (row range, panel range) pairs.
#[inline(always)]
fn panel_task<const F: bool>(w: &Panels, xs: &[f32], m: usize, r0: usize, p0: usize, out: Dst) {
    let r1 = (r0 + TASK_ROWS).min(xs.len() / w.k);
    for p in p0..(p0 + TASK_PANELS).min(w.panels()) {
        panel_rows::<F>(w, xs, m, r0, r1, p, 0, out);
    }
}
dispatch!(fn panel_task_d => panel_task(w: &Panels, xs: &[f32], m: usize, r0: usize, p0: usize, out: Dst));

/// Rotates `x` (one head, `[D]`: halves x1, x2) in place by RoPE at `pos`.
#[inline(always)]
fn rope<const F: bool>(x: &mut [f32], cos: &[f32], sin: &[f32], pos: usize) {
    let half = x.len() / 2;
    let (c, s) = (&cos[pos * half..(pos + 1) * half], &sin[pos * half..(pos + 1) * half]);
    let (x1, x2) = x.split_at_mut(half);
    for i in 0..half {
        let (a, b) = (x1[i], x2[i]);
        x1[i] = simd::madd::<F>(a, c[i], -(b * s[i]));
        x2[i] = simd::madd::<F>(b, c[i], a * s[i]);
    }
}

/// RoPE, the cache update and causal attention for one batch row of `t` new tokens: `qkv`
/// `[t, W]`, `out` `[t, Hq·D]`, `k`/`v` the row's cache `[Hkv, cap, D]` with `len` slots filled
/// before these tokens. The row's slots before `first` are left padding: masked as keys, at
/// position 0; slot `s ≥ first` is at position `s − first`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_row<const F: bool>(
    w: &Weights,
    qkv: &mut [f32],
    out: &mut [f32],
    k: &mut [f32],
    v: &mut [f32],
    first: usize,
    t: usize,
    (len, cap): (usize, usize),
) {
    let (hq, hkv, d) = (w.heads, w.kv_heads, w.head_dim);
    let width = (hq + 2 * hkv) * d;
    let scale = 1.0 / (d as f32).sqrt();
    let g = hq / hkv;
    // rotate the new queries and keys; write the keys and values into the cache
    for i in 0..t {
        let pos = (len + i).saturating_sub(first);
        let row = &mut qkv[i * width..(i + 1) * width];
        for h in 0..hq + hkv {
            rope::<F>(&mut row[h * d..(h + 1) * d], &w.cos, &w.sin, pos);
        }
        for kh in 0..hkv {
            let slot = (kh * cap + len + i) * d;
            k[slot..slot + d].copy_from_slice(&row[(hq + kh) * d..(hq + kh + 1) * d]);
            v[slot..slot + d].copy_from_slice(&row[(hq + hkv + kh) * d..(hq + hkv + kh + 1) * d]);
        }
    }
    let mut s = vec![0f32; len + t];
    for i in 0..t {
        let slot = len + i;
        // keys: the row's real slots up to this one; a padding slot's query sees itself only
        let from = if slot < first { slot } else { first };
        let n = slot + 1 - from;
        for h in 0..hq {
            let kh = h / g;
            let q = &qkv[i * width + h * d..i * width + (h + 1) * d];
            let ks = &k[(kh * cap + from) * d..(kh * cap + slot + 1) * d];
            for (j, sj) in s[..n].iter_mut().enumerate() {
                *sj = simd::dot::<F>(q, &ks[j * d..(j + 1) * d]) * scale;
            }
            let m = simd::max(&s[..n]);
            for x in s[..n].iter_mut() {
                *x = exp::<F>(*x - m);
            }
            let inv = 1.0 / simd::sum(&s[..n]);
            let o = &mut out[(i * hq + h) * d..(i * hq + h + 1) * d];
            o.fill(0.0);
            let vs = &v[(kh * cap + from) * d..(kh * cap + slot + 1) * d];
            for (j, &p) in s[..n].iter().enumerate() {
                simd::axpy::<F>(o, p * inv, &vs[j * d..(j + 1) * d]);
            }
        }
    }
}
dispatch!(fn attend_row_d => attend_row(w: &Weights, qkv: &mut [f32], out: &mut [f32], k: &mut [f32], v: &mut [f32], first: usize, t: usize, lc: (usize, usize)));

#[inline(always)]
fn swiglu_rows<const F: bool>(gu: &[f32], y: &mut [f32], inter: usize) {
    for (row, out) in gu.chunks_exact(2 * inter).zip(y.chunks_exact_mut(inter)) {
        let (g, u) = row.split_at(inter);
        for i in 0..inter {
            out[i] = g[i] * sigmoid::<F>(g[i]) * u[i];
        }
    }
}
dispatch!(fn swiglu_rows_d => swiglu_rows(gu: &[f32], y: &mut [f32], inter: usize));

/// Vocabulary columns per task of the output layer's argmax.
const VOCAB_CHUNK: usize = 2048;

impl Weights {
    pub(crate) fn new_cache(&self, rows: usize, cap: usize) -> Cache {
        let n = rows * self.kv_heads * cap * self.head_dim;
        let layers = self.layers.len();
        Cache {
            k: (0..layers).map(|_| vec![0f32; n]).collect(),
            v: (0..layers).map(|_| vec![0f32; n]).collect(),
            rows,
            cap,
            len: 0,
        }
    }

    /// One cached forward of `t` new tokens for each of the cache's rows (`ids` `[rows, t]`,
    /// row-major; row r's slots before `first[r]` are left padding). Returns each row's most
    /// likely next token (the first, on ties).
    pub(crate) fn step(&self, cache: &mut Cache, ids: &[u32], t: usize, first: &[usize]) -> Vec<u32> {
        let (rows, h, d) = (cache.rows, self.hidden, self.head_dim);
        let n = rows * t;
        assert!(ids.len() == n && first.len() == rows && cache.len + t <= cache.cap);
        let width = (self.heads + 2 * self.kv_heads) * d;
        let mut x = vec![0f32; n * h];
        for (row, &id) in x.chunks_exact_mut(h).zip(ids) {
            row.copy_from_slice(&self.embed[id as usize * h..(id as usize + 1) * h]);
        }
        let mut qkv = vec![0f32; n * width];
        let mut att = vec![0f32; n * self.heads * d];
        let mut gu = vec![0f32; n * 2 * self.inter];
        let mut y = vec![0f32; n * self.inter];
        let (len, cap) = (cache.len, cache.cap);
        let per_row = self.kv_heads * cap * d;
        for (li, l) in self.layers.iter().enumerate() {
            let hn = super::ops::rmsnorm::forward_rows(&x, &l.ln1, self.eps);
            l.qkv.mul(&hn, n, &mut qkv, width, false);
            if let Some(b) = &l.qkv_bias {
                qkv.par_chunks_mut(width).for_each(|r| r.iter_mut().zip(b).for_each(|(x, b)| *x += b));
            }
            qkv.par_chunks_mut(t * width)
                .zip(att.par_chunks_mut(t * self.heads * d))
                .zip(cache.k[li].par_chunks_mut(per_row).zip(cache.v[li].par_chunks_mut(per_row)))
                .zip(first.par_iter())
                .for_each(|(((q, o), (k, v)), &f)| attend_row_d(self, q, o, k, v, f, t, (len, cap)));
            l.o.mul(&att, n, &mut x, h, true);
            let hn = super::ops::rmsnorm::forward_rows(&x, &l.ln2, self.eps);
            l.gate_up.mul(&hn, n, &mut gu, 2 * self.inter, false);
            let chunk = 16;
            gu.par_chunks(chunk * 2 * self.inter)
                .zip(y.par_chunks_mut(chunk * self.inter))
                .for_each(|(g, o)| swiglu_rows_d(g, o, self.inter));
            l.down.mul(&y, n, &mut x, h, true);
        }
        cache.len += t;
        // the last new token of each row: final norm, then the best token over the vocabulary
        let last: Vec<f32> =
            (0..rows).flat_map(|r| x[((r * t) + t - 1) * h..(r * t + t) * h].iter().copied()).collect();
        let hn = super::ops::rmsnorm::forward_rows(&last, &self.norm, self.eps);
        self.head.argmax(&hn, rows)
    }
}

impl Cache {
    /// Keeps the batch rows `keep` (in that order).
    pub(crate) fn keep_rows(&mut self, keep: &[usize]) {
        let per_row = self.k[0].len() / self.rows.max(1);
        for buf in self.k.iter_mut().chain(self.v.iter_mut()) {
            let mut kept = Vec::with_capacity(keep.len() * per_row);
            for &r in keep {
                kept.extend_from_slice(&buf[r * per_row..(r + 1) * per_row]);
            }
            *buf = kept;
        }
        self.rows = keep.len();
    }
}

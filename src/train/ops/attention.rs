//! Causal scaled-dot-product attention with grouped-query heads (GQA).
//!
//! Fused CPU kernel: one task per (batch, head) in the forward, per (batch, kv-head) in the
//! backward (so the K/V gradients of a group are summed in a fixed order without atomics).
//! Each task copies its head's rows into local buffers (applying RoPE when the op is the
//! packed `qkv` variant), then works on blocks of 6 query rows × 16 keys held in registers
//! (head dims that are multiples of 16; other head dims use a row-at-a-time kernel). Only
//! a few rows of scores exist at a time (never a T×T matrix); the forward keeps the per-row
//! log-sum-exp in the op and the backward recomputes the probabilities from it
//! (FlashAttention-2 style).
#![allow(clippy::manual_is_multiple_of, clippy::needless_range_loop)] // is_multiple_of needs Rust 1.87

use super::simd::{self, axpy, dispatch, exp, madd};
use super::{cpu_f32, cpu_tensor, with_f32, Kernels, RopeTables};
use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;
use std::sync::Arc;
use std::sync::Mutex;

/// How the rows of an `[N, ..]` activation split into sequences: attention stays within each,
/// and positions (RoPE) restart at each. A padded batch `[B, T]` is B sequences of T rows; a
/// packed batch concatenates examples of any lengths, with no padding between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seqs {
    /// (first row, length) of each sequence, in row order, covering `0..rows` exactly.
    spans: Arc<[(usize, usize)]>,
    /// `(B, T)` when every sequence has the same length T.
    uniform: Option<(usize, usize)>,
}

impl Seqs {
    /// B sequences of T rows each.
    pub fn uniform(b: usize, t: usize) -> Seqs {
        Seqs { spans: (0..b).map(|i| (i * t, t)).collect(), uniform: Some((b, t)) }
    }

    /// Consecutive sequences of the given lengths (zero lengths are skipped).
    pub fn from_lens(lens: &[usize]) -> Seqs {
        let mut start = 0;
        let spans: Arc<[(usize, usize)]> = lens
            .iter()
            .filter(|&&t| t > 0)
            .map(|&t| {
                start += t;
                (start - t, t)
            })
            .collect();
        let uniform = match spans.first() {
            Some(&(_, t)) if spans.iter().all(|s| s.1 == t) => Some((spans.len(), t)),
            Some(_) => None,
            None => Some((0, 0)),
        };
        Seqs { spans, uniform }
    }

    /// Rows covered (the sum of the lengths).
    pub fn rows(&self) -> usize {
        self.spans.last().map_or(0, |&(s, t)| s + t)
    }

    /// The longest sequence.
    pub fn max_len(&self) -> usize {
        self.spans.iter().map(|s| s.1).max().unwrap_or(0)
    }

    /// `(B, T)` when all sequences have one length (a padded batch's shape).
    pub fn uniform_dims(&self) -> Option<(usize, usize)> {
        self.uniform
    }

    fn count(&self) -> usize {
        self.spans.len()
    }

    fn span(&self, i: usize) -> (usize, usize) {
        self.spans[i]
    }
}

/// Causal attention. `q` `[B, T, Hq, D]`, `k`/`v` `[B, T, Hkv, D]` with `Hq % Hkv == 0`;
/// returns `[B, T, Hq, D]`; softmax scale 1/√D.
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, kernels: Kernels) -> Result<Tensor> {
    let (b, t, hq, d) = q.dims4()?;
    let (bk, tk, hkv, dk) = k.dims4()?;
    if (bk, tk, dk) != (b, t, d) || v.dims() != k.dims() || hkv == 0 || hq % hkv != 0 {
        candle_core::bail!("causal_attention: q {:?} k {:?} v {:?}", q.dims(), k.dims(), v.dims());
    }
    match kernels.effective(q.device(), q.dtype()) {
        Kernels::Fused => {
            let geo = Geo {
                seqs: Seqs::uniform(b, t),
                hq,
                hkv,
                d,
                q_stride: hq * d,
                kv_stride: hkv * d,
                q_off: 0,
                k_off: 0,
                v_off: 0,
                rope: None,
            };
            q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, AttnOp { geo, lse: Mutex::new(None) })
        }
        Kernels::Composite => causal_attention_composite(q, k, v),
    }
}

/// RoPE + causal attention on a packed projection `qkv` `[N, (Hq + 2·Hkv)·D]` (columns: the
/// q heads, then the k heads, then the v heads, as `x·[Wq; Wk; Wv]ᵀ` produces them), whose N
/// rows are the sequences `seqs` (positions restart at each; no row attends outside its own
/// sequence). Returns `[N, Hq·D]`. The fused op reads q/k/v in place, rotates while copying,
/// and its backward returns the packed gradient directly. Needs `D % 16 == 0` for the fused
/// path (otherwise it runs the separate ops, which take sequences of one length only).
pub fn qkv_rope_attention(
    qkv: &Tensor,
    seqs: &Seqs,
    hq: usize,
    hkv: usize,
    tables: &RopeTables,
    kernels: Kernels,
) -> Result<Tensor> {
    let d = tables.head_dim;
    let width = (hq + 2 * hkv) * d;
    if qkv.dims() != [seqs.rows(), width] || hkv == 0 || hq % hkv != 0 || seqs.max_len() > tables.max_pos {
        candle_core::bail!(
            "qkv_rope_attention: qkv {:?} for {} rows (longest sequence {}), hq={hq} hkv={hkv} d={d}",
            qkv.dims(),
            seqs.rows(),
            seqs.max_len()
        );
    }
    match kernels.effective(qkv.device(), qkv.dtype()) {
        Kernels::Fused if d % BC == 0 => {
            let geo = Geo::packed(seqs, hq, hkv, tables);
            qkv.contiguous()?.apply_op1(PackedAttnOp(AttnOp { geo, lse: Mutex::new(None) }))
        }
        k => {
            let Some((b, t)) = seqs.uniform_dims() else {
                candle_core::bail!("sequences of different lengths in one row need the fused CPU kernels (f32, head dim a multiple of 16)");
            };
            let q = qkv.narrow(1, 0, hq * d)?.reshape((b, t, hq, d))?;
            let kk = qkv.narrow(1, hq * d, hkv * d)?.reshape((b, t, hkv, d))?;
            let v = qkv.narrow(1, (hq + hkv) * d, hkv * d)?.reshape((b, t, hkv, d))?;
            let q = super::rope(&q, tables, k)?;
            let kk = super::rope(&kk, tables, k)?;
            causal_attention(&q, &kk, &v, k)?.reshape((b * t, hq * d))
        }
    }
}

/// `[B, Hkv, T, D]` → `[B, Hkv·g, T, D]` (each kv head repeated for its g query heads).
pub fn repeat_kv(x: &Tensor, g: usize) -> Result<Tensor> {
    if g == 1 {
        return Ok(x.clone());
    }
    let (b, h, t, d) = x.dims4()?;
    x.unsqueeze(2)?.broadcast_as((b, h, g, t, d))?.reshape((b, h * g, t, d))
}

/// Differentiable composite reference (materialises the `[B, H, T, T]` scores).
pub fn causal_attention_composite(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (_b, t, hq, d) = q.dims4()?;
    let hkv = k.dim(2)?;
    let q = q.transpose(1, 2)?.contiguous()?;
    let k = repeat_kv(&k.transpose(1, 2)?.contiguous()?, hq / hkv)?;
    let v = repeat_kv(&v.transpose(1, 2)?.contiguous()?, hq / hkv)?;
    let scale = 1.0 / (d as f64).sqrt();
    let att = (q.matmul(&k.t()?)? * scale)?;
    let att = att.broadcast_add(&causal_mask(t, q.device(), q.dtype())?)?;
    let att = softmax_composite(&att)?;
    att.matmul(&v)?.transpose(1, 2)
}

/// The additive causal mask `[T, T]` (0 on and below the diagonal, -inf above), made once per
/// length, device and dtype and kept (on a GPU, building it on the host and copying it for
/// every layer of every step cost more than the attention itself).
fn causal_mask(t: usize, device: &candle_core::Device, dtype: DType) -> Result<Tensor> {
    use std::collections::HashMap;
    type Key = (usize, candle_core::DeviceLocation, DType);
    thread_local! {
        static MASKS: std::cell::RefCell<HashMap<Key, Tensor>> = std::cell::RefCell::new(HashMap::new());
    }
    let key = (t, device.location(), dtype);
    if let Some(m) = MASKS.with(|m| m.borrow().get(&key).cloned()) {
        return Ok(m);
    }
    let mask: Vec<f32> = (0..t * t).map(|x| if x % t > x / t { f32::NEG_INFINITY } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, (t, t), device)?.to_dtype(dtype)?;
    MASKS.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= 16 {
            m.clear();
        }
        m.insert(key, mask.clone());
    });
    Ok(mask)
}

/// Softmax over the last dim, differentiable (max detached). Half-precision scores are
/// computed in f32 and cast back (as transformers' eager attention does).
pub fn softmax_composite(x: &Tensor) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = if dt == DType::F32 || dt == DType::F64 { x.clone() } else { x.to_dtype(DType::F32)? };
    let m = xf.max_keepdim(D::Minus1)?.detach();
    let e = xf.broadcast_sub(&m)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&s)?.to_dtype(dt)
}

#[derive(Clone)]
struct Rope {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
}

/// Where the rows of q, k, v live: row `j` of sequence `s` (first row `r`) for head `h` starts
/// at `(r + j)·stride + off + h·D`. The output (and its gradient) is `[N, Hq, D]`.
#[derive(Clone)]
struct Geo {
    seqs: Seqs,
    hq: usize,
    hkv: usize,
    d: usize,
    q_stride: usize,
    kv_stride: usize,
    q_off: usize,
    k_off: usize,
    v_off: usize,
    rope: Option<Rope>,
}

impl Geo {
    /// Q, K and V packed in one `[B·T, (Hq + 2·Hkv)·D]` row each, rotated by `tables`.
    fn packed(seqs: &Seqs, hq: usize, hkv: usize, tables: &RopeTables) -> Geo {
        let d = tables.head_dim;
        let width = (hq + 2 * hkv) * d;
        let rope = Some(Rope { cos: tables.cos_vec(), sin: tables.sin_vec() });
        let (q_stride, kv_stride, q_off, k_off, v_off) = (width, width, 0, hq * d, (hq + hkv) * d);
        Geo { seqs: seqs.clone(), hq, hkv, d, q_stride, kv_stride, q_off, k_off, v_off, rope }
    }

    /// Rows of q, k, v and the output.
    fn rows(&self) -> usize {
        self.seqs.rows()
    }
    fn q_base(&self, r: usize, h: usize) -> usize {
        r * self.q_stride + self.q_off + h * self.d
    }
    fn k_base(&self, r: usize, h: usize) -> usize {
        r * self.kv_stride + self.k_off + h * self.d
    }
    fn v_base(&self, r: usize, h: usize) -> usize {
        r * self.kv_stride + self.v_off + h * self.d
    }
    fn o_base(&self, r: usize, h: usize) -> usize {
        r * self.hq * self.d + h * self.d
    }
    fn o_stride(&self) -> usize {
        self.hq * self.d
    }
    fn rope(&self) -> Option<(&[f32], &[f32])> {
        self.rope.as_ref().map(|r| (r.cos.as_slice(), r.sin.as_slice()))
    }
}

/// Copies rows `j < t` (row j at `src[base + j·stride..][..d]`), rotated by RoPE at position
/// j when `rope` is given, times `scale`, into `rows` (`[.., d]`, rows ≥ t untouched) and,
/// when `tr` is non-empty, transposed into `tr` (`[d, ld]`, or with `ld == 0` into panels of
/// 16 rows `[⌈t/16⌉, d, 16]`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gather(
    src: &[f32],
    base: usize,
    stride: usize,
    t: usize,
    d: usize,
    scale: f32,
    rope: Option<(&[f32], &[f32])>,
    rows: &mut [f32],
    tr: &mut [f32],
    ld: usize,
) {
    let half = d / 2;
    for j in 0..t {
        let s = &src[base + j * stride..base + j * stride + d];
        let r = &mut rows[j * d..(j + 1) * d];
        match rope {
            Some((cos, sin)) => {
                let (c, sn) = (&cos[j * half..(j + 1) * half], &sin[j * half..(j + 1) * half]);
                let (x1, x2) = s.split_at(half);
                let (r1, r2) = r.split_at_mut(half);
                rotate8(x1, x2, c, sn, scale, 1.0, r1, r2);
            }
            None => {
                for (o, x) in r.iter_mut().zip(s) {
                    *o = x * scale;
                }
            }
        }
        if !tr.is_empty() {
            if ld == 0 {
                // panels of 16 keys: [T/16][D][16], contiguous for one key block
                let panel = &mut tr[(j / BC) * d * BC + j % BC..];
                for c in 0..d {
                    panel[c * BC] = r[c];
                }
            } else {
                for c in 0..d {
                    tr[c * ld + j] = r[c];
                }
            }
        }
    }
}

/// o1 = (x1·c − x2·s·g)·k, o2 = (x2·c + x1·s·g)·k, 8 lanes at a time (vectorises);
/// `g` = +1 rotates, −1 applies the inverse rotation.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn rotate8(x1: &[f32], x2: &[f32], c: &[f32], s: &[f32], k: f32, g: f32, o1: &mut [f32], o2: &mut [f32]) {
    let h = o1.len();
    let (x1, x2, c, s, o2) = (&x1[..h], &x2[..h], &c[..h], &s[..h], &mut o2[..h]);
    let full = h / 8 * 8;
    for i0 in (0..full).step_by(8) {
        let a: &[f32; 8] = x1[i0..i0 + 8].try_into().unwrap();
        let b: &[f32; 8] = x2[i0..i0 + 8].try_into().unwrap();
        let cc: &[f32; 8] = c[i0..i0 + 8].try_into().unwrap();
        let ss: &[f32; 8] = s[i0..i0 + 8].try_into().unwrap();
        let mut r1 = [0f32; 8];
        let mut r2 = [0f32; 8];
        for l in 0..8 {
            let sg = ss[l] * g;
            r1[l] = (a[l] * cc[l] - b[l] * sg) * k;
            r2[l] = (b[l] * cc[l] + a[l] * sg) * k;
        }
        o1[i0..i0 + 8].copy_from_slice(&r1);
        o2[i0..i0 + 8].copy_from_slice(&r2);
    }
    for i in full..h {
        let sg = s[i] * g;
        o1[i] = (x1[i] * c[i] - x2[i] * sg) * k;
        o2[i] = (x2[i] * c[i] + x1[i] * sg) * k;
    }
}

/// Writes row `j < t` of `src` (`[t, d]`) to `dst[j·stride..][..d]`, applying the inverse RoPE
/// rotation at position j when `rope` is given.
#[inline(always)]
fn put_row(src: &[f32], dst: &mut [f32], j: usize, d: usize, rope: Option<(&[f32], &[f32])>) {
    match rope {
        Some((cos, sin)) => {
            let half = d / 2;
            let (c, sn) = (&cos[j * half..(j + 1) * half], &sin[j * half..(j + 1) * half]);
            let (g1, g2) = src[..d].split_at(half);
            let (o1, o2) = dst[..d].split_at_mut(half);
            // inverse rotation = rotation by −sin
            rotate8(g1, g2, c, sn, 1.0, -1.0, o1, o2);
        }
        None => dst[..d].copy_from_slice(&src[..d]),
    }
}

/// Scores of query row `qi` against keys `0..n` into `s[..n]` (`kt` is `[D, ld]`).
#[inline(always)]
fn scores<const F: bool>(qi: &[f32], kt: &[f32], ld: usize, n: usize, s: &mut [f32]) {
    let s = &mut s[..n];
    s.fill(0.0);
    for (c, &qc) in qi.iter().enumerate() {
        axpy::<F>(s, qc, &kt[c * ld..c * ld + n]);
    }
}

/// Row-at-a-time forward of one head on local buffers (any head dim). `qb` holds the scaled
/// queries `[t, d]`, `kt` the keys transposed `[d, t]`, `vb` the values `[t, d]`.
#[inline(always)]
fn fwd_rows<const F: bool>(qb: &[f32], kt: &[f32], vb: &[f32], t: usize, d: usize, out: &mut [f32], lse: &mut [f32]) {
    let mut s = vec![0f32; t];
    for i in 0..t {
        let n = i + 1;
        scores::<F>(&qb[i * d..(i + 1) * d], kt, t, n, &mut s);
        let m = simd::max(&s[..n]);
        for x in s[..n].iter_mut() {
            *x = exp::<F>(*x - m);
        }
        let sum = simd::sum(&s[..n]);
        let o = &mut out[i * d..(i + 1) * d];
        o.fill(0.0);
        for (j, &p) in s[..n].iter().enumerate() {
            axpy::<F>(o, p, &vb[j * d..(j + 1) * d]);
        }
        let inv = 1.0 / sum;
        o.iter_mut().for_each(|x| *x *= inv);
        lse[i] = m + sum.ln();
    }
}

/// Row-at-a-time backward of one query head on local buffers: accumulates into `dk`/`dv`
/// (`[t, d]`, w.r.t. the gathered k/v) and writes `dq` (w.r.t. the gathered, unscaled q).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bwd_rows<const F: bool>(
    qb: &[f32],
    kb: &[f32],
    kt: &[f32],
    vt: &[f32],
    dob: &[f32],
    di: &[f32],
    lse: &[f32],
    t: usize,
    d: usize,
    scale: f32,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let mut p = vec![0f32; t];
    let mut dp = vec![0f32; t];
    for i in 0..t {
        let n = i + 1;
        let (qi, doi) = (&qb[i * d..(i + 1) * d], &dob[i * d..(i + 1) * d]);
        scores::<F>(qi, kt, t, n, &mut p);
        for x in p[..n].iter_mut() {
            *x = exp::<F>(*x - lse[i]);
        }
        scores::<F>(doi, vt, t, n, &mut dp);
        let dqi = &mut dq[i * d..(i + 1) * d];
        dqi.fill(0.0);
        for j in 0..n {
            let pj = p[j];
            let ds = pj * (dp[j] - di[i]);
            axpy::<F>(&mut dv[j * d..(j + 1) * d], pj, doi);
            axpy::<F>(dqi, ds * scale, &kb[j * d..(j + 1) * d]);
            axpy::<F>(&mut dk[j * d..(j + 1) * d], ds, qi);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Register-blocked micro-kernels (head dims that are a multiple of 16): blocks of 6 query rows ×
// 16 keys (or 16 output columns) accumulate in 12 vector registers.

/// Query rows per register block (12 accumulators of 8 lanes with 16 columns).
pub(crate) const BR: usize = 6;
pub(crate) const BC: usize = 16;

#[inline(always)]
fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

/// acc[r][l] = Σ_{i<k} a[r·lda + i] · b[i·ldb + off + l]   (BR rows of `a`, 16 columns of `b`):
/// the scores q·kᵀ (`b` the keys transposed, `k` the head dim) and the weighted sums p·v (`k` the
/// keys).
#[inline(always)]
pub(crate) fn mk<const F: bool>(a: &[f32], lda: usize, k: usize, b: &[f32], ldb: usize, off: usize) -> [[f32; BC]; BR] {
    assert!(k <= lda && a.len() >= (BR - 1) * lda + k && off + BC <= ldb && b.len() >= k * ldb);
    #[cfg(target_arch = "x86_64")]
    if F {
        // SAFETY: F is only true inside the AVX2+FMA dispatch path; indices are bounded by
        // the assert above (i < k <= lda, rows < BR, off + 16 <= ldb, b has k rows of ldb).
        unsafe {
            use std::arch::x86_64::*;
            let mut acc = [[_mm256_setzero_ps(); 2]; BR];
            let ap = a.as_ptr();
            let bp = b.as_ptr().add(off);
            for i in 0..k {
                let b0 = _mm256_loadu_ps(bp.add(i * ldb));
                let b1 = _mm256_loadu_ps(bp.add(i * ldb + 8));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*ap.add(r * lda + i));
                    acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
                }
            }
            let mut out = [[0f32; BC]; BR];
            for r in 0..BR {
                _mm256_storeu_ps(out[r].as_mut_ptr(), acc[r][0]);
                _mm256_storeu_ps(out[r].as_mut_ptr().add(8), acc[r][1]);
            }
            return out;
        }
    }
    let mut acc = [[0f32; BC]; BR];
    for i in 0..k {
        let row: &[f32; BC] = b[i * ldb + off..i * ldb + off + BC].try_into().unwrap();
        for r in 0..BR {
            let av = a[r * lda + i];
            for l in 0..BC {
                acc[r][l] = madd::<F>(av, row[l], acc[r][l]);
            }
        }
    }
    acc
}

/// dst[j·d + c0 + l] += Σ_{r<R} p[r·ld + j] · x[r·d + c0 + l]   for j < n  (R = 2 or 4)
#[inline(always)]
fn mk_rank<const F: bool, const R: usize>(
    p: &[f32],
    ld: usize,
    n: usize,
    x: &[f32],
    d: usize,
    c0: usize,
    dst: &mut [f32],
) {
    assert!(
        R % 2 == 0 && n <= ld && p.len() >= (R - 1) * ld + n && c0 + BC <= d && x.len() >= R * d && dst.len() >= n * d
    );
    #[cfg(target_arch = "x86_64")]
    if F {
        // SAFETY: AVX2+FMA path only; j < n, dst has n rows of d, c0 + 16 <= d, rows < R.
        unsafe {
            use std::arch::x86_64::*;
            let xp = x.as_ptr().add(c0);
            let mut xs = [[_mm256_setzero_ps(); 2]; R];
            for (r, x) in xs.iter_mut().enumerate() {
                x[0] = _mm256_loadu_ps(xp.add(r * d));
                x[1] = _mm256_loadu_ps(xp.add(r * d + 8));
            }
            let pp = p.as_ptr();
            let dp = dst.as_mut_ptr().add(c0);
            for j in 0..n {
                let o = dp.add(j * d);
                // two independent chains per half, summed at the end
                let p0 = _mm256_broadcast_ss(&*pp.add(j));
                let p1 = _mm256_broadcast_ss(&*pp.add(ld + j));
                let mut s0 = _mm256_fmadd_ps(p1, xs[1][0], _mm256_mul_ps(p0, xs[0][0]));
                let mut s1 = _mm256_fmadd_ps(p1, xs[1][1], _mm256_mul_ps(p0, xs[0][1]));
                let mut t0 = _mm256_loadu_ps(o);
                let mut t1 = _mm256_loadu_ps(o.add(8));
                let mut r = 2;
                while r < R {
                    let pa = _mm256_broadcast_ss(&*pp.add(r * ld + j));
                    let pb = _mm256_broadcast_ss(&*pp.add((r + 1) * ld + j));
                    t0 = _mm256_fmadd_ps(pb, xs[r + 1][0], _mm256_fmadd_ps(pa, xs[r][0], t0));
                    t1 = _mm256_fmadd_ps(pb, xs[r + 1][1], _mm256_fmadd_ps(pa, xs[r][1], t1));
                    r += 2;
                }
                s0 = _mm256_add_ps(s0, t0);
                s1 = _mm256_add_ps(s1, t1);
                _mm256_storeu_ps(o, s0);
                _mm256_storeu_ps(o.add(8), s1);
            }
            return;
        }
    }
    for j in 0..n {
        let out: &mut [f32; BC] = (&mut dst[j * d + c0..j * d + c0 + BC]).try_into().unwrap();
        for l in 0..BC {
            let s = madd::<F>(p[ld + j], x[d + c0 + l], p[j] * x[c0 + l]);
            let mut t = out[l];
            let mut r = 2;
            while r < R {
                t = madd::<F>(
                    p[(r + 1) * ld + j],
                    x[(r + 1) * d + c0 + l],
                    madd::<F>(p[r * ld + j], x[r * d + c0 + l], t),
                );
                r += 2;
            }
            out[l] = s + t;
        }
    }
}

/// Blocked forward of one head on local buffers: `qb` `[tq, d]` (scaled, zero-padded),
/// `kt` `[d, tk]`, `vb` `[tk, d]` (zero-padded).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fwd_blocked<const F: bool>(
    qb: &[f32],
    kt: &[f32],
    vb: &[f32],
    t: usize,
    tk: usize,
    d: usize,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let mut s = vec![0f32; BR * tk];
    for i0 in (0..t).step_by(BR) {
        let nk = (i0 + BR).min(t);
        let nb = nk.div_ceil(BC);
        for jb in 0..nb {
            let acc = mk::<F>(&qb[i0 * d..(i0 + BR) * d], d, d, &kt[jb * d * BC..(jb + 1) * d * BC], BC, 0);
            for r in 0..BR {
                s[r * tk + jb * BC..r * tk + jb * BC + BC].copy_from_slice(&acc[r]);
            }
        }
        let mut inv = [0f32; BR];
        for r in 0..BR {
            let i = i0 + r;
            let row = &mut s[r * tk..r * tk + nb * BC];
            if i >= t {
                row.fill(0.0);
                continue;
            }
            let m = simd::max(&row[..=i]);
            for x in row[..=i].iter_mut() {
                *x = exp::<F>(*x - m);
            }
            let sum = simd::sum(&row[..=i]);
            row[i + 1..].fill(0.0);
            inv[r] = 1.0 / sum;
            lse[i] = m + sum.ln();
        }
        for c0 in (0..d).step_by(BC) {
            let acc = mk::<F>(&s, tk, nk, vb, d, c0);
            for r in 0..BR {
                let i = i0 + r;
                if i < t {
                    for l in 0..BC {
                        out[i * d + c0 + l] = acc[r][l] * inv[r];
                    }
                }
            }
        }
    }
}

/// Blocked backward of one query head (see [`bwd_rows`]); `kb` `[tk, d]`, `kt`/`vt` `[d, tk]`,
/// `qb`/`dob` `[tq, d]`, `dk`/`dv` `[tk, d]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bwd_blocked<const F: bool>(
    qb: &[f32],
    kb: &[f32],
    kt: &[f32],
    vt: &[f32],
    dob: &[f32],
    di: &[f32],
    lse: &[f32],
    t: usize,
    tk: usize,
    d: usize,
    scale: f32,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let mut p = vec![0f32; BR * tk];
    let mut ds = vec![0f32; BR * tk];
    for i0 in (0..t).step_by(BR) {
        let nk = (i0 + BR).min(t);
        let nb = nk.div_ceil(BC);
        for jb in 0..nb {
            let sc = mk::<F>(&qb[i0 * d..(i0 + BR) * d], d, d, &kt[jb * d * BC..(jb + 1) * d * BC], BC, 0);
            let dp = mk::<F>(&dob[i0 * d..(i0 + BR) * d], d, d, &vt[jb * d * BC..(jb + 1) * d * BC], BC, 0);
            for r in 0..BR {
                let i = i0 + r;
                // rows past the end: probabilities forced to 0
                let (li, dii, keep_row) = if i < t { (lse[i], di[i], 1.0f32) } else { (0.0, 0.0, 0.0) };
                let j0 = jb * BC;
                let prow: &mut [f32; BC] = (&mut p[r * tk + j0..r * tk + j0 + BC]).try_into().unwrap();
                let dsrow: &mut [f32; BC] = (&mut ds[r * tk + j0..r * tk + j0 + BC]).try_into().unwrap();
                let mut e = [0f32; BC];
                for l in 0..BC {
                    e[l] = exp::<F>(sc[r][l] - li);
                }
                // causal mask: keys j0 + l > i get probability 0
                let lim = (i + 1).saturating_sub(j0).min(BC);
                for l in 0..BC {
                    let keep = if l < lim { keep_row } else { 0.0 };
                    let pv = e[l] * keep;
                    prow[l] = pv;
                    dsrow[l] = pv * (dp[r][l] - dii);
                }
            }
        }
        for c0 in (0..d).step_by(BC) {
            // rank-6 updates as rank 4 + rank 2 (register budget)
            mk_rank::<F, 4>(&p, tk, nk, &dob[i0 * d..(i0 + 4) * d], d, c0, dv);
            mk_rank::<F, 2>(&p[4 * tk..], tk, nk, &dob[(i0 + 4) * d..(i0 + 6) * d], d, c0, dv);
            mk_rank::<F, 4>(&ds, tk, nk, &qb[i0 * d..(i0 + 4) * d], d, c0, dk);
            mk_rank::<F, 2>(&ds[4 * tk..], tk, nk, &qb[(i0 + 4) * d..(i0 + 6) * d], d, c0, dk);
            let acc = mk::<F>(&ds, tk, nk, kb, d, c0);
            for r in 0..BR {
                let i = i0 + r;
                if i < t {
                    for l in 0..BC {
                        dq[i * d + c0 + l] = acc[r][l] * scale;
                    }
                }
            }
        }
    }
}

/// Shared output buffer written by parallel tasks at disjoint rows.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    len: usize,
}
// SAFETY: tasks write disjoint ranges (one (batch, head) each), see `Out::put`.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    fn new(v: &mut [f32]) -> Self {
        Out { ptr: v.as_mut_ptr(), len: v.len() }
    }
    /// Writes `src` row `j` (of `d`) at `off` (with the inverse RoPE at position j if given).
    /// SAFETY: no two concurrent calls may target overlapping ranges.
    #[inline(always)]
    unsafe fn put(&self, off: usize, src: &[f32], j: usize, d: usize, rope: Option<(&[f32], &[f32])>) {
        assert!(off + d <= self.len);
        let dst = std::slice::from_raw_parts_mut(self.ptr.add(off), d);
        put_row(src, dst, j, d, rope);
    }
}

/// Forward task of one (sequence, query head): writes its rows of `out` (`[N, Hq, D]`).
#[inline(always)]
fn fwd_task<const F: bool>(q: &[f32], k: &[f32], v: &[f32], geo: &Geo, bh: usize, out: Out, lse: &mut [f32]) {
    let (h, d) = (bh % geo.hq, geo.d);
    let (b, t) = geo.seqs.span(bh / geo.hq); // b: the sequence's first row
    let kvh = h / (geo.hq / geo.hkv);
    let scale = 1.0 / (d as f32).sqrt();
    let blocked = d % BC == 0;
    let (tq, tk) = if blocked { (round_up(t, BR), round_up(t, BC)) } else { (t, t) };
    let mut qb = vec![0f32; tq * d];
    let mut kb = vec![0f32; tk * d];
    let mut kt = vec![0f32; d * tk];
    let mut vb = vec![0f32; tk * d];
    let rope = geo.rope();
    gather(q, geo.q_base(b, h), geo.q_stride, t, d, scale, rope, &mut qb, &mut [], 0);
    let ld = if blocked { 0 } else { tk }; // blocked kernels read 16-key panels
    gather(k, geo.k_base(b, kvh), geo.kv_stride, t, d, 1.0, rope, &mut kb, &mut kt, ld);
    gather(v, geo.v_base(b, kvh), geo.kv_stride, t, d, 1.0, None, &mut vb, &mut [], 0);
    let mut ob = vec![0f32; t * d];
    if blocked {
        fwd_blocked::<F>(&qb, &kt, &vb, t, tk, d, &mut ob, lse);
    } else {
        fwd_rows::<F>(&qb, &kt, &vb, t, d, &mut ob, lse);
    }
    for i in 0..t {
        // SAFETY: row (b, i, h) belongs to this task only.
        unsafe { out.put(geo.o_base(b + i, h), &ob[i * d..(i + 1) * d], i, d, None) };
    }
}
dispatch!(fn fwd_task_d => fwd_task(q: &[f32], k: &[f32], v: &[f32], geo: &Geo, bh: usize, out: Out, lse: &mut [f32]));

/// Where a backward writes: for q, k and v, a buffer, its row stride and the column of head 0.
#[derive(Clone, Copy)]
struct GradOut {
    q: (Out, usize, usize),
    k: (Out, usize, usize),
    v: (Out, usize, usize),
}

/// Backward task of one (sequence, kv head): writes the gradients of its query heads, its key
/// head and its value head (inverse RoPE applied to q and k when the op has RoPE).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bwd_task<const F: bool>(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    dout: &[f32],
    lse: &[f32],
    geo: &Geo,
    bkv: usize,
    go: &GradOut,
) {
    let (g, d) = (geo.hq / geo.hkv, geo.d);
    let kvh = bkv % geo.hkv;
    let (b, t) = geo.seqs.span(bkv / geo.hkv); // b: the sequence's first row
    let scale = 1.0 / (d as f32).sqrt();
    let blocked = d % BC == 0;
    let (tq, tk) = if blocked { (round_up(t, BR), round_up(t, BC)) } else { (t, t) };
    let rope = geo.rope();
    let mut kb = vec![0f32; tk * d];
    let mut kt = vec![0f32; d * tk];
    let mut vb = vec![0f32; tk * d];
    let mut vt = vec![0f32; d * tk];
    let ld = if blocked { 0 } else { tk }; // blocked kernels read 16-key panels
    gather(k, geo.k_base(b, kvh), geo.kv_stride, t, d, 1.0, rope, &mut kb, &mut kt, ld);
    gather(v, geo.v_base(b, kvh), geo.kv_stride, t, d, 1.0, None, &mut vb, &mut vt, ld);
    let mut dk_acc = vec![0f32; tk * d];
    let mut dv_acc = vec![0f32; tk * d];
    let mut dq = vec![0f32; t * d];
    let mut qb = vec![0f32; tq * d];
    let mut dob = vec![0f32; tq * d];
    let mut di = vec![0f32; t];
    for gi in 0..g {
        let h = kvh * g + gi;
        gather(q, geo.q_base(b, h), geo.q_stride, t, d, scale, rope, &mut qb, &mut [], 0);
        gather(dout, geo.o_base(b, h), geo.o_stride(), t, d, 1.0, None, &mut dob, &mut [], 0);
        let ob = geo.o_base(b, h);
        for (i, x) in di.iter_mut().enumerate() {
            let r = ob + i * geo.o_stride();
            *x = simd::dot::<F>(&dout[r..r + d], &o[r..r + d]);
        }
        let lse_h = &lse[b * geo.hq + h * t..b * geo.hq + (h + 1) * t];
        if blocked {
            bwd_blocked::<F>(&qb, &kb, &kt, &vt, &dob, &di, lse_h, t, tk, d, scale, &mut dq, &mut dk_acc, &mut dv_acc);
        } else {
            bwd_rows::<F>(&qb, &kb, &kt, &vt, &dob, &di, lse_h, t, d, scale, &mut dq, &mut dk_acc, &mut dv_acc);
        }
        let (out, stride, col) = go.q;
        for i in 0..t {
            // SAFETY: query head h of this sequence belongs to this task only.
            unsafe { out.put((b + i) * stride + col + h * d, &dq[i * d..(i + 1) * d], i, d, rope) };
        }
    }
    for (acc, (out, stride, col), rp) in [(&dk_acc, go.k, rope), (&dv_acc, go.v, None)] {
        for i in 0..t {
            // SAFETY: kv head kvh of this sequence belongs to this task only.
            unsafe { out.put((b + i) * stride + col + kvh * d, &acc[i * d..(i + 1) * d], i, d, rp) };
        }
    }
}
dispatch!(fn bwd_task_d => bwd_task(q: &[f32], k: &[f32], v: &[f32], o: &[f32], dout: &[f32], lse: &[f32], geo: &Geo, bkv: usize, go: &GradOut));

struct AttnOp {
    geo: Geo,
    /// Log-sum-exp of the scaled scores, set by the forward: for sequence s (first row r,
    /// length t), head h and position j at `r·Hq + h·t + j` (per (b, hq, t) for a padded batch).
    lse: Mutex<Option<Vec<f32>>>,
}

impl AttnOp {
    fn forward(&self, q: &[f32], k: &[f32], v: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let geo = &self.geo;
        let mut lse = vec![0f32; geo.rows() * geo.hq];
        let mut out = super::zeros(geo.rows() * geo.hq * geo.d); // [N, Hq, D]
        let w = Out::new(&mut out);
        // one disjoint slice of `lse` per (sequence, head) task, in task order
        let mut tasks = Vec::with_capacity(geo.seqs.count() * geo.hq);
        let mut rest = lse.as_mut_slice();
        for s in 0..geo.seqs.count() {
            for _ in 0..geo.hq {
                let (l, r) = std::mem::take(&mut rest).split_at_mut(geo.seqs.span(s).1);
                tasks.push(l);
                rest = r;
            }
        }
        tasks.into_par_iter().enumerate().for_each(|(bh, l)| fwd_task_d(q, k, v, geo, bh, w, l));
        (out, lse)
    }

    fn lse_or_recompute(&self, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
        match self.lse.lock().unwrap().clone() {
            Some(l) => l,
            None => self.forward(q, k, v).1,
        }
    }

    /// Runs the backward tasks, which write through `go`.
    #[allow(clippy::too_many_arguments)]
    fn backward(&self, q: &[f32], k: &[f32], v: &[f32], o: &[f32], dout: &[f32], lse: &[f32], go: &GradOut) {
        let geo = &self.geo;
        (0..geo.seqs.count() * geo.hkv).into_par_iter().for_each(|bkv| bwd_task_d(q, k, v, o, dout, lse, geo, bkv, go));
    }
}

impl CustomOp3 for AttnOp {
    fn name(&self) -> &'static str {
        "engine-causal-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("attention fwd");
        let q = cpu_f32(s1, l1, "attention q")?;
        let k = cpu_f32(s2, l2, "attention k")?;
        let v = cpu_f32(s3, l3, "attention v")?;
        let (out, lse) = self.forward(q, k, v);
        *self.lse.lock().unwrap() = Some(lse);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        o: &Tensor,
        dout: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let _prof = super::prof::timer("attention bwd");
        let geo = &self.geo;
        let (hq, hkv, d) = (geo.hq, geo.hkv, geo.d);
        let (dq, dk, dv) = with_f32(q, "attention bwd q", |q| {
            with_f32(k, "attention bwd k", |k| {
                with_f32(v, "attention bwd v", |v| {
                    with_f32(o, "attention bwd o", |o| {
                        with_f32(dout, "attention bwd dout", |dout| {
                            let lse = self.lse_or_recompute(q, k, v);
                            let n = geo.rows();
                            let mut dq = super::zeros(n * hq * d);
                            let mut dk = super::zeros(n * hkv * d);
                            let mut dv = super::zeros(n * hkv * d);
                            let go = GradOut {
                                q: (Out::new(&mut dq), hq * d, 0),
                                k: (Out::new(&mut dk), hkv * d, 0),
                                v: (Out::new(&mut dv), hkv * d, 0),
                            };
                            self.backward(q, k, v, o, dout, &lse, &go);
                            (dq, dk, dv)
                        })
                    })
                })
            })
        })?????;
        Ok((Some(cpu_tensor(dq, q.dims())?), Some(cpu_tensor(dk, k.dims())?), Some(cpu_tensor(dv, v.dims())?)))
    }
}

/// The packed-qkv variant (RoPE fused), see [`qkv_rope_attention`].
struct PackedAttnOp(AttnOp);

/// Packed RoPE attention on raw buffers, for ops that embed it (the attention block).
pub(crate) struct PackedAttn(AttnOp);

impl PackedAttn {
    /// `None` when the head dim is not a multiple of 16 (no fused kernel).
    pub(crate) fn new(seqs: &Seqs, hq: usize, hkv: usize, tables: &RopeTables) -> Option<Self> {
        let d = tables.head_dim;
        if d % BC != 0 || hkv == 0 || hq % hkv != 0 || seqs.max_len() > tables.max_pos {
            return None;
        }
        Some(PackedAttn(AttnOp { geo: Geo::packed(seqs, hq, hkv, tables), lse: Mutex::new(None) }))
    }
    /// `[N, Hq·D]` output of the packed `qkv` `[N, width]`; keeps the log-sum-exp.
    pub(crate) fn forward(&self, qkv: &[f32]) -> Vec<f32> {
        let (out, lse) = self.0.forward(qkv, qkv, qkv);
        *self.0.lse.lock().unwrap() = Some(lse);
        out
    }
    /// Packed gradient `[N, width]` from the forward's `o` and its gradient `dout`.
    pub(crate) fn backward(&self, qkv: &[f32], o: &[f32], dout: &[f32]) -> Vec<f32> {
        let geo = &self.0.geo;
        let width = (geo.hq + 2 * geo.hkv) * geo.d;
        let lse = self.0.lse_or_recompute(qkv, qkv, qkv);
        let mut dst = super::zeros(geo.rows() * width);
        let w = Out::new(&mut dst);
        let go = GradOut { q: (w, width, geo.q_off), k: (w, width, geo.k_off), v: (w, width, geo.v_off) };
        self.0.backward(qkv, qkv, qkv, o, dout, &lse, &go);
        dst
    }
}

impl CustomOp1 for PackedAttnOp {
    fn name(&self) -> &'static str {
        "engine-qkv-rope-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _prof = super::prof::timer("attention fwd");
        let qkv = cpu_f32(s, l, "qkv attention")?;
        let (out, lse) = self.0.forward(qkv, qkv, qkv);
        *self.0.lse.lock().unwrap() = Some(lse);
        let geo = &self.0.geo;
        Ok((CpuStorage::F32(out), Shape::from((geo.rows(), geo.hq * geo.d))))
    }

    fn bwd(&self, qkv: &Tensor, o: &Tensor, dout: &Tensor) -> Result<Option<Tensor>> {
        let _prof = super::prof::timer("attention bwd");
        let geo = &self.0.geo;
        let width = (geo.hq + 2 * geo.hkv) * geo.d;
        let d = with_f32(qkv, "qkv attention bwd", |x| {
            with_f32(o, "qkv attention bwd", |o| {
                with_f32(dout, "qkv attention bwd", |dout| {
                    let lse = self.0.lse_or_recompute(x, x, x);
                    let mut dst = super::zeros(geo.rows() * width);
                    let w = Out::new(&mut dst);
                    let go = GradOut { q: (w, width, geo.q_off), k: (w, width, geo.k_off), v: (w, width, geo.v_off) };
                    self.0.backward(x, x, x, o, dout, &lse, &go);
                    dst
                })
            })
        })???;
        Ok(Some(cpu_tensor(d, qkv.dims())?))
    }
}

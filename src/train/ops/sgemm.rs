//! The training linears' matrix products on CPUs with AVX2 + FMA and without AVX-512:
//! `C = A·B` (f32, any strides for A and B, C row-major), **bit for bit what gemm gives**, about
//! 1.05–1.1× faster at the 135M shape's products on a 2-core AMD EPYC (`mixscope bench sgemm`).
//!
//! Why the bits match: gemm (the crate candle's matmul calls) cuts the inner dimension into
//! blocks of `kc` (its `kernel_params`, from the L1 cache's geometry: at most 512, balanced),
//! sums each block into a fresh register with one FMA per `k`, in order, and adds the block's sum
//! into C (the first block written over C). This module does the same arithmetic in the same
//! order with the same `kc` and differs only in how the work is laid out:
//!
//! * a 6 × 16 register tile (12 accumulators), A packed in 6-row panels, B in 16-column panels,
//!   both 64-byte aligned (a packed B row is one cache line);
//! * A packed once per depth block for all of a thread's rows, B packed per 128-column block
//!   (kept in L2 while every row panel passes over it);
//! * C split by rows into one strip per thread, each thread packing what it reads: no barrier
//!   inside a product, and no element's sum depends on the split (deterministic for any thread
//!   count).
//!
//! Elsewhere (AVX-512, where gemm's own kernels are faster; other architectures; shapes gemm
//! treats specially: a side under 128, a depth under 16) the product goes to gemm, called exactly
//! as candle calls it.

use super::{cpu_tensor, with_f32};
use candle_core::{Result, Tensor};
use rayon::prelude::*;

/// A read-only matrix view: element `(i, j)` at `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `[rows, cols]` matrix.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat { data, rs: cols, cs: 1 }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn t(data: &'a [f32], cols: usize) -> Self {
        Mat { data, rs: 1, cs: cols }
    }
    /// A row-major matrix with `cols` columns, or its transpose when `t`.
    pub fn of(data: &'a [f32], t: bool, cols: usize) -> Self {
        if t {
            Mat::t(data, cols)
        } else {
            Mat::rows(data, cols)
        }
    }
    /// Panics unless every `(i, j)`, `i < rows`, `j < cols`, lies in `data`.
    fn check(&self, rows: usize, cols: usize, what: &str) {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * self.rs + (cols - 1) * self.cs;
            assert!(last < self.data.len(), "sgemm: {what} [{rows}, {cols}] outside its {} values", self.data.len());
        }
    }
}

const MR: usize = 6;
const NR: usize = 16;
/// Columns of B packed at a time (8 panels: 256 KiB at kc = 512, within a Zen 3 core's L2).
const NC: usize = 128;

/// `A [m, k] · B [k, n]` as a new row-major `[m, n]`.
pub(crate) fn matmul(m: usize, n: usize, k: usize, a: Mat, b: Mat) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    matmul_into(m, n, k, a, b, &mut c, false);
    c
}

/// `C (+)= A [m, k] · B [k, n]` into row-major `c` `[m, n]`: added to what `c` holds when
/// `accumulate`, else written over it.
pub(crate) fn matmul_into(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [f32], accumulate: bool) {
    a.check(m, k, "A");
    b.check(k, n, "B");
    assert_eq!(c.len(), m * n, "sgemm: C holds {} values for [{m}, {n}]", c.len());
    if m == 0 || n == 0 {
        return;
    }
    if own_kernel(m, n, k) {
        let kc = depth_block(m, n, k);
        let threads = rayon::current_num_threads().max(1);
        let rows_per = m.div_ceil(threads).div_ceil(MR) * MR;
        c.par_chunks_mut(rows_per * n).enumerate().for_each(|(t, strip)| {
            let sub = Mat { data: &a.data[t * rows_per * a.rs..], ..a };
            strip_product(strip.len() / n, n, k, kc, sub, b, strip, accumulate);
        });
    } else {
        with_gemm(m, n, k, a, b, c, accumulate);
    }
}

/// `x [n, k] · wᵀ` for the first `rows` rows of a row-major `w` `[rows.., k]` (a linear layer's
/// forward, PyTorch's weight layout).
pub(crate) fn x_wt(x: &[f32], w: &[f32], n: usize, k: usize, rows: usize) -> Vec<f32> {
    matmul(n, rows, k, Mat::rows(x, k), Mat::t(&w[..rows * k], k))
}

/// `op(a) · op(b)` of two 2-D CPU f32 tensors, `op` the transpose where `at` / `bt`: the products
/// of the fused ops' backward passes (`dy·W`, `dyᵀ·x`).
pub(crate) fn mm(a: &Tensor, at: bool, b: &Tensor, bt: bool) -> Result<Tensor> {
    let (ar, ac) = a.dims2()?;
    let (br, bc) = b.dims2()?;
    let (m, k) = if at { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if bt { (bc, br) } else { (br, bc) };
    if k != k2 {
        candle_core::bail!(
            "sgemm: {:?}{} x {:?}{}",
            a.dims(),
            if at { "ᵀ" } else { "" },
            b.dims(),
            if bt { "ᵀ" } else { "" }
        );
    }
    let c = with_f32(a, "sgemm", |av| {
        with_f32(b, "sgemm", |bv| matmul(m, n, k, Mat::of(av, at, ac), Mat::of(bv, bt, bc)))
    })??;
    cpu_tensor(c, &[m, n])
}

/// Whether this module's kernel computes an `[m, n]` product of depth `k` on this CPU.
fn own_kernel(m: usize, n: usize, k: usize) -> bool {
    m >= 128 && n >= 128 && k >= 16 && avx2_without_avx512() && std::env::var_os("MIXSCOPE_GEMM_ONLY").is_none()
}

fn avx2_without_avx512() -> bool {
    static FLAG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FLAG.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            super::simd::has_avx2_fma() && !std::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// gemm's depth block for this product on this CPU (its AVX2 kernel: 16 × 6, f32).
fn depth_block(m: usize, n: usize, k: usize) -> usize {
    gemm_common::cache::kernel_params(n, m, k, 16, 6, 4).kc
}

/// The product through gemm, with the arguments candle's CPU matmul passes it.
pub(crate) fn with_gemm(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [f32], accumulate: bool) {
    let threads = rayon::current_num_threads();
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: `check` above bounds every element the strides reach in A and B; C is `[m, n]`
    // row-major (dst_cs 1, dst_rs n) and holds m·n values.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// A zeroed buffer of `n` floats whose slice `[off..off + n]` starts on a 64-byte boundary.
fn aligned(n: usize) -> (Vec<f32>, usize) {
    let v = vec![0f32; n + 16];
    let off = (64 - v.as_ptr() as usize % 64) % 64 / 4;
    (v, off)
}

/// One thread's strip: `C [m, n] (+)= A [m, k] · B [k, n]`.
#[allow(clippy::too_many_arguments)]
fn strip_product(m: usize, n: usize, k: usize, kc: usize, a: Mat, b: Mat, c: &mut [f32], accumulate: bool) {
    let panels = m.div_ceil(MR);
    let (mut av, ao) = aligned(kc * MR * panels);
    let (mut bv, bo) = aligned(kc * NC);
    let ap = &mut av[ao..ao + kc * MR * panels];
    let bp = &mut bv[bo..bo + kc * NC];
    let mut edge = [0f32; MR * NR];
    let mut p0 = 0;
    while p0 < k {
        let kb = kc.min(k - p0);
        let first = p0 == 0 && !accumulate;
        for (i, panel) in ap.chunks_mut(kb * MR).take(panels).enumerate() {
            pack_a(kb, MR.min(m - i * MR), a, i * MR, p0, panel);
        }
        let mut j0 = 0;
        while j0 < n {
            let nb = NC.min(n - j0);
            pack_b(kb, nb, b, p0, j0, bp);
            for (i, apanel) in ap.chunks(kb * MR).take(panels).enumerate() {
                let (r0, rows) = (i * MR, MR.min(m - i * MR));
                for (p, bpanel) in bp.chunks(kb * NR).take(nb.div_ceil(NR)).enumerate() {
                    let j = j0 + p * NR;
                    let cols = NR.min(n - j);
                    if rows == MR && cols == NR {
                        // SAFETY: the tile's rows r0..r0+6 < m and columns j..j+16 <= n lie in
                        // the strip's m·n values; the panels hold kb·6 and kb·16 values.
                        unsafe {
                            tile(kb, apanel.as_ptr(), bpanel.as_ptr(), c.as_mut_ptr().add(r0 * n + j), n, !first)
                        };
                    } else {
                        // SAFETY: `edge` is one whole 6 × 16 tile.
                        unsafe { tile(kb, apanel.as_ptr(), bpanel.as_ptr(), edge.as_mut_ptr(), NR, false) };
                        for r in 0..rows {
                            let out = &mut c[(r0 + r) * n + j..][..cols];
                            for (o, v) in out.iter_mut().zip(&edge[r * NR..r * NR + cols]) {
                                *o = if first { *v } else { *o + *v };
                            }
                        }
                    }
                }
            }
            j0 += nb;
        }
        p0 += kb;
    }
}

/// Rows `i0..i0 + rows` (at most 6) of A's depth slice `k0..k0 + kb` as `[kb, 6]`, zero-padded.
fn pack_a(kb: usize, rows: usize, a: Mat, i0: usize, k0: usize, out: &mut [f32]) {
    if rows < MR {
        out[..kb * MR].fill(0.0);
    }
    if a.cs == 1 {
        for r in 0..rows {
            let row = &a.data[(i0 + r) * a.rs + k0..][..kb];
            for (kk, v) in row.iter().enumerate() {
                out[kk * MR + r] = *v;
            }
        }
    } else {
        for kk in 0..kb {
            let at = (k0 + kk) * a.cs + i0 * a.rs;
            for r in 0..rows {
                out[kk * MR + r] = a.data[at + r * a.rs];
            }
        }
    }
}

/// Columns `j0..j0 + nb` of B's depth slice `k0..k0 + kb` as 16-column panels `[kb, 16]`,
/// zero-padded.
fn pack_b(kb: usize, nb: usize, b: Mat, k0: usize, j0: usize, out: &mut [f32]) {
    for (p, panel) in out.chunks_mut(kb * NR).take(nb.div_ceil(NR)).enumerate() {
        let jj = j0 + p * NR;
        let w = NR.min(j0 + nb - jj);
        if b.cs == 1 {
            for kk in 0..kb {
                let src = &b.data[(k0 + kk) * b.rs + jj..][..w];
                let dst = &mut panel[kk * NR..kk * NR + NR];
                dst[..w].copy_from_slice(src);
                dst[w..].fill(0.0);
            }
        } else {
            if w < NR {
                panel.fill(0.0);
            }
            for j in 0..w {
                let col = (jj + j) * b.cs + k0 * b.rs;
                for kk in 0..kb {
                    panel[kk * NR + j] = b.data[col + kk * b.rs];
                }
            }
        }
    }
}

/// One 6 × 16 tile: `acc = Σ_k a[k]·b[k]` (one FMA per k, in order, from zero), then
/// `C = acc` or `C = C + acc` (`add`). `C`'s rows are `ldc` apart.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` holds `k·6` values, `b` `k·16`, and `c` six rows of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, add: bool) {
    use std::arch::x86_64::*;
    let z = _mm256_setzero_ps();
    let mut acc = [[z; 2]; MR];
    let (mut ap, mut bp) = (a, b);
    for _ in 0..k {
        let b0 = _mm256_loadu_ps(bp);
        let b1 = _mm256_loadu_ps(bp.add(8));
        for (r, row) in acc.iter_mut().enumerate() {
            let x = _mm256_broadcast_ss(&*ap.add(r));
            row[0] = _mm256_fmadd_ps(x, b0, row[0]);
            row[1] = _mm256_fmadd_ps(x, b1, row[1]);
        }
        ap = ap.add(MR);
        bp = bp.add(NR);
    }
    for (r, [lo, hi]) in acc.into_iter().enumerate() {
        let p = c.add(r * ldc);
        if add {
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), lo));
            _mm256_storeu_ps(p.add(8), _mm256_add_ps(_mm256_loadu_ps(p.add(8)), hi));
        } else {
            _mm256_storeu_ps(p, lo);
            _mm256_storeu_ps(p.add(8), hi);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile(_: usize, _: *const f32, _: *const f32, _: *mut f32, _: usize, _: bool) {
    unreachable!("own_kernel is false off x86_64")
}

/// `n` pseudo-random values in [-0.5, 0.5) from `seed` (xorshift): the operands of this
/// module's tests and of `bench sgemm`.
pub(crate) fn sample_values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::sample_values as values;
    use super::*;

    /// Every layout the training linears use, at shapes with edge tiles, several depth blocks
    /// (balanced and not), accumulating and not: the bits gemm gives.
    #[test]
    fn products_are_gemms_bit_for_bit() {
        let shapes = [(130, 150, 17), (203, 131, 576), (300, 200, 1100), (128, 515, 2049), (257, 129, 513)];
        let mut checked = 0;
        for (m, n, k) in shapes {
            // On a CPU with AVX2 and without AVX-512 these are this module's kernel against gemm;
            // elsewhere both sides are gemm.
            assert_eq!(own_kernel(m, n, k), avx2_without_avx512() && std::env::var_os("MIXSCOPE_GEMM_ONLY").is_none());
            let av = values(m * k, 1);
            let bv = values(k * n, 2);
            for (at, bt) in [(false, false), (false, true), (true, false)] {
                let a = if at { Mat::t(&av, m) } else { Mat::rows(&av, k) };
                let b = if bt { Mat::t(&bv, k) } else { Mat::rows(&bv, n) };
                for accumulate in [false, true] {
                    let start = values(m * n, 3);
                    let (mut ours, mut theirs) = (start.clone(), start);
                    matmul_into(m, n, k, a, b, &mut ours, accumulate);
                    with_gemm(m, n, k, a, b, &mut theirs, accumulate);
                    let same = ours.iter().zip(&theirs).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "[{m}, {k}] x [{k}, {n}], A^T {at}, B^T {bt}, accumulate {accumulate}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 30);
        // The mutation that the comparison catches: one depth block's order changed.
        let (m, n, k) = (130, 140, 600);
        let (av, bv) = (values(m * k, 4), values(k * n, 5));
        let mut theirs = vec![0f32; m * n];
        with_gemm(m, n, k, Mat::rows(&av, k), Mat::rows(&bv, n), &mut theirs, false);
        let naive: Vec<f32> = (0..m * n)
            .map(|e| (0..k).fold(0f32, |s, kk| av[(e / n) * k + kk].mul_add(bv[kk * n + e % n], s)))
            .collect();
        assert!(naive.iter().zip(&theirs).any(|(x, y)| x.to_bits() != y.to_bits()));
    }

    #[test]
    fn thread_counts_give_the_same_bits() {
        let (m, n, k) = (389, 257, 700);
        let (av, bv) = (values(m * k, 6), values(k * n, 7));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| matmul(m, n, k, Mat::rows(&av, k), Mat::t(&bv, k)))
        };
        let one = run(1);
        for t in [2, 3, 5] {
            assert!(run(t).iter().zip(&one).all(|(x, y)| x.to_bits() == y.to_bits()), "{t} threads");
        }
    }
}

//! The training linears' and the output layer's matrix products on CPUs with AVX2 + FMA and
//! without AVX-512: `C = A·B` (f32, any strides for A and B, C row-major), **bit for bit what
//! gemm gives**, 1.02–1.07× gemm over the 135M shape's twelve block products on a 2-core AMD EPYC
//! (`mixscope bench sgemm`), and more in a whole step, where its tasks balance and the output
//! layer's weight is packed once.
//!
//! Why the bits match: gemm (the crate candle's matmul calls) cuts the inner dimension into
//! blocks of `kc` (its `kernel_params`, from the L1 cache's geometry: at most 512, balanced),
//! sums each block into a fresh register with one FMA per `k`, in order, and adds the block's sum
//! into C (the first block written over C). This module does the same arithmetic in the same
//! order with the same `kc` and differs only in how the work is laid out:
//!
//! * a 6 × 16 register tile (12 accumulators), A packed in 6-row panels, B in 16-column panels,
//!   both 64-byte aligned (a packed B row is one cache line), packed with 8 × 8 transposes;
//! * A and B each packed once per product, in parallel, and shared (or B packed once for many
//!   products: [`PackedB`], the output layer's weight for a step's chunks of rows);
//! * C cut into a grid of about four tasks per thread, along the side whose cut re-reads less,
//!   that rayon balances (on a shared VM one core is often slower than the other); inside a
//!   task, B a 128-column block at a time (kept in L2 while the row panels pass over it). No
//!   element's sum depends on the grid (deterministic for any thread count).
//!
//! Elsewhere (AVX-512, where gemm's own kernels are faster; other architectures; shapes gemm
//! treats specially: a side under 128, a depth under 16) the product goes to gemm, called exactly
//! as candle calls it.

use super::{cpu_tensor, with_f32};
use candle_core::{Result, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

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
    matmul_reserve(m, n, k, a, b, 0)
}

/// [`matmul`] in a vector with room for `extra` more values after it (pushed without a copy).
pub(crate) fn matmul_reserve(m: usize, n: usize, k: usize, a: Mat, b: Mat, extra: usize) -> Vec<f32> {
    a.check(m, k, "A");
    b.check(k, n, "B");
    let mut c = Vec::with_capacity(m * n + extra);
    if m > 0 && n > 0 && own_kernel(m, n, k) {
        // No zero fill (a serial memset of C): the first depth block writes every element.
        own_product(m, n, k, a, b, &mut c.spare_capacity_mut()[..m * n], false);
        // SAFETY: own_product without accumulate initialised all m·n values.
        unsafe { c.set_len(m * n) };
    } else {
        c.resize(m * n, 0.0);
        matmul_into(m, n, k, a, b, &mut c, false);
    }
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
        // SAFETY: the same memory viewed as possibly-uninitialised floats; only floats are
        // written through it.
        let c = unsafe { &mut *(c as *mut [f32] as *mut [MaybeUninit<f32>]) };
        own_product(m, n, k, a, b, c, accumulate);
    } else {
        with_gemm(m, n, k, a, b, c, accumulate);
    }
}

/// [`matmul_into`] through this module's kernel; `c` is read only when `accumulate`.
fn own_product(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [MaybeUninit<f32>], accumulate: bool) {
    let kc = depth_block(m, n, k);
    with_buffer(k * n.div_ceil(NR) * NR, |bp| {
        pack_b_all(k, n, kc, b, bp);
        product(m, n, k, kc, a, bp, c, accumulate);
    });
}

/// The product from B packed by [`pack_b_all`]: A packed likewise (once, in parallel), then C
/// cut into a grid of tasks that rayon balances over the threads (a core slowed by something
/// else on the machine does fewer). No element's sum depends on the grid.
#[allow(clippy::too_many_arguments)]
fn product(m: usize, n: usize, k: usize, kc: usize, a: Mat, bp: &[f32], c: &mut [MaybeUninit<f32>], accumulate: bool) {
    let _prof = super::prof::timer("sgemm products");
    let (apanels, bpanels) = (m.div_ceil(MR), n.div_ceil(NR));
    with_buffer(k * apanels * MR, |ap| {
        pack_a_all(m, k, kc, a, ap);
        let (rb, cb) = grid(m, n, k, rayon::current_num_threads().max(1));
        let (rows_per, cols_per) = (apanels.div_ceil(rb), bpanels.div_ceil(cb));
        let out = SendPtr(c.as_mut_ptr() as *mut f32);
        (0..rb * cb).into_par_iter().for_each(|t| {
            let (i0, q0) = ((t / cb) * rows_per, (t % cb) * cols_per);
            let (i1, q1) = ((i0 + rows_per).min(apanels), (q0 + cols_per).min(bpanels));
            if i0 < i1 && q0 < q1 {
                let out = &out;
                // SAFETY: tasks cover disjoint blocks of C's rows × columns (i0..i1 × q0..q1 in
                // panels), each inside [m, n]; C is read only where `accumulate` said it holds values
                // or an earlier depth block of the same task wrote it.
                unsafe { block_product((m, n, k, kc), (i0, i1), (q0, q1), ap, bp, out.0, accumulate) };
            }
        });
    });
}

struct SendPtr(*mut f32);
// SAFETY: the tasks sharing it write disjoint elements (see `product`).
unsafe impl Sync for SendPtr {}

/// Tasks along C's rows × columns: about four per thread, cut where the operand each cut
/// re-reads is the smaller one (a row cut reads all of B again, a column cut all of A): the
/// output layer's `[256, 49 152]` logits split by columns, its `[49 152, 576]` dW by rows.
fn grid(m: usize, n: usize, k: usize, threads: usize) -> (usize, usize) {
    if threads <= 1 {
        return (1, 1);
    }
    let (apanels, bpanels) = (m.div_ceil(MR), n.div_ceil(NR));
    let tasks = 4 * threads;
    (1..=tasks)
        .filter(|&r| r <= apanels)
        .map(|r| (r, tasks.div_ceil(r).min(bpanels)))
        .min_by_key(|&(r, c)| r * k * n + c * m * k)
        .unwrap_or((1, 1))
}

/// A's rows in 6-row panels, per depth block: block `k0` holds every panel `[kb, 6]` in turn
/// (panel `i` at `k0·panels·6 + i·kb·6`), zero past row `m`. Packed in parallel.
fn pack_a_all(m: usize, k: usize, kc: usize, a: Mat, out: &mut [f32]) {
    const GROUP: usize = 16;
    let panels = m.div_ceil(MR);
    let mut jobs = Vec::new();
    let mut rest = &mut out[..k * panels * MR];
    let mut k0 = 0;
    while k0 < k {
        let kb = kc.min(k - k0);
        for g in (0..panels).step_by(GROUP) {
            let (part, tail) = rest.split_at_mut(kb * MR * GROUP.min(panels - g));
            jobs.push((k0, kb, g, part));
            rest = tail;
        }
        k0 += kb;
    }
    jobs.into_par_iter().for_each(|(k0, kb, g, part)| pack_a_panels(kb, m, a, k0, g, part));
}

/// A `[k, n]` right-hand side packed once for several products `A·B` whose A have `m` rows
/// (the output layer's weight, used by every chunk of rows in a step).
pub(crate) struct PackedB {
    data: Vec<f32>,
    /// Where the packed panels start (a 64-byte boundary).
    start: usize,
    m: usize,
    n: usize,
    k: usize,
}

impl PackedB {
    /// None where this module's kernel does not compute `[m, k]·[k, n]` on this CPU (gemm does).
    pub fn new(m: usize, k: usize, n: usize, b: Mat) -> Option<PackedB> {
        b.check(k, n, "B");
        if !own_kernel(m, n, k) {
            return None;
        }
        let len = k * n.div_ceil(NR) * NR;
        let mut data = super::zeros(len + 16);
        let start = aligned_start(&data);
        pack_b_all(k, n, depth_block(m, n, k), b, &mut data[start..][..len]);
        Some(PackedB { data, start, m, n, k })
    }

    fn panels(&self) -> &[f32] {
        &self.data[self.start..]
    }
}

/// `A [m, k] · B [k, n]` as a new row-major `[m, n]`, from B packed where `packed` holds it for
/// this shape (else as [`matmul`]).
pub(crate) fn matmul_packed(m: usize, n: usize, k: usize, a: Mat, b: Mat, packed: Option<&PackedB>) -> Vec<f32> {
    match packed {
        Some(p) if (p.m, p.n, p.k) == (m, n, k) => {
            a.check(m, k, "A");
            let mut c = Vec::with_capacity(m * n);
            product(m, n, k, depth_block(m, n, k), a, p.panels(), &mut c.spare_capacity_mut()[..m * n], false);
            // SAFETY: without accumulate every one of the m·n values was written.
            unsafe { c.set_len(m * n) };
            c
        }
        _ => matmul(m, n, k, a, b),
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
    let m = if at { a.dim(1)? } else { a.dim(0)? };
    let n = if bt { b.dim(0)? } else { b.dim(1)? };
    cpu_tensor(mm_reserve(a, at, b, bt, 0)?, &[m, n])
}

/// [`mm`]'s values in a vector with room for `extra` more (see [`matmul_reserve`]).
pub(crate) fn mm_reserve(a: &Tensor, at: bool, b: &Tensor, bt: bool, extra: usize) -> Result<Vec<f32>> {
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
    with_f32(a, "sgemm", |av| {
        with_f32(b, "sgemm", |bv| matmul_reserve(m, n, k, Mat::of(av, at, ac), Mat::of(bv, bt, bc), extra))
    })?
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
    let _prof = super::prof::timer("gemm products (sgemm fallback)");
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

thread_local! {
    /// Each thread's packing buffers, lent out by [`with_buffer`] (one per nesting level: a
    /// thread waiting inside a product may run another product's task).
    static BUFFERS: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `f` on `n` floats of scratch starting on a 64-byte boundary. The contents are garbage.
fn with_buffer<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut v = BUFFERS.with(|b| b.borrow_mut().pop()).unwrap_or_default();
    if v.len() < n + 16 {
        v = vec![0f32; n + 16];
    }
    let start = aligned_start(&v);
    let r = f(&mut v[start..][..n]);
    BUFFERS.with(|b| b.borrow_mut().push(v));
    r
}

/// The first index of `v` on a 64-byte boundary (at most 15).
fn aligned_start(v: &[f32]) -> usize {
    (64 - v.as_ptr() as usize % 64) % 64 / 4
}

/// All of B, packed: for each depth block (`k0`, `kb`) in turn, its 16-column panels `[kb, 16]`
/// one after another (zero past column `n`), so the block's panel `p` starts at
/// `k0·panels·16 + p·kb·16`. Packed in parallel, once per product, and shared by every task.
fn pack_b_all(k: usize, n: usize, kc: usize, b: Mat, out: &mut [f32]) {
    let panels = n.div_ceil(NR);
    let mut jobs = Vec::with_capacity(k.div_ceil(kc) * panels);
    let mut rest = &mut out[..k * panels * NR];
    let mut k0 = 0;
    while k0 < k {
        let kb = kc.min(k - k0);
        for p in 0..panels {
            let (panel, tail) = rest.split_at_mut(kb * NR);
            jobs.push((k0, kb, p * NR, panel));
            rest = tail;
        }
        k0 += kb;
    }
    jobs.into_par_iter().with_min_len(4).for_each(|(k0, kb, j0, panel)| pack_b(kb, NR.min(n - j0), b, k0, j0, panel));
}

/// One task: C's row panels `i0..i1` × column panels `q0..q1` of `C [m, n] (+)= A·B`, from A
/// and B packed by [`pack_a_all`] and [`pack_b_all`].
///
/// # Safety
/// `c` is `[m, n]` row-major; no other thread touches this block of it; where `accumulate`, the
/// block holds values.
#[allow(clippy::too_many_arguments)]
unsafe fn block_product(
    (m, n, k, kc): (usize, usize, usize, usize),
    (i0, i1): (usize, usize),
    (q0, q1): (usize, usize),
    ap: &[f32],
    bp: &[f32],
    c: *mut f32,
    accumulate: bool,
) {
    let (apanels, bpanels) = (m.div_ceil(MR), n.div_ceil(NR));
    let mut edge = [0f32; MR * NR];
    let mut p0 = 0;
    while p0 < k {
        let kb = kc.min(k - p0);
        let first = p0 == 0 && !accumulate;
        let ablock = &ap[p0 * apanels * MR..][..kb * apanels * MR];
        let bblock = &bp[p0 * bpanels * NR..][..kb * bpanels * NR];
        // B a 128-column block at a time (kept in L2 while this task's row panels pass over it).
        for qb in (q0..q1).step_by(NC / NR) {
            for i in i0..i1 {
                let apanel = &ablock[i * kb * MR..][..kb * MR];
                let (r0, rows) = (i * MR, MR.min(m - i * MR));
                for q in qb..(qb + NC / NR).min(q1) {
                    let bpanel = &bblock[q * kb * NR..][..kb * NR];
                    let j = q * NR;
                    let cols = NR.min(n - j);
                    if rows == MR && cols == NR {
                        // SAFETY: rows r0..r0+6 < m, columns j..j+16 <= n; C is read (added to)
                        // only after the first depth block wrote it or where the caller's values are.
                        tile(kb, apanel.as_ptr(), bpanel.as_ptr(), c.add(r0 * n + j), n, !first);
                    } else {
                        // SAFETY: `edge` is one whole 6 × 16 tile.
                        tile(kb, apanel.as_ptr(), bpanel.as_ptr(), edge.as_mut_ptr(), NR, false);
                        for r in 0..rows {
                            let out = c.add((r0 + r) * n + j);
                            for (x, v) in edge[r * NR..r * NR + cols].iter().enumerate() {
                                *out.add(x) = if first { *v } else { *out.add(x) + *v };
                            }
                        }
                    }
                }
            }
        }
        p0 += kb;
    }
}

/// Panels `g..` (as many as `out` holds, `[kb, 6]` each) of A's depth slice `k0..k0 + kb`.
fn pack_a_panels(kb: usize, m: usize, a: Mat, k0: usize, g: usize, out: &mut [f32]) {
    let panels = out.len() / (kb * MR);
    let full = panels.min(m / MR - g.min(m / MR)); // whole 6-row panels among them
    if a.rs == 1 && a.cs != 1 && full > 0 {
        // A is a transpose: depth kk's rows are contiguous. One pass along each depth's row
        // segment (a panel's depths lie a row of A apart).
        for kk in 0..kb {
            let row = &a.data[(k0 + kk) * a.cs + g * MR..][..full * MR];
            for (i, six) in row.chunks_exact(MR).enumerate() {
                out[i * kb * MR + kk * MR..][..MR].copy_from_slice(six);
            }
        }
    } else {
        for i in 0..full {
            pack_a(kb, MR, a, (g + i) * MR, k0, &mut out[i * kb * MR..][..kb * MR]);
        }
    }
    for i in full..panels {
        let r0 = (g + i) * MR;
        pack_a(kb, MR.min(m - r0), a, r0, k0, &mut out[i * kb * MR..][..kb * MR]);
    }
}

/// Rows `i0..i0 + rows` (at most 6) of A's depth slice `k0..k0 + kb` as `[kb, 6]`, zero-padded,
/// into `out`'s first `kb·6` values.
fn pack_a(kb: usize, rows: usize, a: Mat, i0: usize, k0: usize, out: &mut [f32]) {
    if rows < MR {
        out[..kb * MR].fill(0.0);
    }
    if a.cs == 1 {
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if rows == MR && kb > 8 {
            let base = i0 * a.rs + k0;
            // Groups of 8 depths with at least one depth after them: a group's 8-wide stores
            // spill two floats into the next depth's slot, written after it.
            done = (kb - 1) / 8 * 8;
            for kk in (0..done).step_by(8) {
                // SAFETY: AVX2 (own_kernel); rows i0..i0+6 hold depths kk..kk+8 of the slice
                // (`check`); the stores reach out[kk·6 + 50] <= (kb - 1)·6 + 2 < kb·6.
                unsafe { pack_a_8(a.data.as_ptr().add(base + kk), a.rs, out.as_mut_ptr().add(kk * MR)) };
            }
        }
        for r in 0..rows {
            let row = &a.data[(i0 + r) * a.rs + k0..][..kb];
            for kk in done..kb {
                out[kk * MR + r] = row[kk];
            }
        }
    } else if rows == MR && a.rs == 1 {
        for kk in 0..kb {
            let at = (k0 + kk) * a.cs + i0;
            out[kk * MR..kk * MR + MR].copy_from_slice(&a.data[at..at + MR]);
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

/// Columns `j0..j0 + w` (w at most 16) of B's depth slice `k0..k0 + kb` as one panel `[kb, 16]`,
/// zero-padded.
fn pack_b(kb: usize, w: usize, b: Mat, k0: usize, j0: usize, panel: &mut [f32]) {
    if b.cs == 1 {
        for kk in 0..kb {
            let src = &b.data[(k0 + kk) * b.rs + j0..][..w];
            let dst = &mut panel[kk * NR..kk * NR + NR];
            dst[..w].copy_from_slice(src);
            dst[w..].fill(0.0);
        }
        return;
    }
    if w < NR {
        panel.fill(0.0);
    }
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if w == NR && b.rs == 1 {
        done = kb / 8 * 8;
        for half in 0..2 {
            let base = (j0 + half * 8) * b.cs + k0;
            for kk in (0..done).step_by(8) {
                // SAFETY: AVX2 (own_kernel); columns j0..j0+16 hold depths k0..k0+kb (`check`);
                // the stores reach panel[(kk + 7)·16 + half·8 + 8] <= kb·16.
                unsafe {
                    transpose_8(b.data.as_ptr().add(base + kk), b.cs, panel.as_mut_ptr().add(kk * NR + half * 8), NR)
                };
            }
        }
    }
    for j in 0..w {
        let col = (j0 + j) * b.cs + k0 * b.rs;
        for kk in done..kb {
            panel[kk * NR + j] = b.data[col + kk * b.rs];
        }
    }
}

/// The 8 × 8 block at `src` (rows `ld` apart) transposed into `dst` (rows `ldd` apart).
///
/// # Safety
/// AVX2; `src` reads 8 rows of 8, `dst` writes 8 rows of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_8(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
    use std::arch::x86_64::*;
    let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * ld)));
    for (i, v) in transposed(r).into_iter().enumerate() {
        _mm256_storeu_ps(dst.add(i * ldd), v);
    }
}

/// Rows `src + r·ld`, r < 6, depths 0..8, into `dst` as `[8, 6]` (8-wide stores, 6 apart: the
/// last one writes two floats past `dst + 48`).
///
/// # Safety
/// AVX2; `src` reads 6 rows of 8; `dst` writes 50 floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_a_8(src: *const f32, ld: usize, dst: *mut f32) {
    use std::arch::x86_64::*;
    let z = _mm256_setzero_ps();
    let r: [__m256; 8] = std::array::from_fn(|i| if i < MR { _mm256_loadu_ps(src.add(i * ld)) } else { z });
    for (i, v) in transposed(r).into_iter().enumerate() {
        _mm256_storeu_ps(dst.add(i * MR), v);
    }
}

/// Eight rows of eight, transposed: result `i` holds every row's element `i`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transposed(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
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

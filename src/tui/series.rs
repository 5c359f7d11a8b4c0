//! Curves: every point kept, drawn with min-max decimation so that no spike is ever hidden.
//!
//! A series is (step, value) pairs with strictly increasing steps. A resumed run re-emits steps
//! it had already written before a crash: a point at or before the last step replaces the tail
//! from that step on. Per block of [`BLOCK`] points the min and max are kept, so that reducing
//! a million points to a pane's width reads a few thousand numbers.

/// Points per summary block.
pub const BLOCK: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct Series {
    pub steps: Steps,
    pub ys: Vec<f32>,
    block_min: Vec<f32>,
    block_max: Vec<f32>,
}

/// A column of strictly increasing steps, stored as runs of equal stride: a run's train events
/// (one per step) and its evaluations (every k steps) cost a few words however many there are.
/// Resumed runs and forks start a new run of steps; steps of no pattern cost one run each
/// (24 bytes a step: no writer of mixscope's writes such steps).
#[derive(Debug, Clone, Default)]
pub struct Steps {
    /// Per run of steps: the index of its first step, that step and the stride.
    runs: Vec<StepRun>,
    len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StepRun {
    at: usize,
    first: u64,
    stride: u64,
}

impl Steps {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.runs.capacity() * std::mem::size_of::<StepRun>()
    }

    /// The run holding index `i` (which is in bounds).
    #[inline]
    fn run_of(&self, i: usize) -> &StepRun {
        match self.runs.as_slice() {
            [only] => only,
            runs => &runs[runs.partition_point(|r| r.at <= i) - 1],
        }
    }

    /// The step at index `i`, which is in bounds.
    #[inline]
    pub fn at(&self, i: usize) -> u64 {
        debug_assert!(i < self.len);
        let r = self.run_of(i);
        r.first + (i - r.at) as u64 * r.stride
    }

    pub fn get(&self, i: usize) -> Option<u64> {
        (i < self.len).then(|| self.at(i))
    }

    pub fn first(&self) -> Option<u64> {
        self.get(0)
    }

    pub fn last(&self) -> Option<u64> {
        self.len.checked_sub(1).map(|i| self.at(i))
    }

    /// Append a step greater than the last.
    pub fn push(&mut self, step: u64) {
        debug_assert!(self.last().is_none_or(|l| step > l));
        let len = self.len;
        self.len += 1;
        if let Some(r) = self.runs.last_mut() {
            let count = len - r.at;
            let last = r.first + (count as u64 - 1) * r.stride;
            if count == 1 {
                r.stride = step - last;
                return;
            }
            if step - last == r.stride {
                return;
            }
        }
        self.runs.push(StepRun { at: len, first: step, stride: 1 });
    }

    /// Keep the first `n` steps.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        if n >= self.len {
            return;
        }
        self.len = n;
        let keep = self.runs.partition_point(|r| r.at < n);
        self.runs.truncate(keep);
    }

    /// The number of steps for which `pred` holds (it holds for a prefix).
    pub fn partition_point(&self, mut pred: impl FnMut(u64) -> bool) -> usize {
        // Whole runs first, by their first step; then within the run, by index.
        let k = self.runs.partition_point(|r| pred(r.first));
        let Some(r) = k.checked_sub(1).map(|k| self.runs[k]) else { return 0 };
        let end = self.runs.get(k).map_or(self.len, |next| next.at);
        let (mut lo, mut hi) = (r.at + 1, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(r.first + (mid - r.at) as u64 * r.stride) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The index of `step`, if it is one of the steps.
    pub fn position(&self, step: u64) -> Option<usize> {
        let i = self.partition_point(|s| s < step);
        (self.get(i) == Some(step)).then_some(i)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = u64> + ExactSizeIterator + '_ {
        (0..self.len).map(|i| self.at(i))
    }

    pub fn to_vec(&self) -> Vec<u64> {
        self.iter().collect()
    }
}

impl PartialEq for Steps {
    fn eq(&self, other: &Steps) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<const N: usize> PartialEq<[u64; N]> for Steps {
    fn eq(&self, other: &[u64; N]) -> bool {
        self.len == N && self.iter().eq(other.iter().copied())
    }
}

impl PartialEq<Vec<u64>> for Steps {
    fn eq(&self, other: &Vec<u64>) -> bool {
        self.len == other.len() && self.iter().eq(other.iter().copied())
    }
}

/// One bucket of a decimated series: the extremes and the first / last values, in step order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub min: f32,
    pub max: f32,
    pub first: f32,
    pub last: f32,
    /// Step of the bucket's last point (for hover/readouts).
    pub last_step: u64,
}

impl Series {
    /// Bytes this series holds on the heap (its vectors' capacities).
    pub fn heap_bytes(&self) -> usize {
        self.steps.heap_bytes() + (self.ys.capacity() + self.block_min.capacity() + self.block_max.capacity()) * 4
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Free what was reserved and not used.
    pub fn shrink_to_fit(&mut self) {
        self.ys.shrink_to_fit();
        self.block_min.shrink_to_fit();
        self.block_max.shrink_to_fit();
    }

    /// Room for `n` more points.
    pub fn reserve(&mut self, n: usize) {
        self.ys.reserve(n);
        self.block_min.reserve(n / BLOCK + 1);
        self.block_max.reserve(n / BLOCK + 1);
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn last(&self) -> Option<(u64, f32)> {
        Some((self.steps.last()?, *self.ys.last()?))
    }

    pub fn first_step(&self) -> Option<u64> {
        self.steps.first()
    }

    /// Append a point; a step at or before the last one replaces the tail from there.
    pub fn push(&mut self, step: u64, y: f32) {
        if let Some(last) = self.steps.last() {
            if step <= last {
                let keep = self.steps.partition_point(|s| s < step);
                self.truncate(keep);
            }
        }
        self.steps.push(step);
        self.ys.push(y);
        let i = self.ys.len() - 1;
        let b = i / BLOCK;
        let v = if y.is_finite() { y } else { f32::NAN };
        if b == self.block_min.len() {
            self.block_min.push(v);
            self.block_max.push(v);
        } else {
            self.block_min[b] = fmin(self.block_min[b], v);
            self.block_max[b] = fmax(self.block_max[b], v);
        }
    }

    /// Replace the value of point `i` (in bounds), keeping its block's summary right.
    pub fn set(&mut self, i: usize, y: f32) {
        self.ys[i] = y;
        let b = i / BLOCK;
        let (mn, mx) = scan(&self.ys[b * BLOCK..((b + 1) * BLOCK).min(self.ys.len())]);
        self.block_min[b] = mn;
        self.block_max[b] = mx;
    }

    /// Keep the first `n` points.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        self.steps.truncate(n);
        self.ys.truncate(n);
        let blocks = n.div_ceil(BLOCK);
        self.block_min.truncate(blocks);
        self.block_max.truncate(blocks);
        if let Some(b) = blocks.checked_sub(1) {
            let (lo, hi) = (b * BLOCK, n);
            let (mn, mx) = scan(&self.ys[lo..hi]);
            self.block_min[b] = mn;
            self.block_max[b] = mx;
        }
    }

    /// The value range of the points with steps in `[lo, hi]`.
    pub fn range(&self, lo: u64, hi: u64) -> Option<(f32, f32)> {
        let a = self.steps.partition_point(|s| s < lo);
        let b = self.steps.partition_point(|s| s <= hi);
        let (mn, mx) = self.minmax(a, b);
        (mn.is_finite() && mx.is_finite()).then_some((mn, mx))
    }

    /// Min and max of points `a..b`, using block summaries for whole blocks.
    fn minmax(&self, a: usize, b: usize) -> (f32, f32) {
        if a >= b {
            return (f32::NAN, f32::NAN);
        }
        let (ba, bb) = (a.div_ceil(BLOCK), b / BLOCK);
        if ba >= bb {
            return scan(&self.ys[a..b]);
        }
        let (m0, x0) = scan(&self.ys[a..ba * BLOCK]);
        let (m1, x1) = extremes(&self.block_min[ba..bb], &self.block_max[ba..bb]);
        let (m2, x2) = scan(&self.ys[bb * BLOCK..b]);
        (fmin(fmin(m0, m1), m2), fmax(fmax(x0, x1), x2))
    }

    /// Reduce the points to buckets between step boundaries (`bounds.len() - 1` buckets;
    /// bucket i holds steps in `[bounds[i], bounds[i+1])`). Empty buckets are `None`.
    pub fn decimate(&self, bounds: &[u64]) -> Vec<Option<Bucket>> {
        let mut out = Vec::with_capacity(bounds.len().saturating_sub(1));
        let mut a = self.seek(0, bounds.first().copied().unwrap_or(0));
        for w in bounds.windows(2) {
            let mut b = self.seek(a, w[1]);
            // Wide buckets end on a block boundary, so they are read from block summaries
            // alone; a point moves at most one block (≤ 64 points) into the next bucket.
            if b - a >= 4 * BLOCK && b < self.steps.len() {
                b -= b % BLOCK;
            }
            if b > a {
                let (min, max) = self.minmax(a, b);
                out.push(Some(Bucket {
                    min,
                    max,
                    first: self.ys[a],
                    last: self.ys[b - 1],
                    last_step: self.steps.at(b - 1),
                }));
            } else {
                out.push(None);
            }
            a = b;
        }
        out
    }

    /// The first index at or after `from` whose step is `>= target` (a binary search whose
    /// probes compute steps from their run: no memory is read).
    fn seek(&self, from: usize, target: u64) -> usize {
        self.steps.partition_point(|s| s < target).max(from).min(self.steps.len())
    }

    /// The value at a step (the last point at or before it).
    pub fn at(&self, step: u64) -> Option<f32> {
        let i = self.steps.partition_point(|s| s <= step);
        i.checked_sub(1).map(|i| self.ys[i])
    }
}

fn fmin(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        b
    } else if b.is_nan() {
        a
    } else {
        a.min(b)
    }
}

fn fmax(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        b
    } else if b.is_nan() {
        a
    } else {
        a.max(b)
    }
}

/// The least of `mins` and the greatest of `maxs`, NaN ignored (as [`fmin`], [`fmax`]): in
/// eight independent lanes, which the compiler turns into vector instructions, where one
/// running pair was a chain of dependent compares.
fn extremes(mins: &[f32], maxs: &[f32]) -> (f32, f32) {
    const LANES: usize = 8;
    let (mut mn, mut mx) = ([f32::NAN; LANES], [f32::NAN; LANES]);
    let (a, b) = (mins.chunks_exact(LANES), maxs.chunks_exact(LANES));
    let (ra, rb) = (a.remainder(), b.remainder());
    for (a, b) in a.zip(b) {
        for l in 0..LANES {
            mn[l] = mn[l].min(a[l]);
            mx[l] = mx[l].max(b[l]);
        }
    }
    let mn = ra.iter().fold(mn.into_iter().fold(f32::NAN, f32::min), |m, &v| m.min(v));
    let mx = rb.iter().fold(mx.into_iter().fold(f32::NAN, f32::max), |m, &v| m.max(v));
    (mn, mx)
}

fn scan(v: &[f32]) -> (f32, f32) {
    let (mut mn, mut mx) = (f32::NAN, f32::NAN);
    for &y in v {
        if y.is_finite() {
            mn = fmin(mn, y);
            mx = fmax(mx, y);
        }
    }
    (mn, mx)
}

/// Debiased exponential moving average (as TensorBoard and W&B smooth): weight `alpha` on the
/// past, corrected for the zero start.
pub fn ema(ys: &[f32], alpha: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(ys.len());
    let mut acc = 0.0f64;
    let mut w = 0.0f64;
    let a = alpha.clamp(0.0, 0.999) as f64;
    for &y in ys {
        if !y.is_finite() {
            out.push(f32::NAN);
            continue;
        }
        acc = a * acc + (1.0 - a) * y as f64;
        w = a * w + (1.0 - a);
        out.push((acc / w) as f32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: u64) -> Series {
        let mut s = Series::default();
        for i in 0..n {
            s.push(i, (i % 17) as f32);
        }
        s
    }

    #[test]
    fn spikes_survive_decimation() {
        let mut s = series(1_000_000);
        s.push(1_000_000, 1e6);
        for i in 1_000_001..1_000_100 {
            s.push(i, 1.0);
        }
        let bounds: Vec<u64> = (0..=100).map(|i| i * 10_001).collect();
        let b = s.decimate(&bounds);
        assert_eq!(b.len(), 100);
        assert!(b.iter().flatten().any(|b| b.max == 1e6), "the spike is visible");
        assert!(b.iter().flatten().all(|b| b.min == 0.0 || b.max == 1e6 || b.min <= 1.0));
    }

    #[test]
    fn decimation_matches_a_plain_scan() {
        let s = series(10_000);
        let bounds = [0, 5, 63, 64, 65, 200, 1000, 9999, 20000];
        let mut prev_last: Option<u64> = None;
        let mut covered = 0;
        for (i, b) in s.decimate(&bounds).into_iter().enumerate() {
            let Some(b) = b else { continue };
            // The bucket holds the points after the previous bucket's last, up to its own last.
            let pts: Vec<f32> = s
                .steps
                .iter()
                .zip(&s.ys)
                .filter(|(st, _)| prev_last.is_none_or(|p| *st > p) && *st <= b.last_step)
                .map(|(_, y)| *y)
                .collect();
            covered += pts.len();
            assert_eq!(b.min, pts.iter().cloned().fold(f32::INFINITY, f32::min));
            assert_eq!(b.max, pts.iter().cloned().fold(f32::NEG_INFINITY, f32::max));
            assert_eq!(b.first, pts[0]);
            assert_eq!(b.last, *pts.last().unwrap());
            // Boundaries move by at most one block.
            assert!(b.last_step + 1 + BLOCK as u64 >= bounds[i + 1].min(10_000), "bucket {i} ends at {}", b.last_step);
            prev_last = Some(b.last_step);
        }
        assert_eq!(covered, 10_000, "every point is in a bucket");
    }

    /// Min and max over any range, blocks of NaNs and infinities among the points, agree with
    /// a plain scan of the finite points (NaN when there are none).
    #[test]
    fn minmax_matches_a_plain_scan_of_the_finite_points() {
        let mut s = Series::default();
        for i in 0..3000u64 {
            let y = match i {
                640..=767 => f32::NAN, // two whole blocks
                _ if i % 97 == 0 => f32::INFINITY,
                _ if i % 89 == 0 => f32::NAN,
                _ => ((i * 2654435761) % 1000) as f32 / 7.0 - 50.0,
            };
            s.push(i + 1, y);
        }
        let plain = |a: usize, b: usize| {
            let finite: Vec<f32> = s.ys[a..b].iter().copied().filter(|y| y.is_finite()).collect();
            let mn = finite.iter().copied().reduce(f32::min).unwrap_or(f32::NAN);
            let mx = finite.iter().copied().reduce(f32::max).unwrap_or(f32::NAN);
            (mn, mx)
        };
        let same = |x: f32, y: f32| x == y || (x.is_nan() && y.is_nan());
        for a in (0..3000).step_by(37).chain([0, 63, 64, 640, 700]) {
            for b in (a..=3000).step_by(53).chain([a + 1, 768, 3000]) {
                if b > 3000 || b <= a {
                    continue;
                }
                let (got, want) = (s.minmax(a, b), plain(a, b));
                assert!(same(got.0, want.0) && same(got.1, want.1), "{a}..{b}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn a_resume_replaces_the_tail() {
        let mut s = Series::default();
        for i in 1..=150 {
            s.push(i, 1.0);
        }
        // Crash after 150, resume from the checkpoint at 100.
        for i in 101..=120 {
            s.push(i, 2.0);
        }
        assert_eq!(s.len(), 120);
        assert_eq!(s.at(100), Some(1.0));
        assert_eq!(s.at(120), Some(2.0));
        assert_eq!(s.range(0, 1000), Some((1.0, 2.0)));
        assert_eq!(s.range(121, 1000), None);
    }

    /// Steps of every pattern (strides, resumes, gaps) read back as pushed, and searched as a
    /// slice is searched.
    #[test]
    fn steps_read_back_and_search_as_a_vector() {
        let mut s = Steps::default();
        let mut v: Vec<u64> = Vec::new();
        let mut step = 0;
        for i in 0..2000u64 {
            step += match i % 300 {
                0 => 7,
                1..=99 => 1,
                100..=199 => 375,
                _ => 1 + (i * 2654435761) % 5,
            };
            if i % 450 == 449 {
                // A resume from an earlier step: the tail is replaced.
                let back = step - 40;
                let keep = v.partition_point(|&x| x < back);
                v.truncate(keep);
                s.truncate(keep);
                step = back;
            }
            v.push(step);
            s.push(step);
        }
        assert_eq!(s, v);
        for target in (0..=step + 2).step_by(13) {
            assert_eq!(s.partition_point(|x| x < target), v.partition_point(|&x| x < target), "{target}");
            assert_eq!(s.position(target), v.binary_search(&target).ok(), "{target}");
        }
        let mut one = Steps::default();
        for st in (1..=20_000).map(|i| 6000 + i) {
            one.push(st);
        }
        assert_eq!((one.len(), one.heap_bytes()), (20_000, std::mem::size_of::<StepRun>() * 4));
    }

    #[test]
    fn ema_is_debiased() {
        let e = ema(&[4.0, 4.0, 4.0], 0.9);
        assert!(e.iter().all(|v| (v - 4.0).abs() < 1e-5), "{e:?}");
        let e = ema(&[0.0, 10.0], 0.5);
        assert!((e[1] - 20.0 / 3.0).abs() < 1e-4);
    }
}

//! The statistics a sweep reads: sampling variance of a score (binomial for pass/fail metrics,
//! bootstrap for graded ones such as ROUGE-L), Spearman's rank correlation, plateau points and
//! the back-and-forth of a curve.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The 95 % normal quantile.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Bootstrap resamples per estimate.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Whether per-example scores are all 0 or 1 (accuracy, pass rate).
pub fn is_binary(scores: &[f64]) -> bool {
    scores.iter().all(|&s| s == 0.0 || s == 1.0)
}

/// The binomial sampling variance of a proportion `p` over `n` examples, Agresti–Coull
/// adjusted (two successes and two failures added), so that 0/n and n/n get honest, non-zero
/// intervals on the small held-out sets a sweep reads.
pub fn binomial_var(p: f64, n: u64) -> Option<f64> {
    if n == 0 || !(0.0..=1.0).contains(&p) {
        return None;
    }
    let n2 = n as f64 + 4.0;
    let p2 = (p * n as f64 + 2.0) / n2;
    Some(p2 * (1.0 - p2) / n2)
}

/// The bootstrap variance of the mean of `scores` (deterministic: a fixed-seed generator).
pub fn bootstrap_var(scores: &[f64], seed: u64) -> Option<f64> {
    let n = scores.len();
    if n < 2 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| (0..n).map(|_| scores[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    let m = means.iter().sum::<f64>() / means.len() as f64;
    Some(means.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (means.len() - 1) as f64)
}

/// The sampling variance of one (task, language) score: binomial where the metric is a
/// proportion (per-example scores all 0/1, or a pass/fail metric without them), bootstrap where
/// it is graded and the per-example scores are known; `None` otherwise (a loss, or no scores).
pub fn score_var(metric: &str, value: f64, n: u64, scores: Option<&[f64]>, seed: u64) -> Option<f64> {
    match scores {
        Some(s) if !s.is_empty() && is_binary(s) => binomial_var(value, s.len() as u64),
        Some(s) if !s.is_empty() => bootstrap_var(s, seed),
        _ if matches!(metric, "accuracy" | "if_pass") => binomial_var(value, n),
        _ => None,
    }
}

/// An estimate with its 95 % interval: `lo <= value <= hi`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Est {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Est {
    /// The interval kept within what the value can be (`lo..=hi`: a score is in [0, 1]).
    pub fn within(self, lo: f64, hi: f64) -> Est {
        Est { value: self.value, lo: self.lo.max(lo), hi: self.hi.min(hi) }
    }

    /// Whether the interval excludes zero (a difference the data supports).
    pub fn excludes_zero(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

/// How an interval was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CiMethod {
    /// Wilson's score interval, for proportions (every per-example score 0 or 1).
    Wilson,
    /// The percentile bootstrap of the mean, for graded scores (ROUGE-L, IF's share of
    /// constraints met).
    Bootstrap,
}

impl CiMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            CiMethod::Wilson => "wilson",
            CiMethod::Bootstrap => "bootstrap",
        }
    }
}

/// Wilson's 95 % score interval of `k` successes in `n` (never empty at 0/n or n/n).
pub fn wilson(k: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 || k > n {
        return None;
    }
    let (n, p, z2) = (n as f64, k as f64 / n as f64, Z95 * Z95);
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// The 95 % percentile-bootstrap interval of the mean of `scores` (deterministic: a
/// fixed-seed generator, [`BOOTSTRAP_RESAMPLES`] resamples).
pub fn bootstrap_ci(scores: &[f64], seed: u64) -> Option<(f64, f64)> {
    let n = scores.len();
    if n == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| (0..n).map(|_| scores[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    Some((at(0.025), at(0.975)))
}

/// The mean of per-example scores with its 95 % interval: Wilson's when every score is 0 or
/// 1, the percentile bootstrap otherwise. `None` for no scores or any non-finite one.
pub fn mean_ci(scores: &[f64], seed: u64) -> Option<(Est, CiMethod)> {
    if scores.is_empty() || scores.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let n = scores.len();
    let value = scores.iter().sum::<f64>() / n as f64;
    let (method, (lo, hi)) = if is_binary(scores) {
        let k = scores.iter().filter(|&&s| s == 1.0).count() as u64;
        (CiMethod::Wilson, wilson(k, n as u64)?)
    } else {
        (CiMethod::Bootstrap, bootstrap_ci(scores, seed)?)
    };
    Some((Est { value, lo: lo.min(value), hi: hi.max(value) }, method))
}

/// `a - b` for independent estimates, with the MOVER interval (Newcombe's method for a
/// difference of proportions when both are Wilson intervals): each side's distance to its
/// limits combined in quadrature, so asymmetric intervals near 0 and 1 stay honest.
pub fn diff(a: Est, b: Est) -> Est {
    let d = a.value - b.value;
    let lo = d - ((a.value - a.lo).powi(2) + (b.hi - b.value).powi(2)).sqrt();
    let hi = d + ((a.hi - a.value).powi(2) + (b.value - b.lo).powi(2)).sqrt();
    Est { value: d, lo, hi }
}

/// The mean of independent estimates (a group average over languages), with the MOVER
/// interval of a sum scaled by 1/k. `None` for none.
pub fn mean_of(ests: &[Est]) -> Option<Est> {
    if ests.is_empty() {
        return None;
    }
    let k = ests.len() as f64;
    let value = ests.iter().map(|e| e.value).sum::<f64>() / k;
    let lo = value - ests.iter().map(|e| (e.value - e.lo).powi(2)).sum::<f64>().sqrt() / k;
    let hi = value + ests.iter().map(|e| (e.hi - e.value).powi(2)).sum::<f64>().sqrt() / k;
    Some(Est { value, lo, hi })
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7: about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let a = G[0] + G.iter().enumerate().skip(1).map(|(i, g)| g / (x + i as f64)).sum::<f64>();
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized incomplete beta function `I_x(a, b)` (its continued fraction, by Lentz's
/// method).
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    // The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - inc_beta(b, a, 1.0 - x);
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp() / a;
    let tiny = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    d = if d.abs() < tiny { tiny } else { d }.recip();
    let mut f = d;
    for m in 1..300 {
        let m = m as f64;
        for num in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + num * d;
            d = if d.abs() < tiny { tiny } else { d }.recip();
            c = 1.0 + num / c;
            c = if c.abs() < tiny { tiny } else { c };
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    front * f
}

/// Student's t distribution function with `df` degrees of freedom (any `df > 0`, so Welch's
/// fractional ones too).
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The quantile of Student's t: `t_cdf(t_quantile(p, df), df) = p`, to about 1e-12.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-13 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The standard normal distribution function.
pub fn normal_cdf(z: f64) -> f64 {
    // erfc by its Chebyshev fit (Numerical Recipes' erfcc: relative error < 1.2e-7).
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if z >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

/// A group's mean over its members (training seeds) with the 95 % t-interval, `K − 1` degrees
/// of freedom: `mean ± t · sd / √K`. Members that agree exactly (all 1.0, say) have no spread
/// to measure; their variance is then `floor`, the members' own sampling variance, rather
/// than a zero-width interval. `None` below two members or for a non-finite value.
pub fn seed_mean(values: &[f64], floor: f64) -> Option<Est> {
    if values.len() < 2 {
        return None;
    }
    seed_mean_t(values, floor, t975(values.len() - 1))
}

/// `t_quantile(0.975, df)` for a whole number of degrees of freedom, computed once per `df` up
/// to 64 (a quantile is a root search over the incomplete beta function: too slow to take per
/// frame or per table cell), directly beyond.
pub fn t975(df: usize) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..=64).map(|d| t_quantile(0.975, d.max(1) as f64)).collect());
    match table.get(df) {
        Some(&t) if df >= 1 => t,
        _ => t_quantile(0.975, df.max(1) as f64),
    }
}

/// [`seed_mean`] with its quantile given: `t = t_quantile(0.975, K − 1)`, for a caller that
/// takes many means over groups of one size (a group's curve, step by step) and computes the
/// quantile once. The same numbers as `seed_mean`, bit for bit.
pub fn seed_mean_t(values: &[f64], floor: f64, t: f64) -> Option<Est> {
    let k = values.len();
    if k < 2 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let m = values.iter().sum::<f64>() / k as f64;
    let var = member_var(values, floor)?;
    let half = t * (var / k as f64).sqrt();
    Some(Est { value: m, lo: m - half, hi: m + half })
}

/// The members' variance: their sample variance, or `floor` when they agree exactly.
fn member_var(values: &[f64], floor: f64) -> Option<f64> {
    let v = sd(values)?.powi(2);
    Some(if v > 0.0 { v } else { floor })
}

/// How a difference's interval was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeltaMethod {
    /// Two single runs: each side's sampling interval combined (MOVER / Newcombe). Covers the
    /// evaluation's sampling only, not another training run's.
    Mover,
    /// Two groups: Welch's t over the members' values (Satterthwaite's degrees of freedom).
    Welch,
    /// A single run against a group: the run as one more draw of the group's seed
    /// distribution (`sd · √(1 + 1/K)`, `K − 1` degrees of freedom).
    Prediction,
}

impl DeltaMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DeltaMethod::Mover => "mover",
            DeltaMethod::Welch => "welch",
            DeltaMethod::Prediction => "prediction",
        }
    }
    /// Whether the interval covers the training's own randomness (several seeds on a side).
    pub fn covers_seeds(self) -> bool {
        self != DeltaMethod::Mover
    }
}

/// A difference `a − b` with its 95 % interval, its two-sided p-value, and how both were
/// computed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Delta {
    #[serde(flatten)]
    pub est: Est,
    pub p: f64,
    pub method: DeltaMethod,
}

/// The t-test's interval and p-value of a difference `d` with standard error `se` on `df`
/// degrees of freedom.
fn t_delta(d: f64, se: f64, df: f64, method: DeltaMethod) -> Delta {
    let half = t_quantile(0.975, df) * se;
    let p = if se > 0.0 {
        2.0 * (1.0 - t_cdf(d.abs() / se, df))
    } else if d == 0.0 {
        1.0
    } else {
        0.0
    };
    Delta { est: Est { value: d, lo: d - half, hi: d + half }, p: p.clamp(0.0, 1.0), method }
}

/// The difference between two sides' values, each side one run (`values` of length 1, with its
/// sampling interval `one`) or a group of members: Welch's t for two groups, the prediction
/// interval for a run against a group, MOVER for two runs. `floor_*` is each side's per-member
/// sampling variance (see [`seed_mean`]). `None` when a side has no value (or a single run no
/// interval).
pub fn delta(a: (&[f64], Option<Est>, f64), b: (&[f64], Option<Est>, f64)) -> Option<Delta> {
    let ((av, a1, af), (bv, b1, bf)) = (a, b);
    if av.is_empty() || bv.is_empty() || av.iter().chain(bv).any(|v| !v.is_finite()) {
        return None;
    }
    let stats = |v: &[f64], floor: f64| {
        let k = v.len() as f64;
        (v.iter().sum::<f64>() / k, member_var(v, floor).unwrap_or(floor), k)
    };
    let (ma, va, ka) = stats(av, af);
    let (mb, vb, kb) = stats(bv, bf);
    match (av.len(), bv.len()) {
        (1, 1) => {
            let d = diff(a1?, b1?);
            // The p-value of the MOVER interval read as a normal one (its half toward zero).
            let half = if d.value >= 0.0 { d.value - d.lo } else { d.hi - d.value };
            let p = if half > 0.0 { 2.0 * (1.0 - normal_cdf(d.value.abs() * Z95 / half)) } else { 1.0 };
            Some(Delta { est: d, p: p.clamp(0.0, 1.0), method: DeltaMethod::Mover })
        }
        (1, _) => Some(t_delta(ma - mb, (vb * (1.0 + 1.0 / kb)).sqrt(), kb - 1.0, DeltaMethod::Prediction)),
        (_, 1) => Some(t_delta(ma - mb, (va * (1.0 + 1.0 / ka)).sqrt(), ka - 1.0, DeltaMethod::Prediction)),
        _ => {
            let (sa, sb) = (va / ka, vb / kb);
            let se2 = sa + sb;
            let df = if se2 > 0.0 { se2 * se2 / (sa * sa / (ka - 1.0) + sb * sb / (kb - 1.0)) } else { ka + kb - 2.0 };
            Some(t_delta(ma - mb, se2.sqrt(), df, DeltaMethod::Welch))
        }
    }
}

/// Holm's step-down adjustment of p-values (one family; `None`s are not tests). The
/// adjusted value of the i-th smallest of m is `max over j ≤ i of min(1, (m − j + 1) p_(j))`;
/// rejecting where it is below α controls the family-wise error rate at α.
pub fn holm(p: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_some()).collect();
    idx.sort_by(|&a, &b| p[a].unwrap_or(1.0).total_cmp(&p[b].unwrap_or(1.0)));
    let m = idx.len();
    let mut out = vec![None; p.len()];
    let mut running: f64 = 0.0;
    for (j, &i) in idx.iter().enumerate() {
        let adj = ((m - j) as f64 * p[i].unwrap_or(1.0)).min(1.0);
        running = running.max(adj);
        out[i] = Some(running);
    }
    out
}

/// Average ranks (1-based; ties share their mean rank).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// Spearman's rank correlation of paired values (ties get average ranks). `None` with fewer
/// than three pairs or when either side is constant.
pub fn spearman(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 3 {
        return None;
    }
    let a: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let b: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    pearson(&ranks(&a), &ranks(&b))
}

/// The plateau point of a curve (points in x order): the smallest x after which every further
/// gain stays below `threshold`. `higher_is_better` false for a loss (a gain is a drop). `None`
/// when the last step still gains (no plateau within the grid) or with fewer than two points.
pub fn plateau(curve: &[(f64, f64)], threshold: f64, higher_is_better: bool) -> Option<f64> {
    if curve.len() < 2 {
        return None;
    }
    let gain = |i: usize| {
        let d = curve[i + 1].1 - curve[i].1;
        if higher_is_better {
            d
        } else {
            -d
        }
    };
    let mut at = curve.len() - 1;
    while at > 0 && gain(at - 1) < threshold {
        at -= 1;
    }
    (at < curve.len() - 1).then(|| curve[at].0)
}

/// How much a curve goes back and forth: its total variation minus its net change (0 for a
/// monotone curve).
pub fn oscillation(ys: &[f64]) -> Option<f64> {
    if ys.len() < 2 {
        return None;
    }
    let tv: f64 = ys.windows(2).map(|w| (w[1] - w[0]).abs()).sum();
    Some(tv - (ys[ys.len() - 1] - ys[0]).abs())
}

/// Sample standard deviation (`None` below two values).
pub fn sd(v: &[f64]) -> Option<f64> {
    if v.len() < 2 {
        return None;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    Some((v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_is_rank_correlation_with_ties() {
        assert!((spearman(&[(1.0, 10.0), (2.0, 20.0), (3.0, 25.0), (4.0, 100.0)]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&[(1.0, 4.0), (2.0, 3.0), (3.0, 2.0), (4.0, 1.0)]).unwrap() + 1.0).abs() < 1e-12);
        // x = 1,2,3,4,5; y ranks 1.5,1.5,3,5,4 → rho = 0.8721 (scipy.stats.spearmanr).
        let r = spearman(&[(1.0, 1.0), (2.0, 1.0), (3.0, 2.0), (4.0, 4.0), (5.0, 3.0)]).unwrap();
        assert!((r - 0.872_081_7).abs() < 1e-6, "{r}");
        assert_eq!(spearman(&[(1.0, 1.0), (2.0, 2.0)]), None);
        assert_eq!(spearman(&[(1.0, 1.0), (2.0, 1.0), (3.0, 1.0)]), None, "a constant side");
    }

    #[test]
    fn plateau_is_where_gains_stop() {
        let c = [(0.0, 0.10), (100.0, 0.30), (400.0, 0.50), (1600.0, 0.51)];
        assert_eq!(plateau(&c, 0.02, true), Some(400.0));
        assert_eq!(plateau(&c, 0.25, true), Some(0.0), "every gain is below 0.25");
        assert_eq!(plateau(&c[..3], 0.02, true), None, "still gaining at the end");
        // A dip after the plateau is not a gain: the plateau holds.
        assert_eq!(plateau(&[(0.0, 0.1), (1.0, 0.5), (2.0, 0.45), (3.0, 0.46)], 0.02, true), Some(1.0));
        // A loss gains when it drops.
        assert_eq!(plateau(&[(0.0, 3.0), (1.0, 2.0), (2.0, 1.99)], 0.05, false), Some(1.0));
    }

    #[test]
    fn oscillation_is_zero_for_monotone_curves() {
        assert_eq!(oscillation(&[0.1, 0.2, 0.4]), Some(0.0));
        assert!((oscillation(&[0.1, 0.5, 0.2, 0.4]).unwrap() - 0.6).abs() < 1e-12);
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), table I: 81/263 → 0.2553-0.3662; 15/148 → 0.0624-0.1605; 0/10 → 0-0.2775.
        let near = |(lo, hi): (f64, f64), want: (f64, f64)| (lo - want.0).abs() < 5e-5 && (hi - want.1).abs() < 5e-5;
        assert!(near(wilson(81, 263).unwrap(), (0.2553, 0.3662)), "{:?}", wilson(81, 263));
        assert!(near(wilson(15, 148).unwrap(), (0.0624, 0.1605)), "{:?}", wilson(15, 148));
        assert!(near(wilson(0, 10).unwrap(), (0.0, 0.2775)), "{:?}", wilson(0, 10));
        assert!(near(wilson(10, 10).unwrap(), (0.7225, 1.0)), "{:?}", wilson(10, 10));
        assert_eq!(wilson(1, 0), None);
    }

    #[test]
    fn newcombe_difference_of_proportions() {
        // Newcombe (1998) method 10, example (a): 56/70 - 48/80 → 0.0524 to 0.3339.
        let est = |k: u64, n: u64| {
            let (lo, hi) = wilson(k, n).unwrap();
            Est { value: k as f64 / n as f64, lo, hi }
        };
        let d = diff(est(56, 70), est(48, 80));
        assert!((d.value - 0.2).abs() < 1e-12);
        assert!((d.lo - 0.0524).abs() < 5e-5 && (d.hi - 0.3339).abs() < 5e-5, "{d:?}");
        assert!(d.excludes_zero());
        // Example (b): 9/10 - 3/10 → 0.1705 to 0.8090; and a difference of 2 in 16 that straddles zero.
        let d = diff(est(9, 10), est(3, 10));
        assert!((d.lo - 0.1705).abs() < 5e-5 && (d.hi - 0.8090).abs() < 5e-5, "{d:?}");
        assert!(!diff(est(9, 16), est(7, 16)).excludes_zero(), "2 of 16 apart is noise");
    }

    #[test]
    fn means_with_intervals() {
        let (e, m) = mean_ci(&[1.0, 0.0, 1.0, 1.0], 0).unwrap();
        assert_eq!(m, CiMethod::Wilson);
        assert_eq!((e.lo, e.hi), wilson(3, 4).unwrap());
        let graded: Vec<f64> = (0..64).map(|i| (i % 9) as f64 / 8.0).collect();
        let (e, m) = mean_ci(&graded, 3).unwrap();
        assert_eq!(m, CiMethod::Bootstrap);
        // The percentile interval is about the normal one: mean ± 1.96 sd / sqrt(n).
        let sd = sd(&graded).unwrap() / 8.0;
        assert!((e.hi - e.lo) / (2.0 * Z95 * sd) > 0.85 && (e.hi - e.lo) / (2.0 * Z95 * sd) < 1.15, "{e:?}");
        assert_eq!(mean_ci(&graded, 3), mean_ci(&graded, 3), "deterministic");
        assert_eq!(mean_ci(&[], 0), None);
        assert_eq!(mean_ci(&[0.5, f64::NAN], 0), None);
        // A group mean of equal, independent estimates narrows by sqrt(k).
        let one = Est { value: 0.5, lo: 0.4, hi: 0.6 };
        let g = mean_of(&[one; 4]).unwrap();
        assert!((g.value - 0.5).abs() < 1e-12 && (g.lo - 0.45).abs() < 1e-12 && (g.hi - 0.55).abs() < 1e-12);
        assert_eq!(mean_of(&[]), None);
    }

    #[test]
    fn variances() {
        assert_eq!(binomial_var(0.5, 96), Some(0.0025));
        // 0 of 4 right: p̃ = 2/8, not a zero-width interval.
        assert_eq!(score_var("accuracy", 0.0, 4, Some(&[0.0; 4]), 0), Some(0.25 * 0.75 / 8.0));
        assert_eq!(score_var("accuracy", 0.25, 4, Some(&[1.0, 0.0, 0.0, 0.0]), 0), Some(0.375 * 0.625 / 8.0));
        // Graded scores: bootstrap variance ≈ population variance / n.
        let s: Vec<f64> = (0..40).map(|i| (i % 5) as f64 / 4.0).collect();
        let m = s.iter().sum::<f64>() / 40.0;
        let pop = s.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 40.0;
        let b = score_var("rouge_l", m, 40, Some(&s), 7).unwrap();
        assert!((b / (pop / 40.0) - 1.0).abs() < 0.1, "{b} vs {}", pop / 40.0);
        assert_eq!(score_var("rouge_l", m, 40, Some(&s), 7), Some(b), "deterministic");
        assert_eq!(score_var("rouge_l", 0.3, 40, None, 0), None);
        assert_eq!(score_var("loss", 2.0, 40, None, 0), None);
    }

    #[test]
    fn student_t_matches_published_values() {
        // scipy.stats.t.ppf(0.975, df) and t.cdf.
        for (df, q) in
            [(1.0, 12.706_204_74), (2.0, 4.302_652_73), (4.0, 2.776_445_11), (10.0, 2.228_138_85), (3.7, 2.867_520_71)]
        {
            assert!((t_quantile(0.975, df) - q).abs() < 1e-6, "df {df}: {}", t_quantile(0.975, df));
        }
        assert!((t_cdf(2.0, 3.0) - 0.930_337_015_720_578_5).abs() < 1e-9);
        assert!((t_cdf(-1.3, 7.5) - 0.116_063_389_407_804_39).abs() < 1e-9);
        assert!((normal_cdf(1.5) - 0.933_192_798_731_141_9).abs() < 1e-7);
        assert_eq!(t_quantile(0.5, 3.0), 0.0);
        assert!((t_quantile(0.025, 4.0) + 2.776_445_11).abs() < 1e-6);
    }

    #[test]
    fn welch_matches_scipy() {
        // scipy.stats.ttest_ind(a, b, equal_var=False): t −0.0572, p 0.9583, df 2.741,
        // interval −0.24876 … 0.24043.
        let (a, b) = ([0.40, 0.17, 0.31], [0.33, 0.29, 0.22, 0.35]);
        let d = delta((&a, None, 0.0), (&b, None, 0.0)).unwrap();
        assert_eq!(d.method, DeltaMethod::Welch);
        assert!((d.est.value - (0.88 / 3.0 - 1.19 / 4.0)).abs() < 1e-12);
        assert!((d.p - 0.958_274_566_229_349).abs() < 1e-6, "{d:?}");
        assert!((d.est.lo + 0.248_762_445).abs() < 1e-6 && (d.est.hi - 0.240_429_112).abs() < 1e-6, "{d:?}");
        // A group's mean: mean ± t(K−1) · sd / √K.
        let g = seed_mean(&a, 0.0).unwrap();
        let half = 4.302_652_73 * sd(&a).unwrap() / 3f64.sqrt();
        assert!((g.hi - g.value - half).abs() < 1e-6 && (g.value - g.lo - half).abs() < 1e-6);
        assert_eq!(seed_mean(&[0.5], 0.0), None, "one seed has no spread");
        // Members that agree exactly keep their sampling variance; others their spread alone.
        let flat = seed_mean(&[1.0, 1.0, 1.0], 0.01).unwrap();
        assert!((flat.hi - 1.0 - 4.302_652_73 * (0.01f64 / 3.0).sqrt()).abs() < 1e-6);
        assert_eq!(seed_mean(&a, 0.5), seed_mean(&a, 0.0));
        // One run against a group: a new draw from the group's distribution.
        let p = delta((&[0.5], None, 0.0), (&b, None, 0.0)).unwrap();
        assert_eq!(p.method, DeltaMethod::Prediction);
        let want = t_quantile(0.975, 3.0) * sd(&b).unwrap() * (1.0 + 0.25f64).sqrt();
        assert!((p.est.hi - p.est.value - want).abs() < 1e-9);
        // Two single runs: the MOVER interval, and a p-value that agrees with it at 0.05.
        let one = |v: f64| Some(Est { value: v, lo: v - 0.1, hi: v + 0.1 });
        let m = delta((&[0.7], one(0.7), 0.0), (&[0.5], one(0.5), 0.0)).unwrap();
        assert_eq!(m.method, DeltaMethod::Mover);
        assert!(m.est.excludes_zero() && m.p < 0.05, "{m:?}");
        let m = delta((&[0.6], one(0.6), 0.0), (&[0.5], one(0.5), 0.0)).unwrap();
        assert!(!m.est.excludes_zero() && m.p > 0.05, "{m:?}");
    }

    #[test]
    fn holm_steps_down() {
        // Holm (1979): p = 0.01, 0.04, 0.03, 0.005 over m = 4 → 0.03, 0.06, 0.06, 0.02.
        let adj = holm(&[Some(0.01), Some(0.04), None, Some(0.03), Some(0.005)]);
        let want = [Some(0.03), Some(0.06), None, Some(0.06), Some(0.02)];
        for (a, w) in adj.iter().zip(want) {
            assert_eq!(a.is_some(), w.is_some());
            if let (Some(a), Some(w)) = (a, w) {
                assert!((a - w).abs() < 1e-12, "{adj:?}");
            }
        }
        assert_eq!(holm(&[]), Vec::<Option<f64>>::new());
    }

    /// A standard normal draw (Box–Muller).
    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// K training seeds of one config, each evaluated on n examples: seed s scores each example
    /// 1 with probability μ + a_s, a_s ~ N(0, σ_seed²). Returns each seed's per-example scores.
    fn simulate(rng: &mut ChaCha8Rng, k: usize, n: usize, mu: f64, sd_seed: f64) -> Vec<Vec<f64>> {
        (0..k)
            .map(|_| {
                let p = (mu + sd_seed * normal(rng)).clamp(0.0, 1.0);
                (0..n).map(|_| if rng.random::<f64>() < p { 1.0 } else { 0.0 }).collect()
            })
            .collect()
    }

    /// The coverage of a group mean's 95 % interval, measured: K seeds with seed variance and
    /// binomial sampling variance both known, mid-range (μ 0.5, seed sd 0.06), near the ceiling
    /// (μ 0.9, seed sd 0.03) and with seeds varying most (μ 0.5, seed sd 0.15), 64 examples a
    /// seed. The t-interval over the members'
    /// values covers the config's mean about 95 % of the time at K = 2, 3 and 5 (more at K = 2
    /// near the ceiling, where members often agree exactly and their sampling variance stands
    /// in). The two-level bootstrap (seeds, then examples within each seed) counts the sampling
    /// variance twice and the seed variance from K draws: it over-covers where sampling
    /// dominates and under-covers at small K where seeds vary, so mixscope uses the t-interval. Printed with `--nocapture`.
    #[test]
    fn group_intervals_cover_the_configs_mean() {
        let (n, reps, resamples) = (64, 1500, 400);
        let mut rng = ChaCha8Rng::seed_from_u64(30);
        for (mu, sd_seed) in [(0.5, 0.06), (0.9, 0.03), (0.5, 0.15)] {
            for k in [2usize, 3, 5] {
                let (mut t_hits, mut boot_hits) = (0, 0);
                for _ in 0..reps {
                    let seeds = simulate(&mut rng, k, n, mu, sd_seed);
                    let means: Vec<f64> = seeds.iter().map(|s| s.iter().sum::<f64>() / n as f64).collect();
                    let floor = means.iter().map(|m| binomial_var(*m, n as u64).unwrap()).sum::<f64>() / k as f64;
                    let t = seed_mean(&means, floor).unwrap();
                    t_hits += usize::from(t.lo <= mu && mu <= t.hi);
                    let mut boot: Vec<f64> = (0..resamples)
                        .map(|_| {
                            let mut sum = 0.0;
                            for _ in 0..k {
                                let s = &seeds[rng.random_range(0..k)];
                                sum += (0..n).map(|_| s[rng.random_range(0..n)]).sum::<f64>() / n as f64;
                            }
                            sum / k as f64
                        })
                        .collect();
                    boot.sort_by(f64::total_cmp);
                    let at = |q: f64| boot[(q * resamples as f64) as usize];
                    boot_hits += usize::from(at(0.025) <= mu && mu <= at(0.975));
                }
                let (tc, bc) = (t_hits as f64 / reps as f64, boot_hits as f64 / reps as f64);
                println!(
                    "μ {mu}, seed sd {sd_seed}, K = {k}: t-interval covers {:.1} %, two-level bootstrap {:.1} %",
                    tc * 100.0,
                    bc * 100.0
                );
                assert!(tc >= 0.93, "K = {k}: t-interval coverage {tc}");
                if k >= 3 && mu == 0.5 {
                    assert!(tc <= 0.97, "K = {k}: t-interval coverage {tc}");
                }
                if sd_seed > 0.1 && k == 2 {
                    assert!(bc < 0.9, "where seeds vary most, the bootstrap under-covers at K = 2: {bc}");
                }
            }
        }
    }

    /// Calibration: two groups of one config (K = 3 each, disjoint seeds), 15 rows a family:
    /// Welch's test marks about 5 % of rows unadjusted, and with Holm's adjustment a family has
    /// any row marked at most about 5 % of the time.
    #[test]
    fn welch_with_holm_keeps_same_config_groups_unmarked() {
        let (n, k, rows, families) = (64, 3, 15, 600);
        let mut rng = ChaCha8Rng::seed_from_u64(45);
        let (mut raw_marked, mut any_marked) = (0, 0);
        for _ in 0..families {
            let p: Vec<Option<f64>> = (0..rows)
                .map(|r| {
                    let mu = 0.2 + 0.6 * r as f64 / rows as f64;
                    let side = |rng: &mut ChaCha8Rng| -> (Vec<f64>, f64) {
                        let m: Vec<f64> =
                            simulate(rng, k, n, mu, 0.05).iter().map(|s| s.iter().sum::<f64>() / n as f64).collect();
                        let f = m.iter().map(|x| binomial_var(*x, n as u64).unwrap()).sum::<f64>() / k as f64;
                        (m, f)
                    };
                    let ((a, fa), (b, fb)) = (side(&mut rng), side(&mut rng));
                    delta((&a, None, fa), (&b, None, fb)).map(|d| d.p)
                })
                .collect();
            raw_marked += p.iter().filter(|p| p.is_some_and(|p| p < 0.05)).count();
            any_marked += usize::from(holm(&p).iter().any(|p| p.is_some_and(|p| p < 0.05)));
        }
        let raw = raw_marked as f64 / (rows * families) as f64;
        let fwer = any_marked as f64 / families as f64;
        println!(
            "same config, K = 3: {:.1} % of rows marked unadjusted, {:.1} % of families with Holm",
            raw * 100.0,
            fwer * 100.0
        );
        assert!(raw < 0.07, "{raw}");
        assert!(fwer < 0.07, "{fwer}");
    }
}

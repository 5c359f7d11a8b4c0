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
}

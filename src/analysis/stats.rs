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

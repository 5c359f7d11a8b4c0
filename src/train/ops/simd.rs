//! Small numeric building blocks written so that LLVM vectorises them, plus runtime dispatch to
//! an AVX2+FMA build of each kernel (the crate is compiled for the baseline target; every hot
//! kernel is instantiated twice: `F = true` inside a `#[target_feature(enable = "avx2,fma")]`
//! wrapper, `F = false` for the portable path). Results are deterministic on a given machine.

use std::sync::OnceLock;

/// True when the CPU has AVX2 and FMA (checked once).
pub fn has_avx2_fma() -> bool {
    static FLAG: OnceLock<bool> = OnceLock::new();
    *FLAG.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Declares `$name(args)` that calls `$generic::<true>` compiled with AVX2+FMA when available,
/// else `$generic::<false>`.
macro_rules! dispatch {
    ($vis:vis fn $name:ident => $generic:ident ( $($arg:ident : $ty:ty),* $(,)? )) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast($($arg: $ty),*) { $generic::<true>($($arg),*) }
                if $crate::train::ops::simd::has_avx2_fma() {
                    // SAFETY: the CPU supports the enabled features (checked at run time).
                    return unsafe { fast($($arg),*) };
                }
            }
            $generic::<false>($($arg),*)
        }
    };
}
pub(crate) use dispatch;

/// `a * b + c`, fused when `F`.
#[inline(always)]
pub fn madd<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// y += a * x
#[inline(always)]
pub fn axpy<const F: bool>(y: &mut [f32], a: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    let (y, x) = (&mut y[..n], &x[..n]);
    for i in 0..n {
        y[i] = madd::<F>(a, x[i], y[i]);
    }
}

/// Dot product with 8 independent partial sums (fixed order: deterministic).
#[inline(always)]
pub fn dot<const F: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        let x: &[f32; 8] = x.try_into().unwrap();
        let y: &[f32; 8] = y.try_into().unwrap();
        for l in 0..8 {
            acc[l] = madd::<F>(x[l], y[l], acc[l]);
        }
    }
    let mut tail = 0f32;
    for (x, y) in ar.iter().zip(br) {
        tail = madd::<F>(*x, *y, tail);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Maximum of a slice (8 lanes; NaN-free input assumed), −inf when empty.
#[inline(always)]
pub fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let c = a.chunks_exact(8);
    let r = c.remainder();
    for x in c {
        let x: &[f32; 8] = x.try_into().unwrap();
        for l in 0..8 {
            acc[l] = if x[l] > acc[l] { x[l] } else { acc[l] };
        }
    }
    let mut m = acc.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for &x in r {
        if x > m {
            m = x;
        }
    }
    m
}

/// Sum with 8 partial sums (fixed order).
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    sum_by(x, |y| y)
}

/// Sum of `f(x[i])` with 8 partial sums in a fixed order (e.g. the softmax denominator).
#[inline(always)]
pub fn sum_by(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let c = x.chunks_exact(8);
    let rem = c.remainder();
    for y in c {
        let y: &[f32; 8] = y.try_into().unwrap();
        for l in 0..8 {
            acc[l] += f(y[l]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &y in rem {
        s += f(y);
    }
    s
}

/// Sum of squares, same reduction scheme as [`dot`].
#[inline(always)]
pub fn sumsq<const F: bool>(a: &[f32]) -> f32 {
    dot::<F>(a, a)
}

/// exp(x) without branches (Cephes polynomial, ~2 ulp on the clamped range); vectorisable.
/// Inputs below -87.3 give ~1e-38 instead of 0, NaN propagates as NaN.
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub fn exp<const F: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: round-to-nearest trick
    let x = x.clamp(-87.3, 88.3);
    let t = madd::<F>(x, LOG2E, MAGIC);
    let n_bits = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    let n = t - MAGIC;
    let r = madd::<F>(-n, LN2_HI, x);
    let r = madd::<F>(-n, LN2_LO, r);
    let mut p = 1.987_569_1e-4f32;
    p = madd::<F>(p, r, 1.398_199_9e-3);
    p = madd::<F>(p, r, 8.333_452e-3);
    p = madd::<F>(p, r, 4.166_579_6e-2);
    p = madd::<F>(p, r, 1.666_666_5e-1);
    p = madd::<F>(p, r, 5.000_000_1e-1);
    let e = madd::<F>(p, r * r, r) + 1.0;
    let scale = f32::from_bits(((n_bits + 127) << 23) as u32);
    e * scale
}

/// sigmoid(x) = 1 / (1 + exp(-x))
#[inline(always)]
pub fn sigmoid<const F: bool>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<F>(-x))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn exp_matches_std() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let (a, b) = (exp::<false>(x) as f64, (x as f64).exp());
            worst = worst.max(((a - b) / b).abs());
            let a2 = exp::<true>(x) as f64;
            worst = worst.max(((a2 - b) / b).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "exp relative error {worst}");
        assert!(exp::<false>(f32::NEG_INFINITY) < 1e-37);
    }
    #[test]
    fn dot_and_axpy() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.1).collect();
        let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot::<false>(&a, &b) as f64 - want).abs() < 1e-3);
        let mut y = b.clone();
        axpy::<false>(&mut y, 2.0, &a);
        assert_eq!(y[3], b[3] + 2.0 * a[3]);
    }
}

//! `mixscope bench sgemm`: the training linears' matrix products at the SmolLM2-135M shape
//! (batch 8 × 256 = 2,048 tokens, hidden 576, q/k/v 960, MLP 1,536), forward (`x·Wᵀ`), input
//! gradient (`dy·W`) and weight gradient (`dyᵀ·x`), through `train::ops::sgemm` and through gemm
//! as candle calls it, alternated in one process (median of the repetitions), with whether the
//! two agree bit for bit.

use std::time::Instant;

use anyhow::Result;

use super::Row;
use crate::train::ops::sgemm::{matmul_into, sample_values as values, with_gemm, Mat};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(quick: bool) -> Result<Vec<Row>> {
    crate::train::trainer::set_thread_budget(super::train::bench_threads());
    let t = if quick { 256 } else { 2048 };
    let reps = if quick { 3 } else { 9 };
    let (h, qkv, ffn) = (576, 960, 1536);
    // (product, m, n, k, A transposed, B transposed)
    let products = [
        ("x·Wᵀ qkv", t, qkv, h, false, true),
        ("x·Wᵀ o", t, h, h, false, true),
        ("x·Wᵀ gate+up", t, 2 * ffn, h, false, true),
        ("x·Wᵀ down", t, h, ffn, false, true),
        ("dy·W qkv", t, h, qkv, false, false),
        ("dy·W o", t, h, h, false, false),
        ("dy·W gate+up", t, h, 2 * ffn, false, false),
        ("dy·W down", t, ffn, h, false, false),
        ("dyᵀ·x qkv", qkv, h, t, true, false),
        ("dyᵀ·x o", h, h, t, true, false),
        ("dyᵀ·x gate+up", 2 * ffn, h, t, true, false),
        ("dyᵀ·x down", h, ffn, t, true, false),
    ];
    let threads = rayon::current_num_threads();
    let mut rows = Vec::new();
    let (mut all_ours, mut all_gemm) = (0.0, 0.0);
    for (name, m, n, k, at, bt) in products {
        let (av, bv) = (values(m * k, 1), values(k * n, 2));
        let a = if at { Mat::t(&av, m) } else { Mat::rows(&av, k) };
        let b = if bt { Mat::t(&bv, k) } else { Mat::rows(&bv, n) };
        let (mut c1, mut c2) = (vec![0f32; m * n], vec![0f32; m * n]);
        let (mut ours, mut gemm) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let s = Instant::now();
            matmul_into(m, n, k, a, b, &mut c1, false);
            ours.push(s.elapsed().as_secs_f64());
            let s = Instant::now();
            with_gemm(m, n, k, a, b, &mut c2, false);
            gemm.push(s.elapsed().as_secs_f64());
        }
        let same = c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits());
        let (o, g) = (median(ours), median(gemm));
        all_ours += o;
        all_gemm += g;
        let gf = 2.0 * (m * n * k) as f64 / 1e9;
        rows.push(Row::new(
            "sgemm",
            "product",
            format!(
                "{name} [{m}, {k}]·[{k}, {n}]: {:.2} ms ({:.0} GFLOP/s) vs gemm {:.2} ms ({:.0}); bits {}",
                o * 1e3,
                gf / o,
                g * 1e3,
                gf / g,
                if same { "equal" } else { "DIFFER" }
            ),
            g / o,
            "x gemm",
            "-",
            same,
        ));
    }
    rows.push(Row::new(
        "sgemm",
        "all 12",
        format!(
            "sum of medians, {threads} threads, {reps} alternated repetitions: {:.1} ms vs gemm {:.1} ms",
            all_ours * 1e3,
            all_gemm * 1e3
        ),
        all_gemm / all_ours,
        "x gemm",
        ">= 1",
        all_gemm >= all_ours,
    ));
    Ok(rows)
}

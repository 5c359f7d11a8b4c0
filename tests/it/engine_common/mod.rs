#![allow(dead_code)]
use candle_core::{DType, Device, Result, Tensor, Var};
use mixscope::train::model::normal_vec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn randn(shape: &[usize], seed: u64, std: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let v = normal_vec(&mut ChaCha8Rng::seed_from_u64(seed), n, std);
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

pub fn var(shape: &[usize], seed: u64, std: f64) -> Var {
    Var::from_tensor(&randn(shape, seed, std)).unwrap()
}

pub fn rand_ids(b: usize, t: usize, vocab: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<u32> = (0..b * t).map(|_| rng.random_range(0..vocab as u32)).collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).unwrap()
}

/// Tokens shifted by one position: (ids, targets, weights) for a causal LM batch with right
/// padding: row r has `lens[r]` real tokens.
pub fn lm_batch(b: usize, t: usize, vocab: usize, seed: u64, lens: Option<&[usize]>) -> (Tensor, Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ids = vec![0u32; b * t];
    let mut tg = vec![0u32; b * t];
    let mut w = vec![0f32; b * t];
    for r in 0..b {
        let len = lens.map(|l| l[r]).unwrap_or(t + 1);
        let seq: Vec<u32> = (0..=t).map(|_| rng.random_range(0..vocab as u32)).collect();
        for i in 0..t {
            ids[r * t + i] = if i < len { seq[i] } else { 0 };
            tg[r * t + i] = if i + 1 < len { seq[i + 1] } else { 0 };
            w[r * t + i] = if i + 1 < len { 1.0 } else { 0.0 };
        }
    }
    let d = Device::Cpu;
    (
        Tensor::from_vec(ids, (b, t), &d).unwrap(),
        Tensor::from_vec(tg, (b, t), &d).unwrap(),
        Tensor::from_vec(w, (b, t), &d).unwrap(),
    )
}

pub fn to_vec(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f32) -> Result<()> {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let e = mixscope::train::ops::max_rel_err(a, b)?;
    assert!(e < tol, "{what}: max relative error {e:e} >= {tol:e}");
    Ok(())
}

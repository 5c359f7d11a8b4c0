//! AdamW: exact resume, the update rule, clipping, gradient accumulation.
use crate::engine_common as common;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use common::*;
use mixscope::train::{AdamW, AdamWConfig, GradAccum, Model, ModelConfig};
use std::collections::BTreeMap;

fn cfg() -> ModelConfig {
    let mut c = ModelConfig::llama(31, 32, 48, 2, 4, 2, 64, false);
    c.architecture = mixscope::train::Arch::Qwen2;
    c.attention_bias = true;
    c
}

fn batch(step: usize) -> (Tensor, Tensor, Tensor) {
    lm_batch(3, 16, 31, 7000 + step as u64, Some(&[17, 12, 9]))
}

fn train_steps(model: &Model, opt: &mut AdamW, steps: std::ops::Range<usize>) -> Result<()> {
    for s in steps {
        let (ids, tg, w) = batch(s);
        let grads = model.loss(&ids, &tg, &w)?.backward()?;
        let lr = 2e-3 * (1.0 + (s as f64 * 0.3).cos()) / 2.0; // changes every step
        opt.step_clipped(&grads, lr, Some(0.5))?;
    }
    Ok(())
}

fn bits(vm: &VarMap) -> BTreeMap<String, Vec<u32>> {
    vm.data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), to_vec(v.as_tensor()).iter().map(|x| x.to_bits()).collect()))
        .collect()
}

#[test]
fn save_and_load_resume_bit_identically() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("engine-optim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = cfg();
    let vm = VarMap::new();
    let model = Model::new(&c, &vm, &Device::Cpu, DType::F32, 42)?;
    let mut opt = AdamW::new(&vm, AdamWConfig::default())?;
    train_steps(&model, &mut opt, 0..10)?;
    vm.save(dir.join("w.safetensors"))?;
    opt.save(dir.join("opt.safetensors"))?;
    train_steps(&model, &mut opt, 10..20)?;
    let straight = bits(&vm);

    let vm2 = mixscope::train::load_varmap_safetensors(dir.join("w.safetensors"), &Device::Cpu, DType::F32)?;
    let model2 = Model::from_varmap_checked(&c, &vm2)?;
    let mut opt2 = AdamW::new(&vm2, AdamWConfig::default())?;
    opt2.load(dir.join("opt.safetensors"))?;
    assert_eq!(opt2.step_count(), 10);
    train_steps(&model2, &mut opt2, 10..20)?;
    assert!(bits(&vm2) == straight, "resumed run differs from the straight run");

    // without the optimizer state the result differs (the test can fail)
    let vm3 = mixscope::train::load_varmap_safetensors(dir.join("w.safetensors"), &Device::Cpu, DType::F32)?;
    let model3 = Model::from_varmap_checked(&c, &vm3)?;
    let mut opt3 = AdamW::new(&vm3, AdamWConfig::default())?;
    train_steps(&model3, &mut opt3, 10..20)?;
    assert!(bits(&vm3) != straight);

    // a state for other parameters is rejected
    let other = VarMap::new();
    Model::new(&ModelConfig::llama(31, 32, 48, 1, 4, 2, 64, false), &other, &Device::Cpu, DType::F32, 1)?;
    let mut opt4 = AdamW::new(&other, AdamWConfig::default())?;
    let err = opt4.load(dir.join("opt.safetensors")).unwrap_err().to_string();
    assert!(err.contains("unknown entry model.layers.1"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Reference AdamW in f64 for one parameter.
fn reference(w0: &[f32], grads: &[Vec<f32>], lrs: &[f64], c: &AdamWConfig, decay: bool) -> Vec<f64> {
    let mut w: Vec<f64> = w0.iter().map(|&x| x as f64).collect();
    let mut m = vec![0f64; w.len()];
    let mut v = vec![0f64; w.len()];
    for (t, (g, lr)) in grads.iter().zip(lrs).enumerate() {
        let t = (t + 1) as i32;
        for i in 0..w.len() {
            let gi = g[i] as f64;
            m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * gi;
            v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * gi * gi;
            let mh = m[i] / (1.0 - c.beta1.powi(t));
            let vh = v[i] / (1.0 - c.beta2.powi(t));
            if decay {
                w[i] *= 1.0 - lr * c.weight_decay;
            }
            w[i] -= lr * mh / (vh.sqrt() + c.eps);
        }
    }
    w
}

#[test]
fn update_rule_decay_exclusion_and_clipping() -> Result<()> {
    let c = AdamWConfig { beta1: 0.8, beta2: 0.9, eps: 1e-6, weight_decay: 0.5 };
    let vm = VarMap::new();
    let mat = randn(&[3, 4], 1, 1.0);
    let vec1 = randn(&[5], 2, 1.0);
    {
        let mut d = vm.data().lock().unwrap();
        d.insert("b.matrix".into(), Var::from_tensor(&mat)?);
        d.insert("a.norm".into(), Var::from_tensor(&vec1)?);
    }
    let vars: BTreeMap<String, Var> = vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut opt = AdamW::new(&vm, c)?;
    assert_eq!(opt.param_names(), vec!["a.norm", "b.matrix"]);
    let lrs = [0.1, 0.05, 0.02];
    let mut gm = Vec::new();
    let mut gv = Vec::new();
    for s in 0..3 {
        // loss = Σ w·r  →  grad = r
        let rm = randn(&[3, 4], 10 + s, 1.0);
        let rv = randn(&[5], 20 + s, 1.0);
        let loss =
            ((vars["b.matrix"].as_tensor() * &rm)?.sum_all()? + (vars["a.norm"].as_tensor() * &rv)?.sum_all()?)?;
        let grads = loss.backward()?;
        let norm = opt.grad_norm(&grads)?;
        let want = (to_vec(&rm).iter().chain(to_vec(&rv).iter()).map(|x| (*x as f64).powi(2)).sum::<f64>()).sqrt();
        assert!((norm - want).abs() < 1e-5 * want);
        // clip to half the norm: the update sees grads scaled by max/(norm+1e-6)
        let max = want / 2.0;
        let before = opt.step_clipped(&grads, lrs[s as usize], Some(max))?;
        assert!((before - want).abs() < 1e-5 * want, "returns the norm before clipping");
        let k = (max / (want + 1e-6)) as f32;
        gm.push(to_vec(&rm).iter().map(|x| x * k).collect::<Vec<f32>>());
        gv.push(to_vec(&rv).iter().map(|x| x * k).collect::<Vec<f32>>());
    }
    let wm = reference(&to_vec(&mat), &gm, &lrs, &c, true);
    let wv = reference(&to_vec(&vec1), &gv, &lrs, &c, false);
    for (got, want) in [(to_vec(vars["b.matrix"].as_tensor()), wm), (to_vec(vars["a.norm"].as_tensor()), wv)] {
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
        }
    }
    // the 1-D parameter was not decayed: a decayed reference is far from it
    let decayed = reference(&to_vec(&vec1), &gv, &lrs, &c, true);
    let got = to_vec(vars["a.norm"].as_tensor());
    assert!(got.iter().zip(&decayed).any(|(g, w)| (*g as f64 - w).abs() > 1e-3));
    Ok(())
}

#[test]
fn gradient_accumulation_matches_the_full_batch() -> Result<()> {
    let c = cfg();
    let vm = VarMap::new();
    let model = Model::new(&c, &vm, &Device::Cpu, DType::F32, 3)?;
    let (ids, tg, w) = batch(0);
    let full = model.loss(&ids, &tg, &w)?.backward()?;
    let total = w.sum_all()?.to_scalar::<f32>()? as f64;
    let mut acc = GradAccum::new();
    for (start, len) in [(0, 1), (1, 2)] {
        let (i, t, ww) = (ids.narrow(0, start, len)?, tg.narrow(0, start, len)?, w.narrow(0, start, len)?);
        let share = ww.sum_all()?.to_scalar::<f32>()? as f64 / total;
        acc.add((model.loss(&i, &t, &ww)? * share)?.backward()?)?;
    }
    let summed = acc.take().unwrap();
    for (name, v) in vm.data().lock().unwrap().iter() {
        assert_close(name, summed.get(v.as_tensor()).unwrap(), full.get(v.as_tensor()).unwrap(), 1e-4)?;
    }
    Ok(())
}

//! `mixscope bench train`: training throughput of the engine at two shapes, fused kernels and
//! the composite (plain candle ops) path measured side by side in one process, with the step
//! split into forward, backward and optimizer time.
//!
//! Shapes: `demo` is the demo's base model (configs/demo-base.toml); `reference` is the
//! comparison shape of issue 3 (Llama, vocab 4096, hidden 256, ffn 688, 4 layers, 4 heads,
//! untied, sequence 256, batch 16). Tokens are random: throughput does not depend on them.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{median, Row, Step};
use crate::runs::events::{Body, Event, EventWriter, Examples};
use crate::train::{AdamW, AdamWConfig, Kernels, Model, ModelConfig};

struct Shape {
    name: &'static str,
    cfg: ModelConfig,
    seq: usize,
    batch: usize,
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape { name: "demo", cfg: ModelConfig::llama(4096, 192, 512, 4, 4, 4, 256, false), seq: 192, batch: 16 },
        Shape { name: "reference", cfg: ModelConfig::llama(4096, 256, 688, 4, 4, 4, 256, false), seq: 256, batch: 16 },
    ]
}

/// Random tokens at full length: inputs, targets and unit loss weights, `[batch, seq]`.
fn batch(cfg: &ModelConfig, batch: usize, seq: usize, seed: u64) -> Result<(Tensor, Tensor, Tensor)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = batch * seq;
    let v = cfg.vocab_size as u32;
    let ids: Vec<u32> = (0..n).map(|_| rng.random_range(0..v)).collect();
    let tg: Vec<u32> = (0..n).map(|_| rng.random_range(0..v)).collect();
    let d = Device::Cpu;
    Ok((
        Tensor::from_vec(ids, (batch, seq), &d)?,
        Tensor::from_vec(tg, (batch, seq), &d)?,
        Tensor::ones((batch, seq), DType::F32, &d)?,
    ))
}

/// The phases of `steps` training steps (after `warmup` untimed ones) of a fresh model of
/// `cfg` on random full-length batches: forward with the loss, backward, clipped AdamW.
pub(crate) fn measure(
    cfg: &ModelConfig,
    (b, seq): (usize, usize),
    kernels: Kernels,
    warmup: usize,
    steps: usize,
) -> Result<Vec<Step>> {
    let varmap = VarMap::new();
    let mut model = Model::new(cfg, &varmap, &Device::Cpu, DType::F32, 0)?;
    model.set_kernels(kernels);
    let mut opt = AdamW::new(&varmap, AdamWConfig::default())?;
    let mut out = Vec::new();
    for i in 0..warmup + steps {
        let (ids, tg, w) = batch(cfg, b, seq, i as u64)?;
        let t0 = Instant::now();
        let usage0 = crate::train::ops::prof::usage();
        let loss = model.loss(&ids, &tg, &w)?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step_clipped(&grads, 1e-3, Some(1.0))?;
        let t3 = Instant::now();
        if crate::train::ops::prof::enabled() {
            let u = crate::train::ops::prof::usage().since(&usage0);
            let wall = (t3 - t0).as_secs_f64();
            eprintln!(
                "step {i}: {wall:.2} s wall, {:.2} s user + {:.2} s sys ({:.2} CPUs busy), {} page faults",
                u.user,
                u.sys,
                (u.user + u.sys) / wall,
                u.faults
            );
        }
        if i >= warmup {
            out.push(Step { fwd: (t1 - t0).as_secs_f64(), bwd: (t2 - t1).as_secs_f64(), opt: (t3 - t2).as_secs_f64() });
        }
    }
    Ok(out)
}

/// Mean seconds to append one `train` event as the trainer does (12 languages, 4 tasks in
/// `examples`), to a real file: to events.jsonl alone, and to events.jsonl and the
/// TensorBoard file (`[logging] tensorboard`, on by default).
fn event_cost() -> Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let alone = append_events(&dir.path().join("a"), false)?;
    let with_tb = append_events(&dir.path().join("b"), true)?;
    Ok((alone, with_tb))
}

fn append_events(dir: &std::path::Path, tensorboard: bool) -> Result<f64> {
    std::fs::create_dir_all(dir)?;
    let mut w = EventWriter::open(&dir.join("events.jsonl"))?;
    let mut tb = match tensorboard {
        true => Some(crate::tensorboard::Writer::create(&dir.join(crate::tensorboard::DIR))?),
        false => None,
    };
    let langs = ["en", "es", "fr", "ja", "zh", "ar", "ko", "pt", "ru", "sw", "bn", "th"];
    let n = 2000;
    let t0 = Instant::now();
    for i in 0..n {
        let ex = Examples {
            lang: langs.iter().map(|l| (l.to_string(), 1000 + i)).collect(),
            task: ["mr", "sm", "if", "lm"].iter().map(|t| (t.to_string(), 3000 + i)).collect(),
        };
        let body = Body::Train {
            loss: 2.5 + i as f64 * 1e-4,
            lr: 1e-3,
            tokens: i * 3072,
            tokens_per_s: 3456.7,
            examples: ex,
            grad_norm: Some(0.87),
        };
        let ev = Event::new(i, body);
        w.write(&ev)?;
        if let Some(tb) = tb.as_mut() {
            tb.write(&ev)?;
        }
    }
    Ok(t0.elapsed().as_secs_f64() / n as f64)
}

/// A checkpoint of the demo's shape (weights and AdamW moments) written as the trainer writes
/// one (`checkpoint::save`: files, their SHA-256 into state.json, fsync, rename), then checked as
/// everything that loads one checks it (`checkpoint::load_verified`: both files hashed).
/// Returns the median seconds to write and to check, and the tensor files' bytes.
fn checkpoint_cost(reps: usize) -> Result<(f64, f64, u64)> {
    use crate::runs::checkpoint::{self, TrainState};
    let s = &shapes()[0];
    let varmap = VarMap::new();
    let _model = Model::new(&s.cfg, &varmap, &Device::Cpu, DType::F32, 0)?;
    let opt = AdamW::new(&varmap, AdamWConfig::default())?;
    let dir = tempfile::tempdir()?;
    let run = crate::runs::RunDir::new(dir.path());
    let (mut write, mut check, mut bytes) = (Vec::new(), Vec::new(), 0);
    for step in 1..=reps as u64 {
        let st = TrainState {
            step,
            tokens: 0,
            sampler: crate::data::sampler::SamplerState::new(0),
            best_loss: None,
            best_step: None,
            control_seq: 0,
            train_seconds: 0.0,
            eval_loss: None,
            eval_pending: false,
            sha256: None,
        };
        let t0 = Instant::now();
        let d = checkpoint::save(&run, &st, |tmp| {
            varmap.save(tmp.join(checkpoint::MODEL_FILE))?;
            opt.save(tmp.join(checkpoint::OPTIM_FILE))?;
            Ok(())
        })?;
        write.push(t0.elapsed().as_secs_f64());
        let t1 = Instant::now();
        checkpoint::load_verified(&d, step)?;
        check.push(t1.elapsed().as_secs_f64());
        bytes = [checkpoint::MODEL_FILE, checkpoint::OPTIM_FILE]
            .iter()
            .map(|f| std::fs::metadata(d.join(f)).map(|m| m.len()).unwrap_or(0))
            .sum();
    }
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((mid(write), mid(check), bytes))
}

/// A config's steps as its trainer draws them (its mixture, seed and sequence length; the suite
/// tokenizer at its vocabulary, from `cache`): the encoded examples of each of `steps` steps.
fn drawn_steps(
    config: &std::path::Path,
    sets: &[&str],
    steps: usize,
    cache: &std::path::Path,
) -> Result<(crate::config::RunConfig, Vec<Vec<crate::data::tokenizer::Encoded>>)> {
    use crate::data::jsonl::{DataSource, UserData};
    use crate::data::suite::GenOptions;
    let mut loaded = crate::config::Loaded::read(config)?;
    loaded.apply_sets(&sets.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    let cfg = loaded.config;
    let tok =
        crate::data::tokenizer::Tok::load(&crate::data::tokenizer::suite_tokenizer(cache, cfg.tokenizer.vocab_size)?)?;
    let source = DataSource {
        opts: GenOptions { mr_levels: cfg.data.mr_levels.clone() },
        user: UserData::load(&cfg.data.files)?,
    };
    let mut sampler = crate::data::sampler::Sampler::new(&cfg.mixture()?, cfg.seed);
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let mut encs = Vec::with_capacity(cfg.train.batch_size);
        for _ in 0..cfg.train.batch_size {
            let ex = sampler.next_example(&source)?;
            encs.push(tok.encode(&ex, cfg.data.seq_len)?);
        }
        out.push(encs);
    }
    Ok((cfg, out))
}

/// How a padded step's examples are split, as the trainer splits them.
fn padded_groups(t: &crate::config::TrainSection, lens: &[usize]) -> Vec<Vec<usize>> {
    let micro = (t.batch_size / t.grad_accum.max(1)).max(1);
    match t.group_by_length {
        true => crate::train::batch::plan_micro_batches(lens, micro, crate::train::trainer::MICRO_BATCH_OVERHEAD),
        false => crate::train::batch::micro_batches_in_order(lens.len(), micro),
    }
}

/// Input lengths of a step's examples.
fn input_lens(encs: &[crate::data::tokenizer::Encoded]) -> Vec<usize> {
    encs.iter().map(|e| e.ids.len().saturating_sub(1)).collect()
}

/// The share of computed input positions that are padding in a config's batches, over steps
/// drawn as its trainer draws them: packed (`train.pack`, the CPU path: real tokens only),
/// padded and split as the trainer splits them (`train.group_by_length`; the path without the
/// fused kernels), and padded in drawn order. Returns those three shares (%) and the real
/// input tokens per step.
pub(crate) fn padding(
    config: &std::path::Path,
    sets: &[&str],
    steps: usize,
    cache: &std::path::Path,
) -> Result<[f64; 4]> {
    use crate::train::batch::padded_tokens;
    let (cfg, drawn) = drawn_steps(config, sets, steps, cache)?;
    let t = &cfg.train;
    let micro = (t.batch_size / t.grad_accum.max(1)).max(1);
    let (mut real, mut planned, mut plain) = (0usize, 0usize, 0usize);
    for encs in &drawn {
        let lens = input_lens(encs);
        real += lens.iter().sum::<usize>();
        planned += padded_tokens(&lens, &padded_groups(t, &lens));
        let chunks: Vec<Vec<usize>> = crate::train::batch::micro_batches_in_order(lens.len(), micro);
        plain += padded_tokens(&lens, &chunks);
    }
    let share = |computed: usize| 100.0 * (computed - real) as f64 / computed.max(1) as f64;
    let packed = if t.pack { 0.0 } else { share(planned) };
    Ok([packed, share(planned), share(plain), real as f64 / steps.max(1) as f64])
}

/// The demo's SFT steps (drawn as its trainer draws them) on the demo base's shape, packed
/// and padded (split by length, as without `train.pack`), alternated step by step in one
/// process: median seconds per step of each, after one untimed step of each.
fn packed_vs_padded(config: &std::path::Path, steps: usize, cache: &std::path::Path) -> Result<(f64, f64)> {
    use crate::train::batch::step_gradients;
    let (cfg, drawn) = drawn_steps(config, &[], steps + 1, cache)?;
    let shape = &shapes()[0].cfg; // the demo base
    let varmap = VarMap::new();
    let model = Model::new(shape, &varmap, &Device::Cpu, DType::F32, 0)?;
    let micro = (cfg.train.batch_size / cfg.train.grad_accum.max(1)).max(1);
    let (mut packed, mut padded) = (Vec::new(), Vec::new());
    for (i, encs) in drawn.iter().enumerate() {
        let chunks: Vec<Vec<usize>> = crate::train::batch::micro_batches_in_order(encs.len(), micro);
        let grouped = padded_groups(&cfg.train, &input_lens(encs));
        for (pack, groups, out) in [(true, &chunks, &mut packed), (false, &grouped, &mut padded)] {
            let t0 = Instant::now();
            let g = step_gradients(&model, encs, groups, 0, pack)?;
            std::hint::black_box(g.loss);
            if i > 0 {
                out.push(t0.elapsed().as_secs_f64());
            }
        }
    }
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((mid(packed), mid(padded)))
}

/// Threads for the bench: `MIXSCOPE_BENCH_THREADS`, default 2 (the reference setting).
pub(crate) fn bench_threads() -> usize {
    std::env::var("MIXSCOPE_BENCH_THREADS").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(2)
}

pub fn run(quick: bool) -> Result<Vec<Row>> {
    crate::train::trainer::set_thread_budget(bench_threads());
    crate::train::tune_allocator();
    let (warmup, steps) = if quick { (1, 3) } else { (2, 10) };
    let threads = rayon::current_num_threads();
    let (per_event, per_event_tb) = event_cost()?;
    let mut fastest_step = f64::INFINITY;
    let mut rows = Vec::new();
    for s in shapes() {
        let tokens = (s.batch * s.seq) as f64;
        let flops = s.cfg.train_flops_per_token(s.seq) * tokens;
        let mut tps = [0.0; 2];
        for (k, kernels) in [Kernels::Fused, Kernels::Composite].into_iter().enumerate() {
            let m = median(measure(&s.cfg, (s.batch, s.seq), kernels, warmup, steps)?);
            let kname = if k == 0 { "fused" } else { "composite" };
            tps[k] = tokens / m.total();
            let detail = format!(
                "shape={} kernels={kname} threads={threads} params={:.2}M step={:.0}ms (fwd {:.0} / bwd {:.0} / opt {:.0} ms) {:.2} GFLOP/s",
                s.name,
                s.cfg.num_params() as f64 / 1e6,
                m.total() * 1e3,
                m.fwd * 1e3,
                m.bwd * 1e3,
                m.opt * 1e3,
                flops / m.total() / 1e9,
            );
            fastest_step = fastest_step.min(m.total());
            rows.push(
                Row::new("train", "tokens/s", detail, tps[k], "tokens/s", "-", true)
                    .with("shape", s.name)
                    .with("kernels", kname)
                    .with("threads", threads)
                    .with("tokens_per_s", tps[k])
                    .with("step_ms", m.total() * 1e3)
                    .with("forward_ms", m.fwd * 1e3)
                    .with("backward_ms", m.bwd * 1e3)
                    .with("optimizer_ms", m.opt * 1e3)
                    .with("gflop_per_s", flops / m.total() / 1e9),
            );
        }
        rows.push(
            Row::new(
                "train",
                "fused/comp",
                format!("shape={} fused over composite, same process", s.name),
                tps[0] / tps[1],
                "ratio",
                ">=1",
                tps[0] >= tps[1],
            )
            .with("shape", s.name),
        );
    }
    // Padding in the shipped configs' batches, as their trainers draw and split them.
    let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let cache = tempfile::tempdir()?;
    let pad_steps = if quick { 20 } else { 200 };
    for (file, sets, what) in [
        ("demo.toml", &[][..], "the demo's SFT (mr, sm, if; 16 × up to 160)"),
        ("demo-base.toml", &[][..], "the demo base's pretraining (lm; 16 × up to 128)"),
        ("demo-base.toml", &["seq_len=256", "batch_size=8"][..], "lm at the real-shape bench's 8 × 256"),
    ] {
        let path = configs.join(file);
        if !path.exists() {
            continue;
        }
        let [packed, planned, plain, real] = padding(&path, sets, pad_steps, cache.path())?;
        rows.push(
            Row::new(
                "train",
                "padding",
                format!(
                    "{file} {}: {what}, {pad_steps} steps as its trainer draws them, {real:.0} real input tokens a step; padded (no fused kernels, or train.pack = false) {planned:.1} % split by length, {plain:.1} % in drawn order",
                    sets.join(" ")
                ),
                packed,
                "% of positions",
                "<= 15",
                packed <= 15.0,
            )
            .with("config", file)
            .with("padded_pct", planned)
            .with("unplanned_pct", plain),
        );
    }
    let demo = configs.join("demo.toml");
    if demo.exists() {
        let (packed, padded) = packed_vs_padded(&demo, if quick { 3 } else { 15 }, cache.path())?;
        rows.push(
            Row::new(
                "train",
                "packed/padded",
                format!(
                    "the demo's SFT steps on the demo base's shape: packed {:.0} ms vs padded and split by length {:.0} ms a step (medians, alternated)",
                    packed * 1e3,
                    padded * 1e3
                ),
                padded / packed,
                "speed-up",
                ">=1",
                padded >= packed,
            )
            .with("packed_ms", packed * 1e3)
            .with("padded_ms", padded * 1e3),
        );
    }
    let share = per_event / fastest_step * 100.0;
    rows.push(Row::new(
        "train",
        "event log",
        format!("one train event appended per step: {:.1} µs vs the fastest step above", per_event * 1e6),
        share,
        "% of step",
        "<1",
        share < 1.0,
    ));
    let tb_share = (per_event_tb - per_event).max(0.0) / fastest_step * 100.0;
    rows.push(Row::new(
        "train",
        "tensorboard",
        format!(
            "its train record added to each step: {:.1} µs (event log alone {:.1} µs, with TensorBoard {:.1} µs) vs the fastest step above",
            (per_event_tb - per_event) * 1e6,
            per_event * 1e6,
            per_event_tb * 1e6
        ),
        tb_share,
        "% of step",
        "<1",
        tb_share < 1.0,
    ));
    // Checksums are computed once when a checkpoint is written and once each time it is loaded:
    // a check costs what hashing the files costs.
    let (write, check, bytes) = checkpoint_cost(if quick { 3 } else { 7 })?;
    let share = check / write * 100.0;
    rows.push(
        Row::new(
            "train",
            "checksums",
            format!(
                "shape=demo checkpoint of {:.1} MB: checked (SHA-256 of weights and optimizer state) in {:.1} ms ({:.0} MB/s), written with its checksums in {:.1} ms",
                bytes as f64 / 1e6,
                check * 1e3,
                bytes as f64 / 1e6 / check.max(1e-9),
                write * 1e3
            ),
            check * 1e3,
            "ms",
            "<100",
            check < 0.1,
        )
        .with("check_ms", check * 1e3)
        .with("write_ms", write * 1e3)
        .with("bytes", bytes)
        .with("check_share_of_write_pct", share),
    );
    Ok(rows)
}

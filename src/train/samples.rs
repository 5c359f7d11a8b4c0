//! `mixscope samples RUN`: the held-out examples of a (task, language) set as the run's model
//! answers them at a checkpoint — prompt, reference, generation and its score — the same
//! greedy decoding and metric as the run's evaluations, so a number on screen can be read
//! back to the answers behind it.

use anyhow::{Context, Result};
use candle_core::DType;
use candle_nn::VarMap;

use super::model::Model;
use super::trainer::{dtype_of, load_weights, select_device};
use crate::config::RunConfig;
use crate::data::jsonl::{DataSource, UserData};
use crate::data::suite::GenOptions;
use crate::data::tokenizer::Tok;
use crate::data::Task;
use crate::runs::RunDir;

/// A run's config, tokenizer and model at the checkpoint `step` (the latest when `None`), on
/// the CPU in f32.
pub fn load_model(run: &RunDir, step: Option<u64>) -> Result<(RunConfig, Tok, Model, u64)> {
    let cfg = run.read_config()?;
    let step = match step {
        Some(s) => s,
        None => run.latest_checkpoint()?.with_context(|| format!("{} has no checkpoint yet", run.path.display()))?,
    };
    let dir = run.checkpoint_dir(step);
    if !dir.is_dir() {
        crate::bail_input!("{} has no checkpoint at step {step}", run.path.display());
    }
    crate::runs::checkpoint::load_verified(&dir, step)?;
    let tok = Tok::load(&run.tokenizer_path())?;
    let device = select_device(crate::config::DeviceSpec::Cpu)?;
    let mcfg = crate::model::of_run(&cfg, &tok)?;
    let varmap = VarMap::new();
    let mut model = Model::new(&mcfg, &varmap, &device, DType::F32, cfg.seed)?;
    model.set_compute_dtype(dtype_of("f32"))?;
    load_weights(&varmap, &model, &dir.join(crate::runs::checkpoint::MODEL_FILE))?;
    Ok((cfg, tok, model, step))
}

/// One held-out example as the model answered it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub task: String,
    pub lang: String,
    pub prompt: String,
    pub reference: String,
    pub generation: String,
    pub score: f64,
    pub lang_ok: bool,
}

/// The first `n` held-out examples of (task, lang) answered by the checkpoint at `step` (the
/// latest when `None`). The held-out set is the run's own (`eval.n` and the suite's fixed
/// seed), so sample i is the example behind score i of the run's eval events.
pub fn samples(run: &RunDir, step: Option<u64>, task: &str, lang: &str, n: usize) -> Result<(u64, Vec<Sample>)> {
    let (cfg, tok, model, step) = load_model(run, step)?;
    let source = DataSource {
        opts: GenOptions { mr_levels: cfg.data.mr_levels.clone() },
        user: UserData::load(&cfg.data.files)?,
    };
    let task = Task::parse(task);
    let examples = source.heldout(&task, lang, n)?;
    let mut out = Vec::with_capacity(examples.len());
    for ex in examples {
        let enc = tok.encode(&ex, cfg.data.seq_len)?;
        let g = model.generate(&[enc.ids[..enc.prompt_len].to_vec()], cfg.eval.max_new_tokens, &tok.stops)?;
        let generation = tok.decode(&g[0])?;
        let sc = crate::eval::score(&ex, &generation);
        out.push(Sample {
            task: ex.task.to_string(),
            lang: ex.lang.clone(),
            prompt: ex.prompt,
            reference: ex.response,
            generation,
            score: sc.value,
            lang_ok: sc.lang_ok,
        });
    }
    Ok((step, out))
}

/// The first `n` answers of (task, lang) the run stored at the evaluation of `step` (its
/// latest stored when `None`; `runs::samples`), as [`samples`] would regenerate them from the
/// checkpoint of that step, without loading the model. A run that stores none (written before
/// answers were stored), or not that step or set, is bad input saying what it does store.
pub fn stored(run: &RunDir, step: Option<u64>, task: &str, lang: &str, n: usize) -> Result<(u64, Vec<Sample>)> {
    use crate::runs::samples as store;
    let steps = store::steps(&run.path);
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let Some(latest) = steps.last().copied() else {
        crate::bail_input!(
            "{} stores no answers (a run written before evaluations stored them, or not evaluated yet): leave out --stored to regenerate them from a checkpoint",
            run.path.display()
        );
    };
    let step = step.unwrap_or(latest);
    let Some(set) = store::read_set(&run.path, step, task, lang)? else {
        crate::bail_input!("{} stores no answers at step {step}; it stores steps {}", run.path.display(), list(&steps));
    };
    let Some(set) = set else {
        crate::bail_input!("{} stores no answers of {task} {lang} at step {step}", run.path.display());
    };
    let out = set
        .answers
        .into_iter()
        .take(n)
        .map(|a| Sample {
            task: set.task.clone(),
            lang: set.lang.clone(),
            prompt: a.prompt,
            reference: a.reference,
            generation: a.generation,
            score: a.score,
            lang_ok: a.lang_ok,
        })
        .collect();
    Ok((step, out))
}

/// Store an evaluation's answers (`runs::samples`), keeping the last evaluations' and the best
/// checkpoint's. They are a view of the evaluation, as the TensorBoard file is of the events:
/// a write that fails is reported on stderr and training goes on.
pub fn store(run: &RunDir, step: u64, results: &[super::evaluate::EvalResult], best: Option<u64>) {
    use crate::runs::samples as store;
    let sets = super::evaluate::answer_sets(results);
    if sets.is_empty() {
        return;
    }
    let r = store::write(run, step, &sets).and_then(|_| store::prune(run, store::KEEP_LAST, best));
    if let Err(e) = r {
        eprintln!("warning: the answers of the evaluation at step {step} were not stored: {e:#}");
    }
}

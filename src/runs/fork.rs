//! Forking a run at a checkpoint with a new mixture, and linking a checkpoint from one run
//! into another (a fork's, or a run's start from its base).

use std::path::Path;

use anyhow::{Context, Result};

use super::checkpoint::{self, TrainState};
use super::events::{Body, Event, EventWriter};
use super::lock::RunLock;
use super::RunDir;
use crate::bail_input;
use crate::config::Lineage;
use crate::data::mixture::Mixture;
use crate::data::tokenizer;

fn fmt_steps(v: &[u64]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" ")
    }
}

/// Put `from`'s checkpoint at `step`, checked by the caller ([`checkpoint::load_verified`]: a
/// damaged checkpoint is never linked), into `to` (hard links where possible, copies otherwise). The
/// sampler continues with `seed` (the same as the parent's for an exact fork). Returns whether
/// the checkpoint holds weights only (a shipped base's): the run then starts with fresh
/// optimizer moments, which the trainer allows at a run's starting step alone.
pub(super) fn link_checkpoint(
    from: &RunDir,
    step: u64,
    v: checkpoint::Verified,
    to: &RunDir,
    seed: u64,
) -> Result<bool> {
    let src = from.checkpoint_dir(step);
    crate::util::ensure_real_dir(&to.checkpoints_dir())?;
    let tmp = to.checkpoints_dir().join(format!(".tmp-{step}-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    for f in [checkpoint::MODEL_FILE, checkpoint::OPTIM_FILE] {
        let (a, b) = (src.join(f), tmp.join(f));
        if f == checkpoint::OPTIM_FILE && !v.optimizer {
            continue;
        }
        if std::fs::hard_link(&a, &b).is_err() {
            std::fs::copy(&a, &b).with_context(|| format!("copying {}", a.display()))?;
        }
    }
    let mut st: TrainState = v.state;
    st.sampler.seed = seed;
    st.control_seq = 0;
    std::fs::write(tmp.join(checkpoint::STATE_FILE), serde_json::to_vec_pretty(&st)?)?;
    std::fs::rename(&tmp, to.checkpoint_dir(step))?;
    crate::util::sync_dir(&to.checkpoints_dir());
    Ok(!v.optimizer)
}

pub(super) fn write_fork_event(
    run: &RunDir,
    parent: &str,
    step: u64,
    mix: &Mixture,
    fresh_optimizer: bool,
) -> Result<()> {
    let mut w = EventWriter::open(&run.events_path())?;
    w.write(&Event::new(
        step,
        Body::Fork { parent: parent.to_string(), parent_step: step, mixture: mix.spec.clone(), fresh_optimizer },
    ))?;
    w.sync()
}

/// A fork, created and locked (a caller queues it, then lets the lock go).
pub struct Forked {
    pub run: RunDir,
    pub lock: Option<RunLock>,
    /// The checkpoint holds weights only: the fork starts with fresh optimizer moments.
    pub fresh_optimizer: bool,
    pub step: u64,
}

/// Fork `parent` at checkpoint `at` (default: its latest) with a new mixture SPEC. Languages
/// the new mixture trains on stop being held out. `seed` gives the fork's data stream another
/// seed (a fork is otherwise its parent's stream continued). Returns the new run, locked.
pub fn fork_run(
    root: &Path,
    parent: &RunDir,
    at: Option<u64>,
    spec: &str,
    name: Option<String>,
    max_steps: Option<u64>,
    seed: Option<u64>,
) -> Result<Forked> {
    let pcfg = parent.read_config()?;
    let ckpts = parent.checkpoints()?;
    let step = match at {
        Some(s) if ckpts.contains(&s) => s,
        Some(s) => bail_input!(
            "--at {s}: run {} has no checkpoint at step {s} (checkpoints: {})",
            parent.id(),
            fmt_steps(&ckpts)
        ),
        None => match ckpts.last() {
            Some(s) => *s,
            None => bail_input!("run {} has no checkpoint to fork from yet", parent.id()),
        },
    };
    let mix = Mixture::parse(spec, &pcfg.data.spec_context())?;
    // The checkpoint is checked before anything is created.
    let verified = checkpoint::load_verified(&parent.checkpoint_dir(step), step)?;
    let mut cfg = pcfg.clone();
    cfg.seed = seed.unwrap_or(pcfg.seed);
    cfg.data.mixture = mix.spec.clone();
    cfg.data.heldout.retain(|h| !mix.seen().contains(&h.as_str()));
    // The fork keeps evaluating every language its parent did (curves continue), plus the new.
    let pmix = pcfg.mixture()?;
    let mut langs = crate::config::eval_langs(&pcfg, &pmix);
    for l in mix.languages() {
        if !langs.iter().any(|x| x == l) {
            langs.push(l.to_string());
        }
    }
    langs.sort_by_key(|c| crate::data::lang::order(c));
    cfg.eval.langs = langs;
    cfg.name = name.or_else(|| pcfg.name.as_ref().map(|n| format!("{n}-fork{step}")));
    cfg.lineage = Some(Lineage { parent: parent.id(), fork_step: step });
    cfg.train.max_steps = match max_steps {
        Some(m) if m <= step => bail_input!("--max-steps {m}: must be past the fork step {step}"),
        Some(m) => m,
        None if pcfg.train.max_steps > step => pcfg.train.max_steps,
        None => step + (pcfg.train.max_steps - pcfg.train.schedule_start).max(1),
    };
    cfg.init = None;
    cfg.source_hash = None;
    // A fork is a run of its own, not another point of its parent's sweep.
    cfg.sweep = None;
    let (run, lock) = super::create::new_run_dir(root, cfg.name.as_deref())?;
    tokenizer::copy_tokenizer(&parent.tokenizer_path(), &run.tokenizer_path())
        .context("copying the parent's tokenizer")?;
    run.write_config(&cfg)?;
    let fresh_optimizer = link_checkpoint(parent, step, verified, &run, cfg.seed)?;
    write_fork_event(&run, &parent.id(), step, &mix, fresh_optimizer)?;
    Ok(Forked { run, lock: Some(lock), fresh_optimizer, step })
}

//! Checkpoints: `checkpoints/<step>/{model.safetensors, optimizer.safetensors, state.json}`,
//! written into a temporary directory and renamed, so a checkpoint directory is whole or absent.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::sampler::SamplerState;
use crate::runs::RunDir;

/// Everything besides weights and optimizer moments that resuming needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed.
    pub step: u64,
    /// Trained tokens so far.
    pub tokens: u64,
    pub sampler: SamplerState,
    /// The best held-out loss so far and its step.
    #[serde(default)]
    pub best_loss: Option<f64>,
    #[serde(default)]
    pub best_step: Option<u64>,
    /// The last control request handled.
    #[serde(default)]
    pub control_seq: u64,
    /// Seconds spent training (excluding pauses).
    #[serde(default)]
    pub train_seconds: f64,
    /// The selection loss of the evaluation at this step, when one ran: what the checkpoint
    /// event says, so that a trainer killed between saving a checkpoint and logging it can log
    /// it when it resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    /// The evaluation due at this step was interrupted by a pause or stop: the trainer that
    /// resumes from this checkpoint runs it first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eval_pending: bool,
}

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIM_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";

/// Write a checkpoint: `write_files(tmp_dir)` puts the tensors in place, then state.json is
/// written and the directory renamed to its step. Returns the final directory.
pub fn save(run: &RunDir, state: &TrainState, write_files: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let root = run.checkpoints_dir();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let tmp = root.join(format!(".tmp-{}-{}", state.step, std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).ok();
    }
    std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = (|| -> Result<()> {
        write_files(&tmp)?;
        let st = serde_json::to_vec_pretty(state)?;
        std::fs::write(tmp.join(STATE_FILE), st)
            .with_context(|| format!("writing {}", tmp.join(STATE_FILE).display()))?;
        for f in [MODEL_FILE, OPTIM_FILE, STATE_FILE] {
            let p = tmp.join(f);
            if p.exists() {
                std::fs::File::open(&p)?.sync_all().with_context(|| format!("syncing {}", p.display()))?;
            }
        }
        crate::util::sync_dir(&tmp);
        Ok(())
    })();
    if let Err(e) = result {
        std::fs::remove_dir_all(&tmp).ok();
        return Err(e);
    }
    let dest = run.checkpoint_dir(state.step);
    if dest.exists() {
        let old = root.join(format!(".old-{}-{}", state.step, std::process::id()));
        std::fs::rename(&dest, &old)?;
        std::fs::rename(&tmp, &dest)?;
        std::fs::remove_dir_all(&old).ok();
    } else {
        std::fs::rename(&tmp, &dest).with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
    }
    crate::util::sync_dir(&root);
    Ok(dest)
}

/// Rewrite the state.json of the run's existing checkpoint at `state.step` (atomically), when
/// only what it records of control requests or a pending evaluation changed.
pub fn rewrite_state(run: &RunDir, state: &TrainState) -> Result<()> {
    let p = run.checkpoint_dir(state.step).join(STATE_FILE);
    crate::util::write_atomic(&p, &serde_json::to_vec_pretty(state)?)
}

/// Read a checkpoint's state.json.
pub fn load_state(dir: &Path) -> Result<TrainState> {
    let p = dir.join(STATE_FILE);
    let s = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_slice(&s).map_err(|e| crate::error::bad_input(format!("{}: {e}", p.display())))
}

/// Remove leftovers of interrupted checkpoint writes and deletions. A process killed while it
/// replaced a checkpoint (between moving the old one aside and renaming the new one in) leaves
/// `.old-<step>-<pid>` and no `<step>`: that checkpoint is whole, and is put back.
pub fn clean_temporaries(run: &RunDir) {
    if let Ok(rd) = std::fs::read_dir(run.checkpoints_dir()) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = n.strip_prefix(".old-") {
                let step = rest.split('-').next().and_then(|s| s.parse::<u64>().ok());
                if let Some(step) = step {
                    let dest = run.checkpoint_dir(step);
                    if !dest.exists() && e.path().join(STATE_FILE).exists() && std::fs::rename(e.path(), &dest).is_ok()
                    {
                        continue;
                    }
                }
                std::fs::remove_dir_all(e.path()).ok();
            } else if n.starts_with(".tmp-") || n.starts_with(".del-") {
                std::fs::remove_dir_all(e.path()).ok();
            }
        }
    }
}

/// Delete old checkpoints: keep the `keep_last` most recent (the latest always, whatever
/// `keep_last` says: a run.toml written before 0 was refused may say 0), the best, and `protect`.
pub fn prune(run: &RunDir, keep_last: usize, best: Option<u64>, protect: &[u64]) -> Result<()> {
    let keep_last = keep_last.max(1);
    let all = run.checkpoints()?;
    let n = all.len();
    for (i, step) in all.iter().enumerate() {
        let recent = i + keep_last >= n;
        if recent || Some(*step) == best || protect.contains(step) {
            continue;
        }
        // Move it out of sight first, so that a kill during the deletion never leaves a
        // half-deleted directory under a checkpoint's name.
        let dir = run.checkpoint_dir(*step);
        let gone = run.checkpoints_dir().join(format!(".del-{step}-{}", std::process::id()));
        if std::fs::rename(&dir, &gone).is_ok() {
            std::fs::remove_dir_all(&gone).ok();
        }
    }
    Ok(())
}

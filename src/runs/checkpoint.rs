//! Checkpoints: `checkpoints/<step>/{model.safetensors, optimizer.safetensors, state.json}`,
//! written into a temporary directory and renamed, so a checkpoint directory is whole or absent.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::bail_input;
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
    /// The SHA-256 (hex) of each tensor file of the checkpoint, by file name, written with them
    /// and checked whenever the checkpoint is loaded ([`load_verified`]). Checkpoints written
    /// before mixscope recorded them have none, and load unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<BTreeMap<String, String>>,
}

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIM_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";

/// The SHA-256 of a file, as lowercase hex (read in 1 MiB blocks).
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::data::assets::hex(&h.finalize()))
}

/// The checksums of a checkpoint directory's tensor files (those present).
pub fn checksums(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for f in [MODEL_FILE, OPTIM_FILE] {
        let p = dir.join(f);
        if p.exists() {
            m.insert(f.to_string(), sha256_file(&p)?);
        }
    }
    Ok(m)
}

/// Write a checkpoint: `write_files(tmp_dir)` puts the tensors in place, then state.json is
/// written with their checksums and the directory renamed to its step. Returns the final
/// directory.
pub fn save(run: &RunDir, state: &TrainState, write_files: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let root = run.checkpoints_dir();
    crate::util::ensure_real_dir(&root)?;
    let tmp = root.join(format!(".tmp-{}-{}", state.step, std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).ok();
    }
    std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = (|| -> Result<()> {
        write_files(&tmp)?;
        let mut state = state.clone();
        state.sha256 = Some(checksums(&tmp)?);
        let st = serde_json::to_vec_pretty(&state)?;
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
/// only what it records of control requests or a pending evaluation changed. The checksums it
/// records of the checkpoint's files (unchanged) are kept.
pub fn rewrite_state(run: &RunDir, state: &TrainState) -> Result<()> {
    let dir = run.checkpoint_dir(state.step);
    let mut state = state.clone();
    state.sha256 = load_state(&dir)?.sha256;
    crate::util::write_atomic(&dir.join(STATE_FILE), &serde_json::to_vec_pretty(&state)?)
}

/// Read a checkpoint's state.json (unchecked: [`load_verified`] checks it).
pub fn load_state(dir: &Path) -> Result<TrainState> {
    let p = dir.join(STATE_FILE);
    let s = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_slice(&s).map_err(|e| crate::error::bad_input(format!("{}: {e}", p.display())))
}

/// A checkpoint as loaded: its state, checked against its directory and its files.
#[derive(Debug, Clone)]
pub struct Verified {
    pub state: TrainState,
    /// Whether it has optimizer state (a shipped base's checkpoint holds weights only).
    pub optimizer: bool,
}

/// Read the checkpoint `dir` (`checkpoints/<step>`) and check it before anything uses it: its
/// state.json names `step`, its weights exist, and every file whose SHA-256 state.json records
/// hashes to it (an optimizer state it records may be absent: a weights-only checkpoint, which
/// the caller accepts or not). A damaged checkpoint is bad input naming the file.
pub fn load_verified(dir: &Path, step: u64) -> Result<Verified> {
    let state = load_state(dir)?;
    let sp = dir.join(STATE_FILE);
    if state.step != step {
        bail_input!(
            "{}: says step {}, its directory says step {step}: the checkpoint is damaged",
            sp.display(),
            state.step
        );
    }
    let model = dir.join(MODEL_FILE);
    if !model.exists() {
        bail_input!("{}: missing: the checkpoint is damaged", model.display());
    }
    if let Some(sums) = &state.sha256 {
        if !sums.contains_key(MODEL_FILE) {
            bail_input!("{}: records no SHA-256 of {MODEL_FILE}: the checkpoint is damaged", sp.display());
        }
        for (name, want) in sums {
            let f = dir.join(name);
            if !f.exists() && name == OPTIM_FILE {
                continue;
            }
            let got = sha256_file(&f)?;
            if got != *want {
                bail_input!(
                    "{}: SHA-256 {}… differs from the {}… its {STATE_FILE} records: the checkpoint is damaged",
                    f.display(),
                    &got[..12],
                    &want[..want.len().min(12)]
                );
            }
        }
    }
    Ok(Verified { optimizer: dir.join(OPTIM_FILE).exists(), state })
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

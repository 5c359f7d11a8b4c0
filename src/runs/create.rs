//! Creating run directories: a new run from a config (with its tokenizer and, for `[init]`,
//! its base run, found, installed from the shipped bases or created), and its starting
//! checkpoint linked in before it first trains. Forks are made in [`super::fork`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::checkpoint;
use super::lock::RunLock;
use super::{self as runs, RunDir};
use crate::bail_input;
use crate::config::{Lineage, Loaded, RunConfig};
use crate::data::tokenizer::{self, Tok};

/// The digest that identifies a config, its name and length (`train.max_steps`) excluded: a run
/// directory can be resumed with a config of the same digest, and a base run is reused by a
/// config of the same digest and length.
pub fn config_hash(c: &RunConfig) -> Result<String> {
    let mut c = c.clone();
    c.name = None;
    c.source_hash = None;
    c.suite = None;
    c.train.max_steps = 0;
    // How a batch is laid out (packed or padded) changes float rounding, not the experiment.
    c.train.pack = true;
    Ok(crate::util::short_hash(crate::config::to_toml(&c)?.as_bytes()))
}

/// A created run, and the base run it starts from (for `[init]`), which may not have finished.
pub struct Created {
    pub run: RunDir,
    pub base: Option<RunDir>,
    /// The run's lock, taken before anything was written into it: a caller that trains the run
    /// at once keeps it (`train::train_locked`); a launcher keeps it until the run is queued.
    /// A run with no status whose lock nobody holds died in setup (`supervisor::status`).
    pub lock: RunLock,
    /// The base's lock, when this call created the base (untrained, with no status yet).
    pub base_lock: Option<RunLock>,
}

/// Create a run directory from a validated config. `dir` is the run directory to create (or
/// `None` for a new id under `root`). A config with `[init] config = ...` gets its base run
/// found in the root by digest, or created there (not trained: see [`Created::base`]); the new
/// run's lineage, tokenizer, model and schedule come from the base, and its first event is
/// `fork`. Its starting checkpoint is linked in when it first trains ([`prepare_start`]).
pub fn create_run(root: &Path, dir: Option<&Path>, loaded: &Loaded) -> Result<Created> {
    let mut cfg = loaded.config.clone();
    // Bad user data is bad input: found before anything is created. Rows of tasks the run
    // does not train are said, not dropped without a word.
    let user = crate::data::jsonl::UserData::load(&cfg.data.files)?;
    warn_untrained_rows(&user, &cfg);
    let pretrained = if cfg.model.source != "tiny" && cfg.init.is_none() {
        let dir = crate::model::files::resolve_model_dir(&cfg.model.source, cfg.model.revision.as_deref())?;
        Some(crate::model::files::check_model_dir(&dir)?)
    } else {
        None
    };
    cfg.source_hash = Some(config_hash(&cfg)?);
    cfg.suite = Some(crate::data::assets::fingerprint()?);
    // The base, found or planned: it is created (or installed) only once the run is checked.
    let mut plan: Option<(BasePlan, u64)> = None;
    if let Some(init) = cfg.init.clone() {
        let (p, bcfg) = plan_base(root, &init)?;
        let step = init.step.unwrap_or(bcfg.train.max_steps);
        if step > bcfg.train.max_steps {
            bail_input!("init.step: {step} is past the end of base run {} ({} steps)", p.name(), bcfg.train.max_steps);
        }
        cfg.model = bcfg.model.clone();
        cfg.tokenizer = bcfg.tokenizer.clone();
        cfg.train.max_steps += step;
        cfg.train.schedule_start = step;
        plan = Some((p, step));
    }
    // The tokenizer is checked before anything is created.
    let tok_src: PathBuf = match &plan {
        Some((BasePlan::Found(b) | BasePlan::Shipped(b), _)) => b.tokenizer_path(),
        Some((BasePlan::New(_), _)) | None => tokenizer_source(root, &cfg)?,
    };
    let tok = Tok::load(&tok_src)?;
    if let Some(m) = &pretrained {
        if tok.vocab_size() > m.vocab_size {
            bail_input!(
                "tokenizer {}: {} tokens, more than the model's vocab_size {}",
                tok_src.display(),
                tok.vocab_size(),
                m.vocab_size
            );
        }
    }
    // `train.freeze` names parameters of the model: checked before the run exists.
    let mcfg = match &pretrained {
        Some(m) => m.clone(),
        None => crate::model::of_run(&cfg, &tok)?,
    };
    check_freeze(loaded, &cfg.train.freeze, &mcfg)?;
    if let Some(d) = dir {
        // A --run-dir that cannot be claimed is refused before a base is made for it.
        check_claimable(d)?;
    }
    let mut base: Option<(RunDir, u64)> = None;
    let mut base_lock = None;
    if let Some((p, step)) = plan {
        let b = match p {
            BasePlan::Found(b) => b,
            BasePlan::Shipped(s) => install_shipped(root, &s)?,
            BasePlan::New(bl) => {
                let c = create_run(root, None, &bl)?;
                base_lock = Some(c.lock);
                c.run
            }
        };
        cfg.lineage = Some(Lineage { parent: b.id(), fork_step: step });
        // The base by id when the run's own runs root (or its directory's parent) finds it
        // there, else by its absolute path, so a base kept elsewhere is found again at start.
        let near = |dir: &Path| b.path.parent().is_some_and(|p| same_dir(p, dir));
        let base_ref = if near(root) || dir.and_then(Path::parent).is_some_and(near) {
            b.id()
        } else {
            std::path::absolute(&b.path).unwrap_or_else(|_| b.path.clone()).display().to_string()
        };
        cfg.init = Some(crate::config::InitSection { config: None, run: Some(base_ref), step: Some(step) });
        base = Some((b, step));
    }
    // Claimed (created, or found empty, and locked) before anything is written into it.
    let (run, lock) = match dir {
        Some(d) => claim_dir(d)?,
        None => new_run_dir(root, cfg.name.as_deref())?,
    };
    tokenizer::copy_tokenizer(&tok_src, &run.tokenizer_path())?;
    run.write_config(&cfg)?;
    if let Some((b, step)) = &base {
        let mix = cfg.mixture()?;
        // A base checkpoint that exists without optimizer state (a shipped base) starts the
        // run with fresh moments; a base trained here will have them.
        let ck = b.checkpoint_dir(*step);
        let fresh = ck.join(checkpoint::STATE_FILE).exists() && !ck.join(checkpoint::OPTIM_FILE).exists();
        super::fork::write_fork_event(&run, &b.id(), *step, &mix, fresh)?;
    }
    let base = base.map(|(b, _)| b);
    Ok(Created { run, base, lock, base_lock })
}

/// Every prefix in `train.freeze` must name a parameter of the model, as the optimizer reads
/// it (`model::resolve_freeze`: in a tied model `lm_head` is the embedding matrix); bad input
/// at its place.
fn check_freeze(loaded: &Loaded, freeze: &[String], m: &crate::model::ModelConfig) -> Result<()> {
    let names: Vec<String> = crate::model::param_specs(m).into_iter().map(|p| p.name).collect();
    crate::model::resolve_freeze(freeze, &names).map(|_| ()).map_err(|e| {
        let msg = format!("{e:#}");
        loaded.field_error("train.freeze", msg.trim_start_matches("train.freeze: ").to_string())
    })
}

/// Say (on stderr) which rows of the user data the run will not train: those of tasks its
/// `data.tasks` does not name.
fn warn_untrained_rows(user: &crate::data::jsonl::UserData, cfg: &RunConfig) {
    let named = cfg.data.task_names();
    let mut rows: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for (t, _, train, heldout) in user.counts() {
        let t = t.to_string();
        if !named.contains(&t) {
            *rows.entry(t).or_default() += train + heldout;
        }
    }
    for (t, n) in rows {
        eprintln!(
            "warning: data.files: {n} rows of task '{t}' are not trained: data.tasks ({}) does not name it",
            named.join(", ")
        );
    }
}

/// A new run directory under `root` with a fresh id, created (never an existing one) and locked.
pub fn new_run_dir(root: &Path, name: Option<&str>) -> Result<(RunDir, RunLock)> {
    crate::util::create_private_dir(root)?;
    loop {
        let path = root.join(runs::new_id(root, name));
        match crate::util::create_new_private_dir(&path) {
            Ok(()) => {
                let lock = RunLock::acquire(&path)?;
                return Ok((RunDir::new(path), lock));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(crate::util::dir_error(&path, e)),
        }
    }
}

/// Refuse (before anything is created) a `--run-dir` that [`claim_dir`] would refuse: one that
/// exists and holds anything but a lock file, or is not a directory.
fn check_claimable(path: &Path) -> Result<()> {
    match std::fs::read_dir(path) {
        Ok(rd) => {
            let mut found: Vec<String> = rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            found.retain(|n| n != "lock");
            found.sort();
            if found.is_empty() {
                Ok(())
            } else {
                Err(refusal(path, &found))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::error::bad_input(format!("--run-dir {}: {e}", path.display()))),
    }
}

/// Why a `--run-dir` holding `found` is not claimed.
fn refusal(path: &Path, found: &[String]) -> anyhow::Error {
    // A run being created there by another command (it holds the lock) counts as a run.
    let msg = if found.iter().any(|n| n == "run.toml") || crate::runs::lock::is_held(path) {
        format!("{}: another command created a run there meanwhile; run this one again to resume it", path.display())
    } else if found.iter().any(|n| n == "events.jsonl" || n == "checkpoints") {
        format!(
            "--run-dir {}: a damaged run (its run.toml is missing): restore it, or choose another directory",
            path.display()
        )
    } else {
        format!(
            "--run-dir {}: the directory is neither empty nor a run (it holds {})",
            path.display(),
            found.iter().take(5).map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
        )
    };
    crate::error::bad_input(msg)
}

/// A run directory the user named (`--run-dir`) for a new run: created, or an existing empty
/// directory, then locked. Refused when it holds anything else: a run (created meanwhile by
/// another command, which may hold its lock), a damaged run, or files that are not a run's.
fn claim_dir(path: &Path) -> Result<(RunDir, RunLock)> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::util::create_private_dir(parent)?;
    }
    let created = match crate::util::create_new_private_dir(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => false,
        Err(e) => return Err(crate::util::dir_error(path, e)),
    };
    // Whatever besides a lock file a directory holds that is not this command's.
    let foreign = || -> Result<Vec<String>> {
        let rd = std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))?;
        let mut v: Vec<String> = rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.retain(|n| n != "lock");
        v.sort();
        Ok(v)
    };
    let refuse = |found: Vec<String>| -> Result<(RunDir, RunLock)> { Err(refusal(path, &found)) };
    if !created {
        let found = foreign()?;
        if !found.is_empty() {
            return refuse(found);
        }
    }
    let lock = RunLock::acquire(path)?;
    let found = foreign()?;
    if !found.is_empty() {
        return refuse(found);
    }
    Ok((RunDir::new(path), lock))
}

/// Before a run first trains: a run started from another run's model gets that checkpoint
/// linked in. Errors (a [`BadInput`](crate::error::BadInput)) when the base has not reached it.
pub fn prepare_start(root: &Path, run: &RunDir) -> Result<()> {
    let cfg = run.read_config()?;
    let (Some(init), Some(lin)) = (&cfg.init, &cfg.lineage) else {
        return Ok(());
    };
    if run.latest_checkpoint()?.is_some() {
        return Ok(());
    }
    let base_id = init.run.as_deref().unwrap_or(&lin.parent);
    let base = match runs::resolve(root, base_id) {
        Ok(b) => b,
        Err(_) => {
            let sibling = run.path.parent().map(|p| p.join(base_id)).unwrap_or_default();
            if sibling.join("run.toml").exists() {
                RunDir::new(sibling)
            } else {
                bail_input!("run {}: its base run {base_id} does not exist", run.id());
            }
        }
    };
    if !base.checkpoint_dir(lin.fork_step).join(checkpoint::STATE_FILE).exists() {
        bail_input!("run {}: base run {} has no checkpoint at step {} yet", run.id(), base.id(), lin.fork_step);
    }
    let v = checkpoint::load_verified(&base.checkpoint_dir(lin.fork_step), lin.fork_step)?;
    super::fork::link_checkpoint(&base, lin.fork_step, v, run, cfg.seed).map(|_| ())
}

/// The tokenizer.json a new run copies.
fn tokenizer_source(root: &Path, cfg: &RunConfig) -> Result<PathBuf> {
    match cfg.tokenizer.source.as_str() {
        "suite" => tokenizer::suite_tokenizer(&tokenizer::cache_dir(root), cfg.tokenizer.vocab_size),
        "model" => {
            let dir = crate::model::files::resolve_model_dir(&cfg.model.source, cfg.model.revision.as_deref())?;
            let p = dir.join("tokenizer.json");
            if !p.exists() {
                bail_input!("{}: the model has no tokenizer.json", dir.display());
            }
            Ok(p)
        }
        path => {
            let p = PathBuf::from(path);
            if !p.exists() {
                bail_input!("tokenizer.source: {}: no such file", p.display());
            }
            Ok(p)
        }
    }
}

/// Whether two paths name the same directory.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Where a run's base comes from: a run of the root, a shipped base to install, or a config to
/// create a base run from.
enum BasePlan {
    Found(RunDir),
    Shipped(RunDir),
    New(Box<Loaded>),
}

impl BasePlan {
    fn name(&self) -> String {
        match self {
            BasePlan::Found(r) | BasePlan::Shipped(r) => r.id(),
            BasePlan::New(l) => l.file.clone(),
        }
    }
}

/// The base run an `[init]` section names, and its config: an existing run, or the run of a
/// config (found in the root by digest and length, shipped, or to be created there, untrained).
/// Nothing is created here.
fn plan_base(root: &Path, init: &crate::config::InitSection) -> Result<(BasePlan, RunConfig)> {
    if let Some(spec) = &init.run {
        let r = runs::resolve(root, spec)?;
        let c = r.read_config()?;
        return Ok((BasePlan::Found(r), c));
    }
    let cfg_path = init.config.as_ref().expect("validated: init has a config or a run");
    let mut base_loaded = Loaded::read(cfg_path)?;
    base_loaded.validate()?;
    if base_loaded.config.init.is_some() {
        bail_input!("{}: a base config cannot itself have [init]", cfg_path.display());
    }
    let hash = config_hash(&base_loaded.config)?;
    let suite = crate::data::assets::fingerprint()?;
    let existing = runs::list(root)?.into_iter().find_map(|r| {
        let c = r.read_config().ok()?;
        (c.source_hash.as_deref() == Some(&hash)
            && c.suite.as_deref() == Some(&suite)
            && c.train.max_steps == base_loaded.config.train.max_steps)
            .then_some((r, c))
    });
    if let Some((r, c)) = existing {
        return Ok((BasePlan::Found(r), c));
    }
    if let Some(shipped) = shipped_base(&hash, &suite, base_loaded.config.train.max_steps)? {
        let c = shipped.read_config()?;
        return Ok((BasePlan::Shipped(shipped), c));
    }
    let c = base_loaded.config.clone();
    Ok((BasePlan::New(Box::new(base_loaded)), c))
}

/// Where trained base runs ship: `$MIXSCOPE_ASSETS/bases/` when set, else the source tree's
/// `assets/bases/` (a binary moved away from its source tree trains its base instead).
pub fn shipped_bases_dir() -> PathBuf {
    crate::data::assets::override_dir()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("assets"))
        .join("bases")
}

/// A shipped base run made by this exact config (digest), suite (fingerprint) and length, if
/// one ships: a finished run whose final checkpoint holds the model.
fn shipped_base(hash: &str, suite: &str, max_steps: u64) -> Result<Option<RunDir>> {
    let Ok(entries) = std::fs::read_dir(shipped_bases_dir()) else { return Ok(None) };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join("run.toml").exists()).collect();
    dirs.sort();
    for d in dirs {
        let r = RunDir::new(&d);
        let Ok(c) = r.read_config() else { continue };
        if c.source_hash.as_deref() == Some(hash)
            && c.suite.as_deref() == Some(suite)
            && c.train.max_steps == max_steps
            && r.checkpoint_dir(max_steps).join(checkpoint::MODEL_FILE).exists()
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// Copy a shipped base run into the runs root under a new id: its config, events (its
/// training curves), tokenizer and final checkpoint. Written to a temporary directory and
/// renamed, so the root never holds half a base.
fn install_shipped(root: &Path, shipped: &RunDir) -> Result<RunDir> {
    let cfg = shipped.read_config()?;
    // Created private, as every run directory mixscope makes (an existing root keeps its mode).
    crate::util::create_private_dir(root)?;
    let id = runs::new_id(root, cfg.name.as_deref());
    let tmp = root.join(format!(".tmp-{id}-{}", std::process::id()));
    let copy_tree = |from: &Path, to: &Path| -> Result<()> {
        let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
        while let Some((a, b)) = stack.pop() {
            crate::util::create_private_dir(&b)?;
            for e in std::fs::read_dir(&a).with_context(|| format!("reading {}", a.display()))? {
                let e = e?;
                let (src, dst) = (e.path(), b.join(e.file_name()));
                if e.file_type()?.is_dir() {
                    stack.push((src, dst));
                } else {
                    std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
                }
            }
        }
        Ok(())
    };
    copy_tree(&shipped.path, &tmp)?;
    let path = root.join(&id);
    std::fs::rename(&tmp, &path)?;
    crate::util::sync_dir(root);
    Ok(RunDir::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_ignores_batch_layout_and_keeps_configs_from_before_it() {
        let base = RunConfig::default();
        let mut padded = base.clone();
        padded.train.pack = false;
        assert_eq!(config_hash(&base).unwrap(), config_hash(&padded).unwrap());
        // the default is not written, so a run.toml from before `pack` reads and hashes alike
        assert!(!crate::config::to_toml(&base).unwrap().contains("pack"));
        assert!(crate::config::to_toml(&padded).unwrap().contains("pack = false"));
        let mut other = base.clone();
        other.train.lr *= 2.0;
        assert_ne!(config_hash(&base).unwrap(), config_hash(&other).unwrap());
    }
}

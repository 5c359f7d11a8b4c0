//! The run directory (docs/run-directory.md): the only coupling between trainer, supervisor and TUI.
//!
//! ```text
//! runs/<run-id>/
//!   run.toml  events.jsonl  checkpoints/<step>/{model,optimizer}.safetensors + state.json
//!   tokenizer.json  control  lock  stdout.log  stderr.log
//! ```

pub mod control;
pub mod events;
pub mod lock;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::bail_input;
use crate::config::RunConfig;

/// A run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    /// The run id: the directory's name.
    pub fn id(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join("run.toml")
    }
    pub fn events_path(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.path.join("checkpoints")
    }
    pub fn checkpoint_dir(&self, step: u64) -> PathBuf {
        self.checkpoints_dir().join(step.to_string())
    }
    /// The file naming the GPU the queue gave the run's trainer (`cuda:N`); the monitor passes
    /// it to the trainer as `MIXSCOPE_DEVICE`.
    pub fn assigned_device_path(&self) -> PathBuf {
        self.path.join("assigned_device")
    }
    pub fn assigned_device(&self) -> Option<String> {
        let s = std::fs::read_to_string(self.assigned_device_path()).ok()?;
        Some(s.trim().to_string()).filter(|s| !s.is_empty())
    }
    pub fn tokenizer_path(&self) -> PathBuf {
        self.path.join("tokenizer.json")
    }
    pub fn stdout_path(&self) -> PathBuf {
        self.path.join("stdout.log")
    }
    pub fn stderr_path(&self) -> PathBuf {
        self.path.join("stderr.log")
    }

    pub fn exists(&self) -> bool {
        self.config_path().exists()
    }

    /// A run directory that lost its run.toml but still holds a run's record (events or
    /// checkpoints): listed as damaged, not skipped.
    pub fn is_damaged(&self) -> bool {
        !self.exists() && (self.events_path().exists() || self.checkpoints_dir().is_dir())
    }

    /// The entries of a run directory that mixscope writes in place, or into (or opens to
    /// lock): none may be a symbolic link, which a write would follow out of the run. (run.toml,
    /// `control` and `assigned_device` are replaced by a rename, which replaces a link rather
    /// than following it.)
    pub const OWN_ENTRIES: [&'static str; 8] =
        ["events.jsonl", "lock", "monitor.lock", "control", "stdout.log", "stderr.log", "checkpoints", "tensorboard"];

    /// Refuse a run directory whose own files or directories ([`RunDir::OWN_ENTRIES`]) are
    /// symbolic links (bad input naming the first).
    pub fn check_links(&self) -> Result<()> {
        for e in Self::OWN_ENTRIES {
            let p = self.path.join(e);
            if crate::util::is_link(&p) {
                return Err(crate::util::link_error(&p));
            }
        }
        Ok(())
    }

    /// The resolved config. A garbage run.toml is a located error, never a panic; a missing one
    /// says the run is damaged.
    pub fn read_config(&self) -> Result<RunConfig> {
        let p = self.config_path();
        let src = std::fs::read_to_string(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                crate::error::bad_input(format!(
                    "{}: run.toml is missing (the run directory is damaged; its events and checkpoints are kept)",
                    self.path.display()
                ))
            } else {
                crate::error::bad_input(format!("{}: cannot read: {e}", p.display()))
            }
        })?;
        toml::from_str(&src).map_err(|e| crate::error::toml_error(&p.display().to_string(), &src, &e))
    }

    /// Write run.toml (atomically; only when the run is created).
    pub fn write_config(&self, c: &RunConfig) -> Result<()> {
        crate::util::write_atomic(&self.config_path(), crate::config::to_toml(c)?.as_bytes())
    }

    /// Steps of the complete checkpoints, ascending. Temporary directories are ignored.
    pub fn checkpoints(&self) -> Result<Vec<u64>> {
        let dir = self.checkpoints_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        let mut v: Vec<u64> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .filter(|s: &u64| self.checkpoint_dir(*s).join("state.json").exists())
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    /// Whether the checkpoint at `step` holds weights without optimizer state (a shipped
    /// base's step): a run or fork started from it gets fresh optimizer moments.
    pub fn weights_only(&self, step: u64) -> bool {
        let d = self.checkpoint_dir(step);
        d.join("model.safetensors").exists() && !d.join("optimizer.safetensors").exists()
    }

    pub fn latest_checkpoint(&self) -> Result<Option<u64>> {
        Ok(self.checkpoints()?.last().copied())
    }
}

/// The runs root: `--runs DIR`, else `MIXSCOPE_RUNS`, else `runs` in the user's config.toml
/// (`userconf`), else `./runs`.
pub fn runs_root(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("MIXSCOPE_RUNS").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => crate::userconf::get().runs.unwrap_or_else(|| PathBuf::from("runs")),
    }
}

/// Every run directory under a root (directories holding a run.toml, or a damaged run's
/// events or checkpoints without it), sorted by id. Names starting with '.' (the cache, sweep
/// records, temporary directories) are not runs.
pub fn list(root: &Path) -> Result<Vec<RunDir>> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    let mut v: Vec<RunDir> = rd
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| RunDir::new(e.path()))
        .filter(|r| r.exists() || r.is_damaged())
        .collect();
    v.sort_by_key(|r| r.id());
    Ok(v)
}

/// A fresh run id: `<name>-<6 hex>` (or the hex alone), unique under the root. The name is
/// reduced to letters, digits, `-`, `_` and `.`, and never starts with `.` or `-` (`.hidden`
/// gives `hidden-…`, `../../x` gives `x-…`): an id starting with '.' would be a run that `ls`
/// and id lookup skip.
pub fn new_id(root: &Path, name: Option<&str>) -> String {
    let slug: String = name
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' })
        .collect::<String>()
        .trim_start_matches(['.', '-'])
        .trim_end_matches('-')
        .chars()
        .take(40)
        .collect();
    loop {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let h = crate::util::short_hash(format!("{nanos}-{}-{slug}", std::process::id()).as_bytes());
        let id = if slug.is_empty() { h[..6].to_string() } else { format!("{slug}-{}", &h[..6]) };
        if !root.join(&id).exists() {
            return id;
        }
    }
}

/// Find a run by id, unique id prefix, name, or directory path.
pub fn resolve(root: &Path, spec: &str) -> Result<RunDir> {
    let as_path = Path::new(spec);
    if as_path.join("run.toml").exists() {
        return Ok(RunDir::new(as_path));
    }
    let runs = list(root)?;
    if let Some(r) = runs.iter().find(|r| r.id() == spec) {
        return Ok(r.clone());
    }
    let named: Vec<&RunDir> =
        runs.iter().filter(|r| r.read_config().ok().and_then(|c| c.name).as_deref() == Some(spec)).collect();
    match named.len() {
        1 => return Ok(named[0].clone()),
        0 => {}
        _ => bail_input!(
            "run name '{spec}' is ambiguous in {}: {}",
            root.display(),
            named.iter().map(|r| r.id()).collect::<Vec<_>>().join(", ")
        ),
    }
    let pre: Vec<&RunDir> = runs.iter().filter(|r| r.id().starts_with(spec)).collect();
    match pre.len() {
        1 => Ok(pre[0].clone()),
        0 => bail_input!(
            "no run '{spec}' in {} (give an id, a unique prefix, a name or a run directory)",
            root.display()
        ),
        _ => bail_input!(
            "'{spec}' matches {} runs in {}: {}",
            pre.len(),
            root.display(),
            pre.iter().map(|r| r.id()).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_start_with_a_dot() {
        let t = tempfile::tempdir().unwrap();
        for (name, start) in [(".hidden", "hidden-"), ("../../x", "x-"), ("..", ""), ("a b", "a-b-"), ("-.x", "x-")] {
            let id = new_id(t.path(), Some(name));
            assert!(id.starts_with(start) && !id.starts_with('.') && !id.contains('/'), "{name}: {id}");
        }
    }
}

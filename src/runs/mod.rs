//! The run directory (docs/run-directory.md): the only coupling between trainer, supervisor and TUI.
//!
//! ```text
//! runs/<run-id>/
//!   run.toml  events.jsonl  checkpoints/<step>/{model,optimizer}.safetensors + state.json
//!   tokenizer.json  control  lock  stdout.log  stderr.log  notes.json  notes.lock
//!   samples/<step>.jsonl.zst   each evaluation's answers (`samples.rs`)
//! ```

pub mod checkpoint;
pub mod control;
pub mod create;
pub mod diff;
pub mod events;
pub mod fork;
pub mod group;
pub mod lock;
pub mod notes;
pub mod samples;
pub mod summary;

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
    pub const OWN_ENTRIES: [&'static str; 10] = [
        "events.jsonl",
        "lock",
        "monitor.lock",
        "control",
        "stdout.log",
        "stderr.log",
        "checkpoints",
        "tensorboard",
        notes::LOCK,
        "samples",
    ];

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

    /// Whether the run has trained to its last step (its final checkpoint exists).
    pub fn is_complete(&self) -> Result<bool> {
        Ok(self.latest_checkpoint()? == Some(self.read_config()?.train.max_steps))
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

/// What a spec names where a group may stand for a run (`compare`, `report`, `export`): one
/// run, or a group's members.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The run's id, or the group's label (`name ×K`).
    pub label: String,
    pub runs: Vec<RunDir>,
    /// The group, when the spec named one (`g:…`, or a name its runs share).
    pub group: Option<group::Group>,
}

/// Resolve a spec to a run or a group: a run directory, a group id (`g:` and a prefix of its
/// key), a run id, a name (all runs of that name, when they form one group), or a unique run
/// id prefix; or a comma-separated list of runs of one group (some of its seeds).
pub fn select(root: &Path, spec: &str) -> Result<Selection> {
    let one = |r: RunDir| Selection { label: r.id(), runs: vec![r], group: None };
    if spec.contains(',') {
        return select_list(root, spec);
    }
    if Path::new(spec).join("run.toml").exists() {
        return Ok(one(RunDir::new(spec)));
    }
    let runs = list(root)?;
    if let Some(r) = runs.iter().find(|r| r.id() == spec) {
        return Ok(one(r.clone()));
    }
    let configs: Vec<(String, RunConfig)> = runs.iter().filter_map(|r| Some((r.id(), r.read_config().ok()?))).collect();
    let pairs: Vec<(&str, &RunConfig)> = configs.iter().map(|(id, c)| (id.as_str(), c)).collect();
    let groups = group::groups(&pairs);
    let as_selection = |g: &group::Group| Selection {
        label: g.label(),
        runs: g.runs.iter().map(|id| RunDir::new(root.join(id))).collect(),
        group: Some(g.clone()),
    };
    if let Some(prefix) = spec.strip_prefix(group::ID_PREFIX) {
        let hits: Vec<&group::Group> =
            groups.iter().filter(|g| g.key.starts_with(prefix) && !prefix.is_empty()).collect();
        return match hits.len() {
            1 => Ok(as_selection(hits[0])),
            0 => bail_input!("no group '{spec}' in {}", root.display()),
            _ => bail_input!(
                "'{spec}' matches {} groups: {}",
                hits.len(),
                hits.iter().map(|g| g.id.as_str()).collect::<Vec<_>>().join(", ")
            ),
        };
    }
    let named: Vec<&group::Group> = groups.iter().filter(|g| g.name.as_deref() == Some(spec)).collect();
    // A sweep point's runs are named `NAME seed=N`; their group is named without the seed.
    let named_runs: usize =
        configs.iter().filter(|(_, c)| c.name.as_deref().is_some_and(|n| group::without_seed(n) == spec)).count();
    match named.len() {
        0 => {}
        1 if named[0].runs.len() == named_runs => {
            let g = named[0];
            return Ok(if g.runs.len() == 1 { one(RunDir::new(root.join(&g.runs[0]))) } else { as_selection(g) });
        }
        _ => bail_input!(
            "run name '{spec}' is ambiguous in {}: its runs form {} groups ({}); give a group id or a run id",
            root.display(),
            named.len(),
            named.iter().map(|g| format!("{} {}", g.id, g.label())).collect::<Vec<_>>().join(", ")
        ),
    }
    resolve(root, spec).map(one)
}

/// A comma-separated list of runs as one side: they must be runs of one group (a subset of
/// its seeds), so that their spread is seed-to-seed variation of one config.
fn select_list(root: &Path, spec: &str) -> Result<Selection> {
    let mut runs: Vec<RunDir> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let r = resolve(root, part)?;
        if !runs.contains(&r) {
            runs.push(r);
        }
    }
    let configs: Vec<(String, RunConfig)> =
        runs.iter().map(|r| Ok((r.id(), r.read_config()?))).collect::<Result<_>>()?;
    // Parents are looked up among every run of the root (a fork's group is its parent's).
    let mut all: Vec<(String, RunConfig)> = list(root)?
        .into_iter()
        .filter(|r| !configs.iter().any(|(id, _)| *id == r.id()))
        .filter_map(|r| Some((r.id(), r.read_config().ok()?)))
        .collect();
    all.extend(configs.iter().cloned());
    let pairs: Vec<(&str, &RunConfig)> = all.iter().map(|(id, c)| (id.as_str(), c)).collect();
    let keys = group::keys(pairs);
    let mine: Vec<&String> = configs.iter().filter_map(|(id, _)| keys.get(id)).collect();
    if mine.windows(2).any(|w| w[0] != w[1]) {
        bail_input!(
            "{spec}: these runs are not one group (their configs differ in more than seed and name): compare them one by one"
        );
    }
    let seeds: Vec<u64> = configs.iter().map(|(_, c)| c.seed).collect();
    let g = group::Group {
        id: format!("{}{}", group::ID_PREFIX, mine.first().map_or("", |k| &k[..8])),
        key: mine.first().map(|k| k.to_string()).unwrap_or_default(),
        name: configs.first().and_then(|(_, c)| c.name.clone()),
        runs: configs.iter().map(|(id, _)| id.clone()).collect(),
        seeds,
    };
    if runs.len() == 1 {
        return Ok(Selection { label: runs[0].id(), runs, group: None });
    }
    Ok(Selection {
        label: format!("{} (seeds {})", g.label(), g.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" ")),
        runs,
        group: Some(g),
    })
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

    #[test]
    fn a_sweep_points_group_is_selected_by_the_name_ls_shows() {
        let t = tempfile::tempdir().unwrap();
        let make = |id: &str, name: &str, seed: u64, n: &str| {
            let r = RunDir::new(t.path().join(id));
            std::fs::create_dir_all(&r.path).unwrap();
            let mut c = RunConfig { seed, name: Some(name.into()), ..RunConfig::default() };
            c.data.mixture = format!("en=400,n={n}");
            r.write_config(&c).unwrap();
        };
        for s in 0..3 {
            make(&format!("paper-n-0-seed-{s}"), &format!("paper n=0 seed={s}"), s, "0");
            make(&format!("paper-n-25-seed-{s}"), &format!("paper n=25 seed={s}"), s, "25");
        }
        let sel = select(t.path(), "paper n=0").unwrap();
        let mut ids: Vec<String> = sel.runs.iter().map(|r| r.id()).collect();
        ids.sort();
        assert_eq!(ids, ["paper-n-0-seed-0", "paper-n-0-seed-1", "paper-n-0-seed-2"]);
        assert!(sel.group.is_some());
        // One member by its own name.
        assert_eq!(select(t.path(), "paper n=25 seed=1").unwrap().runs[0].id(), "paper-n-25-seed-1");
    }
}

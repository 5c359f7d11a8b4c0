//! Run groups: the runs of one experiment that differ only in their training seed.
//!
//! The rule (docs/run-directory.md, "Groups"): two runs are in one group when their `run.toml`
//! tables are equal once these are removed: `name`, `seed`, `source_hash` (a digest that
//! includes the seed), `[sweep] point.seed`, `[lineage] parent` and `[init] run` (a fork's or
//! a fine-tuning run's parent is compared by its own group instead), and the fields that say
//! where and how a run executes rather than what it computes: `threads`, `device`, `pause`,
//! `launcher`, `[slurm]`, `[logging]`, `train.gradient_checkpointing`. A fork is in one group with another fork when, besides,
//! their parents are in one group. A run alone is a group of one.
//!
//! A group's key is a digest of that stripped table (JSON with sorted keys) and, for a fork,
//! its parent's key; its id is `g:` and the key's first 8 hex digits.

use std::collections::{BTreeMap, HashMap};

use crate::config::RunConfig;

/// The prefix of a group's id (`g:1a2b3c4d`), which no run id has.
pub const ID_PREFIX: &str = "g:";

/// A group of runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Group {
    /// `g:` and 8 hex digits of the key.
    pub id: String,
    /// The full key (hex).
    pub key: String,
    /// The members' name (the first member's, when they differ).
    pub name: Option<String>,
    /// Member run ids, in the order given.
    pub runs: Vec<String>,
    /// Each member's seed, in the same order.
    pub seeds: Vec<u64>,
}

impl Group {
    /// How it is shown: its name (or id) and `×K`.
    pub fn label(&self) -> String {
        format!("{} ×{}", self.name.as_deref().unwrap_or(&self.id), self.runs.len())
    }
}

/// The table a group compares: the config without what the rule removes.
fn stripped(cfg: &RunConfig) -> serde_json::Value {
    let mut c = cfg.clone();
    c.name = None;
    c.seed = 0;
    c.source_hash = None;
    c.threads = 0;
    c.device = Default::default();
    c.pause = Default::default();
    c.launcher = Default::default();
    c.slurm = None;
    c.logging = Default::default();
    c.train.gradient_checkpointing = false;
    if let Some(l) = c.lineage.as_mut() {
        l.parent.clear();
    }
    if let Some(i) = c.init.as_mut() {
        i.run = None;
    }
    if let Some(s) = c.sweep.as_mut() {
        s.point.remove("seed");
    }
    // serde_json's maps are ordered by key: the same table always serializes the same way.
    serde_json::to_value(&c).unwrap_or(serde_json::Value::Null)
}

/// The key of a run from its config and its parent's key (for a run with `[lineage]`; `None`
/// when the parent is not among the runs known, when its id stands in).
pub fn key_of(cfg: &RunConfig, parent_key: Option<&str>) -> String {
    let mut text = stripped(cfg).to_string();
    if let Some(l) = &cfg.lineage {
        text.push('\n');
        text.push_str(parent_key.unwrap_or(&l.parent));
    }
    let full = {
        use sha2::{Digest, Sha256};
        crate::data::assets::hex(&Sha256::digest(text.as_bytes()))
    };
    full[..16].to_string()
}

/// The group key of every run given (id → config): parents looked up among the same runs,
/// recursively (a chain of forks; a cycle or a missing parent ends with the parent's id).
pub fn keys<'a>(runs: impl IntoIterator<Item = (&'a str, &'a RunConfig)>) -> HashMap<String, String> {
    let configs: HashMap<&str, &RunConfig> = runs.into_iter().collect();
    let mut keys: HashMap<String, String> = HashMap::new();
    fn resolve(
        id: &str,
        configs: &HashMap<&str, &RunConfig>,
        keys: &mut HashMap<String, String>,
        depth: usize,
    ) -> Option<String> {
        if let Some(k) = keys.get(id) {
            return Some(k.clone());
        }
        let cfg = configs.get(id)?;
        let parent_key = match &cfg.lineage {
            Some(l) if depth < 64 => resolve(&l.parent, configs, keys, depth + 1),
            _ => None,
        };
        let k = key_of(cfg, parent_key.as_deref());
        keys.insert(id.to_string(), k.clone());
        Some(k)
    }
    let ids: Vec<&str> = configs.keys().copied().collect();
    for id in ids {
        resolve(id, &configs, &mut keys, 0);
    }
    keys
}

/// A member's name as its group's: without the ` seed=N` a sweep point's name carries (its
/// members differ in it; the group shows their seeds).
pub fn without_seed(name: &str) -> String {
    let kept: Vec<&str> = name
        .split(' ')
        .filter(|w| !w.strip_prefix("seed=").is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())))
        .collect();
    match kept.join(" ") {
        k if k.trim().is_empty() => name.to_string(),
        k => k,
    }
}

/// The groups of the runs given (id, config), in the order of each group's first member; every
/// run is in exactly one group (a run alone is a group of one).
pub fn groups<'a>(runs: &[(&'a str, &'a RunConfig)]) -> Vec<Group> {
    groups_among(runs, runs)
}

/// The groups of `runs`, their keys resolved among `context` (the whole runs root): a run's
/// group id is then the one `ls` and `compare` show, also where its parent (a base model) is not
/// among the runs grouped, as in the report of one sweep.
pub fn groups_among<'a>(runs: &[(&'a str, &'a RunConfig)], context: &[(&'a str, &'a RunConfig)]) -> Vec<Group> {
    let keys = keys(context.iter().chain(runs).copied());
    let mut order: Vec<String> = Vec::new();
    let mut by_key: BTreeMap<String, Group> = BTreeMap::new();
    for (id, cfg) in runs {
        let Some(key) = keys.get(*id) else { continue };
        let g = by_key.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Group {
                id: format!("{ID_PREFIX}{}", &key[..8]),
                key: key.clone(),
                name: cfg.name.as_deref().map(without_seed),
                runs: Vec::new(),
                seeds: Vec::new(),
            }
        });
        g.runs.push(id.to_string());
        g.seeds.push(cfg.seed);
    }
    order.into_iter().filter_map(|k| by_key.remove(&k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Lineage, SweepTag};

    fn cfg(seed: u64, name: &str) -> RunConfig {
        let mut c = RunConfig { seed, name: Some(name.into()), ..RunConfig::default() };
        c.data.mixture = "en=0.6,es=0.4".into();
        c.source_hash = Some(format!("digest-{seed}"));
        c
    }

    #[test]
    fn runs_that_differ_in_seed_and_name_only_are_one_group() {
        let (a, mut b, mut c) = (cfg(0, "ml40"), cfg(1, "ml40-again"), cfg(2, "ml40"));
        b.threads = 2;
        b.device = "auto".parse().unwrap();
        c.data.mixture = "en=1".into();
        let mut d = cfg(3, "ml40");
        d.train.lr *= 0.5;
        let mut e = cfg(4, "ml40");
        e.train.max_steps += 1;
        let runs = [("a", &a), ("b", &b), ("c", &c), ("d", &d), ("e", &e)];
        let g = groups(&runs);
        let members: Vec<Vec<String>> = g.iter().map(|g| g.runs.clone()).collect();
        assert_eq!(members, [vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
        assert_eq!(g[0].seeds, [0, 1]);
        assert_eq!(g[0].name.as_deref(), Some("ml40"));
        assert!(g[0].id.starts_with("g:") && g[0].id.len() == 10);
        assert_eq!(g[0].label(), "ml40 ×2");
        // The key does not depend on the order runs are given in.
        let rev = groups(&[("b", &b), ("a", &a)]);
        assert_eq!(rev[0].key, g[0].key);
    }

    #[test]
    fn forks_group_by_their_parents_groups() {
        let (p0, p1, q0) = (cfg(0, "en"), cfg(1, "en"), {
            let mut q = cfg(0, "ml");
            q.data.mixture = "en=1".into();
            q
        });
        let fork = |parent: &str, seed: u64| {
            let mut f = cfg(seed, "ko20");
            f.data.mixture = "en=0.8,ko=0.2".into();
            f.lineage = Some(Lineage { parent: parent.into(), fork_step: 100 });
            f
        };
        let (f0, f1, g0, lost) = (fork("p0", 0), fork("p1", 1), fork("q0", 0), fork("gone", 5));
        let runs = [("p0", &p0), ("p1", &p1), ("q0", &q0), ("f0", &f0), ("f1", &f1), ("g0", &g0), ("lost", &lost)];
        let members: Vec<Vec<String>> = groups(&runs).iter().map(|g| g.runs.clone()).collect();
        // f0 and f1 fork one group's members; g0 has the same config but another history.
        assert_eq!(members, [vec!["p0", "p1"], vec!["q0"], vec!["f0", "f1"], vec!["g0"], vec!["lost"]]);
        // Another fork step is another experiment.
        let mut late = fork("p0", 2);
        late.lineage.as_mut().unwrap().fork_step = 200;
        let runs = [("p0", &p0), ("f0", &f0), ("late", &late)];
        assert_eq!(groups(&runs).len(), 3);
        // Grouped without their parents (a report of one sweep), the forks keep the ids they
        // have among the whole root.
        let all = [("p0", &p0), ("p1", &p1), ("q0", &q0), ("f0", &f0), ("f1", &f1), ("g0", &g0)];
        let whole: Vec<String> = groups(&all).iter().map(|g| g.id.clone()).collect();
        let part = groups_among(&[("f0", &f0), ("f1", &f1), ("g0", &g0)], &all);
        assert_eq!(part.iter().map(|g| g.id.clone()).collect::<Vec<_>>(), whole[2..]);
        assert_ne!(groups(&[("f0", &f0), ("f1", &f1)])[0].id, whole[2], "alone, the parent's id stands in");
    }

    #[test]
    fn sweep_points_group_over_their_seed_only() {
        let point = |n: &str, seed: u64| {
            let mut c = cfg(seed, "paper");
            let mut p = BTreeMap::new();
            p.insert("n".to_string(), n.to_string());
            p.insert("seed".to_string(), seed.to_string());
            c.sweep = Some(SweepTag { id: "paper-1".into(), name: "paper".into(), point: p });
            c.data.mixture = format!("en=400,n={n}");
            c
        };
        let (a0, a1, b0) = (point("25", 0), point("25", 1), point("100", 0));
        let members: Vec<Vec<String>> =
            groups(&[("a0", &a0), ("b0", &b0), ("a1", &a1)]).iter().map(|g| g.runs.clone()).collect();
        assert_eq!(members, [vec!["a0", "a1"], vec!["b0"]]);
        // Named as the sweep names its points, the group is named without the seed.
        let (mut c0, mut c1) = (a0.clone(), a1.clone());
        c0.name = Some("paper n=25 seed=0".into());
        c1.name = Some("paper n=25 seed=1".into());
        let g = groups(&[("a0", &c0), ("a1", &c1)]);
        assert_eq!(g[0].label(), "paper n=25 ×2");
        assert_eq!(without_seed("seed=3"), "seed=3");
        assert_eq!(without_seed("my seed=x run"), "my seed=x run");
    }
}

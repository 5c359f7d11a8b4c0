//! What differs between two runs' (or two groups') configs: every key whose values differ, the
//! keys equal in both left out. `mixscope diff A B` prints it; the compare view shows it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::RunConfig;

/// One key that differs: each side's values (a group's members may hold several, e.g. seeds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The dotted key, as `--set` names it (`train.lr`, `data.mixture`, `lineage.fork_step`).
    pub key: String,
    pub a: Vec<String>,
    pub b: Vec<String>,
}

/// Keys that say nothing about the experiment (a digest of the source).
const SKIP: &[&str] = &["source_hash"];

/// A config as dotted keys and their values (TOML's text of each leaf; arrays whole).
pub fn flatten(c: &RunConfig) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(v) = toml::Value::try_from(c) {
        walk("", &v, &mut out);
    }
    out
}

fn walk(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                walk(&key, v, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The keys whose values differ between side `a` and side `b` (each one run's config, or a
/// group's members'), in key order. A key one side lacks shows as `-` there.
pub fn diff(a: &[&RunConfig], b: &[&RunConfig]) -> Vec<Row> {
    let side = |cs: &[&RunConfig]| -> BTreeMap<String, BTreeSet<String>> {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for c in cs {
            for (k, v) in flatten(c) {
                m.entry(k).or_default().insert(v);
            }
        }
        m
    };
    let (sa, sb) = (side(a), side(b));
    let keys: BTreeSet<&String> = sa.keys().chain(sb.keys()).collect();
    let dash = || BTreeSet::from(["-".to_string()]);
    keys.into_iter()
        .filter(|k| !SKIP.contains(&k.as_str()))
        .filter_map(|k| {
            let va = sa.get(k).cloned().unwrap_or_else(dash);
            let vb = sb.get(k).cloned().unwrap_or_else(dash);
            (va != vb).then(|| Row { key: k.clone(), a: sort(va), b: sort(vb) })
        })
        .collect()
}

/// Values in numeric order where they are numbers (seeds 2, 10), else text order.
fn sort(s: BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = s.into_iter().collect();
    v.sort_by(|x, y| match (x.parse::<f64>(), y.parse::<f64>()) {
        (Ok(p), Ok(q)) => p.total_cmp(&q),
        _ => x.cmp(y),
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Lineage;

    #[test]
    fn only_the_keys_that_differ_are_listed() {
        let a = RunConfig { seed: 0, name: Some("en".into()), ..RunConfig::default() };
        let mut b = a.clone();
        b.data.mixture = "en=1".into();
        b.train.lr = 3e-4;
        b.lineage = Some(Lineage { parent: "base-1".into(), fork_step: 6000 });
        let rows = diff(&[&a], &[&b]);
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["data.mixture", "lineage.fork_step", "lineage.parent", "train.lr"]);
        let lr = rows.iter().find(|r| r.key == "train.lr").unwrap();
        assert_eq!((lr.a.clone(), lr.b.clone()), (vec!["0.001".to_string()], vec!["0.0003".to_string()]));
        assert_eq!(rows[1].a, ["-"]);
        assert!(diff(&[&a], &[&a.clone()]).is_empty());
    }

    #[test]
    fn groups_show_each_sides_values() {
        let cfg = |seed, mix: &str| {
            let mut c = RunConfig { seed, ..RunConfig::default() };
            c.data.mixture = mix.into();
            c
        };
        let (a0, a1, a2) = (cfg(0, "en=1"), cfg(1, "en=1"), cfg(2, "en=1"));
        let (b0, b1, b10) = (cfg(0, "en=0.6,es=0.4"), cfg(1, "en=0.6,es=0.4"), cfg(10, "en=0.6,es=0.4"));
        let rows = diff(&[&a0, &a1, &a2], &[&b0, &b1, &b10]);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].key, "data.mixture");
        assert_eq!(rows[1].key, "seed");
        assert_eq!(rows[1].a, ["0", "1", "2"]);
        assert_eq!(rows[1].b, ["0", "1", "10"]);
    }
}

//! Sweeps: a grid over config values (the paper's N examples per language, single vs multi-task,
//! seeds), each point one run launched through the supervisor's queue and tagged `[sweep]` in its
//! run.toml, so that `ls`, the TUI and `report` group them.
//!
//! ```toml
//! name = "paper"
//! config = "demo.toml"            # every point starts from this run config (relative to this file)
//!
//! [set]                           # applied to every point; "{n}" is the point's value of n
//! mixture = "en=200,n={n},tasks={tasks}"
//!
//! [grid]                          # every combination is one run, in this order
//! n = [0, 25, 100, 400]
//! tasks = ["mr", "mr+sm+if"]
//! seed = [0, 1]                   # a variable no [set] value names is itself a --set key
//!
//! [analysis]
//! x = "n"                         # the sweep figure's x-axis (default: the first numeric variable)
//! plateau = 0.02                  # gains below this count as a plateau (metric units)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::config::{Loaded, SweepTag};
use crate::error::{bad_input, line_col};
use crate::runs::RunDir;

/// A sweep file, read and checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepSpec {
    pub name: String,
    /// The run config every point starts from (absolute, resolved against the sweep file).
    pub config: PathBuf,
    /// `[set]`: key → value as TOML text, with `{var}` placeholders.
    pub set: Vec<(String, String)>,
    /// `[grid]`: variable → values (display text and TOML text), in file order.
    pub grid: Vec<(String, Vec<GridValue>)>,
    pub analysis: AnalysisOptions,
}

/// One value of a grid variable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GridValue {
    /// How it reads in names, tables and `{var}` substitutions: `400`, `mr+sm+if`.
    pub text: String,
    /// As a TOML value (`400`, `"mr+sm+if"`) for a `--set`.
    pub toml: String,
}

/// `[analysis]` options of a sweep.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AnalysisOptions {
    /// The grid variable on the x-axis of the sweep figure.
    pub x: Option<String>,
    /// Gains (in the metric's units) below which a curve has plateaued.
    pub plateau: f64,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions { x: None, plateau: 0.02 }
    }
}

/// One point of the grid: its variables, in grid order.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub vars: Vec<(String, GridValue)>,
}

impl Point {
    /// `n=400 tasks=mr`
    pub fn label(&self) -> String {
        self.vars.iter().map(|(k, v)| format!("{k}={}", v.text)).collect::<Vec<_>>().join(" ")
    }
}

/// Where a key of the sweep file is, as `file:line:col`.
fn locate(file: &str, src: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) => {
            let (l, c) = line_col(src, s.start);
            format!("{file}:{l}:{c}")
        }
        None => file.to_string(),
    }
}

/// A value as it reads in names (`400`, `mr+sm`, an array as `es+fr`) and as TOML text.
fn value_text(v: &toml_edit::Value) -> (String, String) {
    let toml = v.clone().decorated("", "").to_string();
    let text = match v {
        toml_edit::Value::String(s) => s.value().clone(),
        toml_edit::Value::Array(a) => a.iter().map(|x| value_text(x).0).collect::<Vec<_>>().join("+"),
        _ => toml.clone(),
    };
    (text, toml)
}

impl SweepSpec {
    /// Read and check a sweep file: every error names `file:line:col` and the key.
    pub fn read(path: &Path) -> Result<SweepSpec> {
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail_input!("{}: no such sweep file", path.display())
            }
            Err(e) => bail_input!("{}: cannot read: {e}", path.display()),
        };
        SweepSpec::parse(&path.display().to_string(), &src, path.parent().unwrap_or(Path::new(".")))
    }

    pub fn parse(file: &str, src: &str, dir: &Path) -> Result<SweepSpec> {
        let doc = toml_edit::Document::parse(src.to_string()).map_err(|e| {
            let at = locate(file, src, e.span());
            bad_input(format!("{at}: {}", e.message().trim()))
        })?;
        let root = doc.as_table();
        let at = |item: &toml_edit::Item| locate(file, src, item.span());
        let mut name = None;
        let mut config = None;
        let mut set = Vec::new();
        let mut grid: Vec<(String, Vec<GridValue>)> = Vec::new();
        let mut analysis = AnalysisOptions::default();
        for (key, item) in root.iter() {
            match key {
                "name" => match item.as_str() {
                    Some(s) if !s.trim().is_empty() => name = Some(s.to_string()),
                    _ => bail_input!("{}: name: expected a non-empty string", at(item)),
                },
                "config" => match item.as_str() {
                    Some(s) => config = Some(dir.join(s)),
                    None => bail_input!("{}: config: expected the path of a run config", at(item)),
                },
                "set" => {
                    let Some(t) = item.as_table_like() else {
                        bail_input!("{}: set: expected a table of KEY = VALUE", at(item));
                    };
                    for (k, v) in t.iter() {
                        flatten_set(k, v, &mut set, &|i| at(i))?;
                    }
                }
                "grid" => {
                    let Some(t) = item.as_table_like() else {
                        bail_input!("{}: grid: expected a table of VARIABLE = [values]", at(item));
                    };
                    for (k, v) in t.iter() {
                        let Some(arr) = v.as_array() else {
                            bail_input!("{}: grid.{k}: expected an array of values", at(v));
                        };
                        if arr.is_empty() {
                            bail_input!("{}: grid.{k}: the array is empty", at(v));
                        }
                        let mut vals: Vec<GridValue> = Vec::new();
                        for x in arr.iter() {
                            let nested =
                                x.as_array().is_some_and(|a| a.iter().any(|y| y.is_array() || y.is_inline_table()));
                            if x.is_inline_table() || nested {
                                bail_input!(
                                    "{}: grid.{k}: values are numbers, strings, booleans or arrays of them",
                                    at(v)
                                );
                            }
                            let (text, toml) = value_text(x);
                            if vals.iter().any(|g| g.text == text) {
                                bail_input!("{}: grid.{k}: value {text} is listed twice", at(v));
                            }
                            vals.push(GridValue { text, toml });
                        }
                        grid.push((k.to_string(), vals));
                    }
                }
                "analysis" => {
                    let Some(t) = item.as_table_like() else {
                        bail_input!("{}: analysis: expected a table", at(item));
                    };
                    for (k, v) in t.iter() {
                        match k {
                            "x" => match v.as_str() {
                                Some(s) => analysis.x = Some(s.to_string()),
                                None => bail_input!("{}: analysis.x: expected the name of a grid variable", at(v)),
                            },
                            "plateau" => match v.as_float().or(v.as_integer().map(|i| i as f64)) {
                                Some(p) if p.is_finite() && p >= 0.0 => analysis.plateau = p,
                                _ => bail_input!("{}: analysis.plateau: expected a number ≥ 0", at(v)),
                            },
                            other => bail_input!("{}: analysis.{other}: unknown key (known: x, plateau)", at(v)),
                        }
                    }
                }
                other => {
                    bail_input!("{}: {other}: unknown key (known: name, config, set, grid, analysis)", at(item))
                }
            }
        }
        let Some(name) = name else { bail_input!("{file}: name: missing (name = \"my-sweep\")") };
        let Some(config) = config else { bail_input!("{file}: config: missing (config = \"demo.toml\")") };
        if grid.is_empty() {
            bail_input!("{file}: grid: missing or empty (e.g. [grid] n = [0, 100, 400])");
        }
        for (k, v) in &set {
            for var in placeholders(v) {
                if !grid.iter().any(|(g, _)| *g == var) {
                    bail_input!("{file}: set.{k}: {{{var}}} is not a grid variable");
                }
            }
        }
        if let Some(x) = &analysis.x {
            if !grid.iter().any(|(g, _)| g == x) {
                bail_input!("{file}: analysis.x: '{x}' is not a grid variable");
            }
        }
        Ok(SweepSpec { name, config, set, grid, analysis })
    }

    /// Replace a grid variable's values: `VAR=V1,V2` (`--grid` on the command line).
    pub fn override_grid(&mut self, arg: &str) -> Result<()> {
        let Some((var, vals)) = arg.split_once('=') else {
            bail_input!("--grid {arg}: expected VARIABLE=VALUE,VALUE,...");
        };
        let var = var.trim();
        let Some((_, slot)) = self.grid.iter_mut().find(|(k, _)| k == var) else {
            let known = self.grid.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ");
            bail_input!("--grid {arg}: '{var}' is not a grid variable (variables: {known})");
        };
        let mut new: Vec<GridValue> = Vec::new();
        for v in vals.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            let old = slot.iter().find(|g| g.text == v).cloned();
            let toml = match old {
                Some(g) => g.toml,
                None if v.parse::<f64>().is_ok() || v == "true" || v == "false" => v.to_string(),
                None => toml_edit::Value::from(v).to_string(),
            };
            new.push(GridValue { text: v.to_string(), toml });
        }
        if new.is_empty() {
            bail_input!("--grid {arg}: no values");
        }
        *slot = new;
        Ok(())
    }

    /// Every combination of the grid, the first variable varying slowest.
    pub fn points(&self) -> Vec<Point> {
        let mut out = vec![Point { vars: Vec::new() }];
        for (k, vals) in &self.grid {
            out = out
                .into_iter()
                .flat_map(|p| {
                    vals.iter().map(move |v| {
                        let mut q = p.clone();
                        q.vars.push((k.clone(), v.clone()));
                        q
                    })
                })
                .collect();
        }
        out
    }

    /// The `--set KEY=VALUE` list of a point: `[set]` with its placeholders filled, then each
    /// variable no placeholder names, as a key of its own.
    pub fn sets_for(&self, p: &Point) -> Vec<String> {
        let mut out = Vec::new();
        let mut used = std::collections::HashSet::new();
        for (k, v) in &self.set {
            let vars = placeholders(v);
            if vars.is_empty() {
                out.push(format!("{k}={v}"));
                continue;
            }
            let mut s = v.clone();
            for var in vars {
                let val = &p.vars.iter().find(|(n, _)| *n == var).expect("checked in parse").1;
                s = s.replace(&format!("{{{var}}}"), &val.text);
                used.insert(var);
            }
            out.push(format!("{k}={s}"));
        }
        for (k, v) in &p.vars {
            if !used.contains(k) {
                out.push(format!("{k}={}", v.toml));
            }
        }
        out
    }

    /// The x-axis variable: `[analysis] x`, else the first variable other than `seed` whose values
    /// are all numbers (seeds are what a point's interval is taken across, never its x).
    pub fn x_var(&self) -> Option<String> {
        self.analysis.x.clone().or_else(|| {
            self.grid
                .iter()
                .find(|(k, vals)| k != "seed" && vals.iter().all(|v| v.text.parse::<f64>().is_ok()))
                .map(|(k, _)| k.clone())
        })
    }
}

/// Whether a TOML file is a sweep file (it has a `[grid]`) rather than a run config.
pub fn is_sweep_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.parse::<toml_edit::DocumentMut>().ok())
        .is_some_and(|d| d.contains_key("grid"))
}

/// Flatten `[set]` (nested tables become dotted keys) into `key → TOML text`.
fn flatten_set(
    key: &str,
    item: &toml_edit::Item,
    out: &mut Vec<(String, String)>,
    at: &dyn Fn(&toml_edit::Item) -> String,
) -> Result<()> {
    if let Some(t) = item.as_table_like() {
        for (k, v) in t.iter() {
            flatten_set(&format!("{key}.{k}"), v, out, at)?;
        }
        return Ok(());
    }
    let Some(v) = item.as_value() else { bail_input!("{}: set.{key}: expected a value", at(item)) };
    let (text, toml) = value_text(v);
    // A string with placeholders is substituted as text and set as text; others as TOML.
    out.push((key.to_string(), if v.is_str() && !placeholders(&text).is_empty() { text } else { toml }));
    Ok(())
}

/// The `{var}` names in a value.
fn placeholders(s: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        let name = &rest[i + 1..i + j];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            v.push(name.to_string());
        }
        rest = &rest[i + j + 1..];
    }
    v
}

/// What `<runs>/.sweeps/<id>/sweep.json` records: the spec and the runs of each point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRecord {
    pub id: String,
    pub name: String,
    pub created: f64,
    pub source: String,
    pub spec: SweepSpec,
    /// (point label, run id)
    pub runs: Vec<(String, String)>,
}

/// Where a sweep's record lives.
pub fn sweep_dir(root: &Path, id: &str) -> PathBuf {
    root.join(".sweeps").join(id)
}

/// Read a sweep's record, if one was written.
pub fn read_record(root: &Path, id: &str) -> Option<SweepRecord> {
    let p = sweep_dir(root, id).join("sweep.json");
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

/// A checked point, ready to launch.
pub struct Planned {
    pub point: Point,
    pub sets: Vec<String>,
    pub loaded: Loaded,
}

/// Check every point's config (nothing is created when any is bad input).
pub fn plan(spec: &SweepSpec) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    for point in spec.points() {
        let sets = spec.sets_for(&point);
        let checked = (|| -> Result<Loaded> {
            let mut loaded = Loaded::read(&spec.config)?;
            loaded.apply_sets(&sets)?;
            loaded.validate()?;
            crate::supervisor::check_launch(&loaded)?;
            Ok(loaded)
        })();
        match checked {
            Ok(loaded) => out.push(Planned { point, sets, loaded }),
            Err(e) if crate::error::is_bad_input(&e) => {
                bail_input!("sweep {}: point {}: {e:#}", spec.name, point.label())
            }
            Err(e) => return Err(e.context(format!("sweep {}: point {}", spec.name, point.label()))),
        }
    }
    Ok(out)
}

/// Launch every point of a sweep through the queue. Returns the sweep id and the runs.
pub fn launch(root: &Path, source: &Path, spec: &SweepSpec) -> Result<(String, Vec<RunDir>)> {
    let planned = plan(spec)?;
    crate::util::create_private_dir(root)?;
    let sweeps = root.join(".sweeps");
    crate::util::create_private_dir(&sweeps)?;
    let id = crate::runs::new_id(&sweeps, Some(&spec.name));
    let dir = sweep_dir(root, &id);
    crate::util::create_private_dir(&dir)?;
    let mut record = SweepRecord {
        id: id.clone(),
        name: spec.name.clone(),
        created: crate::util::now_secs(),
        source: source.display().to_string(),
        spec: spec.clone(),
        runs: Vec::new(),
    };
    let save = |r: &SweepRecord| -> Result<()> {
        crate::util::write_atomic(&dir.join("sweep.json"), serde_json::to_string_pretty(r)?.as_bytes())
    };
    save(&record)?;
    let mut runs = Vec::new();
    for mut p in planned {
        p.loaded.config.name = Some(format!("{} {}", spec.name, p.point.label()));
        p.loaded.config.sweep = Some(SweepTag {
            id: id.clone(),
            name: spec.name.clone(),
            point: p.point.vars.iter().map(|(k, v)| (k.clone(), v.text.clone())).collect::<BTreeMap<_, _>>(),
        });
        let run = crate::supervisor::launch_loaded(root, &p.loaded)
            .with_context(|| format!("launching point {}", p.point.label()))?;
        record.runs.push((p.point.label(), run.id()));
        save(&record)?;
        runs.push(run);
    }
    Ok((id, runs))
}

/// The sweeps of a runs root, from the `[sweep]` tags of its runs: id → (name, run ids).
pub fn sweeps_of(statuses: &[crate::supervisor::RunStatus]) -> BTreeMap<String, (String, Vec<String>)> {
    let mut m: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for s in statuses {
        if let Some(t) = s.config.as_ref().and_then(|c| c.sweep.as_ref()) {
            m.entry(t.id.clone()).or_insert_with(|| (t.name.clone(), Vec::new())).1.push(s.id.clone());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<SweepSpec> {
        SweepSpec::parse("s.toml", src, Path::new("/cfg"))
    }

    #[test]
    fn grid_points_and_their_sets() {
        let s = parse(
            "name = \"p\"\nconfig = \"demo.toml\"\n[set]\nmixture = \"en=200,n={n},tasks={tasks}\"\nmax_steps = 50\n\
             [set.eval]\nevery = 10\n[grid]\nn = [0, 100]\ntasks = [\"mr\", \"mr+sm\"]\nseed = [3]\n",
        )
        .unwrap();
        assert_eq!(s.config, Path::new("/cfg/demo.toml"));
        let pts = s.points();
        assert_eq!(pts.len(), 4);
        assert_eq!(pts[1].label(), "n=0 tasks=mr+sm seed=3");
        assert_eq!(
            s.sets_for(&pts[3]),
            ["mixture=en=200,n=100,tasks=mr+sm", "max_steps=50", "eval.every=10", "seed=3"],
            "placeholders filled; a variable no placeholder names is a key of its own"
        );
        assert_eq!(s.x_var().as_deref(), Some("n"));
    }

    #[test]
    fn a_string_variable_is_set_as_a_toml_string() {
        let mut s = parse("name = \"p\"\nconfig = \"c.toml\"\n[grid]\ndevice = [\"cpu\", \"auto\"]\n").unwrap();
        assert_eq!(s.sets_for(&s.points()[0]), ["device=\"cpu\""]);
        assert_eq!(s.x_var(), None, "no numeric variable");
        let b = parse("name = \"p\"\nconfig = \"c.toml\"\n[grid]\nbase = [\"a.toml\", \"b.toml\"]\nseed = [0, 1]\n")
            .unwrap();
        assert_eq!(b.x_var(), None, "seeds are never the x axis");
        s.override_grid("device=auto").unwrap();
        assert_eq!(s.points().len(), 1);
        assert_eq!(s.sets_for(&s.points()[0]), ["device=\"auto\""]);
        assert!(s.override_grid("seed=1").is_err(), "not a variable");
    }

    #[test]
    fn array_values_name_their_elements() {
        let s =
            parse("name = \"p\"\nconfig = \"c.toml\"\n[grid]\n\"data.seen\" = [[\"es\", \"fr\"], [\"ja\"]]\n").unwrap();
        let p = s.points();
        assert_eq!(p[0].label(), "data.seen=es+fr");
        assert_eq!(s.sets_for(&p[0]), ["data.seen=[\"es\", \"fr\"]"]);
    }

    #[test]
    fn bad_sweep_files_name_the_place() {
        for (src, want) in [
            ("name = \"p\"\n[grid]\nn = [1]\n", "s.toml: config: missing"),
            ("name = \"p\"\nconfig = \"c\"\n", "grid: missing"),
            ("name = \"p\"\nconfig = \"c\"\n[grid]\nn = []\n", "s.toml:4:5: grid.n: the array is empty"),
            ("name = \"p\"\nconfig = \"c\"\n[grid]\nn = 3\n", "s.toml:4:5: grid.n: expected an array"),
            ("name = \"p\"\nconfig = \"c\"\n[grid]\nn = [1, 1]\n", "value 1 is listed twice"),
            ("name = \"p\"\nconfig = \"c\"\nnmae = 1\n[grid]\nn = [1]\n", "s.toml:3:8: nmae: unknown key"),
            (
                "name = \"p\"\nconfig = \"c\"\n[set]\nmixture = \"n={m}\"\n[grid]\nn = [1]\n",
                "{m} is not a grid variable",
            ),
            ("name = \"p\"\nconfig = \"c\"\n[grid]\nn = [1]\n[analysis]\nx = \"q\"\n", "'q' is not a grid variable"),
            (
                "name = \"p\"\nconfig = \"c\"\n[grid]\nn = [1]\n[analysis]\nplateau = -1\n",
                "s.toml:6:11: analysis.plateau",
            ),
            ("name = \"p\nconfig = 1\n", "s.toml:1:"),
        ] {
            let e = parse(src).unwrap_err();
            assert!(crate::error::is_bad_input(&e));
            let m = format!("{e:#}");
            assert!(m.contains(want), "{src:?}: {m}");
        }
    }
}

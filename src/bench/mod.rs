//! Benchmarks as a CLI mode (`mixscope bench tui|train|real|sgemm|gpu|memory|eval [--json]`): tables of measured figures
//! next to their targets. Speed targets live here, never in timed tests.

pub mod eval;
pub mod gpu;
pub mod ls;
pub mod memory;
pub mod real;
pub mod sgemm;
pub mod train;
pub mod tui;

use serde::Serialize;

/// Seconds of one training step's phases (the train and GPU benches).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Step {
    pub fwd: f64,
    pub bwd: f64,
    pub opt: f64,
}

impl Step {
    pub fn total(&self) -> f64 {
        self.fwd + self.bwd + self.opt
    }
}

/// The step of median total time.
pub(crate) fn median(mut v: Vec<Step>) -> Step {
    v.sort_by(|a, b| a.total().total_cmp(&b.total()));
    v[v.len() / 2]
}

/// A field of this process's `/proc/self/status` in MiB (`VmRSS:` resident now, `VmHWM:` its
/// peak); NaN where there is none.
pub(crate) fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The last line of a child's output that parses as a JSON object, or why there is none (the
/// benches that measure each configuration in a process of its own).
pub(crate) fn run_json(mut c: std::process::Command) -> Result<serde_json::Value, String> {
    let o = c.output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&o.stdout);
    match text.lines().rev().find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        Some(v) if o.status.success() => Ok(v),
        _ => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
            Err(format!("exit {}: {last}", o.status.code().unwrap_or(-1)))
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub bench: String,
    pub what: String,
    pub detail: String,
    pub value: f64,
    pub unit: String,
    pub target: String,
    pub met: bool,
    /// Bench-specific fields, flattened into the JSON object (e.g. `shape`, `tokens_per_s`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Row {
    pub fn new(bench: &str, what: &str, detail: String, value: f64, unit: &str, target: &str, met: bool) -> Row {
        let extra = serde_json::Map::new();
        Row {
            bench: bench.into(),
            what: what.into(),
            detail,
            value,
            unit: unit.into(),
            target: target.into(),
            met,
            extra,
        }
    }

    /// Adds a field to the row's JSON object.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Row {
        self.extra.insert(key.into(), value.into());
        self
    }
}

/// Print rows as a table, or one JSON object per line.
pub fn print(rows: &[Row], json: bool) {
    if json {
        for r in rows {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
        return;
    }
    println!("{:<12} {:>12} {:<14} {:<8} {:<5} detail", "measure", "value", "unit", "target", "met");
    for r in rows {
        println!(
            "{:<12} {:>12} {:<14} {:<8} {:<5} {}",
            r.what,
            if r.value.is_finite() { format!("{:.3}", r.value) } else { "-".into() },
            r.unit,
            r.target,
            if r.target == "-" {
                "-"
            } else if r.met {
                "yes"
            } else {
                "no"
            },
            r.detail
        );
    }
}

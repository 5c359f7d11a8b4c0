//! Opt-in timers for the fused ops (`ENGINE_PROFILE=1`): accumulated wall time per op and
//! direction, read with [`report`]. Disabled, a timer costs one relaxed atomic load.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static STATE: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 off, 2 on
static TOTALS: Mutex<BTreeMap<&'static str, (f64, u64)>> = Mutex::new(BTreeMap::new());
static CPU: Mutex<BTreeMap<&'static str, f64>> = Mutex::new(BTreeMap::new());

/// Process CPU seconds (user + system) from /proc; 0 where unavailable.
pub fn process_cpu() -> f64 {
    let u = usage();
    u.user + u.sys
}

/// This process's CPU seconds (user, system) and minor page faults so far, from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub user: f64,
    pub sys: f64,
    pub faults: u64,
}

impl Usage {
    pub fn since(&self, before: &Usage) -> Usage {
        Usage { user: self.user - before.user, sys: self.sys - before.sys, faults: self.faults - before.faults }
    }
}

/// [`Usage`] now; zeros where /proc is unavailable.
pub fn usage() -> Usage {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Usage::default() };
    let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else { return Usage::default() };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command, numbered as in proc(5): minflt 10, utime 14, stime 15.
    let field = |i: usize| f.get(i - 3).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    let tick = 100.0;
    Usage { user: field(14) / tick, sys: field(15) / tick, faults: field(10) as u64 }
}

pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("ENGINE_PROFILE").map(|v| !v.is_empty() && v != "0").unwrap_or(false);
            STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        s => s == 2,
    }
}

/// Timers of each name now running: (how many, since when, process CPU seconds then).
static OPEN: Mutex<BTreeMap<&'static str, (u32, Instant, f64)>> = Mutex::new(BTreeMap::new());

/// Times the rest of the scope under `name` when profiling is enabled. Calls of one name that
/// overlap (products run side by side) count the time they cover together once.
pub struct Timer(Option<&'static str>);

pub fn timer(name: &'static str) -> Timer {
    if !enabled() {
        return Timer(None);
    }
    let mut open = OPEN.lock().unwrap();
    let e = open.entry(name).or_insert((0, Instant::now(), 0.0));
    if e.0 == 0 {
        *e = (0, Instant::now(), process_cpu());
    }
    e.0 += 1;
    Timer(Some(name))
}

impl Drop for Timer {
    fn drop(&mut self) {
        let Some(name) = self.0.take() else { return };
        let mut open = OPEN.lock().unwrap();
        let Some(e) = open.get_mut(name) else { return };
        e.0 -= 1;
        let mut m = TOTALS.lock().unwrap();
        let total = m.entry(name).or_insert((0.0, 0));
        total.1 += 1;
        if e.0 == 0 {
            total.0 += e.1.elapsed().as_secs_f64();
            *CPU.lock().unwrap().entry(name).or_insert(0.0) += process_cpu() - e.2;
        }
    }
}

/// (name, process CPU seconds) accumulated while each timer ran (10 ms resolution).
pub fn cpu_report() -> Vec<(&'static str, f64)> {
    CPU.lock().unwrap().iter().map(|(k, v)| (*k, *v)).collect()
}

/// (name, seconds, calls) accumulated so far; `reset` clears them (and the CPU totals).
pub fn report(reset: bool) -> Vec<(&'static str, f64, u64)> {
    let mut m = TOTALS.lock().unwrap();
    let out = m.iter().map(|(k, (s, c))| (*k, *s, *c)).collect();
    if reset {
        m.clear();
        CPU.lock().unwrap().clear();
    }
    out
}

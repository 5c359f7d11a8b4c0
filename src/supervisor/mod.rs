//! The supervisor: trainers as child processes, a queue by device slot, pause / resume / stop /
//! fork, and exact states. The CLI and the TUI both call this module; neither duplicates it.
//!
//! There is no daemon. Each launched run gets a small *monitor* process (`mixscope _supervise`,
//! in its own session so that it outlives the terminal) that starts the trainer
//! (`mixscope _run`), waits for it, records how it ended when the trainer could not (a signal,
//! an exit code and the last stderr lines), and then starts queued runs on the freed slot. The
//! queue is the `queued` status events on disk, so it survives every process.
//!
//! A run whose config says `launcher = "slurm"` is queued by Slurm instead: the scheduler
//! submits it with `sbatch` and its job runs the same monitor on a compute node (see [`slurm`]).

pub mod monitor;
pub mod slurm;
pub mod status;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::bail_input;
use crate::config::{DeviceSpec, Loaded};
use crate::runs::control::{self, Command};
use crate::runs::events::{Body, Event, EventWriter, State};
use crate::runs::{self, RunDir};
pub use status::{list, status, RunStatus};

/// The CPU cores the queue may hand out: `MIXSCOPE_CPU_BUDGET`, else the machine's cores.
pub fn cpu_budget() -> usize {
    std::env::var("MIXSCOPE_CPU_BUDGET")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// The GPUs the queue may hand out: `MIXSCOPE_GPUS` (indices `0,1`, or `none`), else every GPU
/// NVML reports in a build with the `cuda` feature, else none.
pub fn gpu_slots() -> Vec<usize> {
    if let Ok(v) = std::env::var("MIXSCOPE_GPUS") {
        return v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    if cfg!(feature = "cuda") {
        crate::gpu::sample().iter().map(|g| g.index).collect()
    } else {
        Vec::new()
    }
}

/// How many runs share one GPU: `MIXSCOPE_RUNS_PER_GPU`, default 1 (small models can share).
pub fn runs_per_gpu() -> usize {
    std::env::var("MIXSCOPE_RUNS_PER_GPU").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(1)
}

/// What a run takes from the queue while it trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// CPU cores.
    Cpu(usize),
    /// One GPU to itself: a given one, or any.
    Gpu(Option<usize>),
}

/// A run's need: `cpu` takes cores; `cuda:N` GPU N; `cuda` any GPU; `auto` any GPU where the
/// queue has GPUs, else cores.
pub fn need_of(device: DeviceSpec, threads: usize, budget: usize, gpus: &[usize]) -> Need {
    let cores = if threads == 0 { budget } else { threads.min(budget) };
    match device {
        DeviceSpec::Cpu => Need::Cpu(cores),
        DeviceSpec::Cuda(n) => Need::Gpu(n),
        DeviceSpec::Auto if !gpus.is_empty() => Need::Gpu(None),
        DeviceSpec::Auto => Need::Cpu(cores),
    }
}

/// The queue's decision: which queued runs start now, in FIFO order, and on which GPU.
/// `used_cores` and `busy` (one entry per running GPU run) are what running runs hold. A CPU
/// run starts while the cores it needs are free (or nothing runs on the CPU); a GPU run while
/// its GPU (or any) runs fewer than `per_gpu` runs, the least loaded first. A GPU run that
/// cannot start does not block the runs behind it that can. A CPU run that cannot start holds
/// its place: no CPU run behind it starts until it has, so a run asking for two cores is not
/// starved by a stream of one-core runs taking each core as it frees (a sweep queued behind a
/// base model once kept the base waiting for hours).
pub fn plan(
    queued: &[(String, Need)],
    mut used_cores: usize,
    busy: &[usize],
    budget: usize,
    gpus: &[usize],
    per_gpu: usize,
) -> Vec<(String, Option<usize>)> {
    let mut busy: Vec<usize> = busy.to_vec();
    let mut out = Vec::new();
    let mut cpu_waits = false;
    for (id, need) in queued {
        match *need {
            Need::Cpu(c) => {
                if cpu_waits || (used_cores > 0 && used_cores + c > budget) {
                    cpu_waits = true;
                    continue;
                }
                used_cores += c;
                out.push((id.clone(), None));
            }
            Need::Gpu(want) => {
                let load = |g: usize| busy.iter().filter(|&&b| b == g).count();
                let free = gpus
                    .iter()
                    .copied()
                    .filter(|&g| load(g) < per_gpu && want.is_none_or(|w| w == g))
                    .min_by_key(|&g| load(g));
                if let Some(g) = free {
                    busy.push(g);
                    out.push((id.clone(), Some(g)));
                }
            }
        }
    }
    out
}

/// The GPU a run was last given by the queue, if any (see [`RunDir::assigned_device`]).
pub fn assigned_gpu(run_dir: &Path) -> Option<usize> {
    RunDir::new(run_dir).assigned_device()?.strip_prefix("cuda:")?.parse().ok()
}

/// Append a status event for a run whose trainer is not running.
pub fn append_status(run: &RunDir, state: State, message: Option<String>) -> Result<()> {
    let step = status::status(run).map(|s| s.step).unwrap_or(0);
    let mut w = EventWriter::open(&run.events_path())?;
    w.write(&Event::new(step, Body::Status { state, message }))?;
    w.sync()
}

/// Create a run from a config and queue it (and its base run, when it needs one that has not
/// been trained). Returns the new run; it starts as soon as a slot is free.
pub fn launch(root: &Path, config: &Path, sets: &[String]) -> Result<RunDir> {
    let mut loaded = Loaded::read(config)?;
    loaded.apply_sets(sets)?;
    loaded.validate()?;
    check_launch(&loaded)?;
    launch_loaded(root, &loaded)
}

/// Refuse what cannot start: a GPU the local queue does not have, or a job Slurm would refuse.
pub fn check_launch(loaded: &Loaded) -> Result<()> {
    if loaded.config.device.is_cuda() && !cfg!(feature = "cuda") {
        return Err(loaded.field_error(
            "device",
            format!("'{}': this mixscope was built without the `cuda` feature", loaded.config.device),
        ));
    }
    if slurm::is_slurm(&loaded.config) {
        slurm::check(loaded)
    } else {
        check_device(loaded)
    }
}

/// Refuse a GPU the queue does not have (bad input, naming the config place).
pub fn check_device(loaded: &Loaded) -> Result<()> {
    let gpus = gpu_slots();
    let shown = |g: &[usize]| if g.is_empty() { "none".to_string() } else { format!("{g:?}") };
    match need_of(loaded.config.device, 1, 1, &gpus) {
        Need::Gpu(Some(n)) if !gpus.contains(&n) => {
            bail_input!("{}: device cuda:{n}: the queue's GPUs are {}", loaded.locate("device"), shown(&gpus))
        }
        Need::Gpu(None) if gpus.is_empty() => {
            bail_input!("{}: device cuda: this machine has no GPU the queue can use", loaded.locate("device"))
        }
        _ => {}
    }
    Ok(())
}

/// Create and queue a run from a validated config (see [`launch`]).
pub fn launch_loaded(root: &Path, loaded: &Loaded) -> Result<RunDir> {
    let crate::runs::create::Created { run, base, lock, base_lock } =
        crate::runs::create::create_run(root, None, loaded)?;
    if let Some(base) = &base {
        if slurm::is_slurm(&loaded.config) {
            submit_base_too(base, &loaded.config)?;
        }
        // A base created just now (we hold its lock) has no status yet: it is queued.
        let queue_it = base_lock.is_some() || {
            let st = status::status(base)?;
            let idle = !st.alive && !base.is_complete()?;
            let not_queued =
                st.queued_at.is_none() || matches!(st.state, State::Stopped | State::Failed | State::Paused);
            idle && not_queued
        };
        if queue_it {
            append_status(base, State::Queued, Some("base of another run".into()))?;
        }
    }
    append_status(&run, State::Queued, None)?;
    // Held until the runs are queued (a run with no status whose lock nobody holds died in
    // setup); their trainers take them when they start.
    drop(base_lock);
    drop(lock);
    schedule(root)?;
    Ok(run)
}

/// A Slurm run's base model, created for it and never started, is trained on the cluster too.
fn submit_base_too(base: &RunDir, cfg: &crate::config::RunConfig) -> Result<()> {
    let mut bcfg = base.read_config()?;
    let fresh = !base.events_path().exists() || std::fs::metadata(base.events_path())?.len() == 0;
    if fresh && !slurm::is_slurm(&bcfg) {
        bcfg.launcher = cfg.launcher;
        bcfg.slurm = cfg.slurm.clone();
        base.write_config(&bcfg)?;
    }
    Ok(())
}

/// Start queued runs while slots are free. Safe to call from any process at any time.
pub fn schedule(root: &Path) -> Result<Vec<String>> {
    if !root.exists() {
        return Ok(Vec::new());
    }
    let _guard = GlobalLock::take(&root.join(".scheduler.lock"))?;
    let budget = cpu_budget();
    let gpus = gpu_slots();
    let all = status::list(root)?;
    record_verdicts(&all);
    let need = |s: &RunStatus| {
        let device = s.config.as_ref().map_or(DeviceSpec::Cpu, |c| c.device);
        need_of(device, s.threads, budget, &gpus)
    };
    let is_slurm = |s: &RunStatus| s.config.as_ref().is_some_and(slurm::is_slurm);
    let mut started = submit_to_slurm(root, &all)?;
    let mut used = 0;
    let mut busy = Vec::new();
    for s in all.iter().filter(|s| s.alive && !is_slurm(s)) {
        match (need(s), assigned_gpu(&s.dir)) {
            (Need::Cpu(c), _) => used += c,
            (Need::Gpu(_), Some(g)) | (Need::Gpu(Some(g)), None) => busy.push(g),
            (Need::Gpu(None), None) => {}
        }
    }
    let mut queued: Vec<&RunStatus> =
        all.iter().filter(|s| s.state == State::Queued && !s.alive && s.queued_at.is_some() && !is_slurm(s)).collect();
    queued.sort_by(|a, b| a.queued_at.partial_cmp(&b.queued_at).unwrap_or(std::cmp::Ordering::Equal));
    let mut ready = Vec::new();
    for s in queued {
        if base_ready(root, &RunDir::new(&s.dir))? {
            ready.push((s.id.clone(), need(s), s.dir.clone()));
        }
    }
    let asks: Vec<(String, Need)> = ready.iter().map(|(id, n, _)| (id.clone(), *n)).collect();
    for (id, gpu) in plan(&asks, used, &busy, budget, &gpus, runs_per_gpu()) {
        let dir = &ready.iter().find(|r| r.0 == id).expect("planned from ready").2;
        let assigned = RunDir::new(dir).assigned_device_path();
        match gpu {
            Some(g) => crate::util::write_atomic(&assigned, format!("cuda:{g}\n").as_bytes())?,
            None => {
                let _ = std::fs::remove_file(&assigned);
            }
        }
        monitor::spawn(root, &RunDir::new(dir))?;
        started.push(id);
    }
    Ok(started)
}

/// Write to the events of each Slurm run whose job Slurm ended behind its back what Slurm said
/// (once: the runs' statuses found it unrecorded). The one writer of these verdicts: the
/// scheduler calls it on every pass and `ls` before it prints; readers (the TUI, reports) show
/// the verdict without writing it.
pub fn record_verdicts(all: &[RunStatus]) {
    for s in all {
        if let Some(why) = &s.unrecorded {
            if let Err(e) = slurm::record_failure(&RunDir::new(&s.dir), why) {
                eprintln!("warning: run {}: recording Slurm's verdict: {e:#}", s.id);
            }
        }
    }
}

/// Submit every queued Slurm run whose queue request has no job yet (and whose base model is
/// ready); Slurm queues them. A job sbatch refuses fails its run with sbatch's words.
fn submit_to_slurm(root: &Path, all: &[RunStatus]) -> Result<Vec<String>> {
    let mut submitted = Vec::new();
    for s in all {
        let Some(cfg) = s.config.as_ref().filter(|c| slurm::is_slurm(c)) else { continue };
        if s.state != State::Queued || s.alive || s.queued_at.is_none() {
            continue;
        }
        let run = RunDir::new(&s.dir);
        let answered = slurm::current(&run)
            .is_some_and(|c| c.queued_at.zip(s.queued_at).is_some_and(|(a, b)| (a - b).abs() < 1e-6));
        if answered || !base_ready(root, &run)? {
            continue;
        }
        match slurm::submit(root, &run, cfg, s.queued_at) {
            Ok(_job) => submitted.push(s.id.clone()),
            Err(e) => append_status(&run, State::Failed, Some(format!("{e:#}")))?,
        }
    }
    Ok(submitted)
}

/// A queued run that starts from a base model can start once the base reached its step.
fn base_ready(root: &Path, run: &RunDir) -> Result<bool> {
    let cfg = run.read_config()?;
    let (Some(init), Some(lin)) = (&cfg.init, &cfg.lineage) else {
        return Ok(true);
    };
    if run.latest_checkpoint()?.is_some() {
        return Ok(true);
    }
    let id = init.run.as_deref().unwrap_or(&lin.parent);
    Ok(runs::resolve(root, id).map(|b| b.checkpoint_dir(lin.fork_step).join("state.json").exists()).unwrap_or(false))
}

/// Ask a running run to pause (it checkpoints, then its trainer exits and frees its slot).
pub fn pause(root: &Path, run: &RunDir) -> Result<()> {
    let st = status::status(run)?;
    if let Some(job) = &st.slurm {
        return slurm_control(run, &st, job, Command::Pause);
    }
    match st.state {
        State::Running if st.alive => {
            control::send(&run.path, Command::Pause)?;
        }
        State::Queued => append_status(run, State::Paused, Some("paused while queued".into()))?,
        State::Paused => {}
        s => bail_input!("run {} is {}: only a running or queued run can be paused", run.id(), s.as_str()),
    }
    let _ = root;
    Ok(())
}

/// Resume a paused (or stopped) run: it is queued and starts from its latest checkpoint.
pub fn resume(root: &Path, run: &RunDir) -> Result<()> {
    // A run whose run.toml cannot be read would only fail again: that is bad input.
    run.read_config()?;
    let st = status::status(run)?;
    if st.alive && st.slurm.is_some() {
        bail_input!(
            "run {} is {} and its Slurm job is still ending: resume it in a moment",
            run.id(),
            st.state.as_str()
        );
    }
    if st.alive {
        if st.state == State::Paused {
            // A trainer paused in place (foreground `train`) resumes through its control file.
            control::send(&run.path, Command::Resume)?;
            return Ok(());
        }
        bail_input!("run {} is {}: nothing to resume", run.id(), st.state.as_str());
    }
    match st.state {
        State::Paused | State::Stopped | State::Failed => {
            append_status(run, State::Queued, Some(format!("resume requested at step {}", st.step)))?;
            schedule(root)?;
            Ok(())
        }
        State::Finished => bail_input!("run {} has finished; fork it to train further", run.id()),
        State::Queued | State::Running => bail_input!("run {} is {}: nothing to resume", run.id(), st.state.as_str()),
    }
}

/// Stop a run: a live trainer checkpoints and stops; a queued or paused run is marked stopped.
pub fn stop(root: &Path, run: &RunDir) -> Result<()> {
    let st = status::status(run)?;
    if let Some(job) = &st.slurm {
        return slurm_control(run, &st, job, Command::Stop);
    }
    if st.alive {
        control::send(&run.path, Command::Stop)?;
        return Ok(());
    }
    match st.state {
        State::Queued | State::Paused => append_status(run, State::Stopped, Some("stopped on request".into()))?,
        s => bail_input!("run {} is {}: nothing to stop", run.id(), s.as_str()),
    }
    let _ = root;
    Ok(())
}

/// Pause or stop a Slurm run. A running trainer is asked through its control file (it
/// checkpoints and exits, which ends the job and releases the allocation); asked a second time
/// while it has not answered, or while the job still waits in Slurm's queue, mixscope cancels
/// the job with `scancel` and records the new state itself.
fn slurm_control(run: &RunDir, st: &RunStatus, job: &slurm::SlurmView, cmd: Command) -> Result<()> {
    let (verb, done, target) = match cmd {
        Command::Pause => ("pause", "paused", State::Paused),
        _ => ("stop", "stopped", State::Stopped),
    };
    let waiting = job.state.as_deref().is_none_or(|s| slurm::Phase::of(s) == slurm::Phase::Pending);
    match st.state {
        State::Queued => {
            let submitted = slurm::current(run).is_some_and(|c| c.queued_at.is_some() && c.queued_at == st.queued_at);
            let mut msg = format!("{done} while queued");
            if submitted && waiting {
                slurm::cancel(run, &job.job, verb)?;
                msg.push_str(&format!(": Slurm job {} cancelled", job.job));
            }
            append_status(run, target, Some(msg))
        }
        State::Running if st.alive => {
            let cur = slurm::current(run);
            let asked = control::read(&run.path).is_some_and(|r| r.cmd == cmd)
                && std::fs::metadata(run.path.join("control"))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .zip(cur.as_ref())
                    .is_some_and(|(t, c)| t.as_secs_f64() >= c.submitted);
            if asked {
                slurm::cancel(run, &job.job, verb)?;
                let from = run.latest_checkpoint()?.map_or("the start".to_string(), |s| format!("step {s}"));
                append_status(
                    run,
                    target,
                    Some(format!(
                        "{done}: Slurm job {} cancelled (the trainer had not answered); resumes from {from}",
                        job.job
                    )),
                )
            } else {
                control::send(&run.path, cmd)?;
                Ok(())
            }
        }
        State::Paused if cmd == Command::Pause => Ok(()),
        State::Paused => append_status(run, State::Stopped, Some("stopped on request".into())),
        s => bail_input!("run {} is {}: nothing to {verb}", run.id(), s.as_str()),
    }
}

/// Ask a live trainer for a checkpoint now and wait (up to `timeout`) until it is written.
pub fn checkpoint_now(run: &RunDir, timeout: Duration) -> Result<Option<u64>> {
    let before = run.latest_checkpoint()?;
    control::send(&run.path, Command::Checkpoint)?;
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(100));
        let now = run.latest_checkpoint()?;
        if now != before {
            return Ok(now);
        }
        if !status::is_alive(run) {
            break;
        }
    }
    run.latest_checkpoint()
}

/// Fork a run at a checkpoint with a new mixture and queue the fork. Without `at`, a live run
/// is asked for a checkpoint now, else its latest is used. A checkpoint that holds weights only
/// (a shipped base's step) gives a fork with fresh optimizer moments (`Forked::fresh_optimizer`).
pub fn fork(
    root: &Path,
    parent: &RunDir,
    at: Option<u64>,
    spec: &str,
    name: Option<String>,
    max_steps: Option<u64>,
) -> Result<crate::runs::fork::Forked> {
    fork_seeds(root, parent, at, spec, name, max_steps, &[]).map(|mut v| v.remove(0))
}

/// Queue a fork just created, then let its lock go (its trainer takes it when it starts).
fn queue_fork(mut forked: crate::runs::fork::Forked) -> Result<crate::runs::fork::Forked> {
    append_status(&forked.run, State::Queued, None)?;
    drop(forked.lock.take());
    Ok(forked)
}

/// A running run's checkpoint to fork from when none was named: a fresh one.
fn fork_step(parent: &RunDir, at: Option<u64>) -> Result<Option<u64>> {
    match at {
        Some(s) => Ok(Some(s)),
        None if status::is_alive(parent) && status::status(parent)?.state == State::Running => {
            checkpoint_now(parent, Duration::from_secs(60))
        }
        None => Ok(None),
    }
}

/// Fork one run, once with its own seed (`seeds` empty) or once per seed given: a group of
/// forks that differ only in their data stream's seed from the fork on.
pub fn fork_seeds(
    root: &Path,
    parent: &RunDir,
    at: Option<u64>,
    spec: &str,
    name: Option<String>,
    max_steps: Option<u64>,
    seeds: &[u64],
) -> Result<Vec<crate::runs::fork::Forked>> {
    let at = fork_step(parent, at)?;
    let seeds: Vec<Option<u64>> = if seeds.is_empty() { vec![None] } else { seeds.iter().map(|s| Some(*s)).collect() };
    let mut children = Vec::new();
    for seed in seeds {
        children.push(queue_fork(crate::runs::fork::fork_run(root, parent, at, spec, name.clone(), max_steps, seed)?)?);
    }
    schedule(root)?;
    Ok(children)
}

/// Fork every member of a group at one step with one new mixture: a new group (each fork keeps
/// its member's seed). The step is `at`, or the latest checkpoint every member has (running
/// members checkpoint first). Checked for every member before any fork is created.
pub fn fork_group(
    root: &Path,
    members: &[RunDir],
    at: Option<u64>,
    spec: &str,
    name: Option<String>,
    max_steps: Option<u64>,
) -> Result<Vec<crate::runs::fork::Forked>> {
    if at.is_none() {
        for m in members {
            fork_step(m, None)?;
        }
    }
    let mut common: Option<Vec<u64>> = None;
    for m in members {
        let c = m.checkpoints()?;
        common = Some(match common {
            None => c,
            Some(v) => v.into_iter().filter(|s| c.contains(s)).collect(),
        });
    }
    let common = common.unwrap_or_default();
    let step = match at {
        Some(s) if common.contains(&s) => s,
        Some(s) => bail_input!(
            "--at {s}: not every run of the group has a checkpoint there (they share: {})",
            if common.is_empty() {
                "none".into()
            } else {
                common.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" ")
            }
        ),
        None => match common.last() {
            Some(s) => *s,
            None => bail_input!("the group's runs share no checkpoint to fork from"),
        },
    };
    // The mixture is checked once, before anything is created.
    let pcfg = members.first().map(|m| m.read_config()).transpose()?;
    if let Some(c) = &pcfg {
        crate::data::mixture::Mixture::parse(spec, &c.data.spec_context())?;
    }
    let mut children = Vec::new();
    for m in members {
        children.push(queue_fork(crate::runs::fork::fork_run(
            root,
            m,
            Some(step),
            spec,
            name.clone(),
            max_steps,
            None,
        )?)?);
    }
    schedule(root)?;
    Ok(children)
}

/// `--seeds`: a count (`3`: the config's seed and the next ones) or a list (`0,3,7`).
pub fn parse_seeds(text: &str, base: u64) -> Result<Vec<u64>> {
    let bad = || crate::error::bad_input(format!("--seeds {text}: give a count (3) or a list of seeds (0,3,7)"));
    let t = text.trim();
    let seeds: Vec<u64> = if t.contains(',') {
        t.split(',').map(|x| x.trim().parse::<u64>().map_err(|_| bad())).collect::<Result<_>>()?
    } else {
        let k: u64 = t.parse().map_err(|_| bad())?;
        if k == 0 || k > 256 {
            bail_input!("--seeds {text}: a count from 1 to 256");
        }
        (0..k).map(|i| base.wrapping_add(i)).collect()
    };
    let mut uniq = seeds.clone();
    uniq.sort_unstable();
    uniq.dedup();
    if uniq.len() != seeds.len() {
        bail_input!("--seeds {text}: a seed is given twice");
    }
    Ok(seeds)
}

/// Launch one run per seed: runs whose configs differ only in `seed` (one group). Every
/// config is checked before any run is created.
pub fn launch_seeds(root: &Path, config: &Path, sets: &[String], seeds: Option<&str>) -> Result<Vec<RunDir>> {
    let mut loaded = Loaded::read(config)?;
    loaded.apply_sets(sets)?;
    loaded.validate()?;
    check_launch(&loaded)?;
    let Some(seeds) = seeds else {
        return Ok(vec![launch_loaded(root, &loaded)?]);
    };
    if seeds.contains(',') && sets.iter().any(|s| s.trim_start().starts_with("seed=")) {
        bail_input!("--seeds {seeds}: the seeds are given, so --set seed=... cannot be too");
    }
    let seeds = parse_seeds(seeds, loaded.config.seed)?;
    let mut runs = Vec::new();
    for s in seeds {
        let mut l = loaded.clone();
        l.config.seed = s;
        runs.push(launch_loaded(root, &l)?);
    }
    Ok(runs)
}

/// An exclusive lock on a file for the life of the guard (the scheduler's critical section).
pub struct GlobalLock {
    _file: std::fs::File,
}

impl GlobalLock {
    pub fn take(path: &Path) -> Result<GlobalLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: blocking flock on a valid descriptor.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if r != 0 {
                anyhow::bail!("locking {}: {}", path.display(), std::io::Error::last_os_error());
            }
        }
        Ok(GlobalLock { _file: file })
    }
}

/// The mixscope executable (for spawning monitors and trainers).
pub fn exe() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MIXSCOPE_EXE") {
        return Ok(PathBuf::from(p));
    }
    std::env::current_exe().context("finding the mixscope executable")
}

/// The demo experiment's configs, built in so that the demo runs from any directory.
pub const DEMO_BASE: &str = include_str!("../../configs/demo-base.toml");
pub const DEMO_SFT: &str = include_str!("../../configs/demo.toml");

/// The seeds of each arm of the built-in demo: each arm is a group of this many runs.
pub const DEMO_SEEDS: u64 = 2;

/// Start the built-in demo: the base model pretrained on all 12 languages (trained once and
/// reused), then two groups of SFT runs forked from it, English only vs `multilingual=0.4`,
/// [`DEMO_SEEDS`] seeds each, queued one of each arm at a time (one thread each), so that the
/// first two to train already compare the arms. Returns the SFT runs.
pub fn demo(root: &Path) -> Result<Vec<RunDir>> {
    let dir = root.join(".demo");
    crate::util::create_private_dir(root)?;
    crate::util::create_private_dir(&dir)?;
    for (name, text) in [("demo-base.toml", DEMO_BASE), ("demo.toml", DEMO_SFT)] {
        let p = dir.join(name);
        if std::fs::read_to_string(&p).ok().as_deref() != Some(text) {
            crate::util::write_atomic(&p, text.as_bytes())?;
        }
    }
    let cfg = dir.join("demo.toml");
    let arms = [("demo-en", "multilingual=0"), ("demo-ml40", "multilingual=0.4")];
    let mut runs = Vec::new();
    for seed in 0..DEMO_SEEDS {
        for (name, mix) in arms {
            let sets = [format!("name={name}"), format!("mixture={mix}"), "threads=1".into(), format!("seed={seed}")];
            runs.push(launch(root, &cfg, &sets)?);
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod queue_tests {
    use super::{need_of, plan, Need};
    use crate::config::DeviceSpec;

    fn dev(s: &str) -> DeviceSpec {
        s.parse().unwrap()
    }

    fn ids(p: &[(String, Option<usize>)]) -> Vec<(&str, Option<usize>)> {
        p.iter().map(|(i, g)| (i.as_str(), *g)).collect()
    }

    #[test]
    fn each_gpu_run_gets_a_gpu_of_its_own_and_the_rest_wait() {
        let gpus = [0, 1];
        let q: Vec<(String, Need)> = [("a", "auto"), ("b", "cuda"), ("c", "cuda:1"), ("d", "cpu"), ("e", "cuda:0")]
            .iter()
            .map(|(i, d)| (i.to_string(), need_of(dev(d), 1, 2, &gpus)))
            .collect();
        assert_eq!(ids(&plan(&q, 0, &[], 2, &gpus, 1)), [("a", Some(0)), ("b", Some(1)), ("d", None)]);
        // GPU 0 held by a running run: the first GPU run gets GPU 1, cuda:1 and cuda:0 wait.
        assert_eq!(ids(&plan(&q, 0, &[0], 2, &gpus, 1)), [("a", Some(1)), ("d", None)]);
        // Every GPU busy and the cores full: nothing starts.
        assert!(plan(&q, 2, &[0, 1], 2, &gpus, 1).is_empty());
        // Two runs per GPU: the least loaded GPU first, then a second run on each.
        assert_eq!(
            ids(&plan(&q, 2, &[0], 2, &gpus, 2)),
            [("a", Some(1)), ("b", Some(0)), ("c", Some(1))],
            "a → the idle GPU 1, b → GPU 0's second place, c → GPU 1's second, e waits"
        );
    }

    /// FIFO on the CPU: a run that needs more cores than are free waits at the head of the
    /// queue, and the one-core runs behind it wait too, instead of taking each core as it frees.
    #[test]
    fn a_cpu_run_waiting_for_cores_is_not_overtaken() {
        let q: Vec<(String, Need)> =
            [("base", 2), ("s1", 1), ("s2", 1)].iter().map(|(i, c)| (i.to_string(), Need::Cpu(*c))).collect();
        assert!(plan(&q, 1, &[], 2, &[], 1).is_empty(), "one core busy: the base waits, and so do s1 and s2");
        assert_eq!(ids(&plan(&q, 0, &[], 2, &[], 1)), [("base", None)], "the cores free: the base first");
        // Runs that fit start in order while nothing ahead of them waits.
        let q2: Vec<(String, Need)> =
            [("s1", 1), ("s2", 1), ("base", 2)].iter().map(|(i, c)| (i.to_string(), Need::Cpu(*c))).collect();
        assert_eq!(ids(&plan(&q2, 0, &[], 2, &[], 1)), [("s1", None), ("s2", None)]);
        // A GPU run behind a waiting CPU run still starts.
        let q3 = vec![("base".to_string(), Need::Cpu(2)), ("g".to_string(), Need::Gpu(None))];
        assert_eq!(ids(&plan(&q3, 1, &[], 2, &[0], 1)), [("g", Some(0))]);
    }

    #[test]
    fn auto_is_a_cpu_run_where_there_is_no_gpu() {
        assert_eq!(need_of(dev("auto"), 1, 2, &[]), Need::Cpu(1));
        assert_eq!(need_of(dev("auto"), 0, 2, &[]), Need::Cpu(2), "threads 0 takes the whole budget");
        assert_eq!(need_of(dev("auto"), 1, 2, &[3]), Need::Gpu(None));
        assert_eq!(need_of(dev("cuda:2"), 1, 2, &[]), Need::Gpu(Some(2)));
        // A GPU the queue does not have never starts (its run stays queued, visibly).
        let q = vec![("x".to_string(), need_of(dev("cuda:2"), 1, 2, &[0]))];
        assert!(plan(&q, 0, &[], 2, &[0], 1).is_empty());
    }
}

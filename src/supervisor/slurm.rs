//! The Slurm launcher: a run whose config says `launcher = "slurm"` is not started by a local
//! monitor but submitted with `sbatch`; Slurm queues it and runs, on a compute node, the same
//! monitor a local run has (`mixscope _supervise RUN --runs ROOT`), which starts the trainer,
//! records how it ended and then submits whatever was waiting for it. The run directory must
//! be on a filesystem the login node and the compute nodes share.
//!
//! What mixscope remembers of a run's jobs is `<run>/slurm.jsonl`, append-only: one line per
//! submission (`job`, `time`, the `queued_at` of the status event it answers) and one per job
//! mixscope cancelled itself (`cancelled`: pause or stop). A run's state is its events, as for
//! a local run, corrected by what Slurm says of its latest job: pending jobs are `queued` with
//! Slurm's reason, running jobs hold the run alive, and a job Slurm ended (TIMEOUT,
//! OUT_OF_MEMORY, CANCELLED by someone else, NODE_FAIL, ...) makes the run `failed` with
//! Slurm's reason. That verdict is written to events.jsonl once, so it survives Slurm
//! forgetting the job.
//!
//! Job states come from one `squeue --states=all` call for every job asked about, falling back
//! to `sacct` for jobs squeue no longer knows; answers are cached for a second or two.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::{Loaded, RunConfig, SlurmSection};
use crate::runs::events::{Body, Event, EventWriter, State};
use crate::runs::RunDir;

/// The file of a run's Slurm jobs.
pub const JOBS_FILE: &str = "slurm.jsonl";

/// Whether a config submits to Slurm.
pub fn is_slurm(cfg: &RunConfig) -> bool {
    cfg.launcher == crate::config::Launcher::Slurm
}

/// One line of `slurm.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: String,
    pub time: f64,
    /// The `queued` status event this submission answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<f64>,
    /// Set on the line written when mixscope cancelled the job itself: `pause` or `stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<String>,
}

/// A run's latest job.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    pub job: String,
    pub submitted: f64,
    pub queued_at: Option<f64>,
    /// Why mixscope cancelled it, if it did.
    pub cancelled: Option<String>,
    /// How many jobs the run has had.
    pub jobs: usize,
}

/// Every line of a run's `slurm.jsonl` (unreadable lines are skipped).
pub fn records(run: &RunDir) -> Vec<JobRecord> {
    let Ok(text) = std::fs::read_to_string(run.path.join(JOBS_FILE)) else {
        return Vec::new();
    };
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The run's latest job, if it was ever submitted.
pub fn current(run: &RunDir) -> Option<Current> {
    let recs = records(run);
    let jobs = recs.iter().filter(|r| r.cancelled.is_none()).count();
    let last = recs.iter().rev().find(|r| r.cancelled.is_none())?;
    let cancelled =
        recs.iter().rev().find(|r| r.job == last.job && r.cancelled.is_some()).and_then(|r| r.cancelled.clone());
    Some(Current { job: last.job.clone(), submitted: last.time, queued_at: last.queued_at, cancelled, jobs })
}

fn append_record(run: &RunDir, rec: &JobRecord) -> Result<()> {
    use std::io::Write;
    let path = run.path.join(JOBS_FILE);
    let mut f = crate::util::open_append_private(&path)?;
    let mut line = serde_json::to_string(rec)?;
    line.push('\n');
    f.write_all(line.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    f.sync_data().ok();
    Ok(())
}

/// What Slurm says of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobInfo {
    pub job: String,
    /// Slurm's state name: PENDING, RUNNING, COMPLETED, TIMEOUT, ...
    pub state: String,
    /// Slurm's reason (why a job pends, or why it ended), when it gives one.
    pub reason: Option<String>,
    /// The node(s) it runs or ran on.
    pub node: Option<String>,
}

/// How a job's state counts for its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for an allocation (or for its nodes to boot).
    Pending,
    /// Its processes live.
    Running,
    /// Ended normally: the run's own events say how.
    Completed,
    /// Slurm ended it (or it never started): TIMEOUT, OUT_OF_MEMORY, CANCELLED, NODE_FAIL, ...
    Ended,
}

impl Phase {
    /// The phase of a Slurm state name.
    pub fn of(state: &str) -> Phase {
        match state {
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" => Phase::Pending,
            "RUNNING" | "COMPLETING" | "SUSPENDED" | "STOPPED" | "SIGNALING" | "STAGE_OUT" | "RESIZING" => {
                Phase::Running
            }
            "COMPLETED" => Phase::Completed,
            _ => Phase::Ended,
        }
    }
}

impl JobInfo {
    pub fn phase(&self) -> Phase {
        Phase::of(&self.state)
    }

    /// `job 12 TIMEOUT on node3 (reason)`, as a failed run's message says it.
    pub fn describe(&self) -> String {
        let mut s = format!("Slurm job {} {}", self.job, self.state);
        if let Some(n) = &self.node {
            s.push_str(&format!(" on {n}"));
        }
        if let Some(r) = &self.reason {
            s.push_str(&format!(" ({r})"));
        }
        s
    }
}

/// Parse `squeue -o '%i|%T|%r|%N'` or `sacct -P -o JobID,State,Reason,NodeList` lines.
pub fn parse_states(text: &str) -> Vec<JobInfo> {
    let clean = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s != "None" && s != "(null)" && s != "None assigned").then(|| s.to_string())
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('|');
            let job = f.next()?.trim().to_string();
            // sacct: "CANCELLED by 1000"; the state is the first word.
            let state = f.next()?.split_whitespace().next()?.to_string();
            if job.is_empty() || job.contains('.') {
                return None; // a job step (sacct without -X)
            }
            Some(JobInfo { job, state, reason: f.next().and_then(clean), node: f.next().and_then(clean) })
        })
        .collect()
}

fn run_tool(tool: &str, args: &[String]) -> Result<std::process::Output> {
    Command::new(tool).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!("{tool} not found: launcher = \"slurm\" needs Slurm's commands on PATH (a login node)")
        } else {
            anyhow::anyhow!("running {tool}: {e}")
        }
    })
}

/// Ask Slurm about jobs: one `squeue` call, then `sacct` for the jobs squeue has forgotten.
/// Jobs neither knows are absent from the answer.
pub fn query(ids: &[String]) -> Result<HashMap<String, JobInfo>> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let list = ids.join(",");
    let o = run_tool(
        "squeue",
        &["-h".into(), "--states=all".into(), "-o".into(), "%i|%T|%r|%N".into(), "-j".into(), list],
    )?;
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && !err.contains("Invalid job id") {
        anyhow::bail!("squeue failed: {}", err.trim());
    }
    for j in parse_states(&String::from_utf8_lossy(&o.stdout)) {
        out.insert(j.job.clone(), j);
    }
    let missing: Vec<&String> = ids.iter().filter(|i| !out.contains_key(*i)).collect();
    if !missing.is_empty() {
        let list = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        let args = ["-n", "-P", "-X", "-o", "JobID,State,Reason,NodeList", "-j", &list];
        // Clusters without accounting say so on stderr; the events then decide alone.
        if let Ok(o) = run_tool("sacct", &args.map(String::from)) {
            if o.status.success() {
                for j in parse_states(&String::from_utf8_lossy(&o.stdout)) {
                    out.entry(j.job.clone()).or_insert(j);
                }
            }
        }
    }
    Ok(out)
}

type Cache = HashMap<String, (Instant, Option<JobInfo>)>;
static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// How long an answer from Slurm is reused.
fn max_age() -> Duration {
    let ms = std::env::var("MIXSCOPE_SLURM_POLL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500);
    Duration::from_millis(ms)
}

/// Ask Slurm about every job in `ids` that was not asked about recently, in one batch.
pub fn prefetch(ids: &[String]) {
    let now = Instant::now();
    let age = max_age();
    let stale: Vec<String> = {
        let guard = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        ids.iter()
            .filter(|i| guard.as_ref().and_then(|c| c.get(*i)).is_none_or(|(t, _)| now.duration_since(*t) > age))
            .cloned()
            .collect()
    };
    if stale.is_empty() {
        return;
    }
    // Slurm unreachable: remember "unknown" briefly rather than asking on every frame.
    let answer = query(&stale).unwrap_or_default();
    let mut guard = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    for id in stale {
        let info = answer.get(&id).cloned();
        cache.insert(id, (now, info));
    }
}

/// Forget cached answers (after mixscope itself changed a job).
pub fn forget(id: &str) {
    if let Some(c) = CACHE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        c.remove(id);
    }
}

/// Whether [`info`] asks Slurm itself when its answer is stale (the CLI), or only reads what
/// a background thread keeps fresh ([`query_in_background`], the TUI).
static INLINE: AtomicBool = AtomicBool::new(true);
/// The jobs the background thread keeps fresh.
static WANTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// From now on Slurm is asked by a thread of its own, every [`max_age`], about the jobs last
/// given to [`want`]; [`info`] only reads its answers. The TUI's event loop calls this, so that
/// `squeue` / `sacct` never run on the thread that draws.
pub fn query_in_background() {
    if !INLINE.swap(false, Ordering::SeqCst) {
        return;
    }
    std::thread::spawn(|| loop {
        let ids = WANTED.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !ids.is_empty() {
            prefetch(&ids);
        }
        std::thread::sleep(max_age().max(Duration::from_millis(200)) / 2);
    });
}

/// The jobs whose state the caller will read next: asked about now (inline mode), or handed to
/// the background thread ([`query_in_background`]).
pub fn want(ids: &[String]) {
    if INLINE.load(Ordering::SeqCst) {
        prefetch(ids);
    } else {
        *WANTED.lock().unwrap_or_else(|p| p.into_inner()) = ids.to_vec();
    }
}

/// What Slurm says of a job (cached; see [`prefetch`]).
pub fn info(id: &str) -> Option<JobInfo> {
    if INLINE.load(Ordering::SeqCst) {
        prefetch(&[id.to_string()]);
    }
    CACHE.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|c| c.get(id)).and_then(|(_, i)| i.clone())
}

/// The Slurm side of a run, as `ls --json` and the TUI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlurmView {
    pub job: String,
    /// Slurm's state of the job (absent when Slurm no longer knows it or cannot be reached).
    pub state: Option<String>,
    pub reason: Option<String>,
    pub node: Option<String>,
    /// Jobs submitted for this run so far (a resume or a requeue submits another).
    pub jobs: usize,
}

impl SlurmView {
    /// `job 12@node3`, or `job 12` while it has no node.
    pub fn short(&self) -> String {
        match &self.node {
            Some(n) => format!("job {}@{n}", self.job),
            None => format!("job {}", self.job),
        }
    }
}

/// A run's state with Slurm's word on its latest job: `last` is the last status event's state
/// and message, `alive` whether a local lock holds the run. Returns the corrected pair, the
/// liveness, the view, and a failure to record when Slurm ended the job behind the run's back.
pub struct Overlay {
    pub last: Option<(State, Option<String>)>,
    pub alive: bool,
    pub view: Option<SlurmView>,
    /// Slurm killed the job and the run's events do not say so yet.
    pub record: Option<String>,
}

/// `queued_at` is the time of the run's last `queued` status event.
pub fn overlay(run: &RunDir, last: Option<(State, Option<String>)>, queued_at: Option<f64>, alive: bool) -> Overlay {
    let Some(cur) = current(run) else {
        return Overlay { last, alive, view: None, record: None };
    };
    let info = info(&cur.job);
    judge(&cur, info.as_ref(), last, queued_at, alive)
}

/// The decision of [`overlay`], apart from where its inputs come from.
pub fn judge(
    cur: &Current,
    info: Option<&JobInfo>,
    last: Option<(State, Option<String>)>,
    queued_at: Option<f64>,
    alive: bool,
) -> Overlay {
    let view = Some(SlurmView {
        job: cur.job.clone(),
        state: info.map(|i| i.state.clone()),
        reason: info.and_then(|i| i.reason.clone()),
        node: info.and_then(|i| i.node.clone()),
        jobs: cur.jobs,
    });
    // A job older than the run's last queue request (a resume not submitted yet) says
    // nothing about the run any more.
    let superseded = match (queued_at, cur.queued_at) {
        (Some(q), Some(c)) => q > c + 1e-6,
        (Some(_), None) => true,
        _ => false,
    };
    let (Some(info), false) = (info, superseded) else {
        return Overlay { last, alive, view, record: None };
    };
    let last_state = last.as_ref().map(|(s, _)| *s);
    match info.phase() {
        Phase::Pending => {
            let mut last = last;
            if let Some((State::Queued, msg)) = &mut last {
                let why = info.reason.as_deref().unwrap_or("waiting");
                *msg = Some(format!("Slurm job {} pending: {why}", info.job));
            }
            Overlay { last, alive, view, record: None }
        }
        Phase::Running => Overlay { last, alive: true, view, record: None },
        Phase::Completed => Overlay { last, alive, view, record: None },
        Phase::Ended => {
            // Ended by mixscope's own scancel (the run's events say paused or stopped), or after
            // the trainer finished: nothing to correct.
            if cur.cancelled.is_some() || matches!(last_state, Some(State::Finished)) {
                return Overlay { last, alive, view, record: None };
            }
            let why = info.describe();
            let recorded =
                matches!(&last, Some((State::Failed, Some(m))) if m.starts_with(&format!("Slurm job {} ", info.job)));
            let record = (!recorded).then(|| why.clone());
            Overlay { last: Some((State::Failed, Some(why))), alive, view, record }
        }
    }
}

/// Write Slurm's verdict on a run's job to its events, once (several readers may race).
pub fn record_failure(run: &RunDir, why: &str) -> Result<()> {
    let _guard = super::GlobalLock::take(&run.path.join("slurm.lock"))?;
    let (events, _, _) = crate::runs::events::read_all(&run.events_path())?;
    let last = events.iter().rev().find_map(|e| match &e.body {
        Body::Status { state, message } => Some((*state, message.clone())),
        _ => None,
    });
    if matches!(&last, Some((State::Failed, Some(m))) if m == why) {
        return Ok(());
    }
    let step = events.iter().map(|e| e.step).max().unwrap_or(0);
    let mut w = EventWriter::open(&run.events_path())?;
    w.write(&Event::new(step, Body::Status { state: State::Failed, message: Some(why.to_string()) }))?;
    w.sync()
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// The `sbatch` options of a run (without the script).
pub fn sbatch_options(cfg: &RunConfig, run: Option<&RunDir>) -> Vec<String> {
    let sl = cfg.slurm.clone().unwrap_or_default();
    let mut a = Vec::new();
    let name = cfg.name.clone().or_else(|| run.map(|r| r.id())).unwrap_or_else(|| "run".into());
    a.push(format!("--job-name=mixscope:{name}"));
    if let Some(r) = run {
        a.push(format!("--output={}", r.path.join("slurm-%j.log").display()));
        a.push(format!("--chdir={}", r.path.display()));
    }
    a.push("--open-mode=append".into());
    let cpus = sl.cpus.unwrap_or(if cfg.threads > 0 { cfg.threads as u32 } else { 1 });
    a.push(format!("--cpus-per-task={cpus}"));
    for (flag, v) in
        [("partition", &sl.partition), ("account", &sl.account), ("qos", &sl.qos), ("time", &sl.time), ("mem", &sl.mem)]
    {
        if let Some(v) = v {
            a.push(format!("--{flag}={v}"));
        }
    }
    let gpus = sl.gpus.unwrap_or(if cfg.device.is_cuda() { 1 } else { 0 });
    if gpus > 0 {
        match &sl.gpu_type {
            Some(t) => a.push(format!("--gres=gpu:{t}:{gpus}")),
            None => a.push(format!("--gres=gpu:{gpus}")),
        }
    }
    a.extend(sl.extra.iter().cloned());
    a
}

/// The batch script: the run's monitor, with the run's CPU thread budget.
pub fn job_script(cfg: &RunConfig, run: &RunDir, root: &Path, exe: &Path) -> String {
    let threads = if cfg.threads > 0 { cfg.threads.to_string() } else { "${SLURM_CPUS_PER_TASK:-1}".into() };
    format!(
        "#!/bin/sh\n\
         # mixscope run {id}: the Slurm job's script (rewritten at each submission).\n\
         # The monitor starts the trainer, records how it ended and submits runs waiting on it.\n\
         export RAYON_NUM_THREADS={threads}\n\
         unset MIXSCOPE_DEVICE\n\
         exec {exe} _supervise {run} --runs {root}\n",
        id = run.id(),
        exe = quote(exe),
        run = quote(&run.path),
        root = quote(root),
    )
}

fn exe_for(sl: Option<&SlurmSection>) -> Result<PathBuf> {
    match sl.and_then(|s| s.exe.clone()) {
        Some(p) => Ok(p),
        None => super::exe(),
    }
}

/// Submit a queued run: write its batch script, `sbatch` it and record the job. Returns the
/// job id.
pub fn submit(root: &Path, run: &RunDir, cfg: &RunConfig, queued_at: Option<f64>) -> Result<String> {
    let exe = exe_for(cfg.slurm.as_ref())?;
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let run = RunDir::new(std::fs::canonicalize(&run.path).unwrap_or_else(|_| run.path.clone()));
    let script = run.path.join("slurm-job.sh");
    crate::util::write_atomic(&script, job_script(cfg, &run, &root, &exe).as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))?;
    }
    let mut args = vec!["--parsable".to_string()];
    args.extend(sbatch_options(cfg, Some(&run)));
    args.push(script.display().to_string());
    let o = run_tool("sbatch", &args)?;
    if !o.status.success() {
        anyhow::bail!("sbatch refused the job: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    let out = String::from_utf8_lossy(&o.stdout);
    let job = out.trim().split(';').next().unwrap_or("").trim().to_string();
    if job.is_empty() || !job.chars().all(|c| c.is_ascii_digit() || c == '_') {
        anyhow::bail!("sbatch answered '{}' instead of a job id", out.trim());
    }
    append_record(&run, &JobRecord { job: job.clone(), time: crate::util::now_secs(), queued_at, cancelled: None })?;
    forget(&job);
    Ok(job)
}

/// Cancel a run's job with `scancel`, recording that mixscope did it (`why`: pause or stop).
pub fn cancel(run: &RunDir, job: &str, why: &str) -> Result<()> {
    append_record(
        run,
        &JobRecord { job: job.into(), time: crate::util::now_secs(), queued_at: None, cancelled: Some(why.into()) },
    )?;
    let o = run_tool("scancel", &[job.to_string()])?;
    if !o.status.success() {
        anyhow::bail!("scancel {job}: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    forget(job);
    Ok(())
}

/// Check, before anything is created, that Slurm would take the job (`sbatch --test-only`):
/// a partition, account or time limit it refuses is bad input naming the config's `[slurm]`.
pub fn check(loaded: &Loaded) -> Result<()> {
    let mut args = vec!["--test-only".to_string()];
    args.extend(sbatch_options(&loaded.config, None));
    args.push("--wrap=true".into());
    let o = run_tool("sbatch", &args).map_err(|e| loaded.field_error("launcher", e))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let err = err.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join(" ");
        let key = if loaded.config.slurm.is_some() { "slurm" } else { "launcher" };
        return Err(loaded.field_error(key, format!("sbatch would refuse the job: {err}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(cancelled: Option<&str>) -> Current {
        Current {
            job: "12".into(),
            submitted: 1.0,
            queued_at: Some(1.0),
            cancelled: cancelled.map(String::from),
            jobs: 1,
        }
    }
    fn job(state: &str, reason: Option<&str>) -> JobInfo {
        JobInfo { job: "12".into(), state: state.into(), reason: reason.map(String::from), node: Some("n1".into()) }
    }

    #[test]
    fn squeue_and_sacct_lines_parse() {
        let j = parse_states(
            "12|PENDING|Resources|\n13|RUNNING|None|n1\n14|CANCELLED by 1000||n2\n14.batch|CANCELLED||n2\n",
        );
        assert_eq!(j.len(), 3);
        assert_eq!(
            j[0],
            JobInfo { job: "12".into(), state: "PENDING".into(), reason: Some("Resources".into()), node: None }
        );
        assert_eq!(j[1].reason, None, "None is no reason");
        assert_eq!(j[2].state, "CANCELLED");
        assert_eq!(j[2].phase(), Phase::Ended);
        assert_eq!(job("COMPLETING", None).phase(), Phase::Running);
        assert_eq!(job("OUT_OF_MEMORY", None).phase(), Phase::Ended);
    }

    #[test]
    fn slurm_states_map_to_run_states() {
        // Pending: queued, with Slurm's reason.
        let o =
            judge(&cur(None), Some(&job("PENDING", Some("Priority"))), Some((State::Queued, None)), Some(1.0), false);
        assert_eq!(o.last, Some((State::Queued, Some("Slurm job 12 pending: Priority".into()))));
        assert!(!o.alive);
        // Running before the trainer wrote anything: alive.
        let o = judge(&cur(None), Some(&job("RUNNING", None)), Some((State::Queued, None)), Some(1.0), false);
        assert!(o.alive);
        assert_eq!(o.view.unwrap().short(), "job 12@n1");
        // Killed by Slurm while the run said running: failed with Slurm's reason, recorded once.
        let o = judge(&cur(None), Some(&job("TIMEOUT", None)), Some((State::Running, None)), Some(1.0), false);
        assert_eq!(o.last, Some((State::Failed, Some("Slurm job 12 TIMEOUT on n1".into()))));
        assert_eq!(o.record.as_deref(), Some("Slurm job 12 TIMEOUT on n1"));
        let o = judge(&cur(None), Some(&job("TIMEOUT", None)), o.last.clone(), Some(1.0), false);
        assert_eq!(o.record, None, "already recorded");
        // The trainer's own stop on SIGTERM does not hide that Slurm cancelled the job.
        let o = judge(
            &cur(None),
            Some(&job("CANCELLED", None)),
            Some((State::Stopped, Some("SIGTERM".into()))),
            Some(1.0),
            false,
        );
        assert_eq!(o.last.unwrap().0, State::Failed);
        // Cancelled by mixscope (pause of a pending job): the events decide.
        let o =
            judge(&cur(Some("pause")), Some(&job("CANCELLED", None)), Some((State::Paused, None)), Some(1.0), false);
        assert_eq!(o.last.unwrap().0, State::Paused);
        assert_eq!(o.record, None);
        // Completed: the events decide (finished, paused, ...).
        let o = judge(&cur(None), Some(&job("COMPLETED", None)), Some((State::Paused, None)), Some(1.0), false);
        assert_eq!(o.last.unwrap().0, State::Paused);
        // Resumed after Slurm killed it, not submitted again yet: the old job is not the run's.
        let o = judge(&cur(None), Some(&job("TIMEOUT", None)), Some((State::Queued, None)), Some(5.0), false);
        assert_eq!(o.last, Some((State::Queued, None)));
        assert_eq!(o.record, None);
        // Unknown to Slurm: the events alone.
        let o = judge(&cur(None), None, Some((State::Running, None)), Some(1.0), true);
        assert!(o.alive);
        assert_eq!(o.view.unwrap().state, None);
    }

    #[test]
    fn sbatch_options_follow_the_config() {
        let mut cfg = RunConfig {
            threads: 2,
            device: crate::config::DeviceSpec::Cuda(None),
            name: Some("a".into()),
            ..RunConfig::default()
        };
        cfg.slurm = Some(SlurmSection {
            partition: Some("gpu".into()),
            time: Some("1:00:00".into()),
            gpu_type: Some("h100".into()),
            extra: vec!["--exclusive".into()],
            ..SlurmSection::default()
        });
        let a = sbatch_options(&cfg, None);
        for want in [
            "--job-name=mixscope:a",
            "--cpus-per-task=2",
            "--partition=gpu",
            "--time=1:00:00",
            "--gres=gpu:h100:1",
            "--exclusive",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
        }
        cfg.device = crate::config::DeviceSpec::Cpu;
        assert!(!sbatch_options(&cfg, None).iter().any(|x| x.starts_with("--gres")), "a CPU run asks for no GPU");
    }

    #[test]
    fn the_job_script_quotes_paths() {
        let cfg = RunConfig::default();
        let run = RunDir::new("/runs/it's here");
        let s = job_script(&cfg, &run, Path::new("/runs"), Path::new("/bin/mixscope"));
        assert!(s.contains(r"'/runs/it'\''s here'"), "{s}");
        assert!(s.contains("RAYON_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}"), "{s}");
    }
}

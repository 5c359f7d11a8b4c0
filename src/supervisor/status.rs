//! A run's state as the supervisor sees it: the run directory's summary
//! ([`crate::runs::summary`]) with, for a Slurm run, Slurm's word on its latest job.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::runs::events::State;
use crate::runs::summary::{self, Summary};
use crate::runs::RunDir;

pub use crate::runs::summary::{damaged_message, is_alive, stderr_tail};

/// What `ls`, the TUI and the scheduler know about a run: its summary, and Slurm's view of its
/// latest job for a Slurm run (its fields read through: `status.step` is the summary's).
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    #[serde(flatten)]
    pub summary: Summary,
    /// A Slurm run's latest job: id, Slurm's state and reason, node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm: Option<super::slurm::SlurmView>,
    /// A failure Slurm caused that the run's events do not say yet ([`Observed::unrecorded`]).
    #[serde(skip)]
    pub unrecorded: Option<String>,
}

impl std::ops::Deref for RunStatus {
    type Target = Summary;
    fn deref(&self) -> &Summary {
        &self.summary
    }
}

impl std::ops::DerefMut for RunStatus {
    fn deref_mut(&mut self) -> &mut Summary {
        &mut self.summary
    }
}

/// A run's state as [`observe`] finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub state: State,
    pub message: Option<String>,
    /// A trainer (or its Slurm job) holds the run.
    pub alive: bool,
    pub slurm: Option<super::slurm::SlurmView>,
    /// Slurm ended the run's job behind its back and its events do not say so yet: the words
    /// [`super::record_verdicts`] writes (readers only read).
    pub unrecorded: Option<String>,
}

/// A run's state as everyone shows it: the last status event (its state, message and the time of
/// the last `queued` event), the processes' locks and, for a Slurm run, Slurm's word on its
/// latest job. A failure Slurm caused that the events do not yet say is returned, not written.
pub fn observe(run: &RunDir, slurm: bool, last: Option<(State, Option<String>)>, queued_at: Option<f64>) -> Observed {
    let mut alive = summary::is_alive(run);
    let mut last = last;
    let mut view = None;
    let mut unrecorded = None;
    if slurm {
        let o = super::slurm::overlay(run, last, queued_at, alive);
        unrecorded = o.record;
        last = o.last;
        alive = o.alive;
        view = o.view;
    }
    let (state, message) = summary::derive_state(run, last.as_ref().map(|l| l.0), last.and_then(|l| l.1), alive);
    Observed { state, message, alive, slurm: view, unrecorded }
}

/// A run's state from its directory and, for a Slurm run, from Slurm.
pub fn status(run: &RunDir) -> Result<RunStatus> {
    with_slurm(summary::read(run, super::slurm::is_slurm)?)
}

fn with_slurm(s: Summary) -> Result<RunStatus> {
    let mut st = RunStatus { summary: s, slurm: None, unrecorded: None };
    if st.config.as_ref().is_some_and(super::slurm::is_slurm) {
        let run = RunDir::new(&st.dir);
        let o = observe(&run, true, st.recorded.clone(), st.queued_at);
        (st.summary.state, st.summary.message, st.summary.alive) = (o.state, o.message, o.alive);
        (st.slurm, st.unrecorded) = (o.slurm, o.unrecorded);
    }
    Ok(st)
}

/// The status of every run under a root (unreadable runs are reported as failed).
pub fn list(root: &Path) -> Result<Vec<RunStatus>> {
    let runs = crate::runs::list(root)?;
    // One question to Slurm for every Slurm run's latest job.
    let jobs: Vec<String> = runs.iter().filter_map(|r| super::slurm::current(r).map(|c| c.job)).collect();
    if !jobs.is_empty() {
        super::slurm::prefetch(&jobs);
    }
    let mut out = Vec::with_capacity(runs.len());
    for r in runs {
        let st = summary::read(&r, super::slurm::is_slurm).and_then(with_slurm);
        out.push(st.unwrap_or_else(|e| RunStatus {
            summary: summary::unreadable(&r, &e),
            slurm: None,
            unrecorded: None,
        }));
    }
    Ok(out)
}

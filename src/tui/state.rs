//! The TUI's state, as plain data: the view settings, the selection and the run tree's rows,
//! the log, and the requests for the event loop. The reducer (`update.rs`) changes it; panes
//! read it through `view::Ui`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::store::{RunData, XAxis};
use crate::data::lang;
use crate::runs::group::Group;

/// Which pane has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Focus {
    #[default]
    Runs,
    Loss,
    Langs,
}

/// Which languages the languages pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scripts {
    All,
    Latin,
    NonLatin,
}

impl Scripts {
    pub fn label(self) -> &'static str {
        match self {
            Scripts::All => "all scripts",
            Scripts::Latin => "Latin",
            Scripts::NonLatin => "non-Latin",
        }
    }
    pub fn admits(self, code: &str) -> bool {
        let latin = lang::get(code).is_some_and(|l| l.is_latin());
        match self {
            Scripts::All => true,
            Scripts::Latin => latin,
            Scripts::NonLatin => !latin,
        }
    }
}

/// Which steps the charts span (the loss, languages and compare panes alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XRange {
    /// A fork continues its ancestors' curves (from the root's first step).
    #[default]
    Lineage,
    /// The run's own steps (a fork's from its fork step).
    Own,
    /// The last N % of the run's own steps.
    Recent(u8),
}

impl XRange {
    /// The share of the run's own steps the third setting shows.
    pub const RECENT: u8 = 25;

    pub fn next(self) -> XRange {
        match self {
            XRange::Lineage => XRange::Own,
            XRange::Own => XRange::Recent(XRange::RECENT),
            XRange::Recent(_) => XRange::Lineage,
        }
    }

    pub fn label(self) -> String {
        match self {
            XRange::Lineage => "lineage".into(),
            XRange::Own => "own steps".into(),
            XRange::Recent(p) => format!("last {p}%"),
        }
    }

    /// The first step of a run's own curves the range shows (a fork's ancestors' curves are
    /// drawn with [`XRange::Lineage`] only).
    pub fn from_step(self, r: &RunData) -> u64 {
        let first = r.fork_step.or((!r.loss.is_empty()).then(|| r.loss.steps.at(0))).unwrap_or(0);
        match self {
            XRange::Lineage => 0,
            XRange::Own => first,
            XRange::Recent(p) => {
                let last = r.step().max(first);
                last - (last - first) * u64::from(p.min(100)) / 100
            }
        }
    }
}

/// What the right side of the screen shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// Loss over the languages pane.
    Main,
    /// Loss over the compare view of the marked runs.
    Compare,
    /// The selected sweep's view (its id).
    Sweep(String),
}

/// A row of the run tree, by what it shows (to find it again when the tree is rebuilt, or in
/// the next session).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    Run(String),
    /// A group, and its first run (selected when the group is no more).
    Group(String, String),
    Sweep(String),
}

/// A line of the log strip.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub time: f64,
    pub text: String,
    pub error: bool,
}

/// One side of the compare view: a run, or a group's members.
#[derive(Debug, Clone)]
pub struct Side<'a> {
    /// The run's name, or the group's label (`name ×K`).
    pub label: String,
    pub group: Option<&'a Group>,
    pub runs: Vec<&'a RunData>,
}

impl Side<'_> {
    /// The side's runs' ids (what derived data is keyed by).
    pub fn ids(&self) -> Vec<String> {
        self.runs.iter().map(|r| r.id.clone()).collect()
    }
}

/// Something the event loop must do outside the UI thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Pause(String),
    Resume(String),
    Stop(String),
    /// Fork one run: once, or once per seed (`seeds` as `--seeds` reads it).
    Fork {
        run: String,
        at: Option<u64>,
        spec: String,
        name: String,
        seeds: Option<String>,
    },
    /// Fork every member of a group at one step with one mixture (`supervisor::fork_group`).
    ForkGroup {
        label: String,
        members: Vec<String>,
        at: Option<u64>,
        spec: String,
        name: String,
    },
    /// Change the note and tags of runs (`runs::notes::update`, each run under its lock).
    Notes {
        /// The run's name or the group's label (for the log).
        label: String,
        runs: Vec<String>,
        change: crate::runs::notes::Change,
    },
    /// Launch a config (once, or once per seed: `supervisor::launch_seeds`) or a sweep file.
    Launch {
        config: PathBuf,
        sets: Vec<String>,
        seeds: Option<String>,
    },
    Demo,
    /// Draw a pane's figure as `report` does and write it as SVG and PNG.
    Export(crate::report::export::Export),
}

/// One row of the run tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeRow {
    /// The run of this row (for a sweep's header row: its first run).
    pub run: usize,
    pub depth: usize,
    /// Tree-drawing prefix, e.g. "│ └".
    pub prefix: String,
    /// A sweep's header row: the sweep id; its runs follow one level deeper.
    pub sweep: Option<String>,
    /// A group's row (runs that differ only in seed): the group's id (`g:…`); its members
    /// follow one level deeper when it is expanded, then the forks of its members.
    pub group: Option<String>,
    /// A member's row: the group it is listed under.
    pub in_group: Option<String>,
    /// The run's name as the tree shows it: with its id when another run has the same name
    /// (two `mixscope train configs/demo.toml --run-dir runs/a` and `runs/b` are both "demo").
    pub label: String,
}

/// How the data is shown: what a user sets with the chart and view keys.
#[derive(Debug, Clone)]
pub struct ViewSettings {
    pub focus: Focus,
    /// The compare view of the marked runs.
    pub compare: bool,
    pub x_axis: XAxis,
    /// Which steps the charts span: the whole lineage, the run's own, or the last of them.
    pub x_range: XRange,
    pub log_y: bool,
    /// The EMA factor of the smoothed loss (0 = none).
    pub smoothing: f32,
    /// The languages pane's task.
    pub task: String,
    /// The languages pane shows held-out loss instead of the task metric.
    pub show_loss: bool,
    /// Small multiples instead of one overlay.
    pub grid: bool,
    pub scripts: Scripts,
    /// Which series of a sweep the sweep view charts (`t` steps through them).
    pub sweep_series: usize,
    /// A selected group's members drawn as thin lines under its mean and band.
    pub members: bool,
    /// The compare view marks a delta whose own interval excludes zero, instead of the
    /// Holm-adjusted marks.
    pub unadjusted: bool,
}

/// Which runs the user is looking at: the run tree, its cursor, the marks and the filter.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub rows: Vec<TreeRow>,
    pub selected: usize,
    /// Marked runs (their ids) and groups (their `g:…` ids): the sides of the compare view.
    pub marked: BTreeSet<String>,
    /// The groups whose members the tree lists (their ids).
    pub expanded: BTreeSet<String>,
    pub filter: Option<regex::Regex>,
    /// The filter `tag:NAME[,NAME]`: only the runs carrying every one of these tags.
    pub tags: Vec<String>,
    pub filter_text: String,
    /// A run to select as soon as it appears (after a fork or launch).
    pub select_when_seen: Option<String>,
    /// A row to select once it appears (the selection saved by the last session).
    pub restore: Option<Pick>,
    /// The languages table's cursor (a language code; its first row when it lists no such).
    pub lang: Option<String>,
}

//! The read-only view the panes draw from: the data, the selection, the view settings and the
//! theme, borrowed, with the questions panes ask of them (the selected run, the charted runs,
//! the compare view's sides). Panes import this, never the app or one another.

use std::collections::VecDeque;

use super::collect::system::SystemStats;
use super::derived::{self, Derived, Key};
use super::groups::{GroupAggs, Groups};
use super::keymap::Keymap;
use super::state::{Focus, LogLine, Selection, Side, View, ViewSettings};
use super::store::{EvalCurve, RunData, Store};
use super::theme::Theme;
use crate::analysis::compare;
use crate::data::lang;
use crate::report::export::{Export, Pane};
use crate::runs::group::Group;

/// What a frame is drawn from.
#[derive(Clone, Copy)]
pub struct Ui<'a> {
    pub store: &'a Store,
    pub theme: &'a Theme,
    pub keymap: &'a Keymap,
    pub sel: &'a Selection,
    pub view: &'a ViewSettings,
    pub log: &'a VecDeque<LogLine>,
    pub system: &'a SystemStats,
    pub derived: &'a Derived,
    pub groups: &'a Groups,
    pub group_aggs: &'a GroupAggs,
    /// "Now" for ages and ETAs (fixed in tests).
    pub now: f64,
    /// Ticks of the event loop (four a second).
    pub frame: u64,
    /// The runs root is still being read.
    pub loading: bool,
    /// Counts the store's changes: derived data is keyed by it.
    pub data_gen: u64,
    /// The stored answers the open samples view shows, once the collector has read them.
    pub answers: Option<&'a super::collect::answers::Answers>,
}

impl<'a> Ui<'a> {
    /// What the right side shows.
    pub fn right(&self) -> View {
        match (self.view.compare, self.selected_sweep()) {
            (false, Some(sw)) => View::Sweep(sw.to_string()),
            (true, _) => View::Compare,
            (false, None) => View::Main,
        }
    }

    /// The live runs' breath: 0 or 1, turning once a second (with the once-a-second frame,
    /// so that breathing costs no frames of its own).
    pub fn breath(&self) -> u64 {
        (self.frame / 4) % 2
    }

    /// The selected run (none when a sweep's or a group's row is selected).
    pub fn selected_run(&self) -> Option<&'a RunData> {
        self.sel
            .rows
            .get(self.sel.selected)
            .filter(|r| r.sweep.is_none() && r.group.is_none())
            .map(|r| &self.store.runs[r.run])
    }

    /// The selected group (its row in the run tree).
    pub fn selected_group(&self) -> Option<&'a Group> {
        let groups = self.groups;
        self.sel.rows.get(self.sel.selected).and_then(|r| r.group.as_deref()).and_then(|g| groups.get(g))
    }

    /// A group's members in the store.
    pub fn members(&self, g: &Group) -> Vec<&'a RunData> {
        self.groups.members(g, self.store)
    }

    /// The sides of the compare view: each marked group (its members) and each marked run, in
    /// the order of their first runs in the store.
    pub fn compare_sides(&self) -> Vec<Side<'a>> {
        let mut sides: Vec<(usize, Side)> = Vec::new();
        let pos = |id: &str| self.store.runs.iter().position(|r| r.id == id).unwrap_or(usize::MAX);
        for m in &self.sel.marked {
            if let Some(g) = self.groups.get(m) {
                let runs = self.members(g);
                if let Some(first) = runs.first() {
                    sides.push((pos(&first.id), Side { label: g.label(), group: Some(g), runs }));
                }
            } else if let Some(r) = self.store.get(m) {
                sides.push((pos(&r.id), Side { label: r.display_name().to_string(), group: None, runs: vec![r] }));
            }
        }
        sides.sort_by_key(|(p, _)| *p);
        sides.into_iter().map(|(_, s)| s).collect()
    }

    /// The groups whose curves the view draws: the selected one, or the compared ones.
    pub fn viewed_groups(&self) -> Vec<String> {
        if self.view.compare {
            return self.compare_sides().iter().filter_map(|s| s.group.map(|g| g.id.clone())).collect();
        }
        match (self.right(), self.selected_group()) {
            (View::Main, Some(g)) => vec![g.id.clone()],
            _ => Vec::new(),
        }
    }

    /// The selected sweep (its header row in the run tree).
    pub fn selected_sweep(&self) -> Option<&'a str> {
        self.sel.rows.get(self.sel.selected).and_then(|r| r.sweep.as_deref())
    }

    /// The runs of a sweep, in the order of its grid.
    pub fn sweep_runs(&self, id: &str) -> Vec<&'a RunData> {
        let mut v: Vec<&RunData> = self.store.runs.iter().filter(|r| r.sweep_id() == Some(id)).collect();
        v.sort_by(|a, b| {
            a.first_time.partial_cmp(&b.first_time).unwrap_or(std::cmp::Ordering::Equal).then(a.id.cmp(&b.id))
        });
        v
    }

    /// The runs the chart panes show: the compared ones (every member of a compared group),
    /// else the selected run, or the selected group's members.
    pub fn charted(&self) -> Vec<&'a RunData> {
        if self.view.compare {
            return self.compare_sides().into_iter().flat_map(|s| s.runs).collect();
        }
        if let Some(g) = self.selected_group() {
            return self.members(g);
        }
        self.selected_run().into_iter().collect()
    }

    /// The ancestors of a run, nearest first, with the step each was forked from.
    pub fn ancestors(&self, r: &'a RunData) -> Vec<(&'a RunData, u64)> {
        let mut out = Vec::new();
        let mut cur = r;
        while let (Some(p), Some(at)) = (&cur.parent, cur.fork_step) {
            let Some(parent) = self.store.get(p) else { break };
            out.push((parent, at));
            cur = parent;
            if out.len() > 32 {
                break;
            }
        }
        out
    }

    /// Whether the filter's regex matches a run (then it filters runs; else languages).
    pub fn filter_matches_runs(&self) -> bool {
        let Some(re) = &self.sel.filter else { return false };
        self.store.runs.iter().any(|r| re.is_match(&r.id) || r.name.as_deref().is_some_and(|n| re.is_match(n)))
    }

    /// Whether the languages pane shows a language (script filter and regex filter).
    pub fn lang_visible(&self, code: &str) -> bool {
        if !self.view.scripts.admits(code) {
            return false;
        }
        match &self.sel.filter {
            Some(re) if !self.filter_matches_runs() => re.is_match(code),
            _ => true,
        }
    }

    /// Tasks with eval curves among the charted runs.
    pub fn tasks(&self) -> Vec<String> {
        let mut v: Vec<String> = self.charted().iter().flat_map(|r| r.evals.keys().map(|(t, _)| t.clone())).collect();
        v.sort_by_key(|t| (["mr", "sm", "if", "lm"].iter().position(|x| x == t).unwrap_or(9), t.clone()));
        v.dedup();
        v
    }

    /// The curves of a run for the languages pane's task, in suite language order, filtered.
    pub fn lang_curves(&self, r: &'a RunData) -> Vec<(&'a String, &'a EvalCurve)> {
        let mut v: Vec<(&String, &EvalCurve)> = r
            .evals
            .iter()
            .filter(|((t, l), _)| *t == self.view.task && self.lang_visible(l))
            .map(|((_, l), c)| (l, c))
            .collect();
        v.sort_by_key(|(l, _)| lang::order(l));
        v
    }

    /// What the export key writes: the focused pane's figure for what it shows (the sweep
    /// view's sweep; the loss pane's runs or groups; else the languages pane's run or group,
    /// or the compared sides); an error to log when nothing is selected.
    pub fn export(&self) -> Result<Export, String> {
        let side = |label: String, runs: &[&RunData]| (label, runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
        if let View::Sweep(id) = self.right() {
            return Ok(Export { pane: Pane::Sweep, sides: Vec::new(), sweep: Some(id) });
        }
        let sides: Vec<(String, Vec<String>)> = if self.view.compare {
            self.compare_sides().iter().map(|s| side(s.label.clone(), &s.runs)).collect()
        } else if let Some(g) = self.selected_group() {
            vec![side(g.label(), &self.members(g))]
        } else if let Some(r) = self.selected_run() {
            vec![side(r.display_name().to_string(), &[r])]
        } else {
            return Err("select a run, a group or a sweep to export its figure".into());
        };
        let pane = match (self.view.focus, self.view.compare) {
            (Focus::Loss, _) => Pane::Loss,
            (_, true) => Pane::Compare,
            (_, false) => Pane::Languages,
        };
        Ok(Export { pane, sides, sweep: None })
    }

    /// The languages the focused languages table lists, in its order (its aggregate rows left
    /// out): the selected run's, the selected group's, or the compare table's.
    pub fn lang_rows(&self) -> Vec<String> {
        let mut v: Vec<String> = match self.right() {
            View::Compare => self
                .derived
                .compare
                .iter()
                .filter(|r| r.task == self.view.task && lang::get(&r.row).is_some() && self.lang_visible(&r.row))
                .map(|r| r.row.clone())
                .collect(),
            View::Main => match (self.selected_group(), self.selected_run()) {
                (Some(_), _) => self
                    .derived
                    .group_table
                    .iter()
                    .flat_map(|t| &t.rows)
                    .filter(|r| r.lang_group.is_some())
                    .map(|r| r.row.clone())
                    .collect(),
                (None, Some(r)) => self
                    .lang_curves(r)
                    .into_iter()
                    .filter(|(_, c)| !c.value.is_empty())
                    .map(|(l, _)| l.clone())
                    .collect(),
                (None, None) => Vec::new(),
            },
            View::Sweep(_) => Vec::new(),
        };
        v.sort_by_key(|l| lang::order(l));
        v.dedup();
        v
    }

    /// The language the languages table's cursor is on: the one picked, while the table lists
    /// it, else its first.
    pub fn lang_cursor(&self) -> Option<String> {
        let rows = self.lang_rows();
        match &self.sel.lang {
            Some(l) if rows.contains(l) => Some(l.clone()),
            _ => rows.into_iter().next(),
        }
    }

    /// What derived data depends on now.
    fn derive_key(&self) -> Key {
        let view = self.right();
        let sides = if self.view.compare {
            self.compare_sides().iter().map(|s| s.ids()).collect()
        } else {
            vec![self.charted().iter().map(|r| r.id.clone()).collect()]
        };
        let v = self.view;
        let table = (view == View::Main && self.selected_group().is_some())
            .then(|| (v.task.clone(), v.show_loss, v.scripts, self.sel.filter_text.clone()));
        Key { data: self.data_gen, view, sides, table }
    }

    /// Whether the derived data matches the data and the selection.
    pub fn derived_fresh(&self) -> bool {
        self.derived.key.as_ref() == Some(&self.derive_key())
    }

    /// The derived data for what is viewed now: `old` when it is still fresh, else recomputed.
    pub fn derive(&self, old: Derived) -> Derived {
        let key = self.derive_key();
        if old.key.as_ref() == Some(&key) {
            return old;
        }
        let mut d = Derived::default();
        match &key.view {
            View::Compare => {
                // Each side a run, or a group's members (`analysis::compare` takes the group's
                // mean and its across-seed interval, and marks deltas Holm-adjusted per task).
                let tables: Vec<Vec<crate::analysis::EvalTable>> = self
                    .compare_sides()
                    .iter()
                    .map(|s| s.runs.iter().map(|r| derived::eval_table(r)).collect())
                    .collect();
                let refs: Vec<Vec<&crate::analysis::EvalTable>> = tables.iter().map(|t| t.iter().collect()).collect();
                d.compare = compare(&refs);
                // What differs between their configs, from the configs the collector read.
                let sides = self.compare_sides();
                let runs: Vec<&[&RunData]> = sides.iter().map(|s| s.runs.as_slice()).collect();
                d.config_diff = derived::config_diff(&runs);
            }
            View::Sweep(id) => d.sweep = derived::sweep_analysis(id, &self.sweep_runs(id), self.store.sweep_record(id)),
            View::Main => {
                if let Some(g) = self.selected_group() {
                    let visible = |l: &str| self.lang_visible(l);
                    d.group_table =
                        Some(derived::group_table(&self.members(g), &self.view.task, self.view.show_loss, &visible));
                }
            }
        }
        d.key = Some(key);
        d
    }
}

//! Run groups on screen. [`Groups`]: which runs form groups (`runs::group`'s rule over the
//! store's configs), recomputed when the set of runs or their configs change (the store's
//! `runs_gen`), not for appended events. [`GroupAggs`]: each viewed group's curves across its
//! members, the mean and the across-seed 95 % t-interval per step (`stats::seed_mean`), kept
//! between frames and brought up to date from the members' new points only.

use std::collections::{BTreeMap, HashMap};

use crate::analysis::stats::{self, Z95};
use crate::config::RunConfig;
use crate::runs::group::{self, Group};
use crate::tui::series::Series;
use crate::tui::store::{RunData, Store};

/// The groups of two runs or more among the store's runs (a run alone is no group on screen).
#[derive(Debug, Default)]
pub struct Groups {
    /// The store's `runs_gen` the groups were computed for.
    gen: Option<u64>,
    pub list: Vec<Group>,
    by_run: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
    /// Each group's members' places in the store's runs (valid while its `runs_gen` is).
    places: Vec<Vec<usize>>,
}

impl Groups {
    /// Recompute when the store's runs or configs changed; returns whether it did.
    pub fn refresh(&mut self, store: &Store) -> bool {
        if self.gen == Some(store.runs_gen) {
            return false;
        }
        let pairs: Vec<(&str, &RunConfig)> =
            store.runs.iter().filter_map(|r| Some((r.id.as_str(), r.cfg.as_ref()?))).collect();
        self.list = group::groups(&pairs).into_iter().filter(|g| g.runs.len() >= 2).collect();
        self.by_run =
            self.list.iter().enumerate().flat_map(|(i, g)| g.runs.iter().map(move |r| (r.clone(), i))).collect();
        self.by_id = self.list.iter().enumerate().map(|(i, g)| (g.id.clone(), i)).collect();
        let at: HashMap<&str, usize> = store.runs.iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
        self.places =
            self.list.iter().map(|g| g.runs.iter().filter_map(|id| at.get(id.as_str()).copied()).collect()).collect();
        self.gen = Some(store.runs_gen);
        true
    }

    /// The group (of two runs or more) a run is a member of.
    pub fn of_run(&self, id: &str) -> Option<&Group> {
        self.by_run.get(id).map(|&i| &self.list[i])
    }

    /// A group's members in the store, without a search (their places as of the last
    /// refresh, checked).
    pub fn members<'s>(&self, g: &Group, store: &'s Store) -> Vec<&'s RunData> {
        let places = self.by_id.get(&g.id).map(|&i| &self.places[i]);
        match places {
            Some(p)
                if self.gen == Some(store.runs_gen)
                    && p.len() == g.runs.len()
                    && p.iter().zip(&g.runs).all(|(&i, id)| store.runs.get(i).is_some_and(|r| r.id == *id)) =>
            {
                p.iter().map(|&i| &store.runs[i]).collect()
            }
            _ => g.runs.iter().filter_map(|id| store.get(id)).collect(),
        }
    }

    /// A group by its id (`g:…`).
    pub fn get(&self, id: &str) -> Option<&Group> {
        self.by_id.get(id).map(|&i| &self.list[i])
    }
}

/// The t quantiles of 95 % intervals over K members, computed once per K (a quantile costs a
/// root search over the incomplete beta function: far too slow to take per step).
#[derive(Debug, Default)]
pub struct TTable(Vec<f64>);

impl TTable {
    /// `t_quantile(0.975, k − 1)` (k ≥ 2).
    pub fn get(&mut self, k: usize) -> f64 {
        if self.0.len() <= k {
            self.0.resize(k + 1, f64::NAN);
        }
        if self.0[k].is_nan() {
            self.0[k] = stats::t975(k.max(2) - 1);
        }
        self.0[k]
    }
}

/// One member's curve: its points and, for an eval value, each point's 95 % sampling interval
/// (NaN where the event carried none).
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub series: &'a Series,
    pub ci: Option<&'a [(f32, f32)]>,
}

/// A group's curve: at each step any member has a value at, the members' mean; where two or
/// more have one, the across-seed 95 % t-interval (`stats::seed_mean`, the members' mean
/// sampling variance from their intervals as its floor), NaN elsewhere.
#[derive(Debug, Clone, Default)]
pub struct BandSeries {
    pub mean: Series,
    pub lo: Series,
    pub hi: Series,
    /// Members with a value at each step of `mean`.
    pub k: Vec<u16>,
    /// The largest value the curve can take (1 for a score; none for a loss). Every curve is
    /// at least 0: the band is kept within what the values can be.
    pub cap: Option<f32>,
    /// Per member: the points folded in so far, the step of the last of them and its value.
    seen: Vec<(usize, Option<u64>, u32)>,
}

/// The group's value at one step.
#[derive(Debug, Clone, Copy)]
struct Point {
    k: u16,
    mean: f32,
    lo: f32,
    hi: f32,
}

/// The group's values at `steps` (increasing), each member read with a cursor.
fn points_at(steps: &[u64], members: &[Option<Member>], t: &mut TTable, cap: Option<f32>) -> Vec<Point> {
    let Some(&first) = steps.first() else { return Vec::new() };
    let mut cursors: Vec<usize> =
        members.iter().map(|m| m.map_or(0, |m| m.series.steps.partition_point(|s| s < first))).collect();
    let (mut values, mut vars) = (Vec::with_capacity(members.len()), Vec::with_capacity(members.len()));
    let mut out = Vec::with_capacity(steps.len());
    for &s in steps {
        values.clear();
        vars.clear();
        for (m, c) in members.iter().zip(cursors.iter_mut()) {
            let Some(m) = m else { continue };
            let n = m.series.len();
            while *c < n && m.series.steps.at(*c) < s {
                *c += 1;
            }
            if *c < n && m.series.steps.at(*c) == s {
                let y = m.series.ys[*c];
                if y.is_finite() {
                    values.push(y as f64);
                    if let Some(&(lo, hi)) = m.ci.and_then(|ci| ci.get(*c)) {
                        if lo.is_finite() && hi.is_finite() {
                            vars.push(((hi - lo) as f64 / (2.0 * Z95)).powi(2));
                        }
                    }
                }
            }
        }
        let k = values.len();
        let p = match k {
            0 => Point { k: 0, mean: f32::NAN, lo: f32::NAN, hi: f32::NAN },
            1 => Point { k: 1, mean: values[0] as f32, lo: f32::NAN, hi: f32::NAN },
            _ => {
                let floor = if vars.is_empty() { 0.0 } else { vars.iter().sum::<f64>() / vars.len() as f64 };
                match stats::seed_mean_t(&values, floor, t.get(k)) {
                    Some(e) => Point {
                        k: k as u16,
                        mean: e.value as f32,
                        lo: (e.lo as f32).max(0.0),
                        hi: cap.map_or(e.hi as f32, |c| (e.hi as f32).min(c)),
                    },
                    None => Point { k: k as u16, mean: f32::NAN, lo: f32::NAN, hi: f32::NAN },
                }
            }
        };
        out.push(p);
    }
    out
}

impl BandSeries {
    /// Bring the curve up to date with its members (in a fixed order; `None`: a member without
    /// this curve). Only the steps of points the members added since the last update are
    /// computed (and each member's last point again: a resumed run may have replaced it); a
    /// member whose earlier points changed (a run read afresh, redoing steps) starts the curve
    /// over. Returns whether anything changed.
    pub fn update(&mut self, members: &[Option<Member>], t: &mut TTable) -> bool {
        if self.seen.len() != members.len() {
            return self.rebuild(members, t);
        }
        let mut dirty: Vec<u64> = Vec::new();
        for (m, &(len, last, last_y)) in members.iter().zip(&self.seen) {
            let Some(m) = m else {
                if len > 0 {
                    return self.rebuild(members, t);
                }
                continue;
            };
            let (n, steps) = (m.series.len(), &m.series.steps);
            if n < len || (len > 0 && Some(steps.at(len - 1)) != last) {
                return self.rebuild(members, t);
            }
            // The last point folded in may have been replaced in place since (a resumed run
            // writing its step again): it is computed again whenever it changed or more came.
            let same_last = len == 0 || m.series.ys[len - 1].to_bits() == last_y;
            let from = if n > len || !same_last { len.saturating_sub(1) } else { n };
            dirty.extend((from..n).map(|i| steps.at(i)));
        }
        if dirty.is_empty() {
            return false;
        }
        dirty.sort_unstable();
        dirty.dedup();
        let last = self.mean.steps.last();
        // A step inside the curve that it does not have yet: from there on, afresh.
        if let Some(&s) = dirty.iter().find(|&&s| last.is_some_and(|l| s <= l) && self.mean.steps.position(s).is_none())
        {
            self.rebuild_from(s, members, t);
        } else {
            for (s, p) in dirty.iter().zip(points_at(&dirty, members, t, self.cap)) {
                match self.mean.steps.position(*s) {
                    Some(i) => {
                        self.mean.set(i, p.mean);
                        self.lo.set(i, p.lo);
                        self.hi.set(i, p.hi);
                        self.k[i] = p.k;
                    }
                    None => self.push(*s, p),
                }
            }
        }
        self.note_seen(members);
        true
    }

    fn push(&mut self, s: u64, p: Point) {
        self.mean.push(s, p.mean);
        self.lo.push(s, p.lo);
        self.hi.push(s, p.hi);
        self.k.push(p.k);
    }

    fn note_seen(&mut self, members: &[Option<Member>]) {
        self.seen = members
            .iter()
            .map(|m| {
                m.map_or((0, None, 0), |m| {
                    (m.series.len(), m.series.steps.last(), m.series.ys.last().map_or(0, |y| y.to_bits()))
                })
            })
            .collect();
    }

    fn rebuild(&mut self, members: &[Option<Member>], t: &mut TTable) -> bool {
        *self = BandSeries { cap: self.cap, ..BandSeries::default() };
        self.rebuild_from(0, members, t);
        self.note_seen(members);
        true
    }

    /// Recompute every step from `from` on.
    fn rebuild_from(&mut self, from: u64, members: &[Option<Member>], t: &mut TTable) {
        let keep = self.mean.steps.partition_point(|s| s < from);
        self.mean.truncate(keep);
        self.lo.truncate(keep);
        self.hi.truncate(keep);
        self.k.truncate(keep);
        let mut steps: Vec<u64> = Vec::new();
        for m in members.iter().flatten() {
            let a = m.series.steps.partition_point(|s| s < from);
            steps.extend((a..m.series.len()).map(|i| m.series.steps.at(i)));
        }
        steps.sort_unstable();
        steps.dedup();
        for (s, p) in steps.iter().zip(points_at(&steps, members, t, self.cap)) {
            self.push(*s, p);
        }
    }

    /// The latest step where two members or more have a value: (step, K, mean, lo, hi).
    pub fn latest_band(&self) -> Option<(u64, u16, f64, f64, f64)> {
        let i = (0..self.k.len()).rev().find(|&i| self.k[i] >= 2)?;
        Some((self.mean.steps.at(i), self.k[i], self.mean.ys[i] as f64, self.lo.ys[i] as f64, self.hi.ys[i] as f64))
    }
}

/// A (task, language) eval curve across a group's members.
#[derive(Debug, Clone, Default)]
pub struct EvalBand {
    pub value: BandSeries,
    pub loss: BandSeries,
    pub group: String,
    pub metric: String,
    pub n: u64,
}

/// A group's curves across its members, kept between frames.
#[derive(Debug, Clone, Default)]
pub struct GroupAgg {
    /// The members it was built for, in order, and their revisions at the last update.
    pub members: Vec<String>,
    revs: Vec<u64>,
    smoothing: Option<f32>,
    /// The member whose timeline places the group on the x axis: the one with the most train
    /// events (its time and token counts stand for the group's).
    pub reference: String,
    /// The train loss: the members' smoothed loss while the view smooths, else their raw loss.
    pub loss: BandSeries,
    /// The held-out (selection) loss at each evaluation.
    pub heldout: BandSeries,
    pub evals: BTreeMap<(String, String), EvalBand>,
}

impl GroupAgg {
    /// Bring the curves up to date with the members (a no-op when none changed).
    pub fn update(&mut self, members: &[&RunData], smoothing: f32, t: &mut TTable) {
        let ids: Vec<String> = members.iter().map(|r| r.id.clone()).collect();
        if ids != self.members {
            *self = GroupAgg { members: ids, ..GroupAgg::default() };
        }
        let revs: Vec<u64> = members.iter().map(|r| r.rev).collect();
        if revs == self.revs && self.smoothing == Some(smoothing) {
            return;
        }
        if self.smoothing != Some(smoothing) {
            self.loss = BandSeries::default();
        }
        let smoothed = smoothing > 0.0;
        let loss: Vec<Option<Member>> = members
            .iter()
            .map(|r| Some(Member { series: if smoothed { &r.smooth } else { &r.loss }, ci: None }))
            .collect();
        self.loss.update(&loss, t);
        let held: Vec<Series> = members.iter().map(|r| r.heldout_loss()).collect();
        let held_m: Vec<Option<Member>> = held.iter().map(|s| Some(Member { series: s, ci: None })).collect();
        self.heldout.update(&held_m, t);
        let mut keys: Vec<&(String, String)> = members.iter().flat_map(|r| r.evals.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let e = self.evals.entry(key.clone()).or_default();
            let curves: Vec<Option<&crate::tui::store::EvalCurve>> = members.iter().map(|r| r.evals.get(key)).collect();
            if let Some(c) = curves.iter().flatten().next() {
                if e.group != c.group || e.metric != c.metric || e.n != c.n {
                    (e.group, e.metric, e.n) = (c.group.clone(), c.metric.clone(), c.n);
                }
            }
            let value: Vec<Option<Member>> =
                curves.iter().map(|c| c.map(|c| Member { series: &c.value, ci: Some(&c.ci) })).collect();
            e.value.cap = (e.metric != "loss").then_some(1.0);
            e.value.update(&value, t);
            let loss: Vec<Option<Member>> =
                curves.iter().map(|c| c.map(|c| Member { series: &c.loss, ci: None })).collect();
            e.loss.update(&loss, t);
        }
        self.reference = members.iter().max_by_key(|r| r.loss.len()).map(|r| r.id.clone()).unwrap_or_default();
        self.revs = revs;
        self.smoothing = Some(smoothing);
    }
}

/// The viewed groups' curves: at most [`GroupAggs::KEEP`] kept, the least recently viewed
/// dropped first.
#[derive(Debug, Default)]
pub struct GroupAggs {
    entries: HashMap<String, (u64, GroupAgg)>,
    clock: u64,
    t: TTable,
}

impl GroupAggs {
    pub const KEEP: usize = 8;

    /// Bring the curves of the groups `want` (ids) up to date; called before a frame.
    pub fn update(&mut self, store: &Store, groups: &Groups, want: &[String], smoothing: f32) {
        self.clock += 1;
        for id in want {
            let Some(g) = groups.get(id) else { continue };
            let members = groups.members(g, store);
            let (used, agg) = self.entries.entry(id.clone()).or_default();
            *used = self.clock;
            agg.update(&members, smoothing, &mut self.t);
        }
        while self.entries.len() > Self::KEEP.max(want.len()) {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, (u, _))| *u).map(|(k, _)| k.clone()) else { break };
            self.entries.remove(&oldest);
        }
    }

    pub fn get(&self, id: &str) -> Option<&GroupAgg> {
        self.entries.get(id).map(|(_, a)| a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(u64, f32)]) -> Series {
        let mut s = Series::default();
        for &(st, y) in points {
            s.push(st, y);
        }
        s
    }

    /// The band at every step is `stats::seed_mean` of the members' values there (the floor
    /// from their intervals), kept within [0, cap]; a step with one member's value has a mean
    /// but no band.
    fn check(b: &BandSeries, members: &[(Series, Vec<(f32, f32)>)]) {
        let mut all: Vec<u64> = members.iter().flat_map(|(s, _)| s.steps.to_vec()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(b.mean.steps, all);
        for (i, s) in all.iter().enumerate() {
            let mut vals = Vec::new();
            let mut vars = Vec::new();
            for (m, ci) in members {
                if let Some(j) = m.steps.position(*s) {
                    vals.push(m.ys[j] as f64);
                    let (lo, hi) = ci[j];
                    vars.push(((hi - lo) as f64 / (2.0 * Z95)).powi(2));
                }
            }
            assert_eq!(b.k[i] as usize, vals.len(), "step {s}");
            if vals.len() >= 2 {
                let floor = vars.iter().sum::<f64>() / vars.len() as f64;
                let e = stats::seed_mean(&vals, floor).unwrap();
                assert_eq!(b.mean.ys[i], e.value as f32, "step {s}");
                assert_eq!(b.lo.ys[i], (e.lo as f32).max(0.0), "step {s}");
                assert_eq!(b.hi.ys[i], b.cap.map_or(e.hi as f32, |c| (e.hi as f32).min(c)), "step {s}");
            } else {
                assert_eq!(b.mean.ys[i], vals[0] as f32, "step {s}");
                assert!(b.lo.ys[i].is_nan() && b.hi.ys[i].is_nan(), "step {s}: one member, no band");
            }
        }
    }

    fn members_of(ms: &[(Series, Vec<(f32, f32)>)]) -> Vec<Option<Member<'_>>> {
        ms.iter().map(|(s, ci)| Some(Member { series: s, ci: Some(ci) })).collect()
    }

    fn grow(m: &mut (Series, Vec<(f32, f32)>), step: u64, y: f32) {
        m.0.push(step, y);
        m.1.truncate(m.0.len() - 1);
        m.1.push((y - 0.05, y + 0.05));
    }

    /// Two seeds near the ceiling: t with one degree of freedom reaches far past 1; a score's
    /// band stops at 1 and every band at 0, what the values can be.
    #[test]
    fn a_scores_band_stays_within_zero_and_one() {
        let mut t = TTable::default();
        let mut ms: Vec<(Series, Vec<(f32, f32)>)> = vec![Default::default(); 2];
        grow(&mut ms[0], 10, 0.97);
        grow(&mut ms[1], 10, 0.75);
        let mut b = BandSeries { cap: Some(1.0), ..BandSeries::default() };
        b.update(&members_of(&ms), &mut t);
        check(&b, &ms);
        assert_eq!((b.lo.ys[0], b.hi.ys[0]), (0.0, 1.0), "t(1) = 12.7 reaches past both ends");
        let mut loss = BandSeries::default();
        loss.update(&members_of(&ms), &mut t);
        assert!(loss.hi.ys[0] > 1.0 && loss.lo.ys[0] == 0.0, "a loss is not capped at 1");
    }

    #[test]
    fn the_band_is_seed_mean_at_every_step_and_absent_below_two_members() {
        let mut t = TTable::default();
        // Three members evaluated every 10 steps, at different paces; at step 10 they agree
        // exactly (the floor, their sampling variance, then gives the interval its width).
        let mut ms: Vec<(Series, Vec<(f32, f32)>)> = vec![Default::default(); 3];
        for (i, m) in ms.iter_mut().enumerate() {
            for s in (10..=(30 + 20 * i as u64)).step_by(10) {
                let y = if s == 10 { 0.5 } else { 0.4 + 0.01 * s as f32 / 10.0 + 0.03 * i as f32 };
                grow(m, s, y);
            }
        }
        let mut b = BandSeries::default();
        assert!(b.update(&members_of(&ms), &mut t));
        check(&b, &ms);
        // Steps 40–70: fewer members; 60 and 70 only the third.
        assert_eq!(b.k, [3, 3, 3, 2, 2, 1, 1]);
        assert!(b.lo.ys[0] < b.mean.ys[0] && b.hi.ys[0] > b.mean.ys[0]);
        assert!(!b.update(&members_of(&ms), &mut t), "nothing new: no work");
        // The laggards catch up (steps inside the curve), the leader goes on (after it).
        grow(&mut ms[0], 40, 0.47);
        grow(&mut ms[0], 50, 0.49);
        grow(&mut ms[2], 80, 0.52);
        assert!(b.update(&members_of(&ms), &mut t));
        check(&b, &ms);
        assert_eq!(b.k, [3, 3, 3, 3, 3, 1, 1, 1]);
        // A member redoing steps (a resumed run) replaces its tail: the curve follows.
        ms[1].0.push(20, 0.9);
        ms[1].1.truncate(1);
        ms[1].1.push((0.85, 0.95));
        b.update(&members_of(&ms), &mut t);
        check(&b, &ms);
        // An update computes only the new steps: the result equals a curve built at once.
        let mut fresh = BandSeries::default();
        fresh.update(&members_of(&ms), &mut t);
        assert_eq!(fresh.mean.ys, b.mean.ys);
        assert_eq!(
            fresh.lo.ys.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.lo.ys.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(b.latest_band().map(|(s, k, ..)| (s, k)), Some((50, 2)));
    }

    #[test]
    fn a_member_without_the_curve_or_with_a_step_of_its_own_counts_right() {
        let mut t = TTable::default();
        let a = series(&[(1, 1.0), (2, 2.0), (3, 3.0)]);
        let b = series(&[(1, 3.0), (3, 5.0)]);
        let mut band = BandSeries::default();
        let ms = [Some(Member { series: &a, ci: None }), Some(Member { series: &b, ci: None }), None];
        band.update(&ms, &mut t);
        assert_eq!(band.mean.steps, [1, 2, 3]);
        assert_eq!(band.k, [2, 1, 2]);
        assert_eq!(band.mean.ys, [2.0, 2.0, 4.0]);
        // The second member fills in step 2, a third member appears: the curve follows.
        let b2 = series(&[(1, 3.0), (2, 4.0), (3, 5.0)]);
        let c = series(&[(1, 2.0)]);
        let ms = [
            Some(Member { series: &a, ci: None }),
            Some(Member { series: &b2, ci: None }),
            Some(Member { series: &c, ci: None }),
        ];
        band.update(&ms, &mut t);
        assert_eq!(band.k, [3, 2, 2]);
        assert_eq!(band.mean.ys, [2.0, 3.0, 4.0]);
        let e = stats::seed_mean(&[1.0, 3.0, 2.0], 0.0).unwrap();
        assert_eq!(band.hi.ys[0], e.hi as f32);
    }
}

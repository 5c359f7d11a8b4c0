//! The run tree: forks under their parents, a sweep's runs under its node, a group's runs
//! (runs that differ only in seed) under its node; rebuilt when its shape can change, the
//! selection kept on what it was on.

use std::collections::BTreeSet;

use super::groups::Groups;
use super::state::{Pick, Selection, TreeRow};
use super::store::{RunData, Store};

/// What the selected row shows.
pub fn current(sel: &Selection, store: &Store) -> Option<Pick> {
    sel.rows.get(sel.selected).map(|row| {
        let run = store.runs.get(row.run).map(|r| r.id.clone()).unwrap_or_default();
        match (&row.group, &row.sweep) {
            (Some(g), _) => Pick::Group(g.clone(), run),
            (_, Some(sw)) => Pick::Sweep(sw.clone()),
            _ => Pick::Run(run),
        }
    })
}

/// Rebuild the run tree: forks nested under their parents at their fork step; the runs of
/// a sweep under its node; the runs of a group (two or more runs that differ only in seed)
/// under its node, listed when it is expanded, followed by the forks of its members.
pub fn rebuild(sel: &mut Selection, store: &Store, groups: &Groups) {
    let keep = current(sel, store);
    let runs = &store.runs;
    let filter_runs = sel
        .filter
        .as_ref()
        .is_some_and(|re| runs.iter().any(|r| re.is_match(&r.id) || r.name.as_deref().is_some_and(|n| re.is_match(n))));
    let visible: Vec<bool> = runs
        .iter()
        .map(|r| match &sel.filter {
            _ if !sel.tags.is_empty() => sel.tags.iter().all(|t| r.notes.has_tag(t)),
            Some(re) if filter_runs => {
                re.is_match(&r.id)
                    || r.name.as_deref().is_some_and(|n| re.is_match(n))
                    || groups.of_run(&r.id).is_some_and(|g| re.is_match(&g.id))
            }
            _ => true,
        })
        .collect();
    let order = |a: &usize, b: &usize| {
        let (ra, rb) = (&runs[*a], &runs[*b]);
        ra.fork_step
            .cmp(&rb.fork_step)
            .then(ra.first_time.partial_cmp(&rb.first_time).unwrap_or(std::cmp::Ordering::Equal))
            .then(ra.id.cmp(&rb.id))
    };
    let ids: std::collections::HashSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let children = |id: Option<&str>| -> Vec<usize> {
        let mut v: Vec<usize> = (0..runs.len())
            .filter(|&i| match id {
                None => runs[i].parent.as_deref().is_none_or(|p| !ids.contains(p)),
                Some(p) => runs[i].parent.as_deref() == Some(p),
            })
            .collect();
        v.sort_by(order);
        v
    };
    let mut rows = Vec::new();
    /// A node of the tree: a run (with its forks, or alone: a group's member), a sweep
    /// (header) with its runs, or a group with its members.
    enum Node {
        Run(usize),
        Member(usize, String),
        Sweep(String, Vec<usize>),
        Group(String, Vec<usize>),
    }
    struct Ctx<'a> {
        children: &'a dyn Fn(Option<&str>) -> Vec<usize>,
        order: &'a dyn Fn(&usize, &usize) -> std::cmp::Ordering,
        runs: &'a [RunData],
        visible: &'a [bool],
        groups: &'a Groups,
        expanded: &'a BTreeSet<String>,
    }
    /// The runs of one group among siblings gathered under one node, where its first run
    /// was (a group with one run here stays a run).
    fn gather_groups(list: Vec<usize>, cx: &Ctx) -> Vec<Node> {
        let mut out: Vec<Node> = Vec::new();
        for k in list {
            match cx.groups.of_run(&cx.runs[k].id) {
                Some(g) => match out.iter_mut().find(|n| matches!(n, Node::Group(id, _) if *id == g.id)) {
                    Some(Node::Group(_, v)) => v.push(k),
                    _ => out.push(Node::Group(g.id.clone(), vec![k])),
                },
                None => out.push(Node::Run(k)),
            }
        }
        out.into_iter()
            .map(|n| match n {
                Node::Group(_, v) if v.len() == 1 => Node::Run(v[0]),
                n => n,
            })
            .collect()
    }
    /// Runs of one sweep among siblings are gathered under the sweep's node, placed where
    /// its first run was; the rest by group.
    fn nodes(kids: Vec<usize>, cx: &Ctx) -> Vec<Node> {
        let mut sweeps: Vec<(usize, String, Vec<usize>)> = Vec::new();
        let mut rest: Vec<usize> = Vec::new();
        let mut slots: Vec<Option<usize>> = Vec::new();
        for k in kids {
            match cx.runs[k].sweep_id() {
                Some(id) => match sweeps.iter_mut().find(|(_, s, _)| s == id) {
                    Some((_, _, v)) => v.push(k),
                    None => {
                        sweeps.push((slots.len(), id.to_string(), vec![k]));
                        slots.push(None);
                    }
                },
                None => {
                    rest.push(k);
                    slots.push(Some(k));
                }
            }
        }
        // Keep the order of first appearance: groups where their first run was, sweeps
        // where theirs was.
        let grouped = gather_groups(rest, cx);
        let first_of = |n: &Node| match n {
            Node::Run(k) | Node::Member(k, _) => *k,
            Node::Group(_, v) | Node::Sweep(_, v) => v[0],
        };
        let mut placed: Vec<(usize, Node)> = Vec::new();
        for n in grouped {
            let at = slots.iter().position(|s| *s == Some(first_of(&n))).unwrap_or(usize::MAX);
            placed.push((at, n));
        }
        for (at, id, v) in sweeps {
            placed.push((at, Node::Sweep(id, v)));
        }
        placed.sort_by_key(|(at, _)| *at);
        placed.into_iter().map(|(_, n)| n).collect()
    }
    fn walk_nodes(list: Vec<Node>, depth: usize, prefix: &str, rows: &mut Vec<TreeRow>, cx: &Ctx) {
        let n = list.len();
        for (k, node) in list.into_iter().enumerate() {
            let last = k + 1 == n;
            let own = if depth == 0 { String::new() } else { format!("{prefix}{}", if last { "└" } else { "├" }) };
            let child_prefix =
                if depth == 0 { String::new() } else { format!("{prefix}{}", if last { " " } else { "│" }) };
            let row = |run, sweep, group, in_group| TreeRow {
                run,
                depth,
                prefix: own.clone(),
                sweep,
                group,
                in_group,
                label: String::new(),
            };
            match node {
                Node::Run(i) => {
                    if cx.visible[i] {
                        rows.push(row(i, None, None, None));
                    }
                    let kids = nodes((cx.children)(Some(&cx.runs[i].id)), cx);
                    walk_nodes(kids, depth + 1, &child_prefix, rows, cx);
                }
                Node::Member(i, g) => {
                    if cx.visible[i] {
                        rows.push(row(i, None, None, Some(g)));
                    }
                }
                Node::Sweep(id, members) => {
                    if members.iter().any(|&m| cx.visible[m]) {
                        rows.push(row(members[0], Some(id), None, None));
                    }
                    walk_nodes(gather_groups(members, cx), depth + 1, &child_prefix, rows, cx);
                }
                Node::Group(id, members) => {
                    if members.iter().any(|&m| cx.visible[m]) {
                        rows.push(row(members[0], None, Some(id.clone()), None));
                    }
                    let mut kids: Vec<usize> =
                        members.iter().flat_map(|&m| (cx.children)(Some(&cx.runs[m].id))).collect();
                    kids.sort_by(cx.order);
                    let mut list: Vec<Node> = Vec::new();
                    if cx.expanded.contains(&id) {
                        list.extend(members.iter().map(|&m| Node::Member(m, id.clone())));
                    }
                    list.extend(nodes(kids, cx));
                    walk_nodes(list, depth + 1, &child_prefix, rows, cx);
                }
            }
        }
    }
    let cx = Ctx { children: &children, order: &order, runs, visible: &visible, groups, expanded: &sel.expanded };
    walk_nodes(nodes(children(None), &cx), 0, "", &mut rows, &cx);
    let mut names: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for r in runs {
        *names.entry(r.display_name()).or_default() += 1;
    }
    for row in rows.iter_mut().filter(|row| row.sweep.is_none()) {
        let r = &runs[row.run];
        row.label = if let Some(g) = row.group.as_deref().and_then(|g| groups.get(g)) {
            g.label()
        } else if let Some(g) = row.in_group.as_deref().and_then(|g| groups.get(g)) {
            // A member: its seed, and what tells it apart from the others.
            let seed = r.cfg.as_ref().map_or(0, |c| c.seed);
            let other = if r.name.is_some() && r.name != g.name { r.display_name() } else { &r.id };
            format!("seed {seed} · {other}")
        } else {
            match names.get(r.display_name()) {
                Some(&n) if n > 1 && r.display_name() != r.id => format!("{} · {}", r.display_name(), r.id),
                _ => r.display_name().to_string(),
            }
        };
    }
    sel.rows = rows;
    let plain = |row: &TreeRow, id: &str| row.sweep.is_none() && row.group.is_none() && runs[row.run].id == id;
    let find = |rows: &[TreeRow], want: &Pick| -> Option<usize> {
        match want {
            Pick::Run(id) => rows.iter().position(|r| plain(r, id)).or_else(|| {
                // A run inside a collapsed group: its group's row.
                let g = groups.of_run(id)?;
                rows.iter().position(|r| r.group.as_deref() == Some(g.id.as_str()))
            }),
            // A group no longer (a member gone): its first run.
            Pick::Group(g, first) => rows
                .iter()
                .position(|r| r.group.as_deref() == Some(g.as_str()))
                .or_else(|| rows.iter().position(|r| plain(r, first))),
            Pick::Sweep(sw) => rows.iter().position(|r| r.sweep.as_deref() == Some(sw.as_str())),
        }
    };
    let seen = sel.select_when_seen.clone().map(Pick::Run);
    if let Some(i) = seen.as_ref().and_then(|p| find(&sel.rows, p)) {
        sel.selected = i;
        sel.select_when_seen = None;
    } else if let Some(i) = sel.restore.as_ref().and_then(|p| find(&sel.rows, p)) {
        sel.selected = i;
        sel.restore = None;
    } else if let Some(i) = keep.as_ref().and_then(|p| find(&sel.rows, p)) {
        sel.selected = i;
    }
    if sel.selected >= sel.rows.len() {
        sel.selected = sel.rows.len().saturating_sub(1);
    }
}

//! The run commands: train, launch, ls, pause, resume, stop, fork.

use std::path::{Path, PathBuf};

use anyhow::Result;

/// `mixscope train`: create (or resume) a run directory and train it in this process.
pub fn train_cmd(
    config: &Path,
    run_dir: Option<PathBuf>,
    runs: Option<PathBuf>,
    sets: &[String],
    quiet: bool,
) -> Result<i32> {
    use crate::config::Loaded;
    use crate::runs::create as setup;
    use crate::runs::RunDir;
    let mut loaded = Loaded::read(config)?;
    loaded.apply_sets(sets)?;
    loaded.validate()?;
    crate::train::trainer::check_device(&loaded)?;
    // The runs root is where a run's base model goes, wherever the run directory is.
    let root = crate::runs::runs_root(runs.as_deref());
    let existing = run_dir.as_ref().map(RunDir::new).filter(|r| r.exists());
    let mut base_lock = None;
    let (run, lock) = match existing {
        Some(run) => {
            // Locked before run.toml is read or rewritten: a trainer at work keeps its record.
            let lock = crate::runs::lock::RunLock::acquire(&run.path)?;
            let mut cfg = run.read_config()?;
            let want = setup::config_hash(&loaded.config)?;
            if cfg.source_hash.as_deref() != Some(&want) {
                crate::bail_input!(
                    "{} was created from a different config; resume it with that config (only max_steps may change), or use a new --run-dir",
                    run.path.display()
                );
            }
            let max = cfg.train.schedule_start + loaded.config.train.max_steps;
            if max != cfg.train.max_steps {
                cfg.train.max_steps = max;
                run.write_config(&cfg)?;
            }
            (run, lock)
        }
        None => {
            let c = setup::create_run(&root, run_dir.as_deref(), &loaded)?;
            base_lock = c.base_lock;
            (c.run, c.lock)
        }
    };
    // A run that starts from a base model trains that base first (once; later runs reuse it).
    if let Some(base_id) = run.read_config()?.init.and_then(|i| i.run) {
        let base = crate::runs::resolve(&root, &base_id).or_else(|_| {
            let sib = run.path.parent().unwrap_or(Path::new(".")).join(&base_id);
            if sib.join("run.toml").exists() {
                Ok(RunDir::new(sib))
            } else {
                Err(crate::error::bad_input(format!("base run {base_id} not found")))
            }
        })?;
        if !base.is_complete()? && run.latest_checkpoint()?.is_none() {
            if !quiet {
                println!("training the base model first: {} (once; later runs reuse it)", base.path.display());
            }
            let opts = crate::train::TrainOptions { quiet, pause_exits: false };
            let outcome = match base_lock.take() {
                // A base this command created: still locked, since before anything was in it.
                Some(l) => crate::train::train_locked(&base, l, &opts)?,
                None => crate::train::train(&base, &opts)?,
            };
            if outcome != crate::train::Outcome::Finished {
                // Stopped (Ctrl-C) or paused: the run says why it did not start.
                let why = format!("stopped before it started: its base run {} was {}", base.id(), outcome.as_str());
                crate::supervisor::append_status(&run, crate::runs::events::State::Stopped, Some(why))?;
                return Ok(0);
            }
        }
        setup::prepare_start(&root, &run)?;
    }
    drop(base_lock);
    if !quiet {
        println!("run {} in {}", run.id(), run.path.display());
    }
    crate::train::train_locked(&run, lock, &crate::train::TrainOptions { quiet, pause_exits: false })?;
    Ok(0)
}

/// `mixscope pause|resume|stop RUN`.
pub fn control(runs: Option<PathBuf>, spec: &str, what: &str) -> Result<i32> {
    let root = crate::runs::runs_root(runs.as_deref());
    let run = crate::runs::resolve(&root, spec)?;
    match what {
        "pause" => crate::supervisor::pause(&root, &run)?,
        "resume" => crate::supervisor::resume(&root, &run)?,
        _ => crate::supervisor::stop(&root, &run)?,
    }
    println!("{what}: {}", run.id());
    Ok(0)
}

fn age(t: Option<f64>) -> String {
    let Some(t) = t else { return "-".into() };
    let s = (crate::util::now_secs() - t).max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// "3 finished, 1 running"
fn state_summary(members: &[&crate::supervisor::RunStatus]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for m in members {
        match counts.iter_mut().find(|(k, _)| *k == m.state.as_str()) {
            Some(c) => c.1 += 1,
            None => counts.push((m.state.as_str(), 1)),
        }
    }
    counts.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
}

/// A line of `ls`: a header, or a run, at an indent.
enum Item<'a> {
    Header(String, usize),
    Run(&'a crate::supervisor::RunStatus, usize),
}

/// Runs in their order at an indent, each group of two or more under its header with its
/// members together, indented once more.
fn place<'a>(
    members: Vec<&'a crate::supervisor::RunStatus>,
    indent: usize,
    groups: &[crate::runs::group::Group],
    items: &mut Vec<Item<'a>>,
) {
    let mut done: Vec<&str> = Vec::new();
    for s in &members {
        if done.contains(&s.id.as_str()) {
            continue;
        }
        match groups.iter().find(|g| g.runs.len() > 1 && g.runs.contains(&s.id)) {
            Some(g) => {
                let seed = |id: &str| g.runs.iter().position(|r| r == id).map(|i| g.seeds[i]);
                let mut mine: Vec<&crate::supervisor::RunStatus> =
                    members.iter().copied().filter(|m| seed(&m.id).is_some()).collect();
                mine.sort_by_key(|m| seed(&m.id));
                let seeds =
                    mine.iter().filter_map(|m| seed(&m.id)).map(|x| x.to_string()).collect::<Vec<_>>().join(" ");
                items.push(Item::Header(
                    format!("group {} {} (seeds {seeds}): {}", g.id, g.label(), state_summary(&mine)),
                    indent,
                ));
                for m in mine {
                    done.push(&m.id);
                    items.push(Item::Run(m, indent + 2));
                }
            }
            None => {
                done.push(&s.id);
                items.push(Item::Run(s, indent));
            }
        }
    }
}

/// `mixscope ls [--json] [--tag T]`: runs, each sweep's under a header, and runs that differ
/// only in seed under their group's header; with `--tag`, only the runs carrying every tag.
pub fn ls(root: &Path, json: bool, tags: &[String]) -> Result<i32> {
    use crate::supervisor::RunStatus;
    let all = crate::supervisor::list(root)?;
    crate::supervisor::record_verdicts(&all);
    let pairs: Vec<(&str, &crate::config::RunConfig)> =
        all.iter().filter_map(|s| Some((s.id.as_str(), s.config.as_ref()?))).collect();
    // Groups of every run (a group's id does not depend on which of its runs are listed).
    let groups = crate::runs::group::groups(&pairs);
    let group_of = |id: &str| groups.iter().find(|g| g.runs.iter().any(|r| r == id));
    let notes: std::collections::HashMap<String, Result<crate::runs::notes::Notes, String>> =
        all.iter().map(|s| (s.id.clone(), super::notes::read_for_ls(&s.dir))).collect();
    let tagged = |s: &RunStatus| tags.iter().all(|t| notes[&s.id].as_ref().is_ok_and(|n| n.has_tag(t)));
    let all: Vec<RunStatus> = all.iter().filter(|s| tagged(s)).cloned().collect();
    if json {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|s| {
                let mut o = serde_json::to_value(s).unwrap_or_default();
                o["state"] = serde_json::Value::String(s.state.as_str().into());
                if let Some(g) = group_of(&s.id) {
                    o["group"] = serde_json::Value::String(g.id.clone());
                    o["group_size"] = serde_json::Value::from(g.runs.len());
                }
                match &notes[&s.id] {
                    Ok(n) => {
                        o["tags"] = serde_json::json!(n.tags);
                        o["note"] = serde_json::json!((!n.note.is_empty()).then_some(&n.note));
                    }
                    Err(e) => {
                        o["tags"] = serde_json::json!([]);
                        o["note"] = serde_json::Value::Null;
                        o["notes_error"] = serde_json::json!(e);
                    }
                }
                o
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if all.is_empty() {
        match tags {
            [] => println!("no runs in {}", root.display()),
            _ => println!("no runs tagged {} in {}", tags.join(" and "), root.display()),
        }
        return Ok(0);
    }
    // Runs of no sweep first, then each sweep under a header line (sweeps in creation order).
    let sweeps = crate::sweep::sweeps_of(&all);
    let mut order: Vec<(&String, &(String, Vec<String>))> = sweeps.iter().collect();
    let first_time = |ids: &[String]| {
        all.iter().filter(|s| ids.contains(&s.id)).filter_map(|s| s.started.or(s.queued_at)).fold(f64::MAX, f64::min)
    };
    order.sort_by(|a, b| first_time(&a.1 .1).total_cmp(&first_time(&b.1 .1)));
    let mut items: Vec<Item> = Vec::new();
    place(all.iter().filter(|s| s.sweep.is_none()).collect(), 0, &groups, &mut items);
    for (id, (name, ids)) in &order {
        let mut members: Vec<&RunStatus> = all.iter().filter(|s| ids.contains(&s.id)).collect();
        if let Some(rec) = crate::sweep::read_record(root, id) {
            let pos = |s: &str| rec.runs.iter().position(|(_, r)| r == s).unwrap_or(usize::MAX);
            members.sort_by_key(|s| (pos(&s.id), s.id.clone()));
        }
        items.push(Item::Header(
            format!("sweep {id} ({name}): {} runs — {}", members.len(), state_summary(&members)),
            0,
        ));
        place(members, 2, &groups, &mut items);
    }
    let w = items
        .iter()
        .filter_map(|i| match i {
            Item::Run(s, indent) => Some(s.id.chars().count() + indent),
            Item::Header(..) => None,
        })
        .max()
        .unwrap_or(3)
        .max(26);
    // A Slurm run's device is where Slurm put it: `cpu job 12@node3`.
    let device = |s: &RunStatus| match &s.slurm {
        Some(v) => format!("{} {}", s.device, v.short()),
        None => s.device.clone(),
    };
    let dw = all.iter().map(|s| device(s).chars().count()).max().unwrap_or(6).max(6);
    println!(
        "{:<w$} {:<9} {:>11} {:>8} {:>8}  {:<34} {:<22} {:<dw$} {:>5}  TAGS",
        "RUN", "STATE", "STEP", "LOSS", "BEST", "MIXTURE", "PARENT", "DEVICE", "AGE"
    );
    for item in &items {
        let (s, indent) = match item {
            Item::Header(h, indent) => {
                println!("{:indent$}{h}", "");
                continue;
            }
            Item::Run(s, indent) => (*s, *indent),
        };
        let shown_id = format!("{:indent$}{}", "", s.id);
        let step = format!("{}/{}", s.step, s.max_steps);
        let loss = s.loss.map_or("-".into(), |l| format!("{l:.4}"));
        let best = s.best_loss.map_or("-".into(), |l| format!("{l:.4}"));
        let parent = match (&s.parent, s.fork_step) {
            (Some(p), Some(f)) => format!("{p}@{f}"),
            _ => "-".into(),
        };
        let mut mix = s.mixture.clone();
        if mix.chars().count() > 34 {
            mix = mix.chars().take(33).collect::<String>() + "…";
        }
        let line = format!(
            "{:<w$} {:<9} {:>11} {:>8} {:>8}  {:<34} {:<22} {:<dw$} {:>5}  {}",
            shown_id,
            s.state.as_str(),
            step,
            loss,
            best,
            mix,
            parent,
            device(s),
            age(s.updated),
            super::notes::ls_cell(&notes[&s.id])
        );
        println!("{}", line.trim_end());
        if let Err(e) = &notes[&s.id] {
            println!("{:indent$}    ⚠ {e}", "");
        }
        if s.warnings > 0 {
            let plural = if s.warnings == 1 { "" } else { "s" };
            let last = s.last_warning.as_deref().map(|m| format!("; the last {m}")).unwrap_or_default();
            println!("{:indent$}    ⚠ {} warning{plural}{last}", "", s.warnings);
        }
        let pending_in_slurm = s.slurm.is_some() && s.state == crate::runs::events::State::Queued;
        if matches!(s.state, crate::runs::events::State::Failed) || pending_in_slurm {
            if let Some(m) = &s.message {
                println!("{:indent$}    {m}", "");
            }
        }
    }
    Ok(0)
}

/// `mixscope compare A B [...] [--json] [--unadjusted]`: runs or groups of seeds.
pub fn compare(root: &Path, specs: &[String], json: bool, unadjusted: bool) -> Result<i32> {
    use crate::analysis::{compare, EvalTable, ALPHA};
    let mut sides = Vec::new();
    for spec in specs {
        let sel = crate::runs::select(root, spec)?;
        let mut tables = Vec::new();
        for run in &sel.runs {
            let (events, _, _) = crate::runs::events::read_all(&run.events_path())?;
            tables.push(EvalTable::from_events(&events));
        }
        sides.push((sel, tables));
    }
    let refs: Vec<Vec<&EvalTable>> = sides.iter().map(|(_, t)| t.iter().collect()).collect();
    let rows = compare(&refs);
    let grouped = sides.iter().any(|(s, _)| s.runs.len() > 1);
    let all_grouped = sides.iter().all(|(s, _)| s.runs.len() > 1);
    let coverage = if all_grouped {
        "across seeds (Welch's t over each group's runs)"
    } else if grouped {
        "across seeds where a side is a group (a single run is one more draw of the group's seeds)"
    } else {
        "sampling only: one run each side, so they do not cover another training run's randomness"
    };
    // The rows of a task that are tests (a delta with a p-value; English repeats `en`).
    let family = |task: &str| {
        rows.iter()
            .filter(|r| r.task == task && r.row != "English" && r.latest_delta.first().is_some_and(|d| d.is_some()))
            .count()
    };
    let marks = if unadjusted {
        "* the delta's own 95% interval excludes 0 (unadjusted: with many rows some are marked by chance)".to_string()
    } else {
        format!(
            "* supported: p < {ALPHA} after Holm's adjustment over the rows of each task (its languages and averages, {} rows); --unadjusted marks every interval that excludes 0",
            rows.first().map_or(0, |r| family(&r.task))
        )
    };
    if json {
        let v = serde_json::json!({
            "sides": sides.iter().map(|(s, t)| serde_json::json!({
                "label": s.label,
                "group": s.group.as_ref().map(|g| g.id.clone()),
                "runs": s.runs.iter().map(|r| r.id()).collect::<Vec<_>>(),
                "seeds": s.group.as_ref().map(|g| g.seeds.clone()),
                "latest_step": t.iter().map(|t| t.latest_step()).collect::<Vec<_>>(),
                "best_step": t.iter().map(|t| t.best_step).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "runs": sides.iter().map(|(s, _)| s.label.clone()).collect::<Vec<_>>(),
            "intervals": coverage,
            "adjustment": if unadjusted { "none" } else { "holm" },
            "alpha": ALPHA,
            "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if rows.is_empty() {
        println!(
            "no eval results yet in {}",
            sides.iter().map(|(s, _)| s.label.as_str()).collect::<Vec<_>>().join(", ")
        );
        return Ok(0);
    }
    let letter = |i: usize| (b'A' + i as u8) as char;
    for (i, (s, t)) in sides.iter().enumerate() {
        let steps = |v: Vec<Option<u64>>| {
            let mut v: Vec<String> = v.into_iter().map(|s| s.map_or("-".into(), |s| s.to_string())).collect();
            v.dedup();
            v.join(" ")
        };
        let what = match &s.group {
            Some(g) => format!(
                "group {} {}: runs {} (seeds {})",
                g.id,
                g.label(),
                g.runs.join(" "),
                g.seeds.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")
            ),
            None => format!("{} (1 seed: sampling only)", s.label),
        };
        println!(
            "[{}] {what}; latest step {}, best step {}",
            letter(i),
            steps(t.iter().map(|t| t.latest_step()).collect()),
            steps(t.iter().map(|t| t.best_step).collect())
        );
    }
    let mut ns: Vec<u64> = rows.iter().flat_map(|r| r.n.iter().flatten().copied()).collect();
    ns.sort_unstable();
    ns.dedup();
    let ns = ns.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("/");
    println!("intervals: 95%, {coverage}; n = {ns} held-out examples per task and language, each run");
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
    let marked = |r: &crate::analysis::CompareRow, best: bool, i: usize| -> bool {
        let (d, m) = if best { (&r.best_delta, &r.best_marked) } else { (&r.latest_delta, &r.latest_marked) };
        if unadjusted {
            d[i].is_some_and(|d| d.est.excludes_zero())
        } else {
            m[i]
        }
    };
    let delta = |d: Option<crate::analysis::stats::Delta>, mark: bool| -> String {
        d.map_or("-".to_string(), |d| format!("{:+.3}{}", d.est.value, if mark { "*" } else { "" }))
    };
    let n = sides.len();
    let mut task = String::new();
    for r in &rows {
        if r.task != task {
            task = r.task.clone();
            println!();
            let mut head = format!("{:<18}", format!("{} ({})", r.task.to_uppercase(), r.metric));
            for i in 0..n {
                head.push_str(&format!(" {:>8}", letter(i)));
            }
            for i in 1..n {
                head.push_str(&format!(" {:>8} {:<17}", format!("Δ{}", letter(i)), "95% interval"));
            }
            head.push_str("   |  best:");
            for i in 0..n {
                head.push_str(&format!(" {:>7}", letter(i)));
            }
            for i in 1..n {
                head.push_str(&format!(" {:>7}", format!("Δ{}", letter(i))));
            }
            println!("{head}");
        }
        let label = match r.groups.iter().flatten().next() {
            Some(g) => format!("{} ({g})", r.row),
            None => r.row.clone(),
        };
        let mut line = format!("{label:<18}");
        for v in &r.latest {
            line.push_str(&format!(" {:>8}", fmt(*v)));
        }
        for (i, d) in r.latest_delta.iter().enumerate() {
            let ci = d.map_or(String::new(), |d| format!("[{:+.3}, {:+.3}]", d.est.lo, d.est.hi));
            line.push_str(&format!(" {:>8} {ci:<17}", delta(*d, marked(r, false, i))));
        }
        line.push_str("   |       ");
        for v in &r.best {
            line.push_str(&format!(" {:>7}", fmt(*v)));
        }
        for (i, d) in r.best_delta.iter().enumerate() {
            line.push_str(&format!(" {:>7}", delta(*d, marked(r, true, i))));
        }
        println!("{line}");
    }
    println!("\n{marks}; unmarked deltas are not supported by the data");
    Ok(0)
}

/// `mixscope sweep SWEEP.toml [--dry-run] [--wait]`.
pub fn sweep(
    root: &Path,
    file: &Path,
    grid: &[String],
    launcher: Option<String>,
    dry_run: bool,
    wait: bool,
) -> Result<i32> {
    use crate::runs::events::State;
    let mut spec = crate::sweep::SweepSpec::read(file)?;
    for g in grid {
        spec.override_grid(g)?;
    }
    if let Some(l) = launcher {
        spec.set.retain(|(k, _)| k != "launcher");
        spec.set.insert(0, ("launcher".into(), format!("{l:?}")));
    }
    if dry_run {
        let planned = crate::sweep::plan(&spec)?;
        println!("sweep {}: {} points from {}", spec.name, planned.len(), spec.config.display());
        for p in &planned {
            println!("  {:<40} {}", p.point.label(), p.sets.join(" "));
        }
        return Ok(0);
    }
    let (id, runs) = crate::sweep::launch(root, file, &spec)?;
    println!("sweep {id}: {} runs", runs.len());
    for r in &runs {
        println!("  {}", r.id());
    }
    if !wait {
        return Ok(0);
    }
    let mut last: std::collections::HashMap<String, State> = std::collections::HashMap::new();
    loop {
        let mut done = 0;
        let mut failed = 0;
        for r in &runs {
            let st = crate::supervisor::status(r)?;
            if last.get(&st.id) != Some(&st.state) {
                let msg = st.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
                println!("{} {} at step {}/{}{msg}", st.id, st.state.as_str(), st.step, st.max_steps);
                last.insert(st.id.clone(), st.state);
            }
            match st.state {
                State::Finished | State::Stopped if !st.alive => done += 1,
                State::Failed if !st.alive => {
                    done += 1;
                    failed += 1;
                }
                _ => {}
            }
        }
        if done == runs.len() {
            println!("sweep {id}: {} runs ended, {failed} failed", runs.len());
            return Ok(if failed > 0 { 1 } else { 0 });
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// `mixscope diff A B [--json]`: the config keys whose values differ between two runs or groups.
pub fn diff(root: &Path, a: &str, b: &str, json: bool) -> Result<i32> {
    let side = |spec: &str| -> Result<(String, Vec<crate::config::RunConfig>)> {
        let sel = crate::runs::select(root, spec)?;
        let configs = sel.runs.iter().map(|r| r.read_config()).collect::<Result<Vec<_>>>()?;
        Ok((sel.label, configs))
    };
    let ((la, ca), (lb, cb)) = (side(a)?, side(b)?);
    let rows = crate::runs::diff::diff(&ca.iter().collect::<Vec<_>>(), &cb.iter().collect::<Vec<_>>());
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "a": la, "b": lb, "differ": rows }))?);
        return Ok(0);
    }
    if rows.is_empty() {
        println!("{la} and {lb}: the same config");
        return Ok(0);
    }
    let show = |v: &[String]| v.join(", ");
    let kw = rows.iter().map(|r| r.key.chars().count()).max().unwrap_or(3).max(3);
    let aw = rows.iter().map(|r| show(&r.a).chars().count()).chain([la.chars().count() + 3]).max().unwrap_or(1).min(48);
    println!("{:<kw$}  {:<aw$}  B: {lb}", "KEY", format!("A: {la}"));
    for r in &rows {
        println!("{:<kw$}  {:<aw$}  {}", r.key, show(&r.a), show(&r.b));
    }
    Ok(0)
}

//! `mixscope bench tui`: the TUI's speed targets, measured (never asserted in tests).
//!
//! - cold load of a runs root with 20 runs × 200 k events (target ≥ 5 M events/s), and its
//!   ratio to the strict (serde) parser reading the same files in the same run;
//! - one frame with 16 series × 1 M points at 200×50 (target ≤ 5 ms);
//! - write-to-screen latency: an event appended → file notification → read → drawn (≤ 100 ms);
//! - idle CPU of the real TUI in tmux with 8 live runs (≤ 0.5 % of a core);
//! - 500 runs in 100 groups of 5 (configs that differ only in seed): a frame with a group's
//!   mean and band (≤ 5 ms), the group's curves brought up to date after new events
//!   (incrementally: against rebuilding them), and the real TUI's idle CPU on that root with
//!   two groups live (≤ 0.5 % of a core).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::Row;
use crate::runs::events::State;
use crate::tui::app::App;
use crate::tui::fixtures::{self, Spec};
use crate::tui::keymap::Keymap;
use crate::tui::store::{RunData, Store};
use crate::tui::theme::Theme;

fn spec(id: &str, steps: u64, salt: u64) -> Spec<'_> {
    Spec {
        id,
        name: id,
        parent: None,
        mixture: "en=0.6,es=0.1,fr=0.1,ja=0.1,zh=0.1",
        tasks: &["mr", "sm", "if"],
        heldout: &["ar", "ko", "pt"],
        from: 0,
        to: steps,
        max_steps: steps,
        eval_every: 2000,
        start_time: fixtures::T0,
        seconds_per_step: 0.1,
        end: Some((State::Finished, None)),
        salt,
    }
}

/// Give a run a learning rate of its own: the bench's runs are otherwise configured alike,
/// and would all be one group.
fn set_lr(run: &crate::runs::RunDir, k: usize) -> Result<()> {
    let mut cfg = run.read_config()?;
    cfg.train.lr = 1e-3 * (1.0 + k as f64 / 1000.0);
    run.write_config(&cfg)
}

/// Write the cold-load fixture: `runs` finished runs of `steps` train events each (plus their
/// evals and statuses) under `root`, each its own (no groups); returns the number of event
/// lines written.
pub fn write_fixtures(root: &Path, runs: usize, steps: u64) -> Result<u64> {
    let ids: Vec<String> = (0..runs).map(|i| format!("run{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let run = fixtures::write_run(root, &spec(id, steps, i as u64))?;
        set_lr(&run, i)?;
    }
    Ok(ids
        .iter()
        .map(|id| {
            std::fs::read(root.join(id).join("events.jsonl"))
                .map_or(0, |s| memchr::memchr_iter(b'\n', &s).count() as u64)
        })
        .sum())
}

/// The cold load and its side-by-side reference, in rounds: each round times one load of the
/// whole root as the TUI loads it and then one read of the same files by the strict (serde)
/// parser alone, as the supervisor reads events, in parallel as the TUI loads (it only
/// parses; it folds nothing). A shared machine's neighbours make single passes vary by a
/// third, and drift over a minute: the ratio is taken round by round, the pair a few seconds
/// apart.
struct ColdLoad {
    lines: u64,
    /// Events per second of each round's load and of its serde pass.
    load: Vec<f64>,
    serde: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn cold_load(dir: &Path, runs: usize, steps: u64, rounds: usize) -> Result<ColdLoad> {
    use rayon::prelude::*;
    let root = dir.join("load");
    let lines = write_fixtures(&root, runs, steps)?;
    eprintln!("loading them, and reading them with serde, {rounds} times …");
    let paths: Vec<_> = crate::runs::list(&root)?.into_iter().map(|r| r.events_path()).collect();
    // The files on disk before the clock starts: otherwise the kernel writes the fixtures back
    // (a gigabyte, some 30 s after they were written) while the loads are timed, on the same
    // cores. A runs root the TUI opens was written long before.
    for p in &paths {
        std::fs::File::open(p)?.sync_all()?;
    }
    let _ = Store::load(&root); // warm the page cache
    let (mut load, mut serde) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let store = Store::load(&root);
        load.push(lines as f64 / t.elapsed().as_secs_f64());
        assert!(store.points() > 0);
        drop(store);
        let t = Instant::now();
        let read: usize = paths
            .par_iter()
            .map(|p| crate::runs::events::read_all(p).map(|(e, bad, _)| e.len() + bad.len()))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .sum();
        serde.push(read as f64 / t.elapsed().as_secs_f64());
    }
    Ok(ColdLoad { lines, load, serde })
}

pub fn frame_time(series: usize, points: u64) -> Result<f64> {
    let frames: usize = std::env::var("MIXSCOPE_BENCH_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut store = Store::default();
    let dir = tempfile::tempdir()?;
    for i in 0..series {
        let id = format!("s{i:02}");
        let d = dir.path().join(&id);
        std::fs::create_dir_all(&d)?;
        let mut r = RunData::open(&d);
        r.id = id;
        for s in 1..=points {
            let y = 1.0 + 4.0 * (-(s as f32) / (points as f32 / 5.0)).exp() + ((s * 2654435761 % 1000) as f32 / 5000.0);
            r.loss.push(s, y);
        }
        r.state = State::Running;
        store.runs.push(r);
    }
    let mut app = App::new(store, Theme::dark(), Keymap::default_map());
    app.sel.marked = app.store.runs.iter().map(|r| r.id.clone()).collect();
    app.view.compare = true;
    let mut term = Terminal::new(TestBackend::new(200, 50))?;
    // The compare table is derived once, when the data or the selection changes; a frame
    // only draws.
    app.derive();
    term.draw(|f| crate::tui::ui::draw(f, &app))?;
    let n = frames;
    let t = Instant::now();
    for _ in 0..n {
        term.draw(|f| crate::tui::ui::draw(f, &app))?;
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0 / n as f64)
}

fn latency(dir: &Path) -> Result<(f64, f64)> {
    use crate::tui::collect::{self, Delta};
    let root = dir.join("latency");
    fixtures::write_run(&root, &spec("live", 1000, 9))?;
    let mut app = App::new(Store::empty(&root), Theme::dark(), Keymap::default_map());
    app.loading = true;
    let mut term = Terminal::new(TestBackend::new(160, 48))?;
    // The event loop's path: the collector (its watcher, its pacing, its read) in its thread,
    // deltas over the channel, folded, a frame.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _wake = collect::spawn(root.clone(), tx)?;
    let fold = |app: &mut App, deltas: Vec<Delta>| {
        let mut events = false;
        for d in deltas {
            events |= matches!(d, Delta::Events { .. });
            if app.apply(d) {
                app.on_data();
            }
        }
        events
    };
    while app.loading {
        let Some(d) = rx.blocking_recv() else { anyhow::bail!("the collector stopped") };
        fold(&mut app, d);
    }
    let path = root.join("live").join("events.jsonl");
    let mut worst: f64 = 0.0;
    let mut total = 0.0;
    let n = 20;
    for k in 0..n {
        let ev = crate::runs::events::Event::new(
            1001 + k,
            crate::runs::events::Body::Train {
                loss: 1.0,
                lr: 1e-3,
                tokens: 1,
                tokens_per_s: 1.0,
                examples: Default::default(),
                grad_norm: None,
            },
        );
        let t0 = Instant::now();
        std::fs::OpenOptions::new().append(true).open(&path)?.write_all(ev.to_line().as_bytes())?;
        loop {
            let Some(d) = rx.blocking_recv() else { anyhow::bail!("the collector stopped") };
            if fold(&mut app, d) {
                break;
            }
        }
        app.derive();
        term.draw(|f| crate::tui::ui::draw(f, &app))?;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        worst = worst.max(ms);
        total += ms;
        std::thread::sleep(Duration::from_millis(30));
    }
    Ok((total / n as f64, worst))
}

/// The TUI's start on a large root, through the collector thread as the event loop runs it.
struct Start {
    /// The first frame (nothing read yet), the tree (every run's record), every curve: ms.
    first: f64,
    tree: f64,
    read: f64,
    /// Runs whose state in the tree is the state once every file is read.
    exact: usize,
    runs: usize,
    /// Bytes the loaded curves hold per event.
    per_event: f64,
}

fn start(root: &Path, lines: u64) -> Result<Start> {
    use crate::tui::collect::{self, Delta};
    let t = Instant::now();
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _wake = collect::spawn(root.to_path_buf(), tx)?;
    let mut app = App::new(Store::empty(root), Theme::dark(), Keymap::default_map());
    app.loading = true;
    let mut term = Terminal::new(TestBackend::new(160, 48))?;
    app.screen = ratatui::layout::Rect::new(0, 0, 160, 48);
    let mut draw = |app: &mut App| -> Result<()> {
        app.derive();
        term.draw(|f| crate::tui::ui::draw(f, app))?;
        Ok(())
    };
    draw(&mut app)?;
    let first = ms(t);
    let (mut tree, mut states) = (f64::NAN, Vec::new());
    while app.loading {
        let Some(batch) = rx.blocking_recv() else { anyhow::bail!("the collector stopped") };
        for d in batch {
            let records = matches!(d, Delta::Records(_));
            if app.apply(d) {
                app.on_data(); // the smoothed loss too, as the TUI keeps it
            }
            if records {
                draw(&mut app)?;
                tree = ms(t);
                states = app.store.runs.iter().map(|r| (r.id.clone(), r.state, r.step())).collect();
            }
        }
    }
    draw(&mut app)?;
    let read = ms(t);
    let now: Vec<_> = app.store.runs.iter().map(|r| (r.id.clone(), r.state, r.step())).collect();
    let exact = states.iter().filter(|s| now.contains(s)).count();
    Ok(Start { first, tree, read, exact, runs: now.len(), per_event: app.store.heap_bytes() as f64 / lines as f64 })
}

/// CPU use of the real TUI over `secs` seconds with 8 live runs, in tmux; None without tmux.
fn idle_cpu(dir: &Path, secs: u64) -> Result<Option<f64>> {
    if std::process::Command::new("tmux").arg("-V").output().is_err() {
        return Ok(None);
    }
    let root = dir.join("idle");
    let mut live = Vec::new();
    for i in 0..8 {
        let id = format!("live{i}");
        let mut s = spec(&id, 2000, i);
        s.end = None;
        let run = fixtures::write_run(&root, &s)?;
        set_lr(&run, i as usize)?;
        live.push(id);
    }
    idle_cpu_on(&root, &live, 2000, secs, Duration::from_secs(2))
}

/// CPU use of the real TUI on `root` over `secs` seconds (after `settle`, for it to read the
/// root), in tmux, while the `live` runs (their last step `last`) each append a train event a
/// second, their locks held as live trainers hold them; None without tmux.
fn idle_cpu_on(root: &Path, live: &[String], last: u64, secs: u64, settle: Duration) -> Result<Option<f64>> {
    let mut locks = Vec::new();
    for id in live {
        // Hold each run's lock as a live trainer would.
        locks.push(crate::runs::lock::RunLock::acquire(&root.join(id))?);
    }
    let socket = format!("mixscope-bench-{}-{}", std::process::id(), live.len());
    let exe = std::env::current_exe()?;
    let cmdline = format!("{} tui --runs {}", exe.display(), root.display());
    // The TUI keeps its view in the bench's own state directory, not the user's.
    let ok = std::process::Command::new("tmux")
        .env("XDG_STATE_HOME", root.parent().unwrap_or(root).join("tui-state"))
        .args(["-L", &socket, "new-session", "-d", "-s", "b", "-x", "160", "-y", "48", &cmdline])
        .status()?
        .success();
    if !ok {
        return Ok(None);
    }
    std::thread::sleep(settle);
    let pid = String::from_utf8_lossy(
        &std::process::Command::new("tmux")
            .args(["-L", &socket, "list-panes", "-t", "b", "-F", "#{pane_pid}"])
            .output()?
            .stdout,
    )
    .trim()
    .to_string();
    // CPU time: each thread's run time in nanoseconds (`/proc/PID/task/*/schedstat`), and the
    // process's user and system ticks (`/proc/PID/stat`: 10 ms each, too coarse for a fraction
    // of a percent, but they include threads that have exited, which the first loses).
    let snapshot = |pid: &str| -> Option<(std::collections::BTreeMap<String, u64>, f64)> {
        let mut threads = std::collections::BTreeMap::new();
        for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
            if let Some(ns) = std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                threads.insert(t.file_name().to_string_lossy().into_owned(), ns);
            }
        }
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &s[s.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some((threads, ticks as f64 / 100.0)) // USER_HZ on Linux
    };
    let t0 = snapshot(&pid);
    // The runs stay live: one train event per run per second.
    let start = Instant::now();
    let mut step = last + 1;
    while start.elapsed() < Duration::from_secs(secs) {
        for id in live {
            let ev = crate::runs::events::Event::new(
                step,
                crate::runs::events::Body::Train {
                    loss: 1.0,
                    lr: 1e-3,
                    tokens: step,
                    tokens_per_s: 1.0,
                    examples: Default::default(),
                    grad_norm: None,
                },
            );
            std::fs::OpenOptions::new()
                .append(true)
                .open(root.join(id).join("events.jsonl"))?
                .write_all(ev.to_line().as_bytes())?;
        }
        step += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let t1 = snapshot(&pid);
    let elapsed = start.elapsed().as_secs_f64();
    let _ = std::process::Command::new("tmux").args(["-L", &socket, "kill-server"]).status();
    drop(locks);
    Ok(t0.zip(t1).map(|((a, a_ticks), (b, b_ticks))| {
        let secs = if !a.is_empty() && a.keys().all(|t| b.contains_key(t)) {
            // Every thread still there: exact (threads started meanwhile count in full).
            b.iter().map(|(t, &ns)| ns - a.get(t).copied().unwrap_or(0).min(ns)).sum::<u64>() as f64 / 1e9
        } else {
            b_ticks - a_ticks
        };
        secs / elapsed * 100.0
    }))
}

/// Write `groups` groups of `per` runs (configs equal but for the seed; the groups differ in
/// learning rate) of `steps` train events, the members of the first `live` groups still
/// running (no final status); returns the live runs' ids.
fn write_groups(root: &Path, groups: usize, per: u64, steps: u64, live: usize) -> Result<Vec<String>> {
    let mut live_ids = Vec::new();
    for g in 0..groups {
        for seed in 1..=per {
            let id = format!("g{g:03}-s{seed}");
            let mut s = spec(&id, steps, (g as u64) * 16 + seed);
            s.name = "grp";
            s.eval_every = steps / 4;
            if g < live {
                s.end = None;
                live_ids.push(id.clone());
            }
            let run = fixtures::write_seeded(root, &s, seed)?;
            set_lr(&run, g)?;
        }
    }
    Ok(live_ids)
}

/// The group view on 500 runs in 100 groups of 5: (frame ms with the first group selected,
/// its band drawn; ms to bring its curves up to date after one train event per member; ms to
/// build them afresh; the number of groups).
fn group_frame(root: &Path, live: &[String], steps: u64) -> Result<(f64, f64, f64, usize)> {
    use crate::tui::collect::Delta;
    let frames: usize = std::env::var("MIXSCOPE_BENCH_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let store = Store::load(root);
    let mut app = App::new(store, Theme::dark(), Keymap::default_map());
    let groups = app.groups.list.len();
    app.sel.selected = 0;
    let g = app.ui().selected_group().map(|g| g.id.clone()).ok_or_else(|| anyhow::anyhow!("no group row first"))?;
    let mut term = Terminal::new(TestBackend::new(200, 50))?;
    app.screen = ratatui::layout::Rect::new(0, 0, 200, 50);
    app.derive();
    // The group's curves built afresh (as when it is first selected), median of 5.
    let mut builds: Vec<f64> = (0..5)
        .map(|_| {
            let mut fresh = crate::tui::groups::GroupAggs::default();
            let t = Instant::now();
            fresh.update(&app.store, &app.groups, std::slice::from_ref(&g), app.view.smoothing);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    builds.sort_by(f64::total_cmp);
    let build = builds[2];
    term.draw(|f| crate::tui::ui::draw(f, &app))?;
    let t = Instant::now();
    for _ in 0..frames {
        term.draw(|f| crate::tui::ui::draw(f, &app))?;
    }
    let frame = t.elapsed().as_secs_f64() * 1000.0 / frames as f64;
    // New events for the live group's members, folded as the event loop folds them; then the
    // group's curves brought up to date (timed), and the rest derived.
    let dirs: Vec<_> = live.iter().take(5).filter_map(|id| app.store.get(id).map(|r| r.dir.clone())).collect();
    let rounds = 20u64;
    let mut update = 0.0;
    for k in 0..rounds {
        for d in &dirs {
            let ev = crate::runs::events::Event::new(
                steps + 1 + k,
                crate::runs::events::Body::Train {
                    loss: 1.3,
                    lr: 1e-3,
                    tokens: 1,
                    tokens_per_s: 1.0,
                    examples: Default::default(),
                    grad_norm: None,
                },
            );
            app.apply(Delta::Events { dir: d.clone(), events: vec![ev.into()], bad: 0 });
        }
        app.on_data();
        let t = Instant::now();
        app.group_aggs.update(&app.store, &app.groups, std::slice::from_ref(&g), app.view.smoothing);
        update += t.elapsed().as_secs_f64() * 1000.0;
        app.derive();
    }
    anyhow::ensure!(
        app.group_aggs.get(&g).is_some_and(|a| a.loss.mean.steps.last() == Some(steps + rounds)),
        "the group's curve did not follow its members"
    );
    Ok((frame, update / rounds as f64, build, groups))
}

pub fn run(quick: bool) -> Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let (runs, steps, pts) = if quick { (4, 20_000, 100_000) } else { (20, 200_000, 1_000_000) };
    let mut rows = Vec::new();
    eprintln!("writing {runs} runs × {steps} events …");
    let rounds = 5;
    let c = cold_load(dir.path(), runs, steps, rounds)?;
    let eps = median(&c.load);
    rows.push(Row::new(
        "tui",
        "cold load",
        format!(
            "{runs} runs × {steps} events ({} lines), median of {rounds} loads (best {:.2})",
            c.lines,
            c.load.iter().copied().fold(0.0, f64::max) / 1e6
        ),
        eps / 1e6,
        "M events/s",
        "≥ 5",
        eps >= 5e6,
    ));
    let ratios: Vec<f64> = c.load.iter().zip(&c.serde).map(|(l, s)| l / s).collect();
    rows.push(Row::new(
        "tui",
        "vs serde",
        format!(
            "cold load ÷ the strict parser alone on the same runs, median of {rounds} rounds side by side (serde {:.2} M events/s)",
            median(&c.serde) / 1e6
        ),
        median(&ratios),
        "x",
        "-",
        true,
    ));
    let (big, big_steps) = if quick { (50, 2_000) } else { (500, 20_000) };
    eprintln!("writing {big} runs × {big_steps} events …");
    let root = dir.path().join("large");
    let lines = write_fixtures(&root, big, big_steps)?;
    let bytes: u64 = crate::runs::list(&root)?
        .iter()
        .filter_map(|r| std::fs::metadata(r.path.join("events.jsonl")).ok())
        .map(|m| m.len())
        .sum();
    eprintln!("starting the TUI's collector on them …");
    let _ = Store::load(&root); // warm the page cache, as for the cold load
    let st = start(&root, lines)?;
    let what = format!("{big} runs × {big_steps} events ({lines} lines, {:.2} GB)", bytes as f64 / 1e9);
    rows.push(Row::new(
        "tui",
        "first frame",
        format!("{what}: drawn before anything is read (every curve read after {:.0} ms)", st.read),
        st.first,
        "ms",
        "≤ 200",
        st.first <= 200.0 && st.first < st.tree,
    ));
    rows.push(Row::new(
        "tui",
        "tree",
        format!(
            "{what}: every run's record read, the tree drawn, {}/{} states and steps as once every file is read ({:.0}× sooner)",
            st.exact,
            st.runs,
            st.read / st.tree
        ),
        st.tree,
        "ms",
        "records",
        st.exact == st.runs,
    ));
    rows.push(Row::new(
        "tui",
        "memory",
        format!("{what}: the curves' heap (series with their smoothed loss, timelines, intervals) per event read"),
        st.per_event,
        "B/event",
        "≤ 24",
        st.per_event <= 24.0,
    ));
    eprintln!("`mixscope ls` and `launch` on them …");
    rows.extend(super::ls::rows(&root, &what)?);
    eprintln!("rendering 16 series × {pts} points …");
    let ms = frame_time(16, pts)?;
    rows.push(Row::new("tui", "frame", format!("16 series × {pts} points, 200×50"), ms, "ms", "≤ 5", ms <= 5.0));
    let (lat, worst) = latency(dir.path())?;
    rows.push(Row::new(
        "tui",
        "latency",
        format!(
            "append → notify → read → frame: mean of 20 appends 30 ms apart (data frames at most every {} ms), worst {worst:.1} ms",
            crate::tui::DATA_FRAME.as_millis()
        ),
        lat,
        "ms",
        "≤ 100",
        lat <= 100.0,
    ));
    let gsteps = if quick { 200 } else { 2000 };
    eprintln!("writing 500 runs in 100 groups of 5 × {gsteps} events …");
    let groot = dir.path().join("groups");
    let live = write_groups(&groot, 100, 5, gsteps, 2)?;
    let (gframe, gupdate, gbuild, ngroups) = group_frame(&groot, &live, gsteps)?;
    let gwhat = format!("500 runs in {ngroups} groups of 5 (configs equal but for the seed) × {gsteps} steps");
    rows.push(Row::new(
        "tui",
        "group frame",
        format!("{gwhat}: the first group selected, its mean and band in both panes, 200×50"),
        gframe,
        "ms",
        "≤ 5",
        gframe <= 5.0,
    ));
    rows.push(Row::new(
        "tui",
        "group update",
        format!(
            "{gwhat}: its curves brought up to date after one train event per member (mean of 20), against {gbuild:.2} ms to build them afresh"
        ),
        gupdate,
        "ms",
        "< afresh",
        gupdate < gbuild,
    ));
    eprintln!("measuring idle CPU for 10 s …");
    match idle_cpu(dir.path(), if quick { 4 } else { 10 })? {
        Some(p) => rows.push(Row::new(
            "tui",
            "idle CPU",
            "real TUI in tmux, 8 live runs".into(),
            p,
            "% of a core",
            "≤ 0.5",
            p <= 0.5,
        )),
        None => rows.push(Row::new(
            "tui",
            "idle CPU",
            "needs tmux (not found)".into(),
            f64::NAN,
            "% of a core",
            "≤ 0.5",
            false,
        )),
    }
    eprintln!("measuring idle CPU on the 100 groups, and on 500 runs of their own …");
    let settle = Duration::from_secs(if quick { 3 } else { 8 });
    // The same root's size without groups: what 500 runs cost the TUI, groups or not.
    let solo = dir.path().join("solo");
    let solo_live = write_groups(&solo, 500, 1, gsteps, 10)?;
    // Over 30 s in the full bench: two of the collector's fallback reads of every run (every
    // 15 s once the watcher works), so their cost is in the figure whatever the phase.
    let window = if quick { 4 } else { 30 };
    let base = idle_cpu_on(&solo, &solo_live, gsteps, window, settle)?;
    match idle_cpu_on(&groot, &live, gsteps, window, settle)? {
        Some(p) => rows.push(Row::new(
            "tui",
            "group idle",
            format!(
                "real TUI in tmux over {window} s, {gwhat}; the first group selected (band drawn), it and another live (10 runs); 500 runs of their own, 10 live: {}",
                base.map_or("-".into(), |b| format!("{b:.3} %"))
            ),
            p,
            "% of a core",
            "≤ 0.5",
            p <= 0.5,
        )),
        None => rows.push(Row::new(
            "tui",
            "group idle",
            "needs tmux (not found)".into(),
            f64::NAN,
            "% of a core",
            "≤ 0.5",
            false,
        )),
    }
    Ok(rows)
}

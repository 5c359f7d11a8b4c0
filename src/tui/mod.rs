//! The terminal UI: one tokio `select!` over terminal input, the collector's deltas (runs,
//! events, states and system samples, read off the UI thread: see [`collect`]), the results of
//! supervisor requests, and a tick; a frame is drawn only when something changed. Keys are
//! answered at once; new data is read at once after a quiet spell, and within a burst of
//! appends at most every [`DATA_FRAME`] (see [`DataPacer`]).

pub mod action;
pub mod app;
pub mod chart;
pub mod collect;
pub mod derived;
pub mod dialogs;
pub mod fixtures;
pub mod groups;
pub mod keymap;
pub mod layout;
pub mod panes;
pub mod persist;
pub mod series;
pub mod state;
pub mod store;
pub mod theme;
pub mod timeline;
pub mod tree;
pub mod ui;
pub mod update;
pub mod view;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures::StreamExt;

use app::{App, Request};
use store::Store;

pub use collect::pace::{DataPacer, DATA_FRAME};

/// How to open the TUI.
#[derive(Debug, Clone, Default)]
pub struct TuiOptions {
    /// A built-in theme name or a theme file.
    pub theme: Option<String>,
    /// Start the demo right away.
    pub demo: bool,
}

/// A supervisor request's outcome.
struct Outcome {
    text: String,
    error: bool,
    select: Option<String>,
}

fn perform(root: &Path, req: Request) -> Outcome {
    use crate::runs::resolve;
    use crate::supervisor as sup;
    let r = (|| -> Result<(String, Option<String>)> {
        Ok(match req {
            Request::Pause(id) => {
                sup::pause(root, &resolve(root, &id)?)?;
                (format!("pause requested: {id}"), None)
            }
            Request::Resume(id) => {
                sup::resume(root, &resolve(root, &id)?)?;
                (format!("resume requested: {id}"), None)
            }
            Request::Stop(id) => {
                sup::stop(root, &resolve(root, &id)?)?;
                (format!("stop requested: {id}"), None)
            }
            Request::Fork { run, at, spec, name, seeds: None } => {
                let parent = resolve(root, &run)?;
                let name = (!name.is_empty()).then_some(name);
                let f = sup::fork(root, &parent, at, &spec, name, None)?;
                let fresh = if f.fresh_optimizer { " (weights only: fresh optimizer moments)" } else { "" };
                (format!("forked {run} into {} at step {}{fresh}", f.run.id(), f.step), Some(f.run.id()))
            }
            Request::Fork { run, at, spec, name, seeds: Some(seeds) } => {
                let parent = resolve(root, &run)?;
                let name = (!name.is_empty()).then_some(name);
                let seeds = sup::parse_seeds(&seeds, parent.read_config()?.seed)?;
                let children = sup::fork_seeds(root, &parent, at, &spec, name, None, &seeds)?;
                let ids: Vec<String> = children.iter().map(|c| c.run.id()).collect();
                (format!("forked {run} into {} (one group)", ids.join(", ")), ids.first().cloned())
            }
            Request::ForkGroup { label, members, at, spec, name } => {
                let members = members.iter().map(|m| resolve(root, m)).collect::<Result<Vec<_>>>()?;
                let name = (!name.is_empty()).then_some(name);
                let children = sup::fork_group(root, &members, at, &spec, name, None)?;
                let ids: Vec<String> = children.iter().map(|c| c.run.id()).collect();
                (format!("forked every run of {label}: {} (one group)", ids.join(", ")), ids.first().cloned())
            }
            Request::Notes { label, runs, change } => {
                let mut tags = Vec::new();
                for id in &runs {
                    let n = crate::runs::notes::update(&resolve(root, id)?.path, &change)?;
                    tags = n.tags;
                }
                let tags = if tags.is_empty() { "no tags".to_string() } else { format!("tags {}", tags.join(" ")) };
                let what = if change.note.is_some() { "note and tags" } else { "tags" };
                (format!("saved the {what} of {label}: {tags}"), None)
            }
            Request::Launch { config, .. } if !config.exists() => {
                anyhow::bail!("{}: no such config file", config.display())
            }
            Request::Launch { seeds: Some(_), config, .. } if crate::sweep::is_sweep_file(&config) => {
                anyhow::bail!("a sweep file gives its seeds in its [grid] (seed = [0, 1, 2])")
            }
            Request::Launch { config, .. } if crate::sweep::is_sweep_file(&config) => {
                let spec = crate::sweep::SweepSpec::read(&config)?;
                let (id, runs) = crate::sweep::launch(root, &config, &spec)?;
                (
                    format!("sweep {id}: {} runs queued from {}", runs.len(), config.display()),
                    runs.first().map(|r| r.id()),
                )
            }
            Request::Launch { config, sets, seeds } => {
                let runs = sup::launch_seeds(root, &config, &sets, seeds.as_deref())?;
                let ids: Vec<String> = runs.iter().map(|r| r.id()).collect();
                let group = if ids.len() > 1 { " (one group)" } else { "" };
                (format!("launched {} from {}{group}", ids.join(", "), config.display()), ids.first().cloned())
            }
            Request::Export(e) => {
                // The SVG's path in full (a log line is clipped at the screen's edge); the PNG
                // beside it differs in its extension only.
                let (svg, _png) = crate::report::export::write(root, &e, crate::util::now_secs())?;
                (format!("wrote {} pane: {} + .png", e.pane.name(), svg.display()), None)
            }
            Request::Demo => {
                // Each arm a group of two seeds: the demo shows intervals across seeds.
                let runs = sup::demo(root)?;
                let ids: Vec<String> = runs.iter().map(|r| r.id()).collect();
                (format!("demo started: {}", ids.join(", ")), ids.last().cloned())
            }
        })
    })();
    match r {
        Ok((text, select)) => Outcome { text, error: false, select },
        Err(e) => Outcome { text: format!("{e:#}"), error: true, select: None },
    }
}

/// Open the TUI on a runs root until the user quits. Runs keep training after it closes.
pub fn run(root: &Path, opts: TuiOptions) -> Result<()> {
    let name = opts.theme.or_else(|| crate::userconf::get().theme).unwrap_or_else(|| "dark".into());
    let theme = theme::Theme::load(&name)?;
    let keymap = keymap::Keymap::user()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(main_loop(root.to_path_buf(), theme, keymap, opts.demo))
}

async fn main_loop(root: PathBuf, theme: theme::Theme, keymap: keymap::Keymap, demo: bool) -> Result<()> {
    // The first frame draws at once; the runs root is read in the background (a large root
    // takes seconds) and folded in when it is read.
    crate::supervisor::slurm::query_in_background();
    let mut app = App::new(Store::empty(&root), theme, keymap);
    // Marks, selection, x axis and range, smoothing and focus as the last session left them.
    match persist::load(&root) {
        Ok(Some(saved)) => saved.restore(&mut app),
        Ok(None) => {}
        Err(e) => app.push_log(format!("ignored the saved view state: {e:#}"), true),
    }
    app.loading = true;
    app.offer_demo = !demo;
    if demo {
        app.pending.push(Request::Demo);
    }

    // ratatui's init restores the screen on a panic; our hook first turns mouse reporting off
    // (ratatui does not know we turned it on), so a panic leaves a usable shell behind.
    let mut terminal = ratatui::try_init()?;
    let restore = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
        restore(info);
    }));
    crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture)?;
    let result = event_loop(&mut terminal, &mut app, &root).await;
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
    ratatui::restore();
    if let Err(e) = persist::save(&root, &persist::Saved::of(&app)) {
        eprintln!("mixscope: could not save the TUI's view state: {e:#}");
    }
    result
}

/// The terminal's whole area, as drawing and mouse clicks see it.
fn screen_of(terminal: &ratatui::DefaultTerminal) -> Result<ratatui::layout::Rect> {
    let size = terminal.size()?;
    Ok(ratatui::layout::Rect::new(0, 0, size.width, size.height))
}

async fn event_loop(terminal: &mut ratatui::DefaultTerminal, app: &mut App, root: &Path) -> Result<()> {
    let (dtx, mut drx) = tokio::sync::mpsc::unbounded_channel::<Vec<collect::Delta>>();
    let collector = collect::spawn(root.to_path_buf(), dtx)?;
    let (rtx, mut rrx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let mut input = EventStream::new();
    // The clocks (ages, ETAs) and the live runs' breath: a frame once a second.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    #[cfg(unix)]
    let mut term_sig = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut hup_sig = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        for req in std::mem::take(&mut app.pending) {
            let (root, tx) = (root.to_path_buf(), rtx.clone());
            tokio::task::spawn_blocking(move || {
                let _ = tx.send(perform(&root, req));
            });
        }
        if std::mem::take(&mut app.reload) {
            let _ = collector.send(collect::Wake::Reload);
        }
        if let Some(q) = app.answers_wanted.take() {
            let _ = collector.send(collect::Wake::Answers(q));
        }
        if app.dirty {
            app.now = crate::util::now_secs();
            app.screen = screen_of(terminal)?;
            app.derive();
            terminal.draw(|f| ui::draw(f, app))?;
            app.dirty = false;
            // Fault injection for the reliability tests: a panic after the first frame.
            if std::env::var_os("MIXSCOPE_TEST_PANIC").is_some() {
                panic!("injected panic (MIXSCOPE_TEST_PANIC)");
            }
        }
        if app.quit {
            return Ok(());
        }
        #[cfg(unix)]
        let signals = async {
            tokio::select! {
                _ = term_sig.recv() => {},
                _ = hup_sig.recv() => {},
            }
        };
        #[cfg(not(unix))]
        let signals = std::future::pending::<()>();
        tokio::select! {
            Some(deltas) = drx.recv() => {
                // Appended events of runs the panes do not chart change no more than the tree's
                // progress and loss columns: folded at once, drawn with the next clock frame
                // (within a second). Everything else is drawn at once.
                let shown = deltas.iter().any(|d| app.shows(d));
                let was_dirty = app.dirty;
                let mut changed = false;
                for d in deltas {
                    changed |= app.apply(d);
                }
                if changed {
                    app.on_data();
                    if !shown {
                        app.dirty = was_dirty;
                    }
                }
                if !app.notify.is_empty() {
                    tell_terminal(std::mem::take(&mut app.notify));
                }
            },
            ev = input.next() => match ev {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => app.on_key(k),
                Some(Ok(TermEvent::Mouse(m))) => {
                    app.screen = screen_of(terminal)?;
                    app.on_mouse(m)
                }
                Some(Ok(TermEvent::Resize(_, _))) => app.dirty = true,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ok(()),
            },
            Some(out) = rrx.recv() => {
                if let Some(id) = out.select {
                    app.sel.select_when_seen = Some(id);
                }
                app.push_log(out.text, out.error);
                // What the request changed on disk, read at once.
                let _ = collector.send(collect::Wake::Now);
            },
            _ = tick.tick() => {
                app.frame += 1;
                if app.frame % 4 == 0 {
                    app.dirty = true;
                }
            },
            _ = signals => return Ok(()),
        }
    }
}

/// A run's new warnings, told to the terminal: a bell, and OSC 9 (iTerm2, kitty, WezTerm,
/// Windows Terminal) and OSC 777 (VTE, foot) desktop notifications, which terminals without them
/// ignore. Off with `notify = false` in config.toml.
fn tell_terminal(messages: Vec<String>) {
    use std::io::Write;
    if crate::userconf::get().notify == Some(false) {
        return;
    }
    let mut out = std::io::stdout().lock();
    for m in messages {
        // Control characters would end the sequence early.
        let m: String = m.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
        let _ = write!(out, "\x07\x1b]9;mixscope: {m}\x1b\\\x1b]777;notify;mixscope;{m}\x1b\\");
    }
    let _ = out.flush();
}

//! The run tree: forks nested under their parent at their fork step, with state, progress,
//! loss and mixture (✎: a note, #: tags); the selected run's details below, its note and tags
//! among them.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{block, clip, dim, fmt_dur};
use crate::runs::events::State;
use crate::runs::group::Group;
use crate::tui::state::{Focus, TreeRow};
use crate::tui::store::RunData;
use crate::tui::view::Ui;

/// The state glyph; live runs "breathe" between two glyphs.
pub fn glyph(r: &RunData, frame: u64) -> &'static str {
    match r.state {
        State::Running => {
            if frame % 2 == 0 {
                "●"
            } else {
                "◉"
            }
        }
        State::Paused => "⏸",
        State::Queued => "◌",
        State::Finished => "✔",
        State::Stopped => "■",
        State::Failed => "✘",
    }
}

fn bar(done: u64, total: u64, width: usize) -> String {
    if total == 0 || width == 0 {
        return " ".repeat(width);
    }
    let filled = ((done.min(total) as f64 / total as f64) * width as f64).round() as usize;
    "━".repeat(filled) + &"─".repeat(width - filled)
}

/// The first row shown of a list `height` rows high: scrolled so that the selection is visible.
/// A mouse click maps a screen row back to a run through the same number.
pub fn list_top(selected: usize, height: usize) -> usize {
    selected.saturating_sub(height.saturating_sub(1))
}

pub fn draw(f: &mut Frame, list_area: Rect, detail_area: Rect, app: &Ui) {
    let th = app.theme.clone();
    let live = app.store.runs.iter().filter(|r| r.alive).count();
    let title = Line::from(vec![
        Span::styled(" Runs ", th.title()),
        dim(format!("{} · {live} live ", app.store.runs.len()), &th),
        if app.loading && !app.store.runs.is_empty() {
            dim("· reading curves… ".to_string(), &th)
        } else {
            Span::raw("")
        },
        if app.sel.marked.is_empty() {
            Span::raw("")
        } else {
            Span::styled(format!("· {} marked ", app.sel.marked.len()), Style::default().fg(th.accent))
        },
    ]);
    let blk = block(title, app.view.focus == Focus::Runs, &th);
    let inner = blk.inner(list_area);
    let w = inner.width as usize;
    let mut lines: Vec<Line> = Vec::new();
    if app.loading && app.sel.rows.is_empty() {
        lines.push(Line::from(dim("reading the runs root…", &th)));
    } else if let Some(e) = app.store.error.as_ref().filter(|_| app.sel.rows.is_empty()) {
        lines.push(Line::from(Span::styled("cannot read the runs root:", Style::default().fg(th.error))));
        // Wrapped at spaces by hand: the list is drawn line by line.
        let mut line = String::new();
        for word in e.split(' ') {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > w {
                lines.push(Line::from(Span::styled(std::mem::take(&mut line), Style::default().fg(th.error))));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(Line::from(Span::styled(line, Style::default().fg(th.error))));
    } else if app.sel.rows.is_empty() {
        lines.push(Line::from(dim("no runs yet", &th)));
        lines.push(Line::from(dim(
            format!("{}: start the demo", app.keymap.label(crate::tui::action::Action::Demo)),
            &th,
        )));
        lines.push(Line::from(dim(
            format!("{}: launch a config", app.keymap.label(crate::tui::action::Action::NewRun)),
            &th,
        )));
    }
    let h = inner.height as usize;
    let top = list_top(app.sel.selected, h);
    for (i, row) in app.sel.rows.iter().enumerate().skip(top).take(h) {
        let sel = i == app.sel.selected;
        if let Some(sw) = &row.sweep {
            lines.push(sweep_row(app, sw, &row.prefix, sel, w));
            continue;
        }
        if let Some(g) = row.group.as_deref().and_then(|g| app.groups.get(g)) {
            lines.push(group_row(app, g, row, sel, w));
            continue;
        }
        let r = &app.store.runs[row.run];
        let mark = if app.sel.marked.contains(&r.id) { "▌" } else { " " };
        let g = glyph(r, app.breath());
        let mut gstyle = Style::default().fg(th.state(r.state));
        if r.state == State::Running && app.breath() == 1 {
            gstyle = gstyle.add_modifier(Modifier::DIM);
        }
        let step = format!("{}/{}", r.step(), r.max_steps);
        let loss = r.loss.last().map_or("    -".into(), |(_, l)| format!("{l:>5.2}"));
        let fork = match r.fork_step {
            Some(s) if row.depth > 0 => format!("@{s} "),
            _ => String::new(),
        };
        let narrow = w < 36;
        let fork = if narrow { String::new() } else { fork };
        let tail = if narrow {
            let pct = (r.step() * 100).checked_div(r.max_steps).unwrap_or(0).min(100);
            format!(" {pct:>3}% {loss}")
        } else {
            format!(" {step} {loss}")
        };
        let head_w = 1 + row.prefix.chars().count() + 2 + fork.chars().count();
        let bar_w = if w >= 44 {
            8
        } else if w >= 34 {
            4
        } else {
            0
        };
        let bar_total = if bar_w > 0 { bar_w + 1 } else { 0 };
        let name_w = w.saturating_sub(head_w + tail.chars().count() + bar_total).max(3);
        let mut label = match notes_mark(r) {
            Some(m) => format!("{m} {}", row.label),
            None => row.label.clone(),
        };
        if !r.warnings.is_empty() {
            label = format!("⚠ {label}");
        }
        let name = clip(&label, name_w);
        let mut spans = vec![
            Span::styled(mark, Style::default().fg(th.accent)),
            dim(row.prefix.clone(), &th),
            Span::styled(format!("{g} "), gstyle),
            dim(fork, &th),
            Span::styled(
                format!("{name:<name_w$}"),
                Style::default().fg(th.fg).add_modifier(if sel { Modifier::BOLD } else { Modifier::empty() }),
            ),
        ];
        if bar_w > 0 {
            spans.push(Span::raw(" "));
            spans.push(Span::styled(bar(r.step(), r.max_steps, bar_w), Style::default().fg(th.state(r.state))));
        }
        spans.push(dim(tail, &th));
        let mut line = Line::from(spans);
        if sel {
            line = line.style(Style::default().bg(th.selection_bg));
        }
        lines.push(line);
    }
    f.render_widget(Paragraph::new(lines).block(blk), list_area);
    if detail_area.height > 0 {
        draw_detail(f, detail_area, app);
    }
}

/// The tree's mark of a run with a note (✎) or tags only (#).
pub fn notes_mark(r: &RunData) -> Option<&'static str> {
    if r.notes_error.is_some() || !r.notes.note.trim().is_empty() {
        Some("✎")
    } else if !r.notes.tags.is_empty() {
        Some("#")
    } else {
        None
    }
}

/// A run's tags and note as lines of its panel (none when it has neither).
fn notes_lines(r: &RunData, th: &crate::tui::theme::Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if !r.notes.tags.is_empty() {
        let tags: Vec<String> = r.notes.tags.iter().map(|t| format!("#{t}")).collect();
        lines.push(Line::from(vec![dim("tags ", th), Span::styled(tags.join(" "), Style::default().fg(th.accent))]));
    }
    if !r.notes.note.trim().is_empty() {
        let note: Vec<&str> = r.notes.note.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        lines.push(Line::from(vec![dim("✎ ", th), Span::raw(clip(&note.join(" ⏎ "), 200))]));
    }
    if let Some(e) = &r.notes_error {
        lines.push(Line::from(Span::styled(clip(&format!("✎ {e}"), 200), Style::default().fg(th.warning))));
    }
    lines
}

/// How many runs are in each state, in words ("2 finished 1 failed") and in glyphs ("2✔ 1✘").
pub fn state_summary(runs: &[&RunData]) -> (String, String) {
    let (mut words, mut glyphs) = (Vec::new(), Vec::new());
    for st in [State::Running, State::Queued, State::Paused, State::Finished, State::Stopped, State::Failed] {
        let n = runs.iter().filter(|r| r.state == st).count();
        if n > 0 {
            words.push(format!("{n} {}", st.as_str()));
            glyphs.push(format!("{n}{}", state_glyph(st)));
        }
    }
    (words.join(" "), glyphs.join(" "))
}

fn state_glyph(st: State) -> &'static str {
    match st {
        State::Running => "●",
        State::Queued => "◌",
        State::Paused => "⏸",
        State::Finished => "✔",
        State::Stopped => "■",
        State::Failed => "✘",
    }
}

/// A group's row: expanded or not, its name and ×K, its members' progress and states.
fn group_row(app: &Ui, g: &Group, row: &TreeRow, sel: bool, w: usize) -> Line<'static> {
    let th = &app.theme;
    let runs = app.members(g);
    let (done, total) = runs.iter().fold((0, 0), |(d, t), r| (d + r.step(), t + r.max_steps));
    let (words, glyphs) = state_summary(&runs);
    let open = app.sel.expanded.contains(&g.id);
    let head_w = 1 + row.prefix.chars().count() + 2;
    let bar_w = if w >= 44 { 8 } else { 0 };
    let bar_total = if bar_w > 0 { bar_w + 1 } else { 0 };
    let label_w = row.label.chars().count().max(8);
    // Words when they fit beside the label, else glyphs.
    let summary = if head_w + label_w + bar_total + words.chars().count() < w { words } else { glyphs };
    let tail = format!(" {summary}");
    let name_w = w.saturating_sub(head_w + tail.chars().count() + bar_total).max(3);
    let label = clip(&row.label, name_w);
    let color = runs.iter().map(|r| r.state).min_by_key(|s| match s {
        State::Running => 0,
        State::Failed => 1,
        State::Paused => 2,
        State::Queued => 3,
        State::Stopped => 4,
        State::Finished => 5,
    });
    let mut spans = vec![
        Span::styled(if app.sel.marked.contains(&g.id) { "▌" } else { " " }, Style::default().fg(th.accent)),
        dim(row.prefix.clone(), th),
        Span::styled(if open { "▾ " } else { "▸ " }, Style::default().fg(th.accent)),
        Span::styled(
            format!("{label:<name_w$}"),
            Style::default().fg(th.fg).add_modifier(if sel { Modifier::BOLD } else { Modifier::empty() }),
        ),
    ];
    if bar_w > 0 {
        spans.push(Span::raw(" "));
        spans
            .push(Span::styled(bar(done, total, bar_w), Style::default().fg(color.map_or(th.accent, |s| th.state(s)))));
    }
    spans.push(dim(tail, th));
    let mut line = Line::from(spans);
    if sel {
        line = line.style(Style::default().bg(th.selection_bg));
    }
    line
}

/// A sweep's header row: its name, how many runs, their progress and states.
fn sweep_row(app: &Ui, id: &str, prefix: &str, sel: bool, w: usize) -> Line<'static> {
    let th = &app.theme;
    let runs = app.sweep_runs(id);
    let name = runs
        .first()
        .and_then(|r| r.cfg.as_ref())
        .and_then(|c| c.sweep.as_ref())
        .map_or_else(|| id.to_string(), |t| t.name.clone());
    let (done, total) = runs.iter().fold((0, 0), |(d, t), r| (d + r.step(), t + r.max_steps));
    let mut counts = String::new();
    for st in [State::Running, State::Queued, State::Paused, State::Finished, State::Stopped, State::Failed] {
        let n = runs.iter().filter(|r| r.state == st).count();
        if n > 0 {
            let g = match st {
                State::Running => "●",
                State::Queued => "◌",
                State::Paused => "⏸",
                State::Finished => "✔",
                State::Stopped => "■",
                State::Failed => "✘",
            };
            counts.push_str(&format!(" {n}{g}"));
        }
    }
    let all_marked = !runs.is_empty() && runs.iter().all(|r| app.sel.marked.contains(&r.id));
    let bar_w = if w >= 44 { 8 } else { 0 };
    let head_w = 1 + prefix.chars().count() + 2;
    let name_w = w.saturating_sub(head_w + counts.chars().count() + if bar_w > 0 { bar_w + 1 } else { 0 }).max(3);
    let label = clip(&format!("{name} · {} runs", runs.len()), name_w);
    let mut spans = vec![
        Span::styled(if all_marked { "▌" } else { " " }, Style::default().fg(th.accent)),
        dim(prefix.to_string(), th),
        Span::styled("◆ ", Style::default().fg(th.accent)),
        Span::styled(
            format!("{label:<name_w$}"),
            Style::default().fg(th.fg).add_modifier(if sel { Modifier::BOLD } else { Modifier::ITALIC }),
        ),
    ];
    if bar_w > 0 {
        spans.push(Span::raw(" "));
        spans.push(Span::styled(bar(done, total, bar_w), Style::default().fg(th.accent)));
    }
    spans.push(dim(counts, th));
    let mut line = Line::from(spans);
    if sel {
        line = line.style(Style::default().bg(th.selection_bg));
    }
    line
}

fn draw_detail(f: &mut Frame, area: Rect, app: &Ui) {
    let th = &app.theme;
    if let Some(sw) = app.selected_sweep() {
        draw_sweep_detail(f, area, app, sw);
        return;
    }
    if let Some(g) = app.selected_group() {
        draw_group_detail(f, area, app, g);
        return;
    }
    let blk = block(Line::from(Span::styled(" Run ", th.title())), false, th);
    let Some(r) = app.selected_run() else {
        f.render_widget(blk, area);
        return;
    };
    let mut lines = vec![Line::from(vec![
        Span::styled(r.display_name().to_string(), Style::default().fg(th.fg).add_modifier(Modifier::BOLD)),
        dim(format!("  {}", r.id), th),
    ])];
    let mut st = vec![Span::styled(r.state.as_str().to_string(), Style::default().fg(th.state(r.state)))];
    let remaining = r.max_steps.saturating_sub(r.step());
    if r.state == State::Running {
        if let Some(sps) = r.steps_per_s() {
            st.push(dim(format!("  eta {}", fmt_dur(remaining as f64 / sps)), th));
        }
        if let Some(t) = r.tokens_per_s {
            st.push(dim(format!("  {:.0} tok/s", t), th));
        }
    }
    lines.push(Line::from(st));
    if let Some(m) = &r.message {
        let color = if r.state == State::Failed { th.error } else { th.dim };
        lines.push(Line::from(Span::styled(clip(m, 200), Style::default().fg(color))));
    }
    if let Some((_, step, m)) = r.warnings.last() {
        let n = r.warnings.len();
        let text = format!("⚠ {n} warning{}, the last at step {step}: {m}", if n == 1 { "" } else { "s" });
        lines.push(Line::from(Span::styled(clip(&text, 200), Style::default().fg(th.error))));
    }
    lines.push(Line::from(vec![dim("mix ", th), Span::raw(r.mixture.clone())]));
    lines.extend(notes_lines(r, th));
    let best = r.best.map_or("-".into(), |(l, s)| format!("{l:.3} @{s}"));
    lines.push(Line::from(vec![
        dim("loss ", th),
        Span::raw(r.loss.last().map_or("-".into(), |(_, l)| format!("{l:.4}"))),
        dim("  best held-out ", th),
        Span::raw(best),
    ]));
    let mut lin = vec![dim("device ", th), Span::raw(r.device.clone())];
    if let Some(j) = &r.slurm {
        lin.push(dim("  slurm ", th));
        lin.push(Span::raw(j.short()));
        if let Some(s) = &j.state {
            lin.push(dim(format!(" {s}"), th));
        }
    }
    if let (Some(p), Some(s)) = (&r.parent, r.fork_step) {
        lin.push(dim(format!("  fork of {p} @{s}"), th));
    }
    lines.push(Line::from(lin));
    if r.bad_lines > 0 {
        lines.push(Line::from(Span::styled(
            format!("{} unreadable event lines skipped", r.bad_lines),
            Style::default().fg(th.warning),
        )));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(blk), area);
}

fn draw_group_detail(f: &mut Frame, area: Rect, app: &Ui, g: &Group) {
    let th = &app.theme;
    let blk = block(Line::from(Span::styled(" Group ", th.title())), false, th);
    let runs = app.members(g);
    let (words, _) = state_summary(&runs);
    let mut lines = vec![
        Line::from(vec![
            Span::styled(g.label(), Style::default().fg(th.fg).add_modifier(Modifier::BOLD)),
            dim(format!("  {}", g.id), th),
        ]),
        Line::from(vec![dim(format!("{} runs: ", runs.len()), th), Span::raw(words)]),
    ];
    let seeds: Vec<String> = g.seeds.iter().map(|s| s.to_string()).collect();
    lines.push(Line::from(vec![dim("seeds ", th), Span::raw(seeds.join(" "))]));
    if let Some(r) = runs.first() {
        lines.push(Line::from(vec![dim("mix ", th), Span::raw(r.mixture.clone())]));
    }
    // The members' tags: those all of them carry first, the others with how many do.
    let mut tags: Vec<(&str, usize)> = Vec::new();
    for t in runs.iter().flat_map(|r| &r.notes.tags) {
        match tags.iter_mut().find(|(x, _)| *x == t.as_str()) {
            Some(e) => e.1 += 1,
            None => tags.push((t, 1)),
        }
    }
    tags.sort_by_key(|(t, n)| (std::cmp::Reverse(*n), *t));
    if !tags.is_empty() {
        let k = runs.len();
        let shown: Vec<String> =
            tags.iter().map(|(t, n)| if *n == k { format!("#{t}") } else { format!("#{t} ({n}/{k})") }).collect();
        lines.push(Line::from(vec![dim("tags ", th), Span::styled(shown.join(" "), Style::default().fg(th.accent))]));
    }
    lines.push(Line::from(dim("equal but for the seed: their mean", th)));
    lines.push(Line::from(dim("± the 95% t-interval across seeds", th)));
    lines.push(Line::from(dim(
        format!(
            "{}: runs · {}: lines · {}: fork all",
            app.keymap.label(crate::tui::action::Action::Expand),
            app.keymap.label(crate::tui::action::Action::Members),
            app.keymap.label(crate::tui::action::Action::Fork)
        ),
        th,
    )));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(blk), area);
}

fn draw_sweep_detail(f: &mut Frame, area: Rect, app: &Ui, id: &str) {
    let th = &app.theme;
    let blk = block(Line::from(Span::styled(" Sweep ", th.title())), false, th);
    let runs = app.sweep_runs(id);
    let record = app.store.sweep_record(id);
    let mut lines = vec![Line::from(vec![
        Span::styled(
            record.as_ref().map_or_else(|| id.to_string(), |r| r.name.clone()),
            Style::default().fg(th.fg).add_modifier(Modifier::BOLD),
        ),
        dim(format!("  {id}"), th),
    ])];
    if let Some(r) = &record {
        for (k, vals) in &r.spec.grid {
            let v: Vec<&str> = vals.iter().map(|g| g.text.as_str()).collect();
            lines.push(Line::from(vec![dim(format!("{k} "), th), Span::raw(v.join(" "))]));
        }
        lines.push(Line::from(vec![dim("from ", th), Span::raw(r.source.clone())]));
    }
    let steps: u64 = runs.iter().map(|r| r.step()).sum();
    let total: u64 = runs.iter().map(|r| r.max_steps).sum();
    lines.push(Line::from(vec![dim(format!("{} runs · steps {steps}/{total}", runs.len()), th)]));
    lines.push(Line::from(dim(
        format!(
            "{} marks all · {} compares · {} next series",
            app.keymap.label(crate::tui::action::Action::Mark),
            app.keymap.label(crate::tui::action::Action::Compare),
            app.keymap.label(crate::tui::action::Action::TaskNext)
        ),
        th,
    )));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(blk), area);
}

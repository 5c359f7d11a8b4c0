//! Popups: help (generated from the keymap), filter, stop confirmation, fork dialog, new run,
//! and the first-run demo offer.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::{block, clip, dim};
use crate::tui::action::Action;
use crate::tui::app::{App, ForkDialog, ForkField, LaunchField, Mode, TextInput};
use crate::tui::keymap::{Context, Keymap};
use crate::tui::theme::Theme;

/// A centred rectangle of at most `w` × `h`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

/// A dialog's key hint from the keymap: "enter: fork · esc: cancel" (an action the user
/// left without a key is left out).
fn hint(keys: &Keymap, context: Context, what: &[(Action, &str)]) -> String {
    what.iter()
        .filter_map(|(a, text)| {
            let labels = keys.labels_in(context, *a);
            (!labels.is_empty()).then(|| format!("{}: {text}", labels.join(" / ")))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

fn input_line<'a>(label: &'a str, t: &'a TextInput, active: bool, th: &Theme) -> Line<'a> {
    let mut spans = vec![dim(format!("{label} "), th)];
    let chars: Vec<char> = t.text.chars().collect();
    let (a, b): (String, String) =
        (chars[..t.cursor.min(chars.len())].iter().collect(), chars[t.cursor.min(chars.len())..].iter().collect());
    spans.push(Span::styled(a, Style::default().fg(th.fg)));
    if active {
        let (cur, rest) = match b.chars().next() {
            Some(c) => (c.to_string(), b.chars().skip(1).collect::<String>()),
            None => (" ".to_string(), String::new()),
        };
        spans.push(Span::styled(cur, Style::default().fg(th.bg).bg(th.accent)));
        spans.push(Span::styled(rest, Style::default().fg(th.fg)));
    } else {
        spans.push(Span::styled(b, Style::default().fg(th.fg)));
    }
    Line::from(spans)
}

/// The help screen's text for a screen `area`, its box width, and its height in wrapped lines.
fn help_text(app: &App, area: Rect) -> (Paragraph<'static>, u16, u16) {
    let th = &app.theme;
    let sections = app.keymap.help();
    let width = area.width.min(110);
    let inner = width.saturating_sub(2) as usize;
    let key_style = Style::default().fg(th.accent).add_modifier(Modifier::BOLD);
    // The main screen's keys in file order (their contexts only group the file).
    let main: Vec<(String, String)> = app
        .keymap
        .bindings
        .iter()
        .filter(|b| b.context.is_main() && !b.labels.is_empty())
        .map(|b| (b.labels.join(" "), b.help.clone()))
        .collect();
    let kw = main.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(4) + 2;
    let longest = main.iter().map(|(_, w)| w.chars().count()).max().unwrap_or(0);
    // The dialogs' keys, one wrapped line each, and the mouse.
    let mut tail: Vec<Line> = Vec::new();
    for s in sections.iter().filter(|s| !s.context.is_main()) {
        let mut spans = vec![Span::styled(format!("{}: ", s.context.title()), th.title())];
        for (i, (k, what)) in s.lines.iter().enumerate() {
            if i > 0 {
                spans.push(dim(" · ", th));
            }
            spans.push(Span::styled(k.clone(), key_style));
            spans.push(Span::raw(format!(" {what}")));
        }
        tail.push(Line::from(spans));
    }
    tail.push(Line::from(dim("mouse: click a run or a pane; wheel moves the selection", th)));
    // One column when it fits the screen's height; else two, side by side, clipped if needed.
    let others = Paragraph::new(tail.clone()).wrap(Wrap { trim: false }).line_count(inner as u16);
    let fits_tall = main.len() + others + 2 <= area.height as usize;
    let cols = if !fits_tall && inner >= 2 * (kw + 24) || inner >= 2 * (kw + longest + 2) { 2 } else { 1 };
    let cell = inner / cols;
    let rows = main.len().div_ceil(cols);
    let mut lines: Vec<Line> = Vec::new();
    for r in 0..rows {
        let mut spans = Vec::new();
        for c in 0..cols {
            // Column-major, so that each column reads down in file order.
            let Some((k, what)) = main.get(c * rows + r) else { continue };
            // Side by side, a text is clipped to its cell; alone on its line it wraps (so every
            // key's text can be read on a narrow screen, scrolling).
            let what = if cols > 1 { clip(what, cell.saturating_sub(kw + 1)) } else { what.clone() };
            let pad = cell.saturating_sub(kw + what.chars().count());
            spans.push(Span::styled(format!("{k:<kw$}"), key_style));
            spans.push(Span::raw(format!("{what}{}", " ".repeat(if c + 1 < cols { pad } else { 0 }))));
        }
        lines.push(Line::from(spans));
    }
    lines.extend(tail);
    let para = Paragraph::new(lines).wrap(Wrap { trim: false });
    let total = para.line_count(inner as u16) as u16;
    (para, width, total)
}

/// How far the help screen scrolls on a screen `area`: its lines beyond the box's height, and
/// the box's inner height (a page).
pub fn help_scroll_range(app: &App, area: Rect) -> (u16, u16) {
    let (_, _, total) = help_text(app, area);
    let page = area.height.saturating_sub(2).max(1);
    (total.saturating_sub(page), page)
}

/// The help screen, generated from the keymap: the main screen's keys in a grid (two columns
/// when there is room), then one wrapped line per overlay or dialog. When it is taller than
/// the screen it scrolls (`App::help_scroll`), and its title says so.
fn draw_help(f: &mut Frame, app: &App, area: Rect) {
    let th = &app.theme;
    let (para, width, total) = help_text(app, area);
    let h = (total + 2).min(area.height);
    let r = centered(area, width, h);
    let (max, _) = help_scroll_range(app, area);
    let scroll = app.help_scroll.min(max);
    let label = |a| app.keymap.label_in(crate::tui::keymap::Context::Help, a);
    let close = label(Action::Close);
    let title = if max > 0 {
        let page = h.saturating_sub(2);
        format!(
            " Keys · {close} closes · {}/{} scroll · {}–{} of {total} ",
            label(Action::Up),
            label(Action::Down),
            scroll + 1,
            (scroll + page).min(total)
        )
    } else {
        format!(" Keys · {close} closes ")
    };
    let title = Line::from(Span::styled(title, th.title()));
    f.render_widget(Clear, r);
    f.render_widget(para.scroll((scroll, 0)).block(block(title, true, th)), r);
}

pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let th = &app.theme;
    match &app.mode {
        Mode::Normal => {}
        Mode::Help => draw_help(f, app, area),
        Mode::Filter(t) => {
            let r =
                Rect { x: area.x, y: area.bottom().saturating_sub(3), width: area.width, height: 3.min(area.height) };
            let valid = t.text.is_empty() || regex::Regex::new(&t.text).is_ok();
            let mut lines = vec![input_line("/", t, true, th)];
            if !valid {
                lines[0].spans.push(Span::styled("  invalid regex", Style::default().fg(th.error)));
            }
            f.render_widget(Clear, r);
            f.render_widget(
                Paragraph::new(lines).block(block(
                    Line::from(Span::styled(
                        format!(
                            " Filter runs and languages (regex) · {} ",
                            hint(&app.keymap, Context::Filter, &[(Action::Submit, "keep"), (Action::Close, "clear")])
                        ),
                        th.title(),
                    )),
                    true,
                    th,
                )),
                r,
            );
        }
        Mode::ConfirmStop(id) => {
            let r = centered(area, 54, 5);
            f.render_widget(Clear, r);
            let lines = vec![
                Line::from(vec![
                    Span::raw("Stop "),
                    Span::styled(id.clone(), Style::default().add_modifier(Modifier::BOLD)),
                    Span::raw("? It checkpoints first."),
                ]),
                Line::from(dim(
                    format!(
                        "{}   any other key: cancel",
                        hint(&app.keymap, Context::Confirm, &[(Action::Submit, "stop")])
                    ),
                    th,
                )),
            ];
            f.render_widget(
                Paragraph::new(lines).block(block(
                    Line::from(Span::styled(" Stop run ", Style::default().fg(th.warning))),
                    true,
                    th,
                )),
                r,
            );
        }
        Mode::NewRun(d) => {
            let r = centered(area, 70, 7);
            f.render_widget(Clear, r);
            let seeds_line = match &d.seeds_check {
                Ok(s) => Line::from(vec![
                    Span::styled("✔ ", Style::default().fg(th.state(crate::runs::events::State::Running))),
                    Span::raw(s.clone()),
                ]),
                Err(e) => Line::from(Span::styled(format!("✘ {e}"), Style::default().fg(th.error))),
            };
            let lines = vec![
                input_line("config", &d.config, d.field == LaunchField::Config, th),
                input_line("seeds ", &d.seeds, d.field == LaunchField::Seeds, th),
                seeds_line,
                Line::from(dim(
                    format!(
                        "a run config or a sweep file; seeds: a count (3) or a list (0,3,7) · {}",
                        hint(
                            &app.keymap,
                            Context::Launch,
                            &[
                                (Action::NextField, "field"),
                                (Action::Submit, "launch (queued until a slot is free)"),
                                (Action::Close, "cancel")
                            ]
                        )
                    ),
                    th,
                )),
            ];
            f.render_widget(
                Paragraph::new(lines).block(block(Line::from(Span::styled(" New run ", th.title())), true, th)),
                r,
            );
        }
        Mode::DemoOffer => {
            let r = centered(area, 76, 13);
            f.render_widget(Clear, r);
            let lines = vec![
                Line::from(Span::styled(
                    "No runs here yet. Start the demo experiment?",
                    Style::default().add_modifier(Modifier::BOLD),
                )),
                Line::from(""),
                Line::from("1. a tiny base model pretrained on raw text in all 12 languages;"),
                Line::from("2. two SFT arms started from it on math, summarization and instructions,"),
                Line::from("   2 seeds each: English only  vs  multilingual=0.4 (es fr ja zh),"),
                Line::from("   ar ko pt held out; each arm a group with its across-seed interval."),
                Line::from("Curves appear within seconds; the runs keep going if you quit."),
                Line::from(""),
                Line::from(Span::styled(
                    hint(
                        &app.keymap,
                        Context::Demo,
                        &[(Action::Submit, "start"), (Action::Close, "not now"), (Action::Quit, "quit")],
                    ),
                    Style::default().fg(th.accent),
                )),
            ];
            f.render_widget(
                Paragraph::new(lines).wrap(Wrap { trim: false }).block(block(
                    Line::from(Span::styled(" mixscope ", th.title())),
                    true,
                    th,
                )),
                r,
            );
        }
        Mode::Fork(d) => draw_fork(f, area, d, &app.keymap, th),
    }
}

fn draw_fork(f: &mut Frame, area: Rect, d: &ForkDialog, keys: &Keymap, th: &Theme) {
    let h = 16u16.min(area.height);
    let r = centered(area, 72, h);
    f.render_widget(Clear, r);
    let blk = block(
        Line::from(vec![
            Span::styled(" Fork ", th.title()),
            dim(
                format!(
                    "{} · {} ",
                    d.run,
                    hint(
                        keys,
                        Context::Fork,
                        &[(Action::NextField, "next field"), (Action::Submit, "fork"), (Action::Close, "cancel")]
                    )
                ),
                th,
            ),
        ]),
        true,
        th,
    );
    let inner = blk.inner(r);
    f.render_widget(blk, r);
    let [step_a, body, spec_a, valid_a, name_a, seeds_a] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    let active = |fld: ForkField| {
        if d.field == fld {
            Style::default().fg(th.accent).add_modifier(Modifier::BOLD)
        } else {
            th.dimmed()
        }
    };
    let step = d.step().map_or("latest (asks the run for a checkpoint now)".to_string(), |s| format!("{s}"));
    let cks = if d.checkpoints.is_empty() {
        String::new()
    } else {
        format!("   checkpoints: {}", d.checkpoints.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" "))
    };
    // A weights-only checkpoint (a shipped base's step) is said where the step is chosen.
    let after = if d.fresh_optimizer() {
        Span::styled("  weights only: fresh optimizer moments", Style::default().fg(th.warning))
    } else {
        dim(clip(&cks, 50), th)
    };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("step ", active(ForkField::Step)),
            Span::raw(format!("◀ {step} ▶")),
            after,
        ])),
        step_a,
    );
    // Weights: two columns of languages.
    let lines: Vec<Line> = d
        .weights
        .iter()
        .enumerate()
        .map(|(i, (code, w))| {
            let sel = d.field == ForkField::Weights && i == d.row;
            let bar_w = ((w * 20.0).round() as usize).min(20);
            let mut l = Line::from(vec![
                Span::styled(
                    format!("{code:<3}"),
                    if *w > 0.0 { Style::default().fg(th.fg).add_modifier(Modifier::BOLD) } else { th.dimmed() },
                ),
                Span::styled(format!("{:>5.1}% ", w * 100.0), Style::default().fg(th.fg)),
                Span::styled("█".repeat(bar_w), Style::default().fg(th.accent)),
            ]);
            if sel {
                l = l.style(Style::default().bg(th.selection_bg));
            }
            l
        })
        .collect();
    let half = lines.len().div_ceil(2);
    let [c1, c2] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(body);
    f.render_widget(Paragraph::new(lines[..half].to_vec()), c1);
    f.render_widget(Paragraph::new(lines[half..].to_vec()), c2);
    let mut spec_line = input_line("mixture", &d.spec, d.field == ForkField::Spec, th);
    spec_line.spans[0] = Span::styled("mixture ", active(ForkField::Spec));
    f.render_widget(Paragraph::new(spec_line), spec_a);
    let v = match &d.validation {
        Ok(s) => Line::from(vec![
            Span::styled("✔ ", Style::default().fg(th.state(crate::runs::events::State::Running))),
            Span::raw(s.clone()),
        ]),
        Err(e) => Line::from(Span::styled(format!("✘ {e}"), Style::default().fg(th.error))),
    };
    f.render_widget(Paragraph::new(v).wrap(Wrap { trim: true }), valid_a);
    let mut name_line = input_line("name", &d.name, d.field == ForkField::Name, th);
    name_line.spans[0] = Span::styled("name ", active(ForkField::Name));
    f.render_widget(Paragraph::new(name_line), name_a);
    // Seeds: forks of one run with several seeds are a group; a group's forks keep theirs.
    let mut seeds_line = if d.group.is_some() {
        Line::from(vec![Span::styled("seeds ", th.dimmed())])
    } else {
        let mut l = input_line("seeds", &d.seeds, d.field == ForkField::Seeds, th);
        l.spans[0] = Span::styled("seeds ", active(ForkField::Seeds));
        l
    };
    match &d.seeds_check {
        Ok(s) => seeds_line.spans.push(dim(format!("  {s}"), th)),
        Err(e) => seeds_line.spans.push(Span::styled(format!("  ✘ {e}"), Style::default().fg(th.error))),
    }
    f.render_widget(Paragraph::new(seeds_line), seeds_a);
    if d.field == ForkField::Weights {
        let hint = Rect { x: r.x + 2, y: r.bottom().saturating_sub(1), width: r.width.saturating_sub(4), height: 1 };
        f.render_widget(
            Paragraph::new(dim(
                "↑↓ language  ←→ −/+ 5 points  x remove  (or type a SPEC: multilingual=0.4, en=1000,n=400)",
                th,
            )),
            hint,
        );
    }
}

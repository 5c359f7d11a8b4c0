//! Popups: help (generated from the keymap), filter, stop confirmation, fork dialog, new run,
//! and the first-run demo offer.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::{block, clip, dim};
use crate::tui::app::{App, ForkDialog, ForkField, Mode, TextInput};
use crate::tui::theme::Theme;

/// A centred rectangle of at most `w` × `h`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
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

pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let th = &app.theme;
    match &app.mode {
        Mode::Normal => {}
        Mode::Help => {
            let help = app.keymap.help();
            let h = (help.len() as u16 + 4).min(area.height);
            let r = centered(area, 72, h);
            let kw = help.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(4) + 2;
            let mut lines: Vec<Line> = help
                .iter()
                .map(|(k, what)| {
                    Line::from(vec![
                        Span::styled(format!("{k:<kw$}"), Style::default().fg(th.accent).add_modifier(Modifier::BOLD)),
                        Span::raw(what.clone()),
                    ])
                })
                .collect();
            lines.push(Line::from(dim("mouse: click a run or a pane; wheel moves the selection · esc closes", th)));
            f.render_widget(Clear, r);
            f.render_widget(
                Paragraph::new(lines).block(block(Line::from(Span::styled(" Keys ", th.title())), true, th)),
                r,
            );
        }
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
                        " Filter runs and languages (regex) · enter keeps · esc clears ",
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
                Line::from(dim("y / enter: stop   any other key: cancel", th)),
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
        Mode::NewRun(t) => {
            let r = centered(area, 70, 5);
            f.render_widget(Clear, r);
            let lines = vec![
                input_line("config", t, true, th),
                Line::from(dim(
                    "a run config or a sweep file · enter: launch (queued until a slot is free) · esc: cancel",
                    th,
                )),
            ];
            f.render_widget(
                Paragraph::new(lines).block(block(Line::from(Span::styled(" New run ", th.title())), true, th)),
                r,
            );
        }
        Mode::DemoOffer => {
            let r = centered(area, 76, 12);
            f.render_widget(Clear, r);
            let lines = vec![
                Line::from(Span::styled(
                    "No runs here yet. Start the demo experiment?",
                    Style::default().add_modifier(Modifier::BOLD),
                )),
                Line::from(""),
                Line::from("1. a tiny base model pretrained on raw text in all 12 languages;"),
                Line::from("2. two SFT runs forked from it on math, summarization and instructions:"),
                Line::from("   English only  vs  multilingual=0.4 (es fr ja zh), ar ko pt held out."),
                Line::from("Curves appear within seconds; the runs keep going if you quit."),
                Line::from(""),
                Line::from(vec![
                    Span::styled("enter", Style::default().fg(th.accent).add_modifier(Modifier::BOLD)),
                    Span::raw(" start   "),
                    Span::styled("esc", Style::default().fg(th.accent)),
                    Span::raw(" not now   "),
                    Span::styled("q", Style::default().fg(th.accent)),
                    Span::raw(" quit"),
                ]),
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
        Mode::Fork(d) => draw_fork(f, area, d, th),
    }
}

fn draw_fork(f: &mut Frame, area: Rect, d: &ForkDialog, th: &Theme) {
    let h = 15u16.min(area.height);
    let r = centered(area, 72, h);
    f.render_widget(Clear, r);
    let blk = block(
        Line::from(vec![
            Span::styled(" Fork ", th.title()),
            dim(format!("{} · tab: next field · enter: fork · esc: cancel ", d.run), th),
        ]),
        true,
        th,
    );
    let inner = blk.inner(r);
    f.render_widget(blk, r);
    let [step_a, body, spec_a, valid_a, name_a] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(2),
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
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("step ", active(ForkField::Step)),
            Span::raw(format!("◀ {step} ▶")),
            dim(clip(&cks, 50), th),
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

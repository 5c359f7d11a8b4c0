//! The bottom strips: system (CPU, memory, GPUs) and the log (status events, errors, hints).

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{clip, dim};
use crate::tui::action::Action;
use crate::tui::view::Ui;

pub fn system(f: &mut Frame, area: Rect, app: &Ui) {
    let th = &app.theme;
    let s = &app.system;
    let mut spans = vec![Span::styled(" CPU ", th.title())];
    spans.push(Span::raw(s.cpu_pct.map_or("-".into(), |p| format!("{p:>3.0}%"))));
    spans.push(dim(format!(" of {} cores", s.cores), th));
    spans.push(Span::styled("  MEM ", th.title()));
    spans.push(Span::raw(format!("{:.1}/{:.1} GB", s.mem_used_gb, s.mem_total_gb)));
    if s.gpus.is_empty() {
        spans.push(dim("  no GPU", th));
    }
    for g in &s.gpus {
        let on: Vec<&str> = app
            .store
            .runs
            .iter()
            .filter(|r| r.alive && r.device.ends_with(&format!("cuda:{}", g.index)))
            .map(|r| r.display_name())
            .collect();
        spans.push(Span::styled(format!("  GPU{} ", g.index), th.title()));
        spans.push(Span::raw(format!("{:.0}% {:.1}/{:.0} GB", g.util_pct, g.mem_used_gb, g.mem_total_gb)));
        if !on.is_empty() {
            spans.push(dim(format!(" {}", on.join(",")), th));
        }
    }
    let live: Vec<String> = app
        .store
        .runs
        .iter()
        .filter(|r| r.alive)
        .filter_map(|r| r.tokens_per_s.map(|t| format!("{} {t:.0} tok/s", clip(r.display_name(), 12))))
        .collect();
    if !live.is_empty() {
        spans.push(dim(format!("   {}", live.join(" · ")), th));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub fn log(f: &mut Frame, area: Rect, app: &Ui) {
    let th = &app.theme;
    let n = area.height.saturating_sub(1) as usize;
    let mut lines: Vec<Line> = app
        .log
        .iter()
        .rev()
        .take(n)
        .rev()
        .map(|l| {
            let t = time_of_day(l.time);
            let style = if l.error { Style::default().fg(th.error) } else { Style::default().fg(th.fg) };
            Line::from(vec![
                dim(format!(" {t} "), th),
                Span::styled(clip(&l.text, area.width.saturating_sub(11) as usize), style),
            ])
        })
        .collect();
    while lines.len() < n {
        lines.insert(0, Line::from(""));
    }
    let k = |a: Action| app.keymap.label(a);
    let hints = format!(
        " {} help  {} select  {} mark  {} compare  {} pause/resume  {} stop  {} fork  {} new  / filter  {} x-axis  {} task  {} quit",
        k(Action::Help),
        "↑↓",
        k(Action::Mark),
        k(Action::Compare),
        k(Action::PauseResume),
        k(Action::Stop),
        k(Action::Fork),
        k(Action::NewRun),
        k(Action::XAxis),
        k(Action::TaskNext),
        k(Action::Quit)
    );
    lines.push(Line::from(Span::styled(
        clip(&hints, area.width as usize),
        Style::default().fg(th.dim).bg(th.selection_bg),
    )));
    f.render_widget(Paragraph::new(lines), area);
}

/// HH:MM:SS (UTC) of a Unix time.
pub fn time_of_day(t: f64) -> String {
    let s = (t.max(0.0) as u64) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

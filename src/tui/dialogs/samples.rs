//! The samples view (enter on a language of the languages table): what the model wrote. For
//! each held-out example of the (task, language) at one evaluation: the prompt, the reference,
//! the answer, its score and whether it is in the prompt's language; in compare, A's and B's
//! answers to the same prompts side by side. It scrolls, steps through the stored evaluations,
//! and filters to failures or passes (and, in compare, to the examples whose scores differ).
//! The answers are the run's own record (`runs::samples`), read by the collector; this file
//! draws them from the app's read-only view and reads nothing.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::text::{hint, Env, Reply};
use crate::runs::samples::{Answer, AnswerSet};
use crate::tui::action::Action;
use crate::tui::collect::answers::{Answers, Query};
use crate::tui::keymap::Context;
use crate::tui::panes::{block, clip, dim};
use crate::tui::theme::Theme;
use crate::tui::view::Ui;

/// A score at or above this passes; below it fails (accuracy: right or wrong; ROUGE-L and
/// IF's share of constraints: at least half).
pub const PASS: f64 = 0.5;

/// Which examples the view lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    All,
    /// Examples that failed (in compare: on either side).
    Failures,
    /// Examples that passed (in compare: on both sides).
    Passes,
}

impl Outcome {
    fn next(self) -> Outcome {
        match self {
            Outcome::All => Outcome::Failures,
            Outcome::Failures => Outcome::Passes,
            Outcome::Passes => Outcome::All,
        }
    }
}

/// Whether an answer passed ([`PASS`]).
pub fn passed(a: &Answer) -> bool {
    a.score >= PASS
}

/// The view's state: what it shows and how.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplesView {
    pub query: Query,
    /// How many runs or groups the compare view compared (the view shows the first two).
    pub compared: usize,
    /// The evaluation shown (`None`: the latest every side stores).
    pub step: Option<u64>,
    pub outcome: Outcome,
    /// Compare: only the examples whose scores differ between A and B.
    pub differ: bool,
    /// The first example listed, among those the filters keep.
    pub scroll: usize,
}

impl SamplesView {
    pub fn new(query: Query, compared: usize) -> SamplesView {
        SamplesView { query, compared, step: None, outcome: Outcome::All, differ: false, scroll: 0 }
    }

    fn pair(&self) -> bool {
        self.query.sides.len() >= 2
    }

    /// The evaluations the view can show: those every side stores the set at.
    pub fn steps(&self, a: &Answers) -> Vec<u64> {
        a.common_steps()
    }

    /// The evaluation shown: the one picked, else the latest.
    pub fn shown_step(&self, a: &Answers) -> Option<u64> {
        let steps = self.steps(a);
        self.step.filter(|s| steps.contains(s)).or(steps.last().copied())
    }

    /// Each side's set at the shown evaluation.
    fn sets<'a>(&self, a: &'a Answers) -> Option<(u64, Vec<&'a AnswerSet>)> {
        let step = self.shown_step(a)?;
        let sets: Option<Vec<&AnswerSet>> = a.sides.iter().map(|s| s.at(step)).collect();
        Some((step, sets?))
    }

    /// The examples the filters keep (indices into the held-out set).
    pub fn rows(&self, a: &Answers) -> Vec<usize> {
        let Some((_, sets)) = self.sets(a) else { return Vec::new() };
        let n = sets.iter().map(|s| s.answers.len()).min().unwrap_or(0);
        (0..n)
            .filter(|&i| {
                let each: Vec<&Answer> = sets.iter().map(|s| &s.answers[i]).collect();
                let keep = match self.outcome {
                    Outcome::All => true,
                    Outcome::Failures => each.iter().any(|x| !passed(x)),
                    Outcome::Passes => each.iter().all(|x| passed(x)),
                };
                let differs = each.windows(2).any(|w| !same_score(w[0].score, w[1].score));
                keep && (!self.differ || differs)
            })
            .collect()
    }

    pub fn key(&mut self, action: Option<Action>, env: Env) -> Reply {
        let Some(a) = env.answers.filter(|a| a.query == self.query) else {
            return if action == Some(Action::Close) { Reply::close() } else { Reply::keep() };
        };
        let last = self.rows(a).len().saturating_sub(1);
        let page = (env.screen.height.saturating_sub(8) / 5).max(1) as usize;
        let steps = self.steps(a);
        let at = self.shown_step(a).and_then(|s| steps.iter().position(|x| *x == s));
        match action {
            Some(Action::Close) => return Reply::close(),
            Some(Action::Down) => self.scroll = (self.scroll + 1).min(last),
            Some(Action::Up) => self.scroll = self.scroll.min(last).saturating_sub(1),
            Some(Action::PageDown) => self.scroll = (self.scroll + page).min(last),
            Some(Action::PageUp) => self.scroll = self.scroll.min(last).saturating_sub(page),
            Some(Action::Lower) => {
                if let Some(i) = at.filter(|i| *i > 0) {
                    self.step = Some(steps[i - 1]);
                }
            }
            Some(Action::Increase) => {
                if let Some(i) = at.filter(|i| i + 1 < steps.len()) {
                    self.step = Some(steps[i + 1]);
                }
            }
            Some(Action::OutcomeFilter) => {
                self.outcome = self.outcome.next();
                self.scroll = 0;
            }
            Some(Action::Differ) if self.pair() => {
                self.differ = !self.differ;
                self.scroll = 0;
            }
            _ => {}
        }
        Reply::keep()
    }

    pub fn draw(&self, f: &mut Frame, ui: &Ui) {
        let th = ui.theme;
        let screen = f.area();
        // The whole screen but its title line and key strip.
        let area = Rect { y: screen.y + 1, height: screen.height.saturating_sub(2), ..screen };
        f.render_widget(Clear, area);
        let q = &self.query;
        let title = Line::from(vec![
            Span::styled(" Samples ", th.title()),
            Span::styled(
                format!("{} {} ", q.task.to_uppercase(), q.lang),
                Style::default().fg(th.fg).add_modifier(Modifier::BOLD),
            ),
            dim(if self.pair() { "A vs B · what the models wrote " } else { "· what the model wrote " }, th),
        ]);
        let mut what = vec![
            (Action::Close, "close"),
            (Action::Up, "scroll"),
            (Action::Lower, "earlier"),
            (Action::Increase, "later"),
            (Action::OutcomeFilter, "failures / passes"),
        ];
        if self.pair() {
            what.push((Action::Differ, "scores differ"));
        }
        let keys = hint(ui.keymap, Context::Samples, &what);
        let blk = block(title, true, th).title_bottom(Line::from(dim(format!(" {keys} "), th)));
        let inner = blk.inner(area);
        f.render_widget(blk, area);
        let Some(a) = ui.answers.filter(|a| a.query == *q) else {
            f.render_widget(Paragraph::new(dim("reading the stored answers…", th)), inner);
            return;
        };
        if let Some(why) = self.unavailable(a, ui) {
            let mut lines = self.side_lines(ui, None);
            lines.push(Line::from(""));
            lines.extend(why.into_iter().map(|l| Line::from(Span::styled(l, Style::default().fg(th.warning)))));
            f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
            return;
        }
        let Some((step, sets)) = self.sets(a) else { return };
        let rows = self.rows(a);
        let mut head = self.side_lines(ui, Some((step, &sets)));
        head.push(self.summary_line(a, ui, step, &sets, rows.len()));
        let head = Paragraph::new(head).wrap(Wrap { trim: false });
        let head_h = head.line_count(inner.width) as u16;
        let [head_area, list_area] =
            Layout::vertical([Constraint::Length(head_h + 1), Constraint::Min(1)]).areas(inner);
        f.render_widget(head, head_area);
        if rows.is_empty() {
            f.render_widget(Paragraph::new(dim("no example matches the filter", th)), list_area);
            return;
        }
        let mut y = list_area.y;
        let bottom = list_area.y + list_area.height;
        for &i in rows.iter().skip(self.scroll.min(rows.len() - 1)) {
            if y >= bottom {
                break;
            }
            let each: Vec<&Answer> = sets.iter().map(|s| &s.answers[i]).collect();
            y = draw_example(f, Rect { y, height: bottom - y, ..list_area }, th, i, &each);
            y += 1;
        }
    }

    /// The sides' names (A and B in compare), with the member that stands for a group, and
    /// at the evaluation shown each side's value with its interval and n (its eval event's)
    /// and its share of answers in the prompt's language.
    fn side_lines(&self, ui: &Ui, shown: Option<(u64, &[&AnswerSet])>) -> Vec<Line<'static>> {
        let th = ui.theme;
        let mut lines: Vec<Line> = Vec::new();
        for (i, s) in self.query.sides.iter().enumerate() {
            let mut spans = Vec::new();
            if self.pair() {
                let letter = (b'A' + i as u8) as char;
                spans.push(Span::styled(
                    format!("{letter} "),
                    Style::default().fg(th.run(i)).add_modifier(Modifier::BOLD),
                ));
            }
            spans.push(Span::styled(s.label.clone(), Style::default().fg(th.fg).add_modifier(Modifier::BOLD)));
            spans.push(dim(format!("  {}", s.run), th));
            if let Some(n) = &s.note {
                spans.push(dim(format!(" ({n})"), th));
            }
            if let Some((step, sets)) = shown {
                let set = sets[i];
                let n = set.answers.len();
                // The evaluation's own value and interval, from its event; else the answers' mean.
                let key = (self.query.task.clone(), self.query.lang.clone());
                let curve = ui.store.get(&s.run).and_then(|r| r.evals.get(&key));
                let mean = set.answers.iter().map(|x| x.score).sum::<f64>() / n.max(1) as f64;
                let value = curve.and_then(|c| c.value.at(step)).map_or(mean, f64::from);
                let ci =
                    curve.and_then(|c| c.ci_at(step)).map_or(String::new(), |(lo, hi)| format!(" [{lo:.3}, {hi:.3}]"));
                let in_lang = set.answers.iter().filter(|x| x.lang_ok).count() as f64 / n.max(1) as f64;
                spans.push(dim("  · ", th));
                spans.push(Span::styled(
                    format!("{} {value:.3}{ci} n={n}", set.metric),
                    Style::default().fg(if self.pair() { th.run(i) } else { th.fg }),
                ));
                spans.push(dim(format!(" · in-lang {:.0}%", in_lang * 100.0), th));
            }
            lines.push(Line::from(spans));
        }
        if self.compared > 2 {
            lines.push(Line::from(dim(format!("the first two of the {} compared", self.compared), th)));
        }
        lines
    }

    /// Why there is nothing to list: a side stores no answers (a run written before they were
    /// stored, or not evaluated yet), a file that could not be read, a set scored by loss
    /// alone, or no evaluation both sides store.
    fn unavailable(&self, a: &Answers, ui: &Ui) -> Option<Vec<String>> {
        let q = &self.query;
        let mut out = Vec::new();
        for (s, side) in q.sides.iter().zip(&a.sides) {
            if let Some(e) = &side.error {
                out.push(format!("{}: {e}", s.label));
            } else if !side.stores_any() {
                let evaluated =
                    ui.store.get(&s.run).is_some_and(|r| r.evals.contains_key(&(q.task.clone(), q.lang.clone())));
                out.push(if evaluated {
                    format!(
                        "{} stores no answers: it was written before evaluations stored them. `mixscope samples {} --task {} --lang {} --step STEP` regenerates them from a checkpoint.",
                        s.label, s.run, q.task, q.lang
                    )
                } else {
                    format!("{} has no stored answers yet: none of its evaluations has finished.", s.label)
                });
            } else if side.steps.iter().all(|(_, set)| set.is_none()) {
                out.push(format!(
                    "{}: {} {} has no generated answers (its evaluations score it by held-out loss alone).",
                    s.label,
                    q.task.to_uppercase(),
                    q.lang
                ));
            }
        }
        if out.is_empty() && self.steps(a).is_empty() {
            let list = |i: usize| -> String {
                a.sides[i]
                    .steps
                    .iter()
                    .filter(|(_, x)| x.is_some())
                    .map(|(s, _)| s.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            out.push(format!("A and B store no evaluation at the same step (A: {}; B: {}).", list(0), list(1)));
        }
        (!out.is_empty()).then_some(out)
    }

    /// The evaluation shown (of those stored), and what the filters keep.
    fn summary_line(&self, a: &Answers, ui: &Ui, step: u64, sets: &[&AnswerSet], kept: usize) -> Line<'static> {
        let th = ui.theme;
        let steps = self.steps(a);
        let pos = steps.iter().position(|s| *s == step).map_or(0, |p| p + 1);
        let n = sets.iter().map(|s| s.answers.len()).min().unwrap_or(0);
        let filter = match (self.outcome, self.pair()) {
            (Outcome::All, _) => "all",
            (Outcome::Failures, false) => "failures",
            (Outcome::Failures, true) => "failures (A or B)",
            (Outcome::Passes, false) => "passes",
            (Outcome::Passes, true) => "passes (A and B)",
        };
        let differ = if self.differ { ", scores differ" } else { "" };
        let note = if self.pair() { "" } else { " · 1 seed: sampling-only CI" };
        Line::from(vec![
            Span::styled(format!("step {step}"), Style::default().fg(th.accent).add_modifier(Modifier::BOLD)),
            dim(format!(" (evaluation {pos} of {} stored)", steps.len()), th),
            dim(format!(" · showing {filter}{differ}: {kept} of {n} (pass: score ≥ {PASS}){note}"), th),
        ])
    }
}

/// Scores equal (NaN equals NaN: neither was scored).
fn same_score(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-9
}

/// The most lines a field takes (longer text is cut, its last line ending in …).
const PROMPT_LINES: usize = 6;
const FIELD_LINES: usize = 4;
const LABEL_W: u16 = 11;

/// Draw example `i` (one answer, or A's and B's) from the top of `area`; returns the row
/// after it.
fn draw_example(f: &mut Frame, area: Rect, th: &Theme, i: usize, each: &[&Answer]) -> u16 {
    let bottom = area.y + area.height;
    let pass = Style::default().fg(th.state(crate::runs::events::State::Running)).add_modifier(Modifier::BOLD);
    let fail = Style::default().fg(th.error).add_modifier(Modifier::BOLD);
    let mut spans = vec![Span::styled(format!("#{i:<4}"), Style::default().fg(th.accent).add_modifier(Modifier::BOLD))];
    for (k, x) in each.iter().enumerate() {
        if each.len() > 1 {
            spans.push(Span::styled(format!("{} ", (b'A' + k as u8) as char), Style::default().fg(th.run(k))));
        }
        let mark = if passed(x) { "✓ pass" } else { "✗ fail" };
        spans.push(Span::styled(format!("{:.3} {mark}", x.score), if passed(x) { pass } else { fail }));
        let (yes, no) = if each.len() > 1 {
            ("  in-lang", "  other language")
        } else {
            ("  in the prompt's language", "  not in the prompt's language")
        };
        spans.push(if x.lang_ok { dim(yes, th) } else { Span::styled(no, Style::default().fg(th.warning)) });
        spans.push(Span::raw("    "));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), Rect { height: 1, ..area });
    let mut y = area.y + 1;
    let text_w = area.width.saturating_sub(LABEL_W);
    let mut field = |y: u16, label: &str, parts: &[(&str, Style)], cap: usize| -> u16 {
        if y >= bottom {
            return y;
        }
        let cols = Layout::horizontal(vec![Constraint::Ratio(1, parts.len() as u32); parts.len()])
            .spacing(1)
            .split(Rect { x: area.x + LABEL_W, y, width: text_w, height: 1 });
        let mut h = 1;
        for ((text, style), col) in parts.iter().zip(cols.iter()) {
            let (para, lines) = wrapped(text, *style, col.width, cap, th);
            let lines = lines.min((bottom - y) as usize) as u16;
            f.render_widget(para, Rect { y, height: lines, ..*col });
            h = h.max(lines);
        }
        f.render_widget(
            Paragraph::new(dim(label.to_string(), th)),
            Rect { x: area.x + 1, y, width: LABEL_W - 1, height: 1 },
        );
        y + h
    };
    let plain = Style::default().fg(th.fg);
    y = field(y, "prompt", &[(&each[0].prompt, plain)], PROMPT_LINES);
    y = field(y, "reference", &[(&each[0].reference, th.dimmed())], FIELD_LINES);
    let answers: Vec<(&str, Style)> = each
        .iter()
        .enumerate()
        .map(|(k, x)| (x.generation.as_str(), if each.len() > 1 { Style::default().fg(th.run(k)) } else { plain }))
        .collect();
    let label = if each.len() > 1 { "answers" } else { "answer" };
    field(y, label, &answers, FIELD_LINES)
}

/// A text wrapped to `width`, at most `cap` lines (cut text ends in …), and its height in
/// lines. An empty answer says so.
fn wrapped(text: &str, style: Style, width: u16, cap: usize, th: &Theme) -> (Paragraph<'static>, usize) {
    if text.trim().is_empty() {
        return (Paragraph::new(dim("(empty)", th)), 1);
    }
    let lines: Vec<Line> = text.lines().map(|l| Line::from(Span::styled(l.to_string(), style))).collect();
    let para = Paragraph::new(lines.clone()).wrap(Wrap { trim: false });
    let total = para.line_count(width.max(1));
    if total <= cap {
        return (para, total.max(1));
    }
    // Keep whole source lines while they fit, then cut the rest to what is left.
    let mut kept: Vec<Line> = Vec::new();
    let mut used = 0;
    for l in text.lines() {
        let h = Paragraph::new(l.to_string()).wrap(Wrap { trim: false }).line_count(width.max(1));
        if used + h > cap {
            let room = (cap - used) * width as usize;
            kept.push(Line::from(Span::styled(clip(l, room.saturating_sub(2).max(1)), style)));
            break;
        }
        kept.push(Line::from(Span::styled(l.to_string(), style)));
        used += h;
    }
    (Paragraph::new(kept).wrap(Wrap { trim: false }), cap)
}

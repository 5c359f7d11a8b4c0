//! The fork dialog (`f`): of one run, or of every member of a group at one step; the step
//! among the checkpoints the collector listed, the mixture by weights or as a SPEC, a name,
//! and the seeds of a run's forks.

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::launch::check_seeds;
use super::text::{centered, hint, input_line, TextInput};
use super::text::{Effect, Env, Reply};
use crate::data::lang;
use crate::data::mixture::{Mixture, SpecContext};
use crate::runs::group::Group;
use crate::tui::action::Action;
use crate::tui::keymap::Context;
use crate::tui::panes::{block, clip, dim};
use crate::tui::state::Request;
use crate::tui::store::RunData;

/// The fork dialog's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkField {
    Step,
    Weights,
    Spec,
    Name,
    Seeds,
}

/// The fork dialog: of one run, or of every member of a group at one step.
#[derive(Debug, Clone)]
pub struct Fork {
    /// The run's id, or the group's label.
    pub run: String,
    /// Forking a group: its members (run ids); each fork keeps its member's seed.
    pub group: Option<Vec<String>>,
    /// The seeds of the forks of one run (empty: one fork, with the run's seed).
    pub seeds: TextInput,
    pub seeds_check: Result<String, String>,
    base_seed: u64,
    pub checkpoints: Vec<u64>,
    /// The checkpoints that hold weights only (a shipped base's step): a fork from one starts
    /// with fresh optimizer moments, as `mixscope fork` does.
    pub weights_only: Vec<u64>,
    pub ckpt: usize,
    pub field: ForkField,
    /// Per-language weights (suite order), as edited.
    pub weights: Vec<(String, f64)>,
    pub row: usize,
    pub spec: TextInput,
    pub name: TextInput,
    /// The resolved mixture's summary, or the SPEC's error.
    pub validation: Result<String, String>,
    ctx: SpecContext,
}

impl Fork {
    pub fn new(r: &RunData) -> Fork {
        let cfg = r.cfg.clone().unwrap_or_default();
        let ctx = cfg.data.spec_context();
        // The checkpoints the collector listed (no directory is read here, on the UI thread).
        let points = r.fork_points();
        let ck: Vec<u64> = points.iter().map(|(s, _)| *s).collect();
        let spec = cfg.mixture().map(|m| m.spec).unwrap_or_else(|_| cfg.data.mixture.clone());
        let weights_only = points.iter().filter(|(_, w)| *w).map(|(s, _)| *s).collect();
        let mut d = Fork {
            run: r.id.clone(),
            group: None,
            seeds: TextInput::default(),
            seeds_check: check_seeds("", Some(cfg.seed)),
            base_seed: cfg.seed,
            weights_only,
            ckpt: ck.len().saturating_sub(1),
            checkpoints: ck,
            field: ForkField::Weights,
            weights: lang::all().iter().map(|l| (l.code.clone(), 0.0)).collect(),
            row: 0,
            spec: TextInput::new(&spec),
            name: TextInput::new(&format!("{}-fork", r.display_name())),
            validation: Err(String::new()),
            ctx,
        };
        d.spec_changed();
        d
    }

    /// The dialog for a group: the checkpoints every member has, the first member's mixture.
    pub fn for_group(g: &Group, members: &[&RunData]) -> Option<Fork> {
        let first = members.first()?;
        let mut d = Fork::new(first);
        let mut common: Option<Vec<u64>> = None;
        for m in members {
            let ck: Vec<u64> = m.fork_points().iter().map(|(s, _)| *s).collect();
            common = Some(match common {
                None => ck,
                Some(c) => c.into_iter().filter(|s| ck.contains(s)).collect(),
            });
        }
        d.checkpoints = common.unwrap_or_default();
        d.ckpt = d.checkpoints.len().saturating_sub(1);
        d.run = g.label();
        d.group = Some(members.iter().map(|m| m.id.clone()).collect());
        d.name = TextInput::new(&format!("{}-fork", g.name.as_deref().unwrap_or(&g.id)));
        d.seeds_check = Ok(format!("{} forks, one group: each keeps its member's seed", members.len()));
        Some(d)
    }

    /// Re-validate the seeds text.
    pub fn seeds_changed(&mut self) {
        if self.group.is_none() {
            self.seeds_check = check_seeds(&self.seeds.text, Some(self.base_seed));
        }
    }

    /// The fields, in the order tab visits them (a group's forks keep their seeds: no field).
    pub fn fields(&self) -> &'static [ForkField] {
        if self.group.is_some() {
            &[ForkField::Step, ForkField::Weights, ForkField::Spec, ForkField::Name]
        } else {
            &[ForkField::Step, ForkField::Weights, ForkField::Spec, ForkField::Name, ForkField::Seeds]
        }
    }

    /// Re-validate the SPEC text, and show its weights in the rows when it parses.
    pub fn spec_changed(&mut self) {
        match Mixture::parse(&self.spec.text, &self.ctx) {
            Ok(m) => {
                for (code, w) in self.weights.iter_mut() {
                    *w = m.langs.iter().find(|(c, _)| c == code).map_or(0.0, |(_, w)| *w);
                }
                self.validation = Ok(m.summary());
            }
            Err(e) => self.validation = Err(format!("{e:#}")),
        }
    }

    /// Rewrite the SPEC from the rows.
    pub fn weights_changed(&mut self) {
        let parts: Vec<String> = self
            .weights
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .map(|(c, w)| format!("{c}={}", (w * 1000.0).round() / 1000.0))
            .collect();
        let tasks = self.spec.text.split(',').find(|p| p.starts_with("tasks="));
        let mut s = parts.join(",");
        if let Some(t) = tasks {
            s.push(',');
            s.push_str(t);
        }
        self.spec = TextInput::new(&s);
        self.spec_changed();
    }

    pub fn step(&self) -> Option<u64> {
        self.checkpoints.get(self.ckpt).copied()
    }

    /// The chosen checkpoint holds weights only: the fork starts with fresh optimizer moments.
    pub fn fresh_optimizer(&self) -> bool {
        self.step().is_some_and(|s| self.weights_only.contains(&s))
    }

    /// A key (with its action in the fork context).
    pub fn key(&mut self, k: &KeyEvent, action: Option<Action>) -> Reply {
        let d = self;
        let text = matches!(d.field, ForkField::Spec | ForkField::Name | ForkField::Seeds);
        if text && TextInput::edits(k) {
            match d.field {
                ForkField::Spec => {
                    if d.spec.key(k) {
                        d.spec_changed();
                    }
                }
                ForkField::Seeds => {
                    if d.seeds.key(k) {
                        d.seeds_changed();
                    }
                }
                _ => {
                    d.name.key(k);
                }
            }
            return Reply::keep();
        }
        let Some(action) = action else { return Reply::keep() };
        match action {
            Action::Close => return Reply::close(),
            Action::Submit => {
                return match (&d.validation, &d.seeds_check) {
                    (Ok(_), Ok(_)) => {
                        let name = d.name.text.trim().to_string();
                        let at = d.step().map_or("latest".into(), |s| s.to_string());
                        let fresh = if d.fresh_optimizer() { " (weights only: fresh optimizer moments)" } else { "" };
                        match &d.group {
                            Some(members) => Reply::close()
                                .and(Effect::Request(Request::ForkGroup {
                                    label: d.run.clone(),
                                    members: members.clone(),
                                    at: d.step(),
                                    spec: d.spec.text.clone(),
                                    name: name.clone(),
                                }))
                                .and(Effect::Log(
                                    format!("forking every run of {} at step {at} as {name}{fresh}", d.run),
                                    false,
                                )),
                            None => {
                                let seeds = Some(d.seeds.text.trim().to_string()).filter(|s| !s.is_empty());
                                Reply::close()
                                    .and(Effect::Request(Request::Fork {
                                        run: d.run.clone(),
                                        at: d.step(),
                                        spec: d.spec.text.clone(),
                                        name: name.clone(),
                                        seeds,
                                    }))
                                    .and(Effect::Log(format!("forking {} at step {at} as {name}{fresh}", d.run), false))
                            }
                        }
                    }
                    (Err(e), _) => Reply::keep().and(Effect::Log(format!("fix the mixture first: {e}"), true)),
                    (_, Err(e)) => Reply::keep().and(Effect::Log(format!("fix the seeds first: {e}"), true)),
                };
            }
            Action::NextField | Action::PrevField => {
                let order = d.fields();
                let i = order.iter().position(|f| *f == d.field).unwrap_or(0);
                let n = order.len();
                d.field = order[if action == Action::NextField { (i + 1) % n } else { (i + n - 1) % n }];
                return Reply::keep();
            }
            _ => {}
        }
        match d.field {
            ForkField::Step => match action {
                Action::Up | Action::Lower => d.ckpt = d.ckpt.saturating_sub(1),
                Action::Down | Action::Increase => d.ckpt = (d.ckpt + 1).min(d.checkpoints.len().saturating_sub(1)),
                _ => {}
            },
            ForkField::Weights => match action {
                Action::Up => d.row = d.row.saturating_sub(1),
                Action::Down => d.row = (d.row + 1).min(d.weights.len() - 1),
                Action::Increase => {
                    d.weights[d.row].1 = ((d.weights[d.row].1 + 0.05) * 100.0).round() / 100.0;
                    d.weights_changed();
                }
                Action::Lower => {
                    d.weights[d.row].1 = (((d.weights[d.row].1 - 0.05).max(0.0)) * 100.0).round() / 100.0;
                    d.weights_changed();
                }
                Action::Zero => {
                    d.weights[d.row].1 = 0.0;
                    d.weights_changed();
                }
                _ => {}
            },
            ForkField::Spec | ForkField::Name | ForkField::Seeds => {}
        }
        Reply::keep()
    }

    pub fn draw(&self, f: &mut Frame, env: Env) {
        let (area, d, keys, th) = (f.area(), self, env.keymap, env.theme);
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
            let hint =
                Rect { x: r.x + 2, y: r.bottom().saturating_sub(1), width: r.width.saturating_sub(4), height: 1 };
            f.render_widget(
                Paragraph::new(dim(
                    "↑↓ language  ←→ −/+ 5 points  x remove  (or type a SPEC: multilingual=0.4, en=1000,n=400)",
                    th,
                )),
                hint,
            );
        }
    }
}

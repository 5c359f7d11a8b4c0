//! Colour themes, read from `themes/*.toml` (embedded; a path may be given instead).

use anyhow::Result;
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use crate::runs::events::State;

pub const BUILTIN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("colorblind", include_str!("../../themes/colorblind.toml")),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    bg: String,
    fg: String,
    dim: String,
    accent: String,
    border: String,
    border_focus: String,
    selection_bg: String,
    warning: String,
    error: String,
    state: RawState,
    group: RawGroup,
    series: RawSeries,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    running: String,
    paused: String,
    queued: String,
    finished: String,
    stopped: String,
    failed: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    anchor: String,
    seen: Vec<String>,
    unseen: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    train: String,
    smooth: String,
    eval: String,
    runs: Vec<String>,
}

/// A resolved theme.
#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    pub bg: Color,
    pub fg: Color,
    pub dim: Color,
    pub accent: Color,
    pub border: Color,
    pub border_focus: Color,
    pub selection_bg: Color,
    pub warning: Color,
    pub error: Color,
    states: [Color; 6],
    anchor: Color,
    seen: Vec<Color>,
    unseen: Vec<Color>,
    pub train: Color,
    pub smooth: Color,
    pub eval: Color,
    runs: Vec<Color>,
}

fn color(s: &str, field: &str, file: &str) -> Result<Color> {
    let s = s.trim();
    if s == "reset" {
        return Ok(Color::Reset);
    }
    if let Ok(n) = s.parse::<u8>() {
        return Ok(Color::Indexed(n));
    }
    s.parse::<Color>().map_err(|_| {
        crate::error::bad_input(format!("{file}: {field}: '{s}' is not a colour (a name, #rrggbb or 0-255)"))
    })
}

impl Theme {
    /// Parse a theme file's text.
    pub fn parse(file: &str, src: &str) -> Result<Theme> {
        let r: Raw = toml::from_str(src).map_err(|e| crate::error::toml_error(file, src, &e))?;
        let c = |s: &str, f: &str| color(s, f, file);
        let list = |v: &[String], f: &str| -> Result<Vec<Color>> {
            if v.is_empty() {
                return Err(crate::error::bad_input(format!("{file}: {f}: needs at least one colour")));
            }
            v.iter().map(|s| c(s, f)).collect()
        };
        Ok(Theme {
            name: r.name,
            bg: c(&r.bg, "bg")?,
            fg: c(&r.fg, "fg")?,
            dim: c(&r.dim, "dim")?,
            accent: c(&r.accent, "accent")?,
            border: c(&r.border, "border")?,
            border_focus: c(&r.border_focus, "border_focus")?,
            selection_bg: c(&r.selection_bg, "selection_bg")?,
            warning: c(&r.warning, "warning")?,
            error: c(&r.error, "error")?,
            states: [
                c(&r.state.queued, "state.queued")?,
                c(&r.state.running, "state.running")?,
                c(&r.state.paused, "state.paused")?,
                c(&r.state.stopped, "state.stopped")?,
                c(&r.state.finished, "state.finished")?,
                c(&r.state.failed, "state.failed")?,
            ],
            anchor: c(&r.group.anchor, "group.anchor")?,
            seen: list(&r.group.seen, "group.seen")?,
            unseen: list(&r.group.unseen, "group.unseen")?,
            train: c(&r.series.train, "series.train")?,
            smooth: c(&r.series.smooth, "series.smooth")?,
            eval: c(&r.series.eval, "series.eval")?,
            runs: list(&r.series.runs, "series.runs")?,
        })
    }

    /// A built-in theme by name, a user theme by name (`themes/<name>.toml` in the user's
    /// config directory, `userconf`), or a theme file by path.
    pub fn load(name_or_path: &str) -> Result<Theme> {
        if let Some((n, src)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Theme::parse(&format!("themes/{n}.toml"), src);
        }
        let user = (!name_or_path.contains(['/', '.']))
            .then(|| crate::userconf::file(&format!("themes/{name_or_path}.toml")))
            .flatten();
        if let Some(p) = user {
            let src = std::fs::read_to_string(&p)?;
            return Theme::parse(&p.display().to_string(), &src);
        }
        let p = std::path::Path::new(name_or_path);
        if p.exists() {
            let src = std::fs::read_to_string(p)?;
            return Theme::parse(&p.display().to_string(), &src);
        }
        Err(crate::error::bad_input(format!(
            "theme '{name_or_path}': not a built-in theme ({}), a user theme nor a file",
            BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        )))
    }

    pub fn dark() -> Theme {
        Theme::load("dark").expect("the built-in dark theme parses")
    }

    pub fn state(&self, s: State) -> Color {
        self.states[match s {
            State::Queued => 0,
            State::Running => 1,
            State::Paused => 2,
            State::Stopped => 3,
            State::Finished => 4,
            State::Failed => 5,
        }]
    }

    /// The colour of a language curve: English white-ish; seen blues/greens; unseen oranges.
    pub fn lang(&self, group: &str, index: usize) -> Color {
        match group {
            "anchor" => self.anchor,
            "seen" => self.seen[index % self.seen.len()],
            _ => self.unseen[index % self.unseen.len()],
        }
    }

    /// The colour of the i-th run in a comparison.
    pub fn run(&self, i: usize) -> Color {
        self.runs[i % self.runs.len()]
    }

    pub fn base(&self) -> Style {
        Style::default().fg(self.fg).bg(self.bg)
    }

    pub fn dimmed(&self) -> Style {
        Style::default().fg(self.dim)
    }

    pub fn title(&self) -> Style {
        Style::default().fg(self.accent).add_modifier(Modifier::BOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_themes_parse_and_bad_colours_are_located() {
        for (n, _) in BUILTIN {
            Theme::load(n).unwrap();
        }
        let bad = BUILTIN[0].1.replace("fg = \"#d0d0d0\"", "fg = \"#zzzzzz\"");
        let e = Theme::parse("t.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("t.toml: fg") && e.contains("#zzzzzz"), "{e}");
        let e = Theme::load("neon").unwrap_err().to_string();
        assert!(e.contains("dark, light, colorblind"), "{e}");
    }
}

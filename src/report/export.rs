//! One figure for one selection, as `mixscope report` draws it (the same functions of
//! `plots.rs`), written as SVG and PNG: what the TUI's export key does with the focused pane.
//! It reads the runs' files itself, so the TUI calls it off its UI thread.
//!
//! Files go to `exports/` under the runs root, or to the directory `exports = "..."` in the
//! user's config.toml names: `<what>-<pane>-<UTC time>.svg` and `.png`, where `<what>` is the
//! run's or group's name, `a-vs-b` for a comparison, the sweep's id for a sweep.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::figures::Figure;
use super::plots::{self, RunCurves, Side};
use crate::analysis::EvalTable;
use crate::runs::events::read_all;
use crate::runs::RunDir;

/// Which pane a figure is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Loss,
    Languages,
    Compare,
    Sweep,
}

impl Pane {
    pub fn name(self) -> &'static str {
        match self {
            Pane::Loss => "loss",
            Pane::Languages => "languages",
            Pane::Compare => "compare",
            Pane::Sweep => "sweep",
        }
    }
}

/// What to draw: a pane and what it shows (its sides, or its sweep).
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub pane: Pane,
    /// Each side's label and its runs' ids (a run alone: one id; a group: its members).
    pub sides: Vec<(String, Vec<String>)>,
    /// The sweep's id, for [`Pane::Sweep`].
    pub sweep: Option<String>,
}

impl Export {
    /// What the files are named by: the side's name, `a-vs-b`, or the sweep's id.
    fn what(&self) -> String {
        match (&self.sweep, self.pane) {
            (Some(id), Pane::Sweep) => slug(id),
            _ => self.sides.iter().map(|(l, _)| slug(l)).collect::<Vec<_>>().join("-vs-"),
        }
    }
}

/// A name as a file name: letters, digits, `.`, `_` and `-`, the rest `-` (`tiny ×3` is
/// `tiny-x3`), at most 60 characters.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.replace('×', "x").chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let out: String = out.trim_matches(['-', '.']).chars().take(60).collect();
    if out.is_empty() {
        "figure".into()
    } else {
        out
    }
}

/// A Unix time as `YYYYMMDD-HHMMSS` (UTC).
pub fn stamp(t: f64) -> String {
    let secs = t.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A run of the root as the figures read it: its config's name, mixture and lineage, and its
/// events.
pub fn read_run(root: &Path, id: &str) -> Result<RunCurves> {
    let dir = RunDir::new(root.join(id));
    let cfg = dir.read_config().ok();
    let (events, _, _) = read_all(&dir.events_path()).with_context(|| format!("reading run {id}"))?;
    let name = cfg.as_ref().and_then(|c| c.name.clone()).unwrap_or_else(|| id.to_string());
    let mixture = cfg.as_ref().and_then(|c| c.mixture().ok()).map(|m| m.summary()).unwrap_or_default();
    let lineage = cfg.as_ref().and_then(|c| c.lineage.as_ref()).map(|l| (l.parent.as_str(), l.fork_step));
    let table = EvalTable::from_events(&events);
    Ok(RunCurves::new(id, &name, &mixture, lineage, &events, table))
}

/// The figure of an export, read from the runs root.
pub fn figure(root: &Path, e: &Export) -> Result<Figure> {
    if e.pane == Pane::Sweep {
        let id = e.sweep.as_deref().context("no sweep selected")?;
        return Ok(plots::sweep_figure(
            &crate::analysis::sweep::analyse_sweep(root, id)?,
            &["english", "seen", "unseen"],
            "",
        ));
    }
    let read: Vec<Vec<RunCurves>> =
        e.sides.iter().map(|(_, ids)| ids.iter().map(|id| read_run(root, id)).collect()).collect::<Result<_>>()?;
    let sides: Vec<Side> = e
        .sides
        .iter()
        .zip(&read)
        .map(|((label, _), runs)| Side { label: label.clone(), runs: runs.iter().collect() })
        .collect();
    let Some(first) = sides.first() else { anyhow::bail!("nothing selected to draw") };
    let lookup = |id: &str| read_run(root, id).ok();
    let label_of = |id: &str| lookup(id).map_or(id.to_string(), |r| r.label);
    let none = || anyhow::anyhow!("no evaluation yet: the {} pane has nothing to draw", e.pane.name());
    match e.pane {
        Pane::Loss => Ok(plots::loss_figure(&sides, &lookup)),
        Pane::Languages => plots::langs_figure(first, &first.lineage(&label_of)).ok_or_else(none),
        Pane::Compare => plots::compare_figure(&sides).ok_or_else(none),
        Pane::Sweep => unreachable!("handled above"),
    }
}

/// Where exports go: `exports` in config.toml, else `exports/` under the runs root.
pub fn dir(root: &Path) -> PathBuf {
    crate::userconf::get().exports.unwrap_or_else(|| root.join("exports"))
}

/// Draw an export and write it to [`dir`] as `<what>-<pane>-<time>.svg` and `.png` (a second
/// export in the same second gets `-2`, ...); returns the two paths.
pub fn write(root: &Path, e: &Export, now: f64) -> Result<(PathBuf, PathBuf)> {
    let fig = figure(root, e)?;
    let out = dir(root);
    crate::util::create_private_dir(&out)?;
    let base = format!("{}-{}-{}", e.what(), e.pane.name(), stamp(now));
    let mut stem = base.clone();
    let mut n = 1;
    while out.join(format!("{stem}.svg")).exists() || out.join(format!("{stem}.png")).exists() {
        n += 1;
        stem = format!("{base}-{n}");
    }
    fig.save(&out, &stem)?;
    Ok((out.join(format!("{stem}.svg")), out.join(format!("{stem}.png"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_names() {
        assert_eq!(stamp(0.0), "19700101-000000");
        assert_eq!(stamp(1_796_556_432.7), "20261206-112712");
        assert_eq!(stamp(951_782_400.0), "20000229-000000");
        assert_eq!(slug("tiny ×3"), "tiny-x3");
        assert_eq!(slug("../a b"), "a-b");
        assert_eq!(slug("  "), "figure");
    }

    /// A root of synthetic runs (real run directories): a base and its fine-tuned forks, two
    /// groups of three seeds, a four-point sweep.
    fn root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        crate::tui::fixtures::standard(t.path()).unwrap();
        crate::tui::fixtures::groups(t.path()).unwrap();
        crate::tui::fixtures::sweep(t.path()).unwrap();
        t
    }

    fn ids(root: &Path, prefix: &str) -> Vec<String> {
        crate::runs::list(root).unwrap().iter().map(|r| r.id()).filter(|id| id.starts_with(prefix)).collect()
    }

    fn check(svg: &str, png: &[u8], texts: &[&str]) {
        let doc = roxmltree::Document::parse(svg).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let all: Vec<&str> =
            doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
        for t in texts {
            assert!(all.iter().any(|a| a.contains(t)), "{t:?} in {all:?}");
        }
        let mut r = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        let w: u32 = doc.root_element().attribute("width").unwrap().parse().unwrap();
        let h: u32 = doc.root_element().attribute("height").unwrap().parse().unwrap();
        assert_eq!((info.width, info.height), (w, h), "the PNG is the SVG's size");
        assert!(w >= 600 && h >= 300, "{w}×{h}");
        let inked = buf.chunks(3).filter(|p| p.iter().any(|&c| c < 200)).count();
        assert!(inked > 2000, "the PNG has drawing on it ({inked} pixels)");
    }

    /// Each pane's figure is valid SVG (parsed as XML, its words as text) and a PNG of the same
    /// size with drawing on it; the loss figure of a fine-tuned run spans its own steps, with its
    /// base as context.
    #[test]
    fn each_pane_draws_valid_svg_and_png() {
        let t = root();
        let ml40 = ("ml40 ×3".to_string(), ids(t.path(), "ml40.s"));
        let en = ("en ×3".to_string(), ids(t.path(), "en.s"));
        let fork = ("demo-en".to_string(), vec!["en-4d5e6f".to_string()]);
        assert_eq!((ml40.1.len(), en.1.len()), (3, 3));
        let cases = [
            (
                Pane::Loss,
                vec![fork.clone()],
                vec!["train loss", "demo-en", "demo-base (parent, context)", "fork @ 300"],
            ),
            (Pane::Loss, vec![ml40.clone(), en.clone()], vec!["held-out loss", "ml40 ×3", "across seeds"]),
            (Pane::Languages, vec![ml40.clone()], vec!["MR — accuracy", "es (seen)", "mean of 3 seeds"]),
            (Pane::Languages, vec![fork.clone()], vec!["ko (unseen)", "sampling only", "demo-base @ 300"]),
            (Pane::Compare, vec![en.clone(), ml40.clone()], vec!["A en ×3", "B ml40 ×3", "across seeds"]),
            (Pane::Compare, vec![fork.clone(), ml40.clone()], vec!["A demo-en", "sampling only"]),
        ];
        for (pane, sides, texts) in cases {
            let e = Export { pane, sides: sides.clone(), sweep: None };
            let fig = figure(t.path(), &e).unwrap_or_else(|e| panic!("{pane:?} {sides:?}: {e:#}"));
            let (svg, png) = fig.render().unwrap();
            check(&svg, &png, &texts);
            if pane == Pane::Loss && sides[0].0 == "demo-en" {
                let x = fig.panels[0].x_range.unwrap();
                assert!(x.0 >= 260.0 && x.0 < 300.0 && x.1 == 700.0, "its own steps and a stub: {x:?}");
            }
            if pane == Pane::Languages {
                let bands = fig.panels[0]
                    .lines
                    .iter()
                    .filter(|l| l.band.as_ref().is_some_and(|b| b.iter().any(Option::is_some)));
                assert!(bands.count() >= 3, "every language has its interval shaded");
            }
        }
        let e = Export { pane: Pane::Sweep, sides: Vec::new(), sweep: Some("paper-9c8d7e".into()) };
        let (svg, png) = figure(t.path(), &e).unwrap().render().unwrap();
        check(&svg, &png, &["N examples per language (n)", "unseen", "Error bars: 95 %"]);
        let (svg, _) = write(t.path(), &e, 0.0).unwrap();
        assert_eq!(svg, t.path().join("exports/paper-9c8d7e-sweep-19700101-000000.svg"));

        // Written where the log says, twice in one second: two pairs of files.
        let e = Export { pane: Pane::Loss, sides: vec![fork], sweep: None };
        let (svg, png) = write(t.path(), &e, 1_796_556_432.0).unwrap();
        assert_eq!(svg, t.path().join("exports/demo-en-loss-20261206-112712.svg"));
        assert!(png.exists());
        let (svg2, _) = write(t.path(), &e, 1_796_556_432.0).unwrap();
        assert_eq!(svg2, t.path().join("exports/demo-en-loss-20261206-112712-2.svg"));
        assert!(crate::runs::list(t.path()).unwrap().iter().all(|r| r.id() != "exports"), "exports/ is no run");
        let e = Export { pane: Pane::Languages, sides: vec![("x".into(), vec!["nope".into()])], sweep: None };
        assert!(write(t.path(), &e, 0.0).is_err());
    }
}

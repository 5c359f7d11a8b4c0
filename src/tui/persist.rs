//! What the TUI keeps across restarts, per runs root: the marks, the selected row, the x axis
//! and range, the smoothing and the focused pane. One small JSON file per root in the user's
//! state directory (`$XDG_STATE_HOME/mixscope/`, else `~/.local/state/mixscope/`), named by a
//! hash of the root's path and written atomically; a missing file is a first session, a
//! damaged one is reported and ignored.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::app::App;
use super::state::{Focus, Pick, XRange};
use super::store::XAxis;

/// The saved view of one runs root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// The root, as given (the file's name is its hash; this tells a reader which root).
    pub root: PathBuf,
    pub marked: Vec<String>,
    pub selected: Option<Pick>,
    pub x_axis: XAxis,
    pub x_range: XRange,
    pub smoothing: f32,
    pub focus: Focus,
}

impl Saved {
    /// What an app shows now.
    pub fn of(app: &App) -> Saved {
        Saved {
            root: app.store.root.clone(),
            marked: app.sel.marked.iter().cloned().collect(),
            selected: app.picked(),
            x_axis: app.view.x_axis,
            x_range: app.view.x_range,
            smoothing: app.view.smoothing,
            focus: app.view.focus,
        }
    }

    /// Show it again: the settings at once, the selection once its row appears.
    pub fn restore(self, app: &mut App) {
        app.sel.marked = self.marked.into_iter().collect();
        app.sel.restore = self.selected;
        app.view.x_axis = self.x_axis;
        app.view.x_range = self.x_range;
        if self.smoothing.is_finite() {
            app.view.smoothing = self.smoothing.clamp(0.0, 0.95);
        }
        app.view.focus = self.focus;
        app.dirty = true;
    }
}

/// The state directory: `$XDG_STATE_HOME/mixscope` (an absolute path only, as the XDG
/// specification says), else `~/.local/state/mixscope`.
pub fn dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let base = xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("mixscope"))
}

/// The file of a runs root: named by a hash of its absolute path.
pub fn path(root: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let hash = crate::util::short_hash(abs.as_os_str().as_encoded_bytes());
    Some(dir()?.join(format!("tui-{hash}.json")))
}

/// The saved view of a root: `None` when there is none (or no state directory), an error when
/// the file cannot be read or parsed (the caller logs it and goes on).
pub fn load(root: &Path) -> Result<Option<Saved>> {
    let Some(p) = path(root) else { return Ok(None) };
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    serde_json::from_str(&text).map(Some).with_context(|| format!("{} is damaged", p.display()))
}

/// Save the view of a root, atomically (a crash leaves the old file or the new one).
pub fn save(root: &Path, s: &Saved) -> Result<()> {
    let Some(p) = path(root) else { return Ok(()) };
    if let Some(d) = p.parent() {
        crate::util::create_private_dir(d)?;
    }
    crate::util::write_atomic_private(&p, serde_json::to_string_pretty(s)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(root: &Path) -> Saved {
        Saved {
            root: root.to_path_buf(),
            marked: vec!["a".into(), "g:1234".into()],
            selected: Some(Pick::Group("g:1234".into(), "a".into())),
            x_axis: XAxis::Tokens,
            x_range: XRange::Recent(25),
            smoothing: 0.3,
            focus: Focus::Langs,
        }
    }

    /// One test (the state directory is the process's environment): a round trip per root, a
    /// missing file, a damaged one, and the fallback to `~/.local/state`.
    #[test]
    fn the_view_is_saved_per_root_and_a_damaged_file_is_an_error_not_a_crash() {
        let t = tempfile::tempdir().unwrap();
        std::env::set_var("XDG_STATE_HOME", t.path());
        let (a, b) = (t.path().join("runs-a"), t.path().join("runs-b"));
        assert_eq!(load(&a).unwrap(), None, "no file yet");
        save(&a, &saved(&a)).unwrap();
        assert_eq!(load(&a).unwrap(), Some(saved(&a)));
        assert_eq!(load(&b).unwrap(), None, "per root");
        assert!(path(&a).unwrap().starts_with(t.path().join("mixscope")));
        std::fs::write(path(&a).unwrap(), "{ not json").unwrap();
        let e = load(&a).unwrap_err();
        assert!(format!("{e:#}").contains("is damaged"), "{e:#}");
        // A relative XDG_STATE_HOME is ignored: HOME's .local/state instead.
        let home = std::env::var_os("HOME");
        std::env::set_var("XDG_STATE_HOME", "relative");
        std::env::set_var("HOME", t.path());
        assert_eq!(dir().unwrap(), t.path().join(".local/state/mixscope"));
        std::env::set_var("XDG_STATE_HOME", t.path());
        if let Some(h) = home {
            std::env::set_var("HOME", h);
        }
    }
}

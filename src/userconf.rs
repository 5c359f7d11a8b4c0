//! The user's own files, in `$XDG_CONFIG_HOME/mixscope/` (`~/.config/mixscope/` when
//! `XDG_CONFIG_HOME` is unset; `MIXSCOPE_CONFIG_DIR` overrides both):
//!
//! - `config.toml`: defaults, e.g. `runs = "~/experiments/runs"` (the runs root when neither
//!   `--runs` nor `MIXSCOPE_RUNS` says) and `theme = "light"` (the TUI's theme when neither
//!   `--theme` nor `MIXSCOPE_THEME` says), `exports = "~/figures"` (where the TUI's export key
//!   writes);
//! - `keymap.toml`: key bindings that replace the built-in ones of the same action, in the
//!   format of `assets/keymap.toml` (`help` and `context` may be left out);
//! - `themes/<name>.toml`: themes `--theme <name>` finds, in the format of `themes/dark.toml`.
//!
//! A file that does not parse is an error naming its place (file:line:col), exit code 2.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Result;
use serde::Deserialize;

/// `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The default runs root (`~/` is the home directory; a relative path is relative to the
    /// config directory).
    pub runs: Option<PathBuf>,
    /// The default TUI theme: a built-in name, a name under `themes/`, or a file.
    pub theme: Option<String>,
    /// Tell the terminal when a run writes a warning while the TUI watches: a bell and a
    /// desktop notification (OSC 9 and OSC 777, which terminals that lack them ignore).
    /// Default true.
    pub notify: Option<bool>,
    /// Where the TUI's export key writes figures (`~/` is the home directory; a relative path
    /// is relative to the config directory). Default: `exports/` under the runs root.
    pub exports: Option<PathBuf>,
}

/// The directory of the user's files, if a home or config directory is known.
pub fn dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var("MIXSCOPE_CONFIG_DIR") {
        return Some(d);
    }
    // XDG: a relative XDG_CONFIG_HOME is invalid and ignored.
    if let Some(x) = var("XDG_CONFIG_HOME").filter(|p| p.is_absolute()) {
        return Some(x.join("mixscope"));
    }
    var("HOME").map(|h| h.join(".config").join("mixscope"))
}

fn home_expanded(p: &Path, base: &Path) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~") {
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(rest);
        }
    }
    if p.is_relative() {
        base.join(p)
    } else {
        p.to_path_buf()
    }
}

/// Read `config.toml` from a directory (absent: the defaults).
pub fn read(dir: &Path) -> Result<UserConfig> {
    let path = dir.join("config.toml");
    let src = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UserConfig::default()),
        Err(e) => crate::bail_input!("{}: cannot read: {e}", path.display()),
    };
    let mut c: UserConfig =
        toml::from_str(&src).map_err(|e| crate::error::toml_error(&path.display().to_string(), &src, &e))?;
    c.runs = c.runs.map(|r| home_expanded(&r, dir));
    c.exports = c.exports.map(|r| home_expanded(&r, dir));
    Ok(c)
}

static LOADED: OnceLock<std::result::Result<UserConfig, String>> = OnceLock::new();

fn loaded() -> &'static std::result::Result<UserConfig, String> {
    LOADED.get_or_init(|| match dir() {
        Some(d) => read(&d).map_err(|e| format!("{e:#}")),
        None => Ok(UserConfig::default()),
    })
}

/// Check the user's config once, at start-up: a bad file is a bad-input error.
pub fn check() -> Result<()> {
    match loaded() {
        Ok(_) => Ok(()),
        Err(e) => Err(crate::error::bad_input(e.clone())),
    }
}

/// The user's config (the defaults when it did not parse: [`check`] reported that).
pub fn get() -> UserConfig {
    loaded().clone().unwrap_or_default()
}

/// A file under the user's config directory, when it exists.
pub fn file(rel: &str) -> Option<PathBuf> {
    dir().map(|d| d.join(rel)).filter(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_toml_is_read_with_paths_resolved_and_errors_located() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(read(t.path()).unwrap(), UserConfig::default());
        std::fs::write(t.path().join("config.toml"), "runs = \"exp/runs\"\ntheme = \"light\"\nexports = \"figs\"\n")
            .unwrap();
        let c = read(t.path()).unwrap();
        assert_eq!(c.runs, Some(t.path().join("exp/runs")));
        assert_eq!(c.exports, Some(t.path().join("figs")));
        assert_eq!(c.theme.as_deref(), Some("light"));
        std::fs::write(t.path().join("config.toml"), "runs = \"r\"\ncolour = 1\n").unwrap();
        let e = format!("{:#}", read(t.path()).unwrap_err());
        assert!(e.contains("config.toml:2:1") && e.contains("colour"), "{e}");
    }
}

//! Key bindings as data (`assets/keymap.toml`): lookups for the event loop, and the help
//! screen's text, both from the same table.

use anyhow::Result;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

use super::action::Action;

const DEFAULT: &str = include_str!("../../assets/keymap.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    key: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    keys: Vec<String>,
    action: String,
    help: String,
    context: String,
}

/// One binding.
#[derive(Debug, Clone)]
pub struct Binding {
    pub keys: Vec<(KeyCode, KeyModifiers)>,
    pub labels: Vec<String>,
    pub action: Action,
    pub help: String,
    pub context: String,
}

#[derive(Debug, Clone)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
}

fn parse_key(s: &str) -> Option<(KeyCode, KeyModifiers)> {
    let (mods, name) = match s.strip_prefix("ctrl-") {
        Some(rest) => (KeyModifiers::CONTROL, rest),
        None => (KeyModifiers::NONE, s),
    };
    let code = match name {
        "enter" => KeyCode::Enter,
        "esc" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "backtab" => KeyCode::BackTab,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "pageup" => KeyCode::PageUp,
        "pagedown" => KeyCode::PageDown,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "space" => KeyCode::Char(' '),
        "backspace" => KeyCode::Backspace,
        f if f.starts_with('f') && f.len() > 1 && f[1..].parse::<u8>().is_ok() => KeyCode::F(f[1..].parse().ok()?),
        c if c.chars().count() == 1 => KeyCode::Char(c.chars().next()?),
        _ => return None,
    };
    Some((code, mods))
}

/// The keys of entry `i` of a keymap file.
fn parse_keys(file: &str, i: usize, labels: &[String]) -> Result<Vec<(KeyCode, KeyModifiers)>> {
    labels
        .iter()
        .map(|s| match parse_key(s) {
            Some(k) => Ok(k),
            None => Err(crate::error::bad_input(format!("{file}: key[{i}].keys: cannot read key '{s}'"))),
        })
        .collect()
}

fn check_context(file: &str, i: usize, c: &str) -> Result<()> {
    if !["global", "runs", "chart", "dialog"].contains(&c) {
        crate::bail_input!("{file}: key[{i}].context: '{c}' is not global, runs, chart or dialog");
    }
    Ok(())
}

impl Keymap {
    pub fn parse(file: &str, src: &str) -> Result<Keymap> {
        let raw: Raw = toml::from_str(src).map_err(|e| crate::error::toml_error(file, src, &e))?;
        let mut bindings = Vec::new();
        for (i, k) in raw.key.into_iter().enumerate() {
            let Some(action) = Action::from_name(&k.action) else {
                crate::bail_input!("{file}: key[{i}].action: unknown action '{}'", k.action);
            };
            let keys = parse_keys(file, i, &k.keys)?;
            check_context(file, i, &k.context)?;
            bindings.push(Binding { keys, labels: k.keys, action, help: k.help, context: k.context });
        }
        Ok(Keymap { bindings })
    }

    pub fn default_map() -> Keymap {
        Keymap::parse("assets/keymap.toml", DEFAULT).expect("the built-in keymap parses")
    }

    /// The built-in map with the user's `keymap.toml` (`userconf`) applied, when there is one.
    pub fn user() -> Result<Keymap> {
        let mut k = Keymap::default_map();
        if let Some(p) = crate::userconf::file("keymap.toml") {
            let src = std::fs::read_to_string(&p)?;
            k.apply_overrides(&p.display().to_string(), &src)?;
        }
        Ok(k)
    }

    /// Apply a user's bindings: each `[[key]]` replaces the keys of the built-in binding of
    /// its action (its `help` too, when given). A key the user binds is taken from any other
    /// action that had it, so that one key never means two things.
    pub fn apply_overrides(&mut self, file: &str, src: &str) -> Result<()> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct UserRaw {
            #[serde(default)]
            key: Vec<UserKey>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct UserKey {
            keys: Vec<String>,
            action: String,
            help: Option<String>,
            context: Option<String>,
        }
        let raw: UserRaw = toml::from_str(src).map_err(|e| crate::error::toml_error(file, src, &e))?;
        for (i, k) in raw.key.into_iter().enumerate() {
            let Some(action) = Action::from_name(&k.action) else {
                crate::bail_input!("{file}: key[{i}].action: unknown action '{}'", k.action);
            };
            if k.keys.is_empty() {
                crate::bail_input!("{file}: key[{i}].keys: bind at least one key");
            }
            let keys = parse_keys(file, i, &k.keys)?;
            if let Some(c) = &k.context {
                check_context(file, i, c)?;
            }
            for b in self.bindings.iter_mut().filter(|b| b.action != action) {
                let mut j = 0;
                while j < b.keys.len() {
                    if keys.contains(&b.keys[j]) {
                        b.keys.remove(j);
                        b.labels.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            match self.bindings.iter_mut().find(|b| b.action == action) {
                Some(b) => {
                    b.keys = keys;
                    b.labels = k.keys;
                    if let Some(h) = k.help {
                        b.help = h;
                    }
                }
                None => self.bindings.push(Binding {
                    keys,
                    labels: k.keys,
                    action,
                    help: k.help.unwrap_or_default(),
                    context: k.context.unwrap_or_else(|| "global".into()),
                }),
            }
        }
        Ok(())
    }

    /// The action of a key press.
    pub fn lookup(&self, key: &KeyEvent) -> Option<Action> {
        let mods = key.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        self.bindings.iter().find(|b| b.keys.iter().any(|(c, m)| *c == key.code && *m == mods)).map(|b| b.action)
    }

    /// The first key label of an action (for hints).
    pub fn label(&self, action: Action) -> String {
        self.bindings.iter().find(|b| b.action == action).and_then(|b| b.labels.first().cloned()).unwrap_or_default()
    }

    /// Help lines: (keys, what they do), in file order.
    pub fn help(&self) -> Vec<(String, String)> {
        self.bindings.iter().map(|b| (b.labels.join(" "), b.help.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_map_parses_and_every_action_has_a_key() {
        let k = Keymap::default_map();
        assert_eq!(k.lookup(&KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE)), Some(Action::Quit));
        assert_eq!(k.lookup(&KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Some(Action::Quit));
        assert_eq!(k.lookup(&KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE)), Some(Action::Compare));
        for a in Action::ALL {
            assert!(!k.label(a).is_empty(), "{a:?} has no key");
        }
        let e = Keymap::parse("k.toml", "[[key]]\nkeys=[\"x\"]\naction=\"fly\"\nhelp=\"\"\ncontext=\"global\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("k.toml: key[0].action: unknown action 'fly'"));
    }

    #[test]
    fn a_users_keymap_rebinds_actions_and_the_help_follows() {
        let mut k = Keymap::default_map();
        let compare_key = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE);
        let x = KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE);
        // Bind `x` to compare; `c` is then free (no action), and the help lists `x`.
        k.apply_overrides("keymap.toml", "[[key]]\nkeys = [\"x\"]\naction = \"compare\"\n").unwrap();
        assert_eq!(k.lookup(&x), Some(Action::Compare));
        assert_eq!(k.lookup(&compare_key), None);
        assert_eq!(k.label(Action::Compare), "x");
        assert!(k.help().iter().any(|(keys, _)| keys == "x"));
        // A key taken from another action leaves that action its other keys.
        let before = k.bindings.iter().find(|b| b.action == Action::Quit).unwrap().keys.len();
        k.apply_overrides("keymap.toml", "[[key]]\nkeys = [\"q\"]\naction = \"compare\"\n").unwrap();
        assert_eq!(k.lookup(&KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE)), Some(Action::Compare));
        assert_eq!(k.bindings.iter().find(|b| b.action == Action::Quit).unwrap().keys.len(), before - 1);
        let e = k.apply_overrides("keymap.toml", "[[key]]\nkeys = [\"ctrl-\"]\naction = \"quit\"\n").unwrap_err();
        assert!(e.to_string().contains("keymap.toml: key[0].keys: cannot read key 'ctrl-'"), "{e}");
        let e = k.apply_overrides("keymap.toml", "[[key]]\nkeys = [\"z\"]\nactoin = \"quit\"\n").unwrap_err();
        assert!(e.to_string().contains("keymap.toml:3:1"), "{e}");
    }
}

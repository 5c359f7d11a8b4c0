//! Key bindings as data (`assets/keymap.toml`, then the user's `keymap.toml`): lookups for the
//! event loop per context, the dialogs' key hints and the help screen, all from the same table.

use anyhow::Result;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;
use strum::{EnumIter, EnumString, IntoEnumIterator, IntoStaticStr};

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
    keys: Spanned<Vec<Spanned<String>>>,
    action: Spanned<String>,
    help: String,
    context: Spanned<String>,
}

/// A value of a keymap file with where it is, for errors that name `file:line:col`.
type Spanned<T> = toml::Spanned<T>;

/// `file:line:col` of a value in `src`.
fn at<T>(file: &str, src: &str, v: &Spanned<T>) -> String {
    let (l, c) = crate::error::line_col(src, v.span().start);
    format!("{file}:{l}:{c}")
}

/// The labels of a `keys` array, as written.
fn labels(keys: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
    keys.get_ref().iter().map(|k| k.get_ref().clone()).collect()
}

/// Where a binding applies. `global`, `runs`, `chart` and `langs` are the main screen: `runs`
/// and `chart` only group the help, `langs` binds keys while the languages pane has the focus
/// (in place of the run list's). Each overlay and dialog has its own keys, and a key it does
/// not bind goes to its text field, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, EnumString, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Context {
    Global,
    Runs,
    Chart,
    Langs,
    Help,
    Filter,
    Confirm,
    Launch,
    Fork,
    Notes,
    Demo,
    Samples,
}

impl Context {
    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn is_main(self) -> bool {
        matches!(self, Context::Global | Context::Runs | Context::Chart | Context::Langs)
    }

    /// Whether bindings of the two contexts are live at the same time (a key may then mean
    /// only one thing): the run list's and the languages pane's keys never are.
    pub fn shares_keys_with(self, other: Context) -> bool {
        self == other || self.live().contains(&other) || other.live().contains(&self)
    }

    /// The contexts live on the screen this context belongs to (`langs`: the main screen
    /// while the languages pane has the focus).
    pub fn live(self) -> &'static [Context] {
        match self {
            Context::Global | Context::Runs | Context::Chart => &[Context::Global, Context::Runs, Context::Chart],
            Context::Langs => &[Context::Global, Context::Chart, Context::Langs],
            Context::Help => &[Context::Help],
            Context::Filter => &[Context::Filter],
            Context::Confirm => &[Context::Confirm],
            Context::Launch => &[Context::Launch],
            Context::Fork => &[Context::Fork],
            Context::Notes => &[Context::Notes],
            Context::Demo => &[Context::Demo],
            Context::Samples => &[Context::Samples],
        }
    }

    /// The help screen's heading for this context's keys.
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "main screen",
            Context::Runs => "run list",
            Context::Chart => "charts",
            Context::Langs => "languages table (its pane focused)",
            Context::Help => "this help",
            Context::Filter => "filter",
            Context::Confirm => "confirm stop",
            Context::Launch => "launch dialog",
            Context::Fork => "fork dialog",
            Context::Notes => "notes dialog",
            Context::Demo => "demo offer",
            Context::Samples => "samples",
        }
    }
}

/// One binding.
#[derive(Debug, Clone)]
pub struct Binding {
    pub keys: Vec<(KeyCode, KeyModifiers)>,
    pub labels: Vec<String>,
    pub action: Action,
    pub help: String,
    pub context: Context,
}

#[derive(Debug, Clone)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
}

/// A section of the help screen: a context and its (keys, what they do) lines.
#[derive(Debug, Clone, PartialEq)]
pub struct HelpSection {
    pub context: Context,
    pub lines: Vec<(String, String)>,
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
        "delete" => KeyCode::Delete,
        f if f.starts_with('f') && f.len() > 1 && f[1..].parse::<u8>().is_ok() => KeyCode::F(f[1..].parse().ok()?),
        c if c.chars().count() == 1 => KeyCode::Char(c.chars().next()?),
        _ => return None,
    };
    Some((code, mods))
}

/// The keys of entry `i` of a keymap file (errors name the key's `file:line:col`).
fn parse_keys(
    file: &str,
    src: &str,
    i: usize,
    keys: &Spanned<Vec<Spanned<String>>>,
) -> Result<Vec<(KeyCode, KeyModifiers)>> {
    keys.get_ref()
        .iter()
        .map(|s| match parse_key(s.get_ref()) {
            Some(k) => Ok(k),
            None => Err(crate::error::bad_input(format!(
                "{}: key[{i}].keys: cannot read key '{}'",
                at(file, src, s),
                s.get_ref()
            ))),
        })
        .collect()
}

fn parse_context(file: &str, src: &str, i: usize, c: &Spanned<String>) -> Result<Context> {
    c.get_ref().parse().map_err(|_| {
        let all: Vec<&str> = Context::iter().map(Context::name).collect();
        crate::error::bad_input(format!(
            "{}: key[{i}].context: '{}' is not one of {}",
            at(file, src, c),
            c.get_ref(),
            all.join(", ")
        ))
    })
}

fn parse_action(file: &str, src: &str, i: usize, a: &Spanned<String>) -> Result<Action> {
    Action::from_name(a.get_ref()).ok_or_else(|| {
        crate::error::bad_input(format!("{}: key[{i}].action: unknown action '{}'", at(file, src, a), a.get_ref()))
    })
}

impl Keymap {
    pub fn parse(file: &str, src: &str) -> Result<Keymap> {
        let raw: Raw = toml::from_str(src).map_err(|e| crate::error::toml_error(file, src, &e))?;
        let mut bindings = Vec::new();
        for (i, k) in raw.key.into_iter().enumerate() {
            let action = parse_action(file, src, i, &k.action)?;
            let keys = parse_keys(file, src, i, &k.keys)?;
            let context = parse_context(file, src, i, &k.context)?;
            bindings.push(Binding { keys, labels: labels(&k.keys), action, help: k.help, context });
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
    /// its action in its `context` (in every context the action is bound in, when `context`
    /// is left out), and its `help` when given. A key the user binds is taken from any other
    /// binding live at the same time, so that one key never means two things.
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
            keys: Spanned<Vec<Spanned<String>>>,
            action: Spanned<String>,
            help: Option<String>,
            context: Option<Spanned<String>>,
        }
        let raw: UserRaw = toml::from_str(src).map_err(|e| crate::error::toml_error(file, src, &e))?;
        for (i, k) in raw.key.into_iter().enumerate() {
            let action = parse_action(file, src, i, &k.action)?;
            if k.keys.get_ref().is_empty() {
                crate::bail_input!("{}: key[{i}].keys: bind at least one key", at(file, src, &k.keys));
            }
            let keys = parse_keys(file, src, i, &k.keys)?;
            let key_labels = labels(&k.keys);
            let mut contexts: Vec<Context> = match &k.context {
                Some(c) => vec![parse_context(file, src, i, c)?],
                None => self.bindings.iter().filter(|b| b.action == action).map(|b| b.context).collect(),
            };
            if contexts.is_empty() {
                contexts.push(Context::Global);
            }
            for &c in &contexts {
                for b in self.bindings.iter_mut().filter(|b| b.context.shares_keys_with(c)) {
                    if b.action == action && b.context == c {
                        continue;
                    }
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
                match self.bindings.iter_mut().find(|b| b.action == action && b.context == c) {
                    Some(b) => {
                        b.keys = keys.clone();
                        b.labels = key_labels.clone();
                        if let Some(h) = &k.help {
                            b.help = h.clone();
                        }
                    }
                    None => self.bindings.push(Binding {
                        keys: keys.clone(),
                        labels: key_labels.clone(),
                        action,
                        help: k.help.clone().unwrap_or_else(|| action.name().replace('_', " ")),
                        context: c,
                    }),
                }
            }
        }
        Ok(())
    }

    /// The action of a key press on the screen `context` belongs to.
    pub fn lookup(&self, context: Context, key: &KeyEvent) -> Option<Action> {
        let mods = key.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        let live = context.live();
        self.bindings
            .iter()
            .filter(|b| live.contains(&b.context))
            .find(|b| b.keys.iter().any(|(c, m)| *c == key.code && *m == mods))
            .map(|b| b.action)
    }

    /// The first key label of a main-screen action (for hints).
    pub fn label(&self, action: Action) -> String {
        self.label_in(Context::Global, action)
    }

    /// The first key label of an action on the screen of `context` ("" when unbound).
    pub fn label_in(&self, context: Context, action: Action) -> String {
        self.labels_in(context, action).into_iter().next().unwrap_or_default()
    }

    /// Every key label of an action on the screen of `context`.
    pub fn labels_in(&self, context: Context, action: Action) -> Vec<String> {
        let live = context.live();
        self.bindings
            .iter()
            .filter(|b| b.action == action && live.contains(&b.context))
            .flat_map(|b| b.labels.iter().cloned())
            .collect()
    }

    /// The help screen: per context, in file order, (keys, what they do).
    pub fn help(&self) -> Vec<HelpSection> {
        let mut out: Vec<HelpSection> = Vec::new();
        for b in self.bindings.iter().filter(|b| !b.labels.is_empty()) {
            let line = (b.labels.join(" "), b.help.clone());
            match out.iter_mut().find(|s| s.context == b.context) {
                Some(s) => s.lines.push(line),
                None => out.push(HelpSection { context: b.context, lines: vec![line] }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn the_default_map_parses_and_every_action_has_a_key() {
        let k = Keymap::default_map();
        assert_eq!(k.lookup(Context::Global, &key('q')), Some(Action::Quit));
        assert_eq!(
            k.lookup(Context::Global, &KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(k.lookup(Context::Global, &key('c')), Some(Action::Compare));
        let bound: Vec<Action> = k.bindings.iter().map(|b| b.action).collect();
        for a in Action::all() {
            assert!(bound.contains(&a), "{a:?} has no key");
        }
        let e = Keymap::parse("k.toml", "[[key]]\nkeys=[\"x\"]\naction=\"fly\"\nhelp=\"\"\ncontext=\"global\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("k.toml:3:8: key[0].action: unknown action 'fly'"), "{e}");
        let e = Keymap::parse("k.toml", "[[key]]\nkeys=[\"x\"]\naction=\"quit\"\nhelp=\"\"\ncontext=\"popup\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("k.toml:5:9: key[0].context: 'popup' is not one of global, runs"), "{e}");
    }

    #[test]
    fn no_key_means_two_things_on_one_screen() {
        let k = Keymap::default_map();
        for (i, a) in k.bindings.iter().enumerate() {
            for b in &k.bindings[i + 1..] {
                if a.context.shares_keys_with(b.context) {
                    for key in &a.keys {
                        assert!(!b.keys.contains(key), "{key:?} is both {:?} and {:?}", a.action, b.action);
                    }
                }
            }
        }
    }

    #[test]
    fn keys_act_only_in_their_context() {
        let k = Keymap::default_map();
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        let esc = KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE);
        assert_eq!(k.lookup(Context::Fork, &enter), Some(Action::Submit));
        assert_eq!(k.lookup(Context::Fork, &esc), Some(Action::Close));
        assert_eq!(k.lookup(Context::Fork, &key('q')), None, "q is text in the fork dialog");
        assert_eq!(k.lookup(Context::Confirm, &key('y')), Some(Action::Submit));
        assert_eq!(k.lookup(Context::Help, &key('q')), Some(Action::Close));
        assert_eq!(k.label_in(Context::Filter, Action::Submit), "enter");
    }

    #[test]
    fn a_users_keymap_rebinds_actions_and_the_help_follows() {
        let mut k = Keymap::default_map();
        let x = key('x');
        // Bind `x` to compare; `c` is then free (no action), and the help lists `x`.
        k.apply_overrides("keymap.toml", "[[key]]\nkeys = [\"x\"]\naction = \"compare\"\n").unwrap();
        assert_eq!(k.lookup(Context::Global, &x), Some(Action::Compare));
        assert_eq!(k.lookup(Context::Global, &key('c')), None);
        assert_eq!(k.label(Action::Compare), "x");
        assert!(k.help().iter().flat_map(|s| &s.lines).any(|(keys, _)| keys == "x"));
        // `x` in the fork dialog (zero a weight) is another screen: it keeps its key.
        assert_eq!(k.lookup(Context::Fork, &x), Some(Action::Zero));
        // A key taken from another action leaves that action its other keys.
        let quit = |k: &Keymap| k.bindings.iter().find(|b| b.action == Action::Quit).unwrap().keys.len();
        let before = quit(&k);
        k.apply_overrides("keymap.toml", "[[key]]\nkeys = [\"q\"]\naction = \"compare\"\n").unwrap();
        assert_eq!(k.lookup(Context::Global, &key('q')), Some(Action::Compare));
        assert_eq!(quit(&k), before - 1);
        // A dialog key, in its context only.
        k.apply_overrides("keymap.toml", "[[key]]\nkeys = [\"ctrl-s\"]\naction = \"submit\"\ncontext = \"fork\"\n")
            .unwrap();
        let ctrl_s = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL);
        assert_eq!(k.lookup(Context::Fork, &ctrl_s), Some(Action::Submit));
        assert_eq!(k.lookup(Context::Launch, &ctrl_s), None);
        assert_eq!(k.label_in(Context::Fork, Action::Submit), "ctrl-s");
        let e = k.apply_overrides("keymap.toml", "[[key]]\nkeys = [\"ctrl-\"]\naction = \"quit\"\n").unwrap_err();
        assert!(e.to_string().contains("keymap.toml:2:9: key[0].keys: cannot read key 'ctrl-'"), "{e}");
        let e = k.apply_overrides("keymap.toml", "[[key]]\nkeys = [\"z\"]\nactoin = \"quit\"\n").unwrap_err();
        assert!(e.to_string().contains("keymap.toml:3:1"), "{e}");
    }
}

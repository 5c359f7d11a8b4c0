//! A run's note and tags: what a person wrote about it (`notes.json` in the run directory,
//! docs/run-directory.md). Nothing else of the run changes when they do; the trainer never
//! reads them.
//!
//! Writers (`mixscope note` / `tag`, the TUI's notes dialog) change the file by a
//! read-modify-write under an exclusive `flock` on `notes.lock` (blocking: a writer holds it
//! for one read and one atomic write), so that two writers at once never lose each other's
//! edits: `tag +a` from one process and `tag +b` from another both survive. The file itself is
//! replaced whole (a temporary file renamed over it), so a reader without the lock sees the old
//! content or the new, never a mix.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::bail_input;

/// The file of a run's note and tags.
pub const FILE: &str = "notes.json";
/// The file writers lock while they change [`FILE`].
pub const LOCK: &str = "notes.lock";
/// The longest tag, in characters.
pub const MAX_TAG: usize = 40;
/// The longest note, in characters.
pub const MAX_NOTE: usize = 20_000;

/// What `notes.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Notes {
    /// Free text; may hold line breaks. Empty: no note.
    #[serde(default)]
    pub note: String,
    /// Sorted, each once ([`check_tag`]'s names).
    #[serde(default)]
    pub tags: Vec<String>,
    /// When a writer last changed the file (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<f64>,
}

impl Notes {
    pub fn is_empty(&self) -> bool {
        self.note.is_empty() && self.tags.is_empty()
    }

    pub fn has_tag(&self, t: &str) -> bool {
        self.tags.iter().any(|x| x == t)
    }

    /// The note's first line (for a one-line view), `None` without a note.
    pub fn first_line(&self) -> Option<&str> {
        self.note.lines().map(str::trim).find(|l| !l.is_empty())
    }
}

/// The path of a run's notes file.
pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join(FILE)
}

/// Whether `t` may be a tag: 1 to [`MAX_TAG`] letters, digits, `-`, `_` or `.`, starting with
/// a letter or digit (so that `+name` and `-name` always mean add and remove, and a tag fits a
/// comma list and `tag:NAME`). The error says what is wrong with it.
pub fn check_tag(t: &str) -> Result<()> {
    if t.is_empty() {
        bail_input!("a tag cannot be empty");
    }
    if t.chars().count() > MAX_TAG {
        bail_input!("tag '{t}': longer than {MAX_TAG} characters");
    }
    if let Some(c) = t.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        let what = if c.is_whitespace() { "a space".to_string() } else { format!("'{}'", c.escape_default()) };
        bail_input!("tag '{}': holds {what}; a tag is letters, digits, '-', '_' and '.'", t.escape_default());
    }
    if !t.starts_with(char::is_alphanumeric) {
        bail_input!("tag '{t}': must start with a letter or a digit");
    }
    Ok(())
}

/// Whether `s` may be a note: at most [`MAX_NOTE`] characters, no control characters but line
/// breaks and tabs (a terminal would act on them).
pub fn check_note(s: &str) -> Result<()> {
    if s.chars().count() > MAX_NOTE {
        bail_input!("the note is longer than {MAX_NOTE} characters");
    }
    if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\t')) {
        bail_input!("the note holds a control character ({}) at character {}", c.escape_default(), i + 1);
    }
    Ok(())
}

/// How a change sets the note.
#[derive(Debug, Clone, PartialEq)]
pub enum NoteEdit {
    /// Replace it (empty: remove it).
    Set(String),
    /// Add a line under it (or set it, when there is none).
    Append(String),
}

/// A change to a run's notes: applied to what the file holds when the writer has the lock, so
/// that tags another writer added or removed meanwhile are kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    pub note: Option<NoteEdit>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl Change {
    /// `+a -b c` as `mixscope tag` reads it: `+NAME` and a bare `NAME` add, `-NAME` removes.
    pub fn from_tag_args<S: AsRef<str>>(args: &[S]) -> Result<Change> {
        let mut c = Change::default();
        for a in args {
            let a = a.as_ref();
            match (a.strip_prefix('+'), a.strip_prefix('-')) {
                (Some(t), _) => c.add.push(t.to_string()),
                (_, Some(t)) => c.remove.push(t.to_string()),
                _ => c.add.push(a.to_string()),
            }
        }
        c.check()?;
        Ok(c)
    }

    /// Every tag named and the note, checked ([`check_tag`], [`check_note`]); a tag both added
    /// and removed is refused.
    pub fn check(&self) -> Result<()> {
        for t in self.add.iter().chain(&self.remove) {
            check_tag(t)?;
        }
        if let Some(t) = self.add.iter().find(|t| self.remove.contains(t)) {
            bail_input!("tag '{t}' is both added and removed");
        }
        match &self.note {
            Some(NoteEdit::Set(s) | NoteEdit::Append(s)) => check_note(s),
            None => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.note.is_none() && self.add.is_empty() && self.remove.is_empty()
    }

    /// The notes with this change made.
    pub fn apply(&self, old: &Notes) -> Notes {
        let mut n = old.clone();
        match &self.note {
            Some(NoteEdit::Set(s)) => n.note = s.clone(),
            Some(NoteEdit::Append(s)) if n.note.trim().is_empty() => n.note = s.clone(),
            Some(NoteEdit::Append(s)) => {
                n.note = format!("{}\n{s}", n.note.trim_end_matches('\n'));
            }
            None => {}
        }
        n.tags.retain(|t| !self.remove.contains(t));
        n.tags.extend(self.add.iter().cloned());
        n.tags.sort();
        n.tags.dedup();
        n
    }
}

/// A run's notes as its file holds them: none when there is no file. A file that does not
/// parse, or holds a bad tag, is bad input naming it (`file:line:col`), and is never replaced.
pub fn read(run_dir: &Path) -> Result<Notes> {
    let p = path(run_dir);
    let text = match crate::util::open_nofollow(OpenOptions::new().read(true), &p) {
        Ok(mut f) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s)
                .map_err(|e| crate::error::bad_input(format!("{}: cannot read: {e}", p.display())))?;
            s
        }
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) => {
            return Ok(Notes::default())
        }
        Err(e) => return Err(e),
    };
    parse(&p.display().to_string(), &text)
}

/// Parse a notes file's text (`file` names it in errors).
pub fn parse(file: &str, text: &str) -> Result<Notes> {
    let n: Notes = serde_json::from_str(text)
        .map_err(|e| crate::error::bad_input(format!("{file}:{}:{}: {e}", e.line(), e.column())))?;
    for t in &n.tags {
        check_tag(t).map_err(|e| crate::error::bad_input(format!("{file}: tags: {e:#}")))?;
    }
    check_note(&n.note).map_err(|e| crate::error::bad_input(format!("{file}: note: {e:#}")))?;
    Ok(n)
}

/// The exclusive lock of a run's notes, released when dropped (or when the process dies).
struct NotesLock {
    _file: std::fs::File,
}

impl NotesLock {
    fn take(run_dir: &Path) -> Result<NotesLock> {
        let p = run_dir.join(LOCK);
        let mut o = OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let file = crate::util::open_nofollow(&mut o, &p)?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            loop {
                // SAFETY: a blocking flock on a valid descriptor.
                if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                    break;
                }
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    anyhow::bail!("locking {}: {e}", p.display());
                }
            }
        }
        Ok(NotesLock { _file: file })
    }
}

/// Change a run's notes: under the lock, read what the file holds, make the change, and write
/// the result atomically (only when it differs). Returns the notes as they now are. A change
/// that does not check ([`Change::check`]) writes nothing.
pub fn update(run_dir: &Path, change: &Change) -> Result<Notes> {
    change.check()?;
    if !run_dir.join("run.toml").exists() {
        bail_input!("{}: not a run directory (no run.toml)", run_dir.display());
    }
    let _lock = NotesLock::take(run_dir)?;
    let old = read(run_dir)?;
    let mut new = change.apply(&old);
    if new.note == old.note && new.tags == old.tags {
        return Ok(old);
    }
    new.updated = Some(crate::util::now_secs());
    let mut text = serde_json::to_string_pretty(&new)?;
    text.push('\n');
    crate::util::write_atomic_private(&path(run_dir), text.as_bytes())?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_dir() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("run.toml"), "").unwrap();
        t
    }

    fn tags(args: &[&str]) -> Change {
        Change::from_tag_args(args).unwrap()
    }

    #[test]
    fn a_change_round_trips_through_the_file() {
        let t = run_dir();
        assert_eq!(read(t.path()).unwrap(), Notes::default(), "no file: no notes");
        let c = Change { note: Some(NoteEdit::Set("lr too high?\nsee step 400".into())), ..tags(&["+b", "a"]) };
        let n = update(t.path(), &c).unwrap();
        assert_eq!((n.note.as_str(), n.tags.join(" ")), ("lr too high?\nsee step 400", "a b".into()));
        assert!(n.updated.is_some());
        assert_eq!(read(t.path()).unwrap(), n, "what was written reads back");
        let n = update(t.path(), &Change { note: Some(NoteEdit::Append("and 500".into())), ..tags(&["-a"]) }).unwrap();
        assert_eq!((n.note.as_str(), n.tags.join(" ")), ("lr too high?\nsee step 400\nand 500", "b".into()));
        assert_eq!(n.first_line(), Some("lr too high?"));
        // Removing what is not there, adding what is: nothing to write.
        let before = std::fs::read(path(t.path())).unwrap();
        assert_eq!(update(t.path(), &tags(&["-zz", "+b"])).unwrap(), n);
        assert_eq!(std::fs::read(path(t.path())).unwrap(), before);
        // An empty note removes it; the file is private.
        let n = update(t.path(), &Change { note: Some(NoteEdit::Set(String::new())), ..Change::default() }).unwrap();
        assert!(n.note.is_empty() && n.first_line().is_none() && n.tags == ["b"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(t.path())).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // The file is whole JSON a person can read: no temporary files stay behind.
        let left: Vec<String> =
            std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert!(left.iter().all(|f| !f.starts_with(".tmp")), "{left:?}");
    }

    #[test]
    fn bad_tags_and_notes_are_refused_naming_what_is_wrong() {
        for (arg, says) in [
            ("+", "cannot be empty"),
            ("-", "cannot be empty"),
            ("a b", "holds a space"),
            ("a,b", "holds ','"),
            ("tag:x", "holds ':'"),
            ("+.hidden", "must start with a letter or a digit"),
            ("_x", "must start with a letter or a digit"),
        ] {
            let e = Change::from_tag_args(&[arg]).unwrap_err();
            assert!(crate::error::is_bad_input(&e) && e.to_string().contains(says), "{arg}: {e}");
        }
        let long = "x".repeat(MAX_TAG + 1);
        assert!(Change::from_tag_args(&[long]).unwrap_err().to_string().contains("longer than 40"));
        assert!(Change::from_tag_args(&["+a", "-a"]).unwrap_err().to_string().contains("both added and removed"));
        for ok in ["keep", "lr-3e-4", "2026.12", "基线", "ko_20"] {
            check_tag(ok).unwrap();
        }
        let e = check_note("colour \x1b[31m red").unwrap_err();
        assert!(e.to_string().contains("control character (\\u{1b}) at character 8"), "{e}");
        check_note("two\nlines\tand a tab").unwrap();
        // A bad change writes nothing.
        let t = run_dir();
        let c = Change { note: Some(NoteEdit::Set("\x07".into())), ..Change::default() };
        assert!(update(t.path(), &c).is_err());
        assert!(!path(t.path()).exists());
        // Not a run directory.
        let e = update(&t.path().join("nope"), &tags(&["a"])).unwrap_err();
        assert!(e.to_string().contains("not a run directory"), "{e}");
    }

    #[test]
    fn a_damaged_file_is_named_and_never_replaced() {
        let t = run_dir();
        std::fs::write(path(t.path()), "{\"note\": \"x\",\n \"tags\": [\"a\" \"b\"]}\n").unwrap();
        let e = read(t.path()).unwrap_err();
        assert!(crate::error::is_bad_input(&e), "{e}");
        assert!(e.to_string().contains("notes.json:2:15"), "{e}");
        let e = update(t.path(), &tags(&["c"])).unwrap_err();
        assert!(e.to_string().contains("notes.json:2:15"), "{e}");
        assert!(std::fs::read_to_string(path(t.path())).unwrap().contains("[\"a\" \"b\"]"), "kept as it was");
        std::fs::write(path(t.path()), "{\"tags\": [\"a b\"]}").unwrap();
        let e = read(t.path()).unwrap_err();
        assert!(e.to_string().contains("notes.json: tags: tag 'a b': holds a space"), "{e}");
        // Fields a newer writer adds are ignored.
        std::fs::write(path(t.path()), "{\"tags\": [\"a\"], \"colour\": \"red\"}").unwrap();
        assert_eq!(read(t.path()).unwrap().tags, ["a"]);
    }

    #[cfg(unix)]
    #[test]
    fn links_are_not_followed() {
        let t = run_dir();
        let other = t.path().join("elsewhere.json");
        std::fs::write(&other, "{}").unwrap();
        std::os::unix::fs::symlink(&other, path(t.path())).unwrap();
        let e = read(t.path()).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        std::fs::remove_file(path(t.path())).unwrap();
        std::os::unix::fs::symlink(&other, t.path().join(LOCK)).unwrap();
        let e = update(t.path(), &tags(&["a"])).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "{}");
    }

    /// Writers in threads of one process (each takes the lock through its own descriptor, as
    /// another process would): every tag added survives; a reader without the lock, reading
    /// all the while, always finds a whole file.
    #[test]
    fn writers_at_once_lose_nothing_and_readers_see_whole_files() {
        let t = run_dir();
        let dir = t.path().to_path_buf();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (dir, done) = (dir.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let n = read(&dir).unwrap();
                    assert!(n.tags.windows(2).all(|w| w[0] < w[1]), "{n:?}");
                    reads += 1;
                }
                reads
            })
        };
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for j in 0..5 {
                        update(&dir, &tags(&[&format!("t{i}-{j}")])).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(reader.join().unwrap() > 0);
        assert_eq!(read(&dir).unwrap().tags.len(), 40);
    }
}

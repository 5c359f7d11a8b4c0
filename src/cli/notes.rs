//! `mixscope note` and `mixscope tag`: what a person writes about a run (`runs::notes`).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::runs::notes::{self, Change, NoteEdit, Notes};

/// The runs a spec names (a run, or a group's runs: each gets the change).
fn runs_of(root: &Path, spec: &str) -> Result<Vec<crate::runs::RunDir>> {
    Ok(crate::runs::select(root, spec)?.runs)
}

/// `mixscope note RUN [TEXT] [--append]`: set the note (empty text removes it) and print it, or
/// print it.
pub fn note(root: &Path, spec: &str, text: Option<String>, append: bool) -> Result<i32> {
    let runs = runs_of(root, spec)?;
    let change = text.map(|t| Change {
        note: Some(if append { NoteEdit::Append(t) } else { NoteEdit::Set(t) }),
        ..Change::default()
    });
    let many = runs.len() > 1;
    for run in &runs {
        let n = match &change {
            Some(c) => notes::update(&run.path, c)?,
            None => notes::read(&run.path)?,
        };
        match (n.note.is_empty(), many) {
            (true, _) => eprintln!("{}: no note", run.id()),
            (false, false) => println!("{}", n.note),
            (false, true) => println!("{}: {}", run.id(), n.note.replace('\n', "\n  ")),
        }
    }
    Ok(0)
}

/// `mixscope tag RUN [+TAG|-TAG|TAG ...]`: add and remove tags, then print the run's tags.
pub fn tag(root: &Path, spec: &str, args: &[String]) -> Result<i32> {
    // Checked before the run is looked up: a bad tag is named whatever the run.
    let change = Change::from_tag_args(args)?;
    let runs = runs_of(root, spec)?;
    let many = runs.len() > 1;
    for run in &runs {
        let n = if change.is_empty() { notes::read(&run.path)? } else { notes::update(&run.path, &change)? };
        match (n.tags.is_empty(), many) {
            (true, _) => eprintln!("{}: no tags", run.id()),
            (false, false) => println!("{}", n.tags.join(" ")),
            (false, true) => println!("{}: {}", run.id(), n.tags.join(" ")),
        }
    }
    Ok(0)
}

/// `tag RUN -a --runs DIR`: clap hands every word after RUN over as a change (so that `-a` is
/// one); `--runs DIR` and `--runs=DIR` among them are the option, any other `--word` is a
/// mistake.
pub fn split_runs_option(words: Vec<String>, runs: Option<PathBuf>) -> Result<(Vec<String>, Option<PathBuf>)> {
    let (mut changes, mut runs) = (Vec::new(), runs);
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        if w == "--runs" {
            let Some(dir) = it.next() else { crate::bail_input!("--runs: give the runs root") };
            runs = Some(PathBuf::from(dir));
        } else if let Some(dir) = w.strip_prefix("--runs=") {
            runs = Some(PathBuf::from(dir));
        } else if w.starts_with("--") {
            crate::bail_input!("{w}: not an option of `mixscope tag` (a tag to remove is -NAME)");
        } else {
            changes.push(w);
        }
    }
    Ok((changes, runs))
}

/// `ls --tag`: the tags asked for, each checked (a comma list or the option repeated).
pub fn wanted_tags(tags: &[String]) -> Result<Vec<String>> {
    let v: Vec<String> = tags.iter().flat_map(|t| t.split(',')).map(|t| t.trim().to_string()).collect();
    for t in &v {
        notes::check_tag(t).map_err(|e| crate::error::bad_input(format!("--tag: {e:#}")))?;
    }
    Ok(v)
}

/// A run's notes for `ls` (the error, for a file that does not parse).
pub fn read_for_ls(dir: &Path) -> Result<Notes, String> {
    notes::read(dir).map_err(|e| format!("{e:#}"))
}

/// `ls`' last column: the tags, and ✎ when the run has a note.
pub fn ls_cell(n: &Result<Notes, String>) -> String {
    match n {
        Ok(n) => {
            let mark = if n.note.trim().is_empty() { "" } else { " ✎" };
            format!("{}{mark}", n.tags.join(","))
        }
        Err(_) => "⚠".into(),
    }
}

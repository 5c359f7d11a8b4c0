//! The layers ARCHITECTURE.md promises, checked on the source: which top-level modules each
//! part of the crate may name. A new `use` that breaks a rule fails here with the file and line.

use std::path::{Path, PathBuf};

/// (files under this directory of src/, modules of the crate they must not name, why)
const RULES: &[(&str, &[&str], &str)] = &[
    ("train", &["tui", "supervisor", "cli", "report"], "the engine's only output is the run directory"),
    ("model", &["train", "runs", "supervisor", "tui", "cli"], "a model's description holds no tensors and no runs"),
    (
        "runs",
        &["train", "supervisor", "tui", "cli", "analysis", "report"],
        "the run directory is the bottom layer everyone reads",
    ),
    ("supervisor", &["train", "tui", "cli"], "the supervisor starts processes; the trainer is one of them"),
    ("analysis", &["supervisor", "tui", "cli", "train"], "analysis reads run summaries"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::NAME` a file names outside comments, with its line.
fn named_modules(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let name: String = tail.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            out.push((i + 1, name));
            rest = tail;
        }
    }
    out
}

#[test]
fn each_layer_names_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    let mut checked = 0;
    for (dir, forbidden, why) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(dir), &mut files);
        assert!(!files.is_empty(), "src/{dir} has no files: the rule checks nothing");
        for f in files {
            checked += 1;
            for (line, name) in named_modules(&f) {
                if forbidden.contains(&name.as_str()) {
                    broken.push(format!("{}:{line}: names crate::{name} ({why})", f.display()));
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} files checked");
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn panes_import_neither_the_app_nor_each_other() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tui/panes");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let panes: Vec<String> =
        files.iter().filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned())).collect();
    let mut broken = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let me = f.file_stem().unwrap().to_string_lossy().into_owned();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for bad in ["crate::tui::app", "tui::update", "super::super::app", "crate::tui::dialogs"] {
                if code.contains(bad) {
                    broken.push(format!("{}:{}: {bad}", f.display(), i + 1));
                }
            }
            for p in panes.iter().filter(|p| **p != me && p.as_str() != "mod") {
                for form in [format!("panes::{p}"), format!("super::{p}::")] {
                    if code.contains(&form) {
                        broken.push(format!("{}:{}: names pane {p}", f.display(), i + 1));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "panes must draw from the view alone:\n{}", broken.join("\n"));
}

//! Hugging Face hub access shared by model loading (`train::pretrained`) and dataset pulls
//! (`data::pull`): the standard cache, the offline switch, the access token, cached snapshots
//! and the hf-hub client. Nothing here knows what a model or a dataset is made of.

use std::path::PathBuf;

use anyhow::Result;
use hf_hub::api::sync::{Api, ApiBuilder, ApiError};

use crate::bail_input;

pub use hf_hub::RepoType;

/// The hub cache directory: `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`, `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn cache_dir() -> PathBuf {
    for var in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return PathBuf::from(v);
        }
    }
    if let Some(h) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join("hub");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface").join("hub")
}

/// Whether `s` has the form of a hub repository name, `org/name`.
pub fn is_repo_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
}

/// Whether `HF_HUB_OFFLINE` forbids downloads.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "True" | "yes" | "ON" | "on"))
}

/// The access token: `HF_TOKEN`, else the file `huggingface-cli login` writes.
pub fn token() -> Option<String> {
    if let Some(t) = std::env::var("HF_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
        return Some(t.trim().to_string());
    }
    let home = match std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache").join("huggingface"),
    };
    std::fs::read_to_string(home.join("token")).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// The cache folder of a repository: `models--org--name` or `datasets--org--name`.
pub fn repo_dir(kind: RepoType, repo: &str) -> PathBuf {
    cache_dir().join(format!("{}s--{}", kind_name(kind), repo.replace('/', "--")))
}

fn kind_name(kind: RepoType) -> &'static str {
    match kind {
        RepoType::Model => "model",
        RepoType::Dataset => "dataset",
        RepoType::Space => "space",
    }
}

/// The cached snapshot of a repository at `revision` (default `main`; a 40-digit commit is
/// taken as is). A missing ref or snapshot is an input error naming what was looked for.
pub fn cached_snapshot(kind: RepoType, repo: &str, revision: Option<&str>) -> Result<PathBuf> {
    let dir = repo_dir(kind, repo);
    let rev = revision.unwrap_or("main");
    let commit = if rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit()) {
        rev.to_string()
    } else {
        let r = dir.join("refs").join(rev);
        match std::fs::read_to_string(&r) {
            Ok(s) => s.trim().to_string(),
            Err(_) => bail_input!(
                "{} '{repo}' (revision {rev}) is not in the Hugging Face cache {} (looked for {})",
                kind_name(kind),
                cache_dir().display(),
                r.display()
            ),
        }
    };
    let snap = dir.join("snapshots").join(&commit);
    if !snap.is_dir() {
        bail_input!(
            "{} '{repo}': the cache names snapshot {commit} but {} does not exist",
            kind_name(kind),
            snap.display()
        );
    }
    Ok(snap)
}

/// An hf-hub client on the standard cache, with the token, showing progress on a terminal.
pub fn api() -> Result<Api, ApiError> {
    ApiBuilder::from_env()
        .with_cache_dir(cache_dir())
        .with_token(token())
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .build()
}

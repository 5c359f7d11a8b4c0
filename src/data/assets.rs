//! The suite's data files. They are compiled into the binary; `MIXSCOPE_ASSETS=DIR` reads them
//! from a directory instead (for people editing a language file without rebuilding).

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Files embedded at build time, by path relative to `assets/`.
const EMBEDDED: &[(&str, &str)] = &[
    ("langs.toml", include_str!("../../assets/langs.toml")),
    ("suite/en.toml", include_str!("../../assets/suite/en.toml")),
    ("suite/es.toml", include_str!("../../assets/suite/es.toml")),
    ("suite/fr.toml", include_str!("../../assets/suite/fr.toml")),
    ("suite/ja.toml", include_str!("../../assets/suite/ja.toml")),
    ("suite/zh.toml", include_str!("../../assets/suite/zh.toml")),
    ("suite/ar.toml", include_str!("../../assets/suite/ar.toml")),
    ("suite/ko.toml", include_str!("../../assets/suite/ko.toml")),
    ("suite/pt.toml", include_str!("../../assets/suite/pt.toml")),
    ("suite/ru.toml", include_str!("../../assets/suite/ru.toml")),
    ("suite/sw.toml", include_str!("../../assets/suite/sw.toml")),
    ("suite/bn.toml", include_str!("../../assets/suite/bn.toml")),
    ("suite/th.toml", include_str!("../../assets/suite/th.toml")),
];

/// The directory that overrides the embedded files, if `MIXSCOPE_ASSETS` is set.
pub fn override_dir() -> Option<PathBuf> {
    std::env::var_os("MIXSCOPE_ASSETS").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The text of an asset file and the name to show in messages (`assets/<rel>` or the real path).
pub fn text(rel: &str) -> Result<(String, String)> {
    if let Some(dir) = override_dir() {
        let path = dir.join(rel);
        let src = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return Ok((path.display().to_string(), src));
    }
    EMBEDDED
        .iter()
        .find(|(name, _)| *name == rel)
        .map(|(name, src)| (format!("assets/{name}"), src.to_string()))
        .with_context(|| format!("no embedded asset {rel}"))
}

/// The revision of the code that turns these files into data: bump it whenever the generator or
/// the demo tokenizer's rules change what they make from the same files.
pub const SUITE_REVISION: u32 = 3;

/// A short fingerprint of every asset the suite reads and of [`SUITE_REVISION`]: caches built
/// from the suite (the demo tokenizer, the demo base model) are keyed by it.
pub fn fingerprint() -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(SUITE_REVISION.to_le_bytes());
    for (rel, _) in EMBEDDED {
        let (_, src) = text(rel)?;
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(src.as_bytes());
        h.update([0]);
    }
    Ok(hex(&h.finalize()[..8]))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

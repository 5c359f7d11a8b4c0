//! A pretrained model's files: a local directory, or a Hugging Face hub name found in the
//! standard cache or downloaded into it ([`crate::hub`]); checking a model directory (headers
//! only) before a run is made from it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::bail_input;
use crate::hub::{self, RepoType};

/// The directory holding a model's files: the source itself when it is a directory, else the
/// cached snapshot of the hub repository at `revision` (default `main`), downloaded through
/// hf-hub into the standard cache when it is not there and `HF_HUB_OFFLINE` is not set.
pub fn resolve_model_dir(source: &str, revision: Option<&str>) -> Result<PathBuf> {
    let p = Path::new(source);
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    if !crate::hub::is_repo_name(source) {
        bail_input!("model '{source}': not a directory and not a hub name of the form org/name");
    }
    match hub::cached_snapshot(RepoType::Model, source, revision) {
        Ok(dir) => Ok(dir),
        Err(e) if hub::offline() => Err(e),
        Err(_) => download(source, revision),
    }
}

/// Download a model's files into the standard cache through hf-hub (config, weights, tokenizer,
/// tokenizer config and generation config where the repository has them); returns the snapshot.
fn download(source: &str, revision: Option<&str>) -> Result<PathBuf> {
    use hf_hub::Repo;
    let rev = revision.unwrap_or("main").to_string();
    let fail = |what: &str, e: hf_hub::api::sync::ApiError| {
        crate::error::bad_input(format!(
            "model '{source}' (revision {rev}): {what}: {e} (not in the cache {} either; HF_HUB_OFFLINE=1 skips the download)",
            hub::cache_dir().display()
        ))
    };
    let api = hub::api().map_err(|e| fail("starting the download", e))?;
    let repo = api.repo(Repo::with_revision(source.to_string(), RepoType::Model, rev.clone()));
    let config = repo.get("config.json").map_err(|e| fail("config.json", e))?;
    let dir = config.parent().expect("a cached file has a directory").to_path_buf();
    match repo.get("model.safetensors.index.json") {
        Ok(_) => {
            for f in weight_files(&dir)? {
                let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                repo.get(&name).map_err(|e| fail(&name, e))?;
            }
        }
        Err(_) => {
            repo.get("model.safetensors").map_err(|e| fail("model.safetensors", e))?;
        }
    }
    for optional in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        let _ = repo.get(optional);
    }
    Ok(dir)
}

/// The weight files of a model directory: the shards of `model.safetensors.index.json`, or
/// `model.safetensors`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| crate::error::bad_input(format!("{}: {e}", index.display())))?;
        let Some(map) = v.get("weight_map").and_then(|m| m.as_object()) else {
            bail_input!("{}: no weight_map", index.display());
        };
        let mut files: Vec<String> = map.values().filter_map(|f| f.as_str().map(String::from)).collect();
        files.sort();
        files.dedup();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    bail_input!("{}: no model.safetensors or model.safetensors.index.json", dir.display())
}

/// Check a model directory before a run is created from it: config.json names a supported
/// architecture, every weight file has a well-formed safetensors header whose tensors fit in
/// the file, and every tensor the config needs is there with its shape. Reads only headers,
/// so it is cheap for large models. Returns the model config.
pub fn check_model_dir(dir: &Path) -> Result<super::ModelConfig> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| crate::error::bad_input(format!("{}: {e}", path.display())))?;
    let cfg = super::ModelConfig::from_hf_json(&text).map_err(|e| {
        crate::error::bad_input(format!("{}: {}", path.display(), e.to_string().trim_start_matches("config.json: ")))
    })?;
    let mut found: std::collections::HashMap<String, (Vec<usize>, PathBuf)> = std::collections::HashMap::new();
    for f in weight_files(dir)? {
        for (name, shape) in check_safetensors_header(&f)? {
            found.insert(name, (shape, f.clone()));
        }
    }
    for spec in super::param_specs(&cfg) {
        match found.get(&spec.name) {
            None => bail_input!(
                "{}: tensor '{}' (shape {:?}) is missing from the weights",
                dir.display(),
                spec.name,
                spec.shape
            ),
            Some((shape, f)) if *shape != spec.shape => bail_input!(
                "{}: tensor '{}' has shape {:?}, but {} needs {:?}",
                f.display(),
                spec.name,
                shape,
                path.display(),
                spec.shape
            ),
            Some(_) => {}
        }
    }
    Ok(cfg)
}

/// The tensors (name, shape) of a safetensors file, from its header, after checking that the
/// header is well formed and every tensor fits in the file.
fn check_safetensors_header(f: &Path) -> Result<Vec<(String, Vec<usize>)>> {
    use std::io::Read;
    let bad = |why: String| crate::error::bad_input(format!("{}: not a readable safetensors file: {why}", f.display()));
    let mut file = std::fs::File::open(f).map_err(|e| bad(e.to_string()))?;
    let len = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(|_| bad("shorter than its 8-byte header length".into()))?;
    let n = u64::from_le_bytes(n);
    if n > 100 << 20 || n > len - 8 {
        return Err(bad(format!("header length {n} does not fit in a {len}-byte file")));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    let obj = v.as_object().ok_or_else(|| bad("header is not a JSON object".into()))?;
    let data_len = len - 8 - n;
    let mut out = Vec::with_capacity(obj.len());
    for (name, t) in obj.iter().filter(|(k, _)| k.as_str() != "__metadata__") {
        let end = t.get("data_offsets").and_then(|o| o.get(1)).and_then(|e| e.as_u64());
        match end {
            Some(end) if end <= data_len => {}
            Some(end) => {
                return Err(bad(format!("tensor '{name}' ends at byte {end}, past the data ({data_len} bytes)")))
            }
            None => return Err(bad(format!("tensor '{name}' has no data_offsets"))),
        }
        let shape: Option<Vec<usize>> = t
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
        match shape {
            Some(s) => out.push((name.clone(), s)),
            None => return Err(bad(format!("tensor '{name}' has no shape"))),
        }
    }
    Ok(out)
}

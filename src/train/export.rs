//! `mixscope export`: a checkpoint as a Hugging Face model directory that transformers loads
//! with `from_pretrained` (config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
//! generation_config.json) and mixscope loads as `model = "DIR"`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};

use crate::bail_input;
use crate::data::tokenizer::{self, ChatFormat, Tok};
use crate::runs::checkpoint;
use crate::runs::RunDir;

/// Which checkpoint to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Latest,
    Step(u64),
    /// The checkpoint of the best held-out loss.
    Best,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Exported {
    pub dir: PathBuf,
    pub step: u64,
    pub tensors: usize,
    pub dtype: String,
}

fn torch_dtype(d: &str) -> (&'static str, DType) {
    match d {
        "bf16" => ("bfloat16", DType::BF16),
        "f16" => ("float16", DType::F16),
        _ => ("float32", DType::F32),
    }
}

/// The checkpoint step `which` names, which must exist.
fn pick_step(run: &RunDir, which: Which) -> Result<u64> {
    let steps = run.checkpoints()?;
    let list = || steps.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
    if steps.is_empty() {
        bail_input!("run {}: no checkpoints yet", run.id());
    }
    match which {
        Which::Latest => Ok(*steps.last().expect("not empty")),
        Which::Step(s) if steps.contains(&s) => Ok(s),
        Which::Step(s) => bail_input!("run {}: no checkpoint at step {s} (checkpoints: {})", run.id(), list()),
        Which::Best => {
            let latest = run.checkpoint_dir(*steps.last().expect("not empty"));
            let st = checkpoint::load_state(&latest)?;
            match st.best_step {
                Some(b) if steps.contains(&b) => Ok(b),
                Some(b) => {
                    bail_input!("run {}: the best checkpoint (step {b}) is gone (checkpoints: {})", run.id(), list())
                }
                None => bail_input!("run {}: no held-out evaluation yet, so no best checkpoint", run.id()),
            }
        }
    }
}

/// Export a run's checkpoint to `out`, which must not exist or be an empty directory. Files are
/// written to a temporary directory beside it and renamed into place, so `out` is whole or
/// absent.
pub fn export(run: &RunDir, which: Which, out: &Path) -> Result<Exported> {
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail_input!("--out {}: exists and is not an empty directory", out.display());
    }
    let cfg = run.read_config()?;
    let step = pick_step(run, which)?;
    // A damaged checkpoint is refused before anything is written.
    checkpoint::load_verified(&run.checkpoint_dir(step), step)?;
    let tok = Tok::load(&run.tokenizer_path())?;
    let mcfg = crate::model::of_run(&cfg, &tok)?;
    let (dtype_name, dtype) = torch_dtype(&cfg.model.dtype);

    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "export".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).ok();
    }
    std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let written = (|| -> Result<usize> {
        // Weights: HF names already; the tied head is implied by config.json.
        let ck = run.checkpoint_dir(step).join(checkpoint::MODEL_FILE);
        let tensors =
            candle_core::safetensors::load(&ck, &Device::Cpu).with_context(|| format!("reading {}", ck.display()))?;
        let mut out_t: Vec<(String, Tensor)> = Vec::with_capacity(tensors.len());
        for (n, t) in tensors {
            if mcfg.tie_word_embeddings && n == "lm_head.weight" {
                continue;
            }
            out_t.push((n, t.to_dtype(dtype)?));
        }
        out_t.sort_by(|a, b| a.0.cmp(&b.0));
        let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
        safetensors::serialize_to_file(
            out_t.iter().map(|(n, t)| (n.as_str(), t)),
            Some(meta),
            &tmp.join("model.safetensors"),
        )
        .map_err(|e| anyhow::anyhow!("writing model.safetensors: {e}"))?;

        // config.json: the pretrained model's own (every field it had) or ours, with the dtype.
        let source_dir = (cfg.model.source != "tiny")
            .then(|| crate::model::files::resolve_model_dir(&cfg.model.source, cfg.model.revision.as_deref()).ok())
            .flatten();
        let mut config: serde_json::Value =
            match source_dir.as_ref().map(|d| std::fs::read_to_string(d.join("config.json"))) {
                Some(Ok(text)) => serde_json::from_str(&text).context("the source model's config.json")?,
                _ => serde_json::from_str(&mcfg.to_hf_json())?,
            };
        config["torch_dtype"] = serde_json::json!(dtype_name);
        if config.get("eos_token_id").is_none() {
            config["eos_token_id"] = serde_json::json!(tok.eos);
            if let Some(b) = tok.bos {
                config["bos_token_id"] = serde_json::json!(b);
            }
            config["pad_token_id"] = serde_json::json!(tok.pad);
        }
        std::fs::write(tmp.join("config.json"), serde_json::to_string_pretty(&config)?)?;

        // Tokenizer files.
        tokenizer::copy_tokenizer(&run.tokenizer_path(), &tmp.join("tokenizer.json"))?;
        if !tmp.join("tokenizer_config.json").exists() {
            std::fs::write(
                tmp.join("tokenizer_config.json"),
                serde_json::to_string_pretty(&tokenizer_config(&tok, &mcfg))?,
            )?;
        }
        let mut generation = serde_json::json!({ "eos_token_id": tok.stops, "pad_token_id": tok.pad });
        if let Some(b) = tok.bos {
            generation["bos_token_id"] = serde_json::json!(b);
        }
        std::fs::write(tmp.join("generation_config.json"), serde_json::to_string_pretty(&generation)?)?;

        // Where it came from.
        let prov = serde_json::json!({
            "run": run.id(),
            "step": step,
            "mixture": cfg.data.mixture,
            "model_source": cfg.model.source,
            "config_hash": cfg.source_hash,
        });
        std::fs::write(tmp.join("mixscope.json"), serde_json::to_string_pretty(&prov)?)?;
        for e in std::fs::read_dir(&tmp)? {
            std::fs::File::open(e?.path())?.sync_all()?;
        }
        Ok(out_t.len())
    })();
    let tensors = match written {
        Ok(n) => n,
        Err(e) => {
            std::fs::remove_dir_all(&tmp).ok();
            return Err(e);
        }
    };
    if out.exists() {
        std::fs::remove_dir(out).with_context(|| format!("replacing the empty {}", out.display()))?;
    }
    std::fs::rename(&tmp, out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    crate::util::sync_dir(parent);
    Ok(Exported { dir: out.to_path_buf(), step, tensors, dtype: dtype_name.into() })
}

/// A `tokenizer_config.json` for the suite tokenizer: its special tokens and a chat template
/// that renders exactly the text mixscope trains on.
fn tokenizer_config(tok: &Tok, m: &super::ModelConfig) -> serde_json::Value {
    let text = |id: u32| tok.inner.id_to_token(id).unwrap_or_default();
    let mut v = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": text(tok.eos),
        "pad_token": text(tok.pad),
        "model_max_length": m.max_position_embeddings,
        "clean_up_tokenization_spaces": false,
    });
    if let Some(b) = tok.bos {
        v["bos_token"] = serde_json::json!(text(b));
    }
    if let ChatFormat::Markers { user, assistant } = tok.format {
        v["chat_template"] = serde_json::json!(format!(
            "{{% for m in messages %}}{{% if m['role'] == 'user' %}}{u}{{{{ m['content'] }}}}{a}{{% elif m['role'] == 'assistant' %}}{{{{ m['content'] }}}}{e}{{% endif %}}{{% endfor %}}",
            u = text(user),
            a = text(assistant),
            e = text(tok.eos)
        ));
    }
    v
}

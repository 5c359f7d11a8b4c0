//! What a model is, without tensors: its configuration (Hugging Face `config.json`), its
//! parameters' names and shapes, and where a pretrained model's files are. The run lifecycle
//! (`runs::create`) checks configs against it; `train/` builds the trainable model from it.

pub mod config;
pub mod files;
pub mod params;

use anyhow::Result;

pub use config::{Arch, ConfigError, ModelConfig};
pub use params::{param_specs, resolve_freeze, Init, ParamSpec};

use crate::config::RunConfig;
use crate::data::tokenizer::Tok;

/// The model configuration of a run: the tiny shape with the tokenizer's vocabulary, or the
/// pretrained model's config.json.
pub fn of_run(cfg: &RunConfig, tok: &Tok) -> Result<ModelConfig> {
    if cfg.model.source == "tiny" {
        let s = &cfg.model.shape;
        let m = ModelConfig {
            vocab_size: s.vocab_size.unwrap_or(tok.vocab_size()),
            hidden_size: s.hidden_size,
            intermediate_size: s.intermediate_size,
            num_hidden_layers: s.num_hidden_layers,
            num_attention_heads: s.num_attention_heads,
            num_key_value_heads: s.num_key_value_heads.unwrap_or(s.num_attention_heads),
            max_position_embeddings: s.max_position_embeddings,
            rope_theta: s.rope_theta,
            rms_norm_eps: s.rms_norm_eps,
            tie_word_embeddings: s.tie_word_embeddings,
            architecture: if s.architecture == "qwen2" { Arch::Qwen2 } else { Arch::Llama },
            attention_bias: s.attention_bias || s.architecture == "qwen2",
        };
        m.validate().map_err(|e| crate::error::bad_input(format!("model.shape: {e}")))?;
        return Ok(m);
    }
    let dir = files::resolve_model_dir(&cfg.model.source, cfg.model.revision.as_deref())?;
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| crate::error::bad_input(format!("{}: {e}", path.display())))?;
    ModelConfig::from_hf_json(&text).map_err(|e| {
        crate::error::bad_input(format!("{}: {}", path.display(), e.to_string().trim_start_matches("config.json: ")))
    })
}

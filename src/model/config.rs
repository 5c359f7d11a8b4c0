//! Model configuration, read from and written to Hugging Face `config.json`.
#![allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; mixscope targets 1.85

use serde::{Deserialize, Serialize};

/// Supported decoder architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    /// `LlamaForCausalLM`
    Llama,
    /// `Qwen2ForCausalLM` (q/k/v projections carry biases)
    Qwen2,
}

impl Arch {
    pub fn hf_architecture(self) -> &'static str {
        match self {
            Arch::Llama => "LlamaForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
        }
    }
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// Errors of configuration parsing/validation.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("config.json: unsupported architecture {0:?} (expected LlamaForCausalLM or Qwen2ForCausalLM)")]
    UnsupportedArchitecture(String),
    #[error("config.json: missing required field `{0}`")]
    Missing(&'static str),
    #[error("invalid model config: {0}")]
    Invalid(String),
}

/// Model hyper-parameters; field names are exactly those of Hugging Face `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    pub architecture: Arch,
    /// q/k/v projection biases (always true for Qwen2).
    pub attention_bias: bool,
}

#[derive(Deserialize)]
struct RawHf {
    architectures: Option<Vec<String>>,
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    max_position_embeddings: Option<usize>,
    rope_theta: Option<f64>,
    rope_parameters: Option<serde_json::Value>,
    rms_norm_eps: Option<f64>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    head_dim: Option<usize>,
    hidden_act: Option<String>,
}

impl ModelConfig {
    /// A small Llama config (handy for tests and the bench).
    #[allow(clippy::too_many_arguments)]
    pub fn llama(
        vocab_size: usize,
        hidden_size: usize,
        intermediate_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        num_key_value_heads: usize,
        max_position_embeddings: usize,
        tie_word_embeddings: bool,
    ) -> Self {
        ModelConfig {
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            max_position_embeddings,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-6,
            tie_word_embeddings,
            architecture: Arch::Llama,
            attention_bias: false,
        }
    }

    /// Reads a Hugging Face `config.json`. Missing optional fields get the transformers defaults
    /// of the architecture (Llama: rope_theta 1e4, rms_norm_eps 1e-6, untied, no attention bias,
    /// max_position_embeddings 2048; Qwen2: rope_theta 1e4, rms_norm_eps 1e-6, untied, q/k/v
    /// biases, max_position_embeddings 32768; num_key_value_heads = num_attention_heads).
    pub fn from_hf_json(json: &str) -> Result<Self, ConfigError> {
        let raw: RawHf = serde_json::from_str(json)?;
        let arch = match raw.architectures.as_deref() {
            Some([a, ..]) => match a.as_str() {
                "LlamaForCausalLM" => Arch::Llama,
                "Qwen2ForCausalLM" => Arch::Qwen2,
                other => return Err(ConfigError::UnsupportedArchitecture(other.to_string())),
            },
            Some([]) => return Err(ConfigError::UnsupportedArchitecture(String::new())),
            None => match raw.model_type.as_deref() {
                Some("llama") => Arch::Llama,
                Some("qwen2") => Arch::Qwen2,
                Some(other) => return Err(ConfigError::UnsupportedArchitecture(other.to_string())),
                None => return Err(ConfigError::Missing("architectures")),
            },
        };
        if let Some(act) = raw.hidden_act.as_deref() {
            if act != "silu" {
                return Err(ConfigError::Invalid(format!("hidden_act {act:?} (only silu)")));
            }
        }
        let hidden_size = raw.hidden_size.ok_or(ConfigError::Missing("hidden_size"))?;
        let num_attention_heads = raw.num_attention_heads.ok_or(ConfigError::Missing("num_attention_heads"))?;
        // transformers >= 5 may keep rope_theta inside `rope_parameters`.
        let rope_theta = raw
            .rope_theta
            .or_else(|| raw.rope_parameters.as_ref().and_then(|p| p.get("rope_theta")).and_then(|v| v.as_f64()))
            .unwrap_or(10_000.0);
        let cfg = ModelConfig {
            vocab_size: raw.vocab_size.ok_or(ConfigError::Missing("vocab_size"))?,
            hidden_size,
            intermediate_size: raw.intermediate_size.ok_or(ConfigError::Missing("intermediate_size"))?,
            num_hidden_layers: raw.num_hidden_layers.ok_or(ConfigError::Missing("num_hidden_layers"))?,
            num_attention_heads,
            num_key_value_heads: raw.num_key_value_heads.unwrap_or(num_attention_heads),
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(match arch {
                Arch::Llama => 2048,
                Arch::Qwen2 => 32768,
            }),
            rope_theta,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            architecture: arch,
            attention_bias: match arch {
                Arch::Llama => raw.attention_bias.unwrap_or(false),
                Arch::Qwen2 => true,
            },
        };
        if let Some(hd) = raw.head_dim {
            if hd * num_attention_heads != hidden_size {
                return Err(ConfigError::Invalid(format!(
                    "head_dim {hd} x num_attention_heads {num_attention_heads} != hidden_size {hidden_size}"
                )));
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Writes a `config.json` that transformers' `from_pretrained` accepts.
    pub fn to_hf_json(&self) -> String {
        let mut v = serde_json::json!({
            "architectures": [self.architecture.hf_architecture()],
            "model_type": self.architecture.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim(),
            "max_position_embeddings": self.max_position_embeddings,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "attention_dropout": 0.0,
            "use_cache": true,
            "torch_dtype": "float32",
        });
        if self.architecture == Arch::Llama {
            v["attention_bias"] = serde_json::json!(self.attention_bias);
            v["mlp_bias"] = serde_json::json!(false);
            v["pretraining_tp"] = serde_json::json!(1);
        } else {
            v["use_sliding_window"] = serde_json::json!(false);
        }
        serde_json::to_string_pretty(&v).expect("config serialises")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: String| Err(ConfigError::Invalid(s));
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_hidden_layers == 0 {
            return bad("vocab_size, hidden_size and num_hidden_layers must be > 0".into());
        }
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.num_key_value_heads == 0 || self.num_attention_heads % self.num_key_value_heads != 0 {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim() % 2 != 0 {
            return bad(format!("head_dim {} must be even for RoPE", self.head_dim()));
        }
        if self.architecture == Arch::Qwen2 && !self.attention_bias {
            return bad("Qwen2 always has q/k/v biases (attention_bias must be true)".into());
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    pub fn kv_dim(&self) -> usize {
        self.head_dim() * self.num_key_value_heads
    }

    /// Number of trainable parameters (tied embeddings counted once).
    pub fn num_params(&self) -> usize {
        let (h, i, v, kv) = (self.hidden_size, self.intermediate_size, self.vocab_size, self.kv_dim());
        let attn = h * h * 2 + 2 * h * kv + if self.attention_bias { h + 2 * kv } else { 0 };
        let per_layer = attn + 3 * h * i + 2 * h;
        v * h + self.num_hidden_layers * per_layer + h + if self.tie_word_embeddings { 0 } else { v * h }
    }

    /// Matmul FLOPs of one training step per token (forward + backward ≈ 3× forward),
    /// including causal attention at sequence length `seq`.
    pub fn train_flops_per_token(&self, seq: usize) -> f64 {
        let (h, i, v, kv) = (self.hidden_size, self.intermediate_size, self.vocab_size, self.kv_dim());
        let dense = (2 * h * h + 2 * h * kv + 3 * h * i) * self.num_hidden_layers + v * h;
        // causal attention: QK^T and PV over (seq+1)/2 keys on average.
        let attn = 2 * h * (seq + 1) / 2 * self.num_hidden_layers;
        6.0 * (dense + attn) as f64
    }
}

//! A model's parameters as the run directory and the config name them: Hugging Face names,
//! shapes and initialisations, and what `train.freeze` means for them.

use super::ModelConfig;

/// How a parameter is initialised by `train::Model::new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// normal(0, 0.02)
    Normal,
    /// all ones (norm weights)
    Ones,
    /// all zeros (biases)
    Zeros,
}

/// One expected parameter: HF name, shape, initialisation.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// Every parameter of the model, in a fixed order, with its Hugging Face name.
pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let (h, i, v, kv) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.kv_dim());
    let mut out = Vec::new();
    let mut p = |name: String, shape: Vec<usize>, init: Init| out.push(ParamSpec { name, shape, init });
    p("model.embed_tokens.weight".into(), vec![v, h], Init::Normal);
    for l in 0..cfg.num_hidden_layers {
        let pre = format!("model.layers.{l}");
        p(format!("{pre}.self_attn.q_proj.weight"), vec![h, h], Init::Normal);
        p(format!("{pre}.self_attn.k_proj.weight"), vec![kv, h], Init::Normal);
        p(format!("{pre}.self_attn.v_proj.weight"), vec![kv, h], Init::Normal);
        if cfg.attention_bias {
            p(format!("{pre}.self_attn.q_proj.bias"), vec![h], Init::Zeros);
            p(format!("{pre}.self_attn.k_proj.bias"), vec![kv], Init::Zeros);
            p(format!("{pre}.self_attn.v_proj.bias"), vec![kv], Init::Zeros);
        }
        p(format!("{pre}.self_attn.o_proj.weight"), vec![h, h], Init::Normal);
        p(format!("{pre}.mlp.gate_proj.weight"), vec![i, h], Init::Normal);
        p(format!("{pre}.mlp.up_proj.weight"), vec![i, h], Init::Normal);
        p(format!("{pre}.mlp.down_proj.weight"), vec![h, i], Init::Normal);
        p(format!("{pre}.input_layernorm.weight"), vec![h], Init::Ones);
        p(format!("{pre}.post_attention_layernorm.weight"), vec![h], Init::Ones);
    }
    p("model.norm.weight".into(), vec![h], Init::Ones);
    if !cfg.tie_word_embeddings {
        p("lm_head.weight".into(), vec![v, h], Init::Normal);
    }
    out
}

/// The parameter-name prefixes `train.freeze` means for a model with these parameter names.
/// In a model with tied embeddings there is no `lm_head.weight`: the output layer *is* the
/// token embedding matrix, so a prefix of `lm_head.weight` names `model.embed_tokens.weight`
/// (freezing the output layer of a tied model freezes its embeddings, as it must). A prefix
/// that names nothing else is bad input, listing the names.
pub fn resolve_freeze(prefixes: &[String], names: &[String]) -> anyhow::Result<Vec<String>> {
    const HEAD: &str = "lm_head.weight";
    const TIED: &str = "model.embed_tokens.weight";
    let tied = !names.iter().any(|n| n == HEAD) && names.iter().any(|n| n == TIED);
    let mut out = Vec::new();
    for f in prefixes {
        if names.iter().any(|n| n.starts_with(f.as_str())) {
            out.push(f.clone());
        } else if tied && !f.is_empty() && HEAD.starts_with(f.as_str()) {
            out.push(TIED.to_string());
        } else {
            crate::bail_input!("train.freeze: '{f}' names no parameter of the model (they are: {})", names.join(", "));
        }
    }
    Ok(out)
}

//! Tokenizers: the demo's byte-level BPE, trained on the suite, and any `tokenizer.json`.
//!
//! The demo tokenizer splits text into runs of letters *with their combining marks* (so that
//! Bengali, Thai or Arabic words stay whole before BPE), single digits (so that arithmetic sees
//! one token per digit, in every script), and punctuation, then maps bytes with the GPT-2
//! byte-level alphabet. It is trained once per suite version and vocabulary size and cached.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, TokenizerBuilder};

use super::example::{Example, Task};
use super::suite::{suite, GenOptions};
use super::{assets, lang};
use crate::bail_input;

/// The special tokens of the demo tokenizer, in id order.
pub const SPECIALS: [&str; 5] = ["<|pad|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>"];

/// Letters with their marks; one digit; punctuation runs; whitespace (GPT-2 style).
const SPLIT_PATTERN: &str = r" ?[\p{L}\p{M}]+| ?\p{N}| ?[^\s\p{L}\p{M}\p{N}]+|\s+(?!\S)|\s+";

/// How a chat example becomes text: the suite tokenizer's marker tokens, or the text a
/// model's chat template puts around a user turn and an assistant turn.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatFormat {
    /// `<|user|> prompt <|assistant|> response <|eos|>` (the suite tokenizer).
    Markers { user: u32, assistant: u32 },
    /// `before + prompt + between` is the prompt; `response + after` the answer (from the
    /// model's `chat_template`, or `prompt\n` / `response<eos>` for a model without one).
    Template { before: String, between: String, after: String },
}

/// A tokenizer with the ids and the chat format that training and evaluation need.
pub struct Tok {
    pub inner: tokenizers::Tokenizer,
    pub pad: u32,
    /// The start-of-text token, where the tokenizer has one (LM text starts with it).
    pub bos: Option<u32>,
    pub eos: u32,
    pub format: ChatFormat,
    /// Tokens that end a generated answer (the end-of-text token and the chat turn's end).
    pub stops: Vec<u32>,
}

/// An encoded example: input ids, next-token targets and per-target loss weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// `ids[i+1]` is the target of position i; weights mark which targets count (the response).
    pub weights: Vec<f32>,
    /// How many leading ids are the prompt (for generation: feed `ids[..prompt_len]`).
    pub prompt_len: usize,
    pub truncated: bool,
}

/// The `tokenizer_config.json` next to a `tokenizer.json`, where there is one.
pub fn config_path(tokenizer_json: &Path) -> PathBuf {
    tokenizer_json.with_file_name("tokenizer_config.json")
}

/// Copy a tokenizer (its `tokenizer.json` and, where present, its `tokenizer_config.json`).
pub fn copy_tokenizer(src: &Path, dst: &Path) -> Result<()> {
    std::fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
    let sc = config_path(src);
    if sc.exists() {
        std::fs::copy(&sc, config_path(dst)).with_context(|| format!("copying {}", sc.display()))?;
    }
    Ok(())
}

/// A special token named in `tokenizer_config.json`: a string or `{"content": ...}`.
fn token_field(cfg: &serde_json::Value, key: &str) -> Option<String> {
    match cfg.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

/// The chat template of a `tokenizer_config.json`: a string, or a list of named templates
/// (the one named `default`).
fn chat_template(cfg: &serde_json::Value) -> Option<String> {
    match cfg.get("chat_template")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(list) => list
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|t| t.get("template")?.as_str().map(String::from)),
        _ => None,
    }
}

/// Render a Hugging Face chat template (Jinja) for `messages`.
pub fn render_chat_template(
    template: &str,
    messages: &[(&str, &str)],
    add_generation_prompt: bool,
    bos: &str,
    eos: &str,
) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_function("strftime_now", |_fmt: String| "01 January 2026".to_string());
    env.add_template("chat", template).map_err(|e| crate::error::bad_input(format!("chat_template: {e}")))?;
    let msgs: Vec<serde_json::Value> =
        messages.iter().map(|(r, c)| serde_json::json!({"role": r, "content": c})).collect();
    let ctx = minijinja::context! {
        messages => msgs,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos,
        eos_token => eos,
        tools => minijinja::Value::UNDEFINED,
    };
    let t = env.get_template("chat").expect("added above");
    t.render(ctx).map_err(|e| crate::error::bad_input(format!("chat_template: rendering: {e}")))
}

/// The text around a user turn and an assistant turn under a chat template, found by rendering
/// it with placeholder contents.
fn template_format(template: &str, bos: &str, eos: &str) -> Result<ChatFormat> {
    const P: &str = "MIXSCOPEPROMPT7";
    const R: &str = "MIXSCOPERESPONSE7";
    let a = render_chat_template(template, &[("user", P)], true, bos, eos)?;
    let b = render_chat_template(template, &[("user", P), ("assistant", R)], false, bos, eos)?;
    let bad =
        || crate::error::bad_input("chat_template: the rendered turns do not contain the message texts".to_string());
    let (before, between) = a.split_once(P).ok_or_else(bad)?;
    let (_, rest) = b.split_once(P).ok_or_else(bad)?;
    let (_, after) = rest.split_once(R).ok_or_else(bad)?;
    Ok(ChatFormat::Template { before: before.into(), between: between.into(), after: after.into() })
}

impl Tok {
    /// Load a `tokenizer.json` (the demo's or a pretrained model's), with the
    /// `tokenizer_config.json` beside it when there is one (special tokens, chat template).
    pub fn load(path: &Path) -> Result<Tok> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cpath = config_path(path);
        let config = match std::fs::read_to_string(&cpath) {
            Ok(t) => Some(
                serde_json::from_str::<serde_json::Value>(&t)
                    .map_err(|e| crate::error::bad_input(format!("{}: {e}", cpath.display())))?,
            ),
            Err(_) => None,
        };
        Tok::from_parts(&text, config.as_ref()).map_err(|e| {
            let shown = if config.is_some() { cpath.display().to_string() } else { path.display().to_string() };
            crate::error::bad_input(format!("{shown}: {e:#}"))
        })
    }

    /// A tokenizer from its JSON alone (the suite tokenizer, or a model's without config).
    pub fn from_json(text: &str) -> Result<Tok> {
        Tok::from_parts(text, None)
    }

    /// A tokenizer from `tokenizer.json` text and the parsed `tokenizer_config.json`.
    pub fn from_parts(text: &str, config: Option<&serde_json::Value>) -> Result<Tok> {
        let inner: tokenizers::Tokenizer =
            text.parse().map_err(|e| crate::error::bad_input(format!("not a valid tokenizer.json: {e}")))?;
        let id = |t: &str| inner.token_to_id(t);
        if let (Some(pad), Some(bos), Some(eos), Some(user), Some(assistant)) =
            (id(SPECIALS[0]), id(SPECIALS[1]), id(SPECIALS[2]), id(SPECIALS[3]), id(SPECIALS[4]))
        {
            let format = ChatFormat::Markers { user, assistant };
            return Ok(Tok { inner, pad, bos: Some(bos), eos, format, stops: vec![eos] });
        }
        let empty = serde_json::Value::Null;
        let cfg = config.unwrap_or(&empty);
        let named = |key: &str| -> Result<Option<(String, u32)>> {
            match token_field(cfg, key) {
                None => Ok(None),
                Some(t) => match inner.token_to_id(&t) {
                    Some(i) => Ok(Some((t, i))),
                    None => bail_input!("{key} '{t}' is not in the tokenizer's vocabulary"),
                },
            }
        };
        let Some((eos_text, eos)) = named("eos_token")? else {
            bail_input!(
                "the tokenizer has no end token: tokenizer_config.json needs eos_token (or use the suite tokenizer's {})",
                SPECIALS.join(" ")
            );
        };
        let bos = named("bos_token")?;
        let pad = named("pad_token")?.map_or(eos, |(_, i)| i);
        let bos_text = bos.as_ref().map_or(String::new(), |(t, _)| t.clone());
        let format = match chat_template(cfg) {
            Some(t) => template_format(&t, &bos_text, &eos_text)?,
            None => ChatFormat::Template { before: String::new(), between: "\n".into(), after: eos_text.clone() },
        };
        let mut stops = vec![eos];
        if let ChatFormat::Template { after, .. } = &format {
            // The turn's end token (e.g. <|im_end|>) stops generation too.
            let enc = inner.encode_fast(after.trim(), false).map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
            if let Some(&first) = enc.get_ids().first() {
                if !stops.contains(&first) && enc.get_ids().len() == 1 {
                    stops.push(first);
                }
            }
        }
        Ok(Tok { inner, pad, bos: bos.map(|(_, i)| i), eos, format, stops })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, false).map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| anyhow::anyhow!("decoding: {e}"))
    }

    /// The prompt of a chat example in three parts: the ids before the prompt text, the
    /// prompt text's, and those after it (up to where the answer starts).
    fn prompt_parts(&self, prompt: &str) -> Result<(Vec<u32>, Vec<u32>, Vec<u32>)> {
        match &self.format {
            ChatFormat::Markers { user, assistant } => Ok((vec![*user], self.encode_text(prompt)?, vec![*assistant])),
            ChatFormat::Template { before, between, .. } => {
                Ok((self.encode_text(before)?, self.encode_text(prompt)?, self.encode_text(between)?))
            }
        }
    }

    /// The prompt part of a chat example, as generation is fed it.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        let (mut head, body, tail) = self.prompt_parts(prompt)?;
        head.extend(body);
        head.extend(tail);
        Ok(head)
    }

    /// The answer of a chat example with the end of the turn.
    fn encode_answer(&self, response: &str) -> Result<Vec<u32>> {
        match &self.format {
            ChatFormat::Markers { .. } => {
                let mut ids = self.encode_text(response)?;
                ids.push(self.eos);
                Ok(ids)
            }
            ChatFormat::Template { after, .. } => {
                let mut text = String::with_capacity(response.len() + after.len());
                text.push_str(response);
                text.push_str(after);
                self.encode_text(&text)
            }
        }
    }

    /// Encode an example for training: chat tasks carry loss on the response and the end of
    /// the turn only; LM text on every token. At most `max_len` ids (the prompt text is cut
    /// from its start first, keeping the chat format around it, then the end).
    pub fn encode(&self, ex: &Example, max_len: usize) -> Result<Encoded> {
        if ex.task == Task::Lm || ex.prompt.is_empty() {
            let mut ids: Vec<u32> = self.bos.into_iter().collect();
            ids.extend(self.encode_text(&ex.response)?);
            ids.push(self.eos);
            let truncated = ids.len() > max_len;
            ids.truncate(max_len);
            let weights = vec![1.0; ids.len().saturating_sub(1)];
            return Ok(Encoded { ids, weights, prompt_len: 1, truncated });
        }
        let (head, mut body, tail) = self.prompt_parts(&ex.prompt)?;
        let resp = self.encode_answer(&ex.response)?;
        let mut truncated = false;
        let total = head.len() + body.len() + tail.len() + resp.len();
        if total > max_len {
            truncated = true;
            // Keep the end of the prompt text (the question is last).
            let cut = (total - max_len).min(body.len());
            body.drain(..cut);
        }
        let mut ids = head;
        ids.extend(body);
        ids.extend(tail);
        let prompt_len = ids.len();
        ids.extend(resp);
        ids.truncate(max_len);
        let weights = (1..ids.len()).map(|i| if i >= prompt_len { 1.0 } else { 0.0 }).collect();
        Ok(Encoded { ids, weights, prompt_len: prompt_len.min(max_len), truncated })
    }
}

/// Train the demo tokenizer on the suite (deterministic) and return its JSON.
pub fn train_suite_tokenizer(vocab_size: usize, per_task_lang: u64) -> Result<String> {
    let s = suite();
    let opts = GenOptions { mr_levels: vec![1, 2, 3] };
    let mut texts: Vec<String> = Vec::new();
    for l in lang::all() {
        for t in Task::BUILTIN {
            for i in 0..per_task_lang {
                let ex = s.train(&t, &l.code, 0x746f6b, i, &opts)?;
                if !ex.prompt.is_empty() {
                    texts.push(ex.prompt);
                }
                texts.push(ex.response);
            }
        }
    }
    let specials: Vec<AddedToken> = SPECIALS.iter().map(|t| AddedToken::from(t.to_string(), true)).collect();
    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(2)
        .special_tokens(specials)
        .initial_alphabet(alphabet)
        .build();
    let split = Split::new(SplitPattern::Regex(SPLIT_PATTERN.into()), SplitDelimiterBehavior::Isolated, false)
        .map_err(|e| anyhow::anyhow!("split pattern: {e}"))?;
    let pre = Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
    ]);
    let mut tk =
        TokenizerBuilder::<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(pre)))
            .with_post_processor(None)
            .with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())))
            .build()
            .map_err(|e| anyhow::anyhow!("building tokenizer: {e}"))?;
    tk.train(&mut trainer, texts.iter()).map_err(|e| anyhow::anyhow!("training tokenizer: {e}"))?;
    tk.to_string(false).map_err(|e| anyhow::anyhow!("saving tokenizer: {e}"))
}

/// The cache directory: `MIXSCOPE_CACHE`, else `<runs root>/.cache`.
pub fn cache_dir(runs_root: &Path) -> PathBuf {
    match std::env::var_os("MIXSCOPE_CACHE").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => runs_root.join(".cache"),
    }
}

/// The demo tokenizer for this suite and vocabulary size: from the cache, or trained and cached.
/// Returns the path of its `tokenizer.json`.
pub fn suite_tokenizer(cache: &Path, vocab_size: usize) -> Result<PathBuf> {
    let fp = assets::fingerprint()?;
    let dir = cache.join("tokenizers");
    let path = dir.join(format!("suite-{fp}-v{vocab_size}.json"));
    if path.exists() {
        return Ok(path);
    }
    // A cache mixscope creates (by default in the runs root) is private, as its runs are.
    crate::util::create_private_dir(&dir)?;
    let json = train_suite_tokenizer(vocab_size, 1500)?;
    crate::util::write_atomic(&path, json.as_bytes())?;
    Ok(path)
}

/// Tokens per character of the held-out text of each language (all tasks): the tokenizer's
/// fertility. Non-Latin scripts must not explode into bytes.
pub fn fertility(tok: &Tok, n: usize) -> Result<Vec<(String, f64, f64)>> {
    let s = suite();
    let opts = GenOptions::default();
    let mut out = Vec::new();
    for l in lang::all() {
        let (mut chars, mut tokens, mut words) = (0usize, 0usize, 0usize);
        for t in Task::BUILTIN {
            for ex in s.heldout(&t, &l.code, n, &opts)? {
                for text in [&ex.prompt, &ex.response] {
                    chars += text.chars().filter(|c| !c.is_whitespace()).count();
                    words += text.split_whitespace().count();
                    tokens += tok.encode_text(text)?.len();
                }
            }
        }
        out.push((l.code.clone(), tokens as f64 / chars.max(1) as f64, tokens as f64 / words.max(1) as f64));
    }
    Ok(out)
}

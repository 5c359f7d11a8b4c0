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

/// A tokenizer with the ids of the tokens the chat format needs.
pub struct Tok {
    pub inner: tokenizers::Tokenizer,
    pub pad: u32,
    pub bos: u32,
    pub eos: u32,
    pub user: u32,
    pub assistant: u32,
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

impl Tok {
    /// Load a `tokenizer.json` (the demo's or a pretrained model's).
    pub fn load(path: &Path) -> Result<Tok> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Tok::from_json(&text).with_context(|| format!("loading tokenizer {}", path.display()))
    }

    pub fn from_json(text: &str) -> Result<Tok> {
        let inner: tokenizers::Tokenizer =
            text.parse().map_err(|e| crate::error::bad_input(format!("not a valid tokenizer.json: {e}")))?;
        let id = |t: &str| inner.token_to_id(t);
        let (Some(pad), Some(bos), Some(eos), Some(user), Some(assistant)) =
            (id(SPECIALS[0]), id(SPECIALS[1]), id(SPECIALS[2]), id(SPECIALS[3]), id(SPECIALS[4]))
        else {
            bail_input!("the tokenizer lacks the special tokens mixscope's chat format uses ({})", SPECIALS.join(" "));
        };
        Ok(Tok { inner, pad, bos, eos, user, assistant })
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

    /// The prompt part of a chat example: `<|user|> prompt <|assistant|>`.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        let mut ids = vec![self.user];
        ids.extend(self.encode_text(prompt)?);
        ids.push(self.assistant);
        Ok(ids)
    }

    /// Encode an example for training: chat tasks carry loss on the response and the end token
    /// only; LM text on every token. At most `max_len` ids (the prompt is cut from the left
    /// first, then the end).
    pub fn encode(&self, ex: &Example, max_len: usize) -> Result<Encoded> {
        if ex.task == Task::Lm || ex.prompt.is_empty() {
            let mut ids = vec![self.bos];
            ids.extend(self.encode_text(&ex.response)?);
            ids.push(self.eos);
            let truncated = ids.len() > max_len;
            ids.truncate(max_len);
            let weights = vec![1.0; ids.len().saturating_sub(1)];
            return Ok(Encoded { ids, weights, prompt_len: 1, truncated });
        }
        let mut prompt = self.encode_prompt(&ex.prompt)?;
        let mut resp = self.encode_text(&ex.response)?;
        resp.push(self.eos);
        let mut truncated = false;
        if prompt.len() + resp.len() > max_len {
            truncated = true;
            let keep_prompt = max_len.saturating_sub(resp.len()).max(2.min(max_len));
            if prompt.len() > keep_prompt {
                // Keep the user marker and the end of the prompt (the question is last).
                let cut = prompt.len() - keep_prompt;
                prompt.drain(1..1 + cut.min(prompt.len() - 1));
            }
        }
        let prompt_len = prompt.len();
        let mut ids = prompt;
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
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
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

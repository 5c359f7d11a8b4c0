//! Run configuration: the TOML a user writes (`configs/*.toml`), `--set KEY=VALUE` overrides,
//! validation with located errors, and the resolved `run.toml` of a run directory.
//!
//! Errors are [`BadInput`](crate::error::BadInput) and name the place: `file:line:col` for
//! syntax, unknown keys and wrong types; the dotted field (and its position in the file when it
//! is written there) for out-of-range values; `--set KEY=VALUE` for overrides.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::data::lang;
use crate::data::mixture::{Mixture, SpecContext};
use crate::data::Task;
use crate::error::{bad_input, line_col};

/// "a", "a or b", "a, b or c".
fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [w] => w.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A config value that is one of a few words: parsed, shown and (de)serialized as the word.
/// A wrong word is an error naming the field and the words it may be.
macro_rules! word_enum {
    ($(#[$m:meta])* $name:ident, $field:literal, { $($(#[$vm:meta])* $var:ident = $word:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub enum $name {
            $($(#[$vm])* $var),+
        }

        impl $name {
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $word),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$var),)+
                    _ => Err(format!("{}: '{s}' is not {}", $field, one_of(Self::WORDS))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

word_enum!(
    /// What pausing a supervised run does.
    Pause, "pause", {
        /// Checkpoint, exit and free the slot; resume queues the run again.
        #[default]
        Release = "release",
        /// Pause in place, keeping the process, its memory and its slot; resume continues at once.
        Hold = "hold",
    }
);

word_enum!(
    /// Where a launched run's trainer runs.
    Launcher, "launcher", {
        /// A child process of this machine, queued by slot.
        #[default]
        Local = "local",
        /// A Slurm batch job; Slurm queues it, `[slurm]` says how.
        Slurm = "slurm",
    }
);

word_enum!(
    /// The learning-rate schedule after warm-up.
    Schedule, "train.schedule", {
        #[default]
        Constant = "constant",
        /// Down to lr × min_lr_ratio at max_steps.
        Cosine = "cosine",
    }
);

word_enum!(
    /// What the trainer does when a step's loss or gradient norm is not finite (the step is not
    /// applied; the last checkpoint is the last good state).
    OnNonFinite, "train.on_nonfinite", {
        /// End the run `failed`, naming the step and the value.
        #[default]
        Stop = "stop",
        /// End the run `paused` (for a look before resuming or forking from its checkpoint).
        Pause = "pause",
    }
);

/// The device a run asks for: `auto` (the queue's GPU when there is one, else the CPU), `cpu`,
/// `cuda` (any GPU) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Auto,
    Cpu,
    /// A GPU: the one given, or any.
    Cuda(Option<usize>),
}

impl DeviceSpec {
    /// Whether the run asks for a GPU by name (`cuda`, `cuda:N`).
    pub fn is_cuda(self) -> bool {
        matches!(self, DeviceSpec::Cuda(_))
    }

    /// Whether the queue chooses the GPU (`auto`, `cuda`).
    pub fn takes_any_gpu(self) -> bool {
        matches!(self, DeviceSpec::Auto | DeviceSpec::Cuda(None))
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(None)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceSpec::Cuda(Some(n))),
                _ => Err(format!("device: '{s}' is not cpu, cuda, cuda:N or auto")),
            },
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(None) => f.write_str("cuda"),
            DeviceSpec::Cuda(Some(n)) => write!(f, "cuda:{n}"),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The shape of a model built from scratch (Hugging Face `config.json` field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelShape {
    pub architecture: String,
    pub vocab_size: Option<usize>,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
}

impl Default for ModelShape {
    fn default() -> Self {
        ModelShape {
            architecture: "llama".into(),
            vocab_size: None,
            hidden_size: 256,
            intermediate_size: 688,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: None,
            max_position_embeddings: 512,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
            tie_word_embeddings: false,
            attention_bias: false,
        }
    }
}

/// `[model]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// `"tiny"` (built from `[model.shape]`), a hub name `org/name`, or a local directory.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The compute dtype: f32 | bf16 | f16
    pub dtype: String,
    /// The parameters' (master) dtype: `f32` (mixed precision when `dtype` is bf16/f16: the
    /// forward casts weights on use, the optimizer updates f32) or `same` (parameters stored in
    /// `dtype`, half the memory, updates rounded to it).
    #[serde(skip_serializing_if = "is_f32")]
    pub master_dtype: String,
    /// auto | fused | composite (the differentiable kernels; auto = fused on CPU)
    pub kernels: String,
    pub shape: ModelShape,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_f32(s: &str) -> bool {
    s == "f32"
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            source: "tiny".into(),
            revision: None,
            dtype: "f32".into(),
            master_dtype: "f32".into(),
            kernels: "auto".into(),
            shape: ModelShape::default(),
        }
    }
}

/// `[tokenizer]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizerSection {
    /// `"suite"` (the demo BPE trained on the suite), `"model"` (the model's own), or a path.
    pub source: String,
    pub vocab_size: usize,
}

impl Default for TokenizerSection {
    fn default() -> Self {
        TokenizerSection { source: "suite".into(), vocab_size: 4096 }
    }
}

/// `[data]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// Tasks trained on: mr, sm, if, lm, or user tasks, each optionally with a sampling weight
    /// (`"mr:2"`; 1 when none), as in the SPEC's `tasks=mr:2+sm+if`. A mixture SPEC that names
    /// its tasks overrides these weights.
    pub tasks: Vec<String>,
    /// The seen languages `multilingual=` and `n=` spread over (default: es fr ja zh).
    pub seen: Vec<String>,
    /// Languages evaluated but never trained on.
    pub heldout: Vec<String>,
    /// The mixture SPEC (syntax: [`crate::data::mixture`]).
    pub mixture: String,
    /// MR difficulty levels (1: one-digit operands, 2: two digits, 3: three digits).
    pub mr_levels: Vec<u8>,
    /// User JSONL files (prompt/response or messages, plus lang and task).
    pub files: Vec<PathBuf>,
    /// Tokens per training sequence (longer examples are cut).
    pub seq_len: usize,
}

/// A task weight's text read as a positive finite number.
fn task_weight(w: &str) -> Option<f64> {
    w.parse::<f64>().ok().filter(|w| w.is_finite() && *w > 0.0)
}

/// A `data.tasks` entry split into the task's name and its weight's text.
fn split_task(entry: &str) -> (&str, Option<&str>) {
    match entry.split_once(':') {
        Some((name, w)) => (name.trim(), Some(w.trim())),
        None => (entry.trim(), None),
    }
}

impl DataSection {
    /// The tasks' names, without their weights.
    pub fn task_names(&self) -> Vec<String> {
        self.tasks.iter().map(|t| split_task(t).0.to_string()).collect()
    }

    /// The tasks with their sampling weights, normalised to sum to 1 (validation has checked
    /// the weights; an unreadable one counts as 1).
    pub fn task_weights(&self) -> Vec<(Task, f64)> {
        let raw: Vec<(Task, f64)> = self
            .tasks
            .iter()
            .map(|t| {
                let (name, w) = split_task(t);
                (Task::parse(name), w.and_then(task_weight).unwrap_or(1.0))
            })
            .collect();
        let total: f64 = raw.iter().map(|(_, w)| w).sum();
        raw.into_iter().map(|(t, w)| (t, w / total)).collect()
    }

    /// What a mixture SPEC is resolved against: the seen languages and the weighted tasks.
    pub fn spec_context(&self) -> SpecContext {
        SpecContext {
            seen: self.seen.clone(),
            tasks: self.task_weights(),
            user_tasks: self.task_names().into_iter().filter(|t| Task::builtin(t).is_none()).collect(),
        }
    }
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            tasks: vec!["mr".into(), "sm".into(), "if".into()],
            seen: lang::all().iter().filter(|l| l.group == lang::Group::Seen).map(|l| l.code.clone()).collect(),
            heldout: vec!["ar".into(), "ko".into(), "pt".into()],
            mixture: "multilingual=0.4".into(),
            mr_levels: vec![1],
            files: Vec::new(),
            seq_len: 192,
        }
    }
}

/// `[train]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// The optimizer step at which training stops (absolute: forks and resumes count the
    /// steps they inherit). A config with `[init]` counts from the init step.
    pub max_steps: u64,
    /// Examples per optimizer step.
    pub batch_size: usize,
    /// Micro-batches per step (batch_size is split among them): at most batch_size /
    /// grad_accum examples per micro-batch.
    pub grad_accum: usize,
    /// Concatenate a micro-batch's examples into one row with no padding, each attending only
    /// to itself with its own positions (the gradient is that of the padded batch; the step
    /// computes real tokens only). Needs the fused CPU kernels (f32, head dim a multiple of
    /// 16); elsewhere batches are padded, as with `pack = false`. Written to run.toml only
    /// when false, so configs from before it keep their digest.
    #[serde(skip_serializing_if = "is_true")]
    pub pack: bool,
    /// For padded batches: split each step's examples into micro-batches of like length, so
    /// that short examples are not padded to the longest of the step (the gradient is the
    /// same; the step is cheaper).
    pub group_by_length: bool,
    pub lr: f64,
    /// constant | cosine
    pub schedule: Schedule,
    pub warmup_steps: u64,
    /// The step the schedule starts from (set when a run starts from another run's model).
    pub schedule_start: u64,
    /// The cosine schedule ends at lr × min_lr_ratio.
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f64,
    /// Emit a train event every this many steps.
    pub log_every: u64,
    /// Parameters left as they are (prefixes of their Hugging Face names: `model.embed_tokens`,
    /// `lm_head`, `model.layers.0.`): only the others are fine-tuned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// `stop` | `pause`: when a step's loss or gradient norm is not finite.
    #[serde(skip_serializing_if = "is_default")]
    pub on_nonfinite: OnNonFinite,
    /// Recompute each block's activations in the backward pass instead of keeping them from
    /// the forward (activation checkpointing): far less memory for one more forward pass of
    /// the blocks; the gradients are the same, bit for bit. Written to run.toml only when true.
    #[serde(skip_serializing_if = "is_default")]
    pub gradient_checkpointing: bool,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            max_steps: 1000,
            batch_size: 32,
            grad_accum: 1,
            pack: true,
            group_by_length: true,
            lr: 1e-3,
            schedule: Schedule::default(),
            warmup_steps: 0,
            schedule_start: 0,
            min_lr_ratio: 0.1,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            log_every: 1,
            freeze: Vec::new(),
            on_nonfinite: OnNonFinite::default(),
            gradient_checkpointing: false,
        }
    }
}

/// `[eval]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Evaluate every this many steps (0 = only at the end).
    pub every: u64,
    /// Held-out examples per (task, language) scored by loss.
    pub n: usize,
    /// Of those, how many are also generated and scored by the task metric (0 = loss only).
    pub generate_n: usize,
    /// Generation length cap, in tokens.
    pub max_new_tokens: usize,
    /// Languages evaluated (default: English, the seen and the held-out languages).
    pub langs: Vec<String>,
    /// Tasks evaluated (default: the data tasks).
    pub tasks: Vec<String>,
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection { every: 100, n: 200, generate_n: 50, max_new_tokens: 48, langs: Vec::new(), tasks: Vec::new() }
    }
}

/// `[checkpoint]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSection {
    pub every: u64,
    /// Keep this many most recent checkpoints (plus the best and any a fork was made from).
    pub keep_last: usize,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        CheckpointSection { every: 50, keep_last: 3 }
    }
}

/// `[init]`: start from another run's model, optimizer and sampler state (a fork).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitSection {
    /// A config file (relative to this one) whose run is found in the runs root, or trained
    /// there first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// Or an existing run (id, unique prefix, name or directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The checkpoint step (default: the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
}

/// `[logging]`: what the trainer writes besides `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSection {
    /// TensorBoard event files in `<run>/tensorboard/`, written live (on by default).
    pub tensorboard: bool,
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection { tensorboard: true }
    }
}

impl LoggingSection {
    fn is_default(&self) -> bool {
        *self == LoggingSection::default()
    }
}

/// `[lineage]`: where a forked run came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    pub parent: String,
    pub fork_step: u64,
}

/// `[sweep]`: the sweep a run belongs to and its point on the sweep's grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepTag {
    /// The sweep's id (its directory under `<runs>/.sweeps/`).
    pub id: String,
    pub name: String,
    /// The grid variables of this point, e.g. `n = "400"`, `seed = "1"`.
    #[serde(default)]
    pub point: std::collections::BTreeMap<String, String>,
}

/// `[slurm]`: what `sbatch` is asked for. Every field is optional; Slurm's defaults apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSection {
    /// `--partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `--qos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// `--time` (a Slurm time limit: minutes as a number, or `"HH:MM:SS"`, `"D-HH"`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "minutes_or_text")]
    pub time: Option<String>,
    /// GPUs per job, `--gres=gpu:N` (default: 1 for a `cuda` device, 0 for `cpu`, 1 for `auto`
    /// when the job asks for GPUs elsewhere, else 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// `--gres` type, e.g. `h100` for `--gres=gpu:h100:1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// `--cpus-per-task` (default: the run's `threads`, or 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `--mem` (e.g. `16G`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// More `sbatch` options, passed as they are (e.g. `["--constraint=a100", "--exclusive"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    /// The mixscope executable as the compute nodes see it (default: this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<PathBuf>,
}

/// A Slurm time limit written as a number of minutes or as Slurm's text.
fn minutes_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum T {
        Minutes(u64),
        Text(String),
    }
    Ok(Some(match T::deserialize(d)? {
        T::Minutes(m) => m.to_string(),
        T::Text(s) => s,
    }))
}

/// A run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub seed: u64,
    /// CPU threads for this run (0 = every core).
    #[serde(default)]
    pub threads: usize,
    /// cpu | cuda | cuda:N | auto
    #[serde(default)]
    pub device: DeviceSpec,
    /// What pausing a supervised run does: `release` or `hold`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub pause: Pause,
    /// Where a launched run's trainer runs: `local` or `slurm`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub launcher: Launcher,
    /// `[slurm]`: how a run is submitted when `launcher = "slurm"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmSection>,
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub tokenizer: TokenizerSection,
    #[serde(default)]
    pub data: DataSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub eval: EvalSection,
    #[serde(default)]
    pub checkpoint: CheckpointSection,
    #[serde(default, skip_serializing_if = "LoggingSection::is_default")]
    pub logging: LoggingSection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Lineage>,
    /// `[sweep]`: the sweep this run is a point of (set by `mixscope sweep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepTag>,
    /// A digest of the config file this run was created from (finds a cached base model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_hash: Option<String>,
    /// The fingerprint of the built-in suite (its files and its generator) when the run was
    /// created: a cached base model is reused only by a build that makes the same data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Default for RunConfig {
    fn default() -> Self {
        toml::from_str("").expect("the empty config is valid")
    }
}

impl RunConfig {
    /// The training mixture `data.mixture` states, resolved against the config's tasks and
    /// held-out languages.
    pub fn mixture(&self) -> Result<Mixture> {
        Mixture::parse(&self.data.mixture, &self.data.spec_context())
    }
}

/// `--set` names that reach nested keys.
pub const SET_ALIASES: [(&str, &str); 9] = [
    ("max_steps", "train.max_steps"),
    ("checkpoint_every", "checkpoint.every"),
    ("eval_every", "eval.every"),
    ("lr", "train.lr"),
    ("batch_size", "train.batch_size"),
    ("mixture", "data.mixture"),
    ("model", "model.source"),
    ("seq_len", "data.seq_len"),
    ("schedule", "train.schedule"),
];

/// A config read from a file, with where it came from (for located errors).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: RunConfig,
    /// The file name to show in messages.
    pub file: String,
    /// The file's directory: relative paths inside the config are relative to it.
    pub dir: PathBuf,
    src: String,
    /// The keys set with `--set` (dotted, after aliases).
    set_keys: Vec<(String, String)>,
}

impl Loaded {
    /// Read and parse a config file (no overrides, no validation yet).
    pub fn read(path: &Path) -> Result<Loaded> {
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad_input(format!("{}: no such config file", path.display())))
            }
            Err(e) => return Err(bad_input(format!("{}: cannot read: {e}", path.display()))),
        };
        Loaded::parse(&path.display().to_string(), &src, path.parent().unwrap_or(Path::new(".")))
    }

    pub fn parse(file: &str, src: &str, dir: &Path) -> Result<Loaded> {
        let config: RunConfig = toml::from_str(src).map_err(|e| crate::error::toml_error(file, src, &e))?;
        Ok(Loaded {
            config,
            file: file.to_string(),
            dir: dir.to_path_buf(),
            src: src.to_string(),
            set_keys: Vec::new(),
        })
    }

    /// Apply `KEY=VALUE` overrides in order. VALUE is read as TOML (numbers, booleans, arrays,
    /// quoted strings) and else taken as a plain string.
    pub fn apply_sets(&mut self, sets: &[String]) -> Result<()> {
        for s in sets {
            let Some((key, value)) = s.split_once('=') else {
                return Err(bad_input(format!("--set {s}: expected KEY=VALUE")));
            };
            let key = key.trim();
            let path = SET_ALIASES.iter().find(|(a, _)| *a == key).map_or(key, |(_, p)| p);
            // VALUE takes the type of the key it sets: read as TOML first (numbers, booleans,
            // arrays), and as text where that is what the key holds (`name=nan`, `name=true`).
            let with = |v: toml::Value| -> Result<RunConfig> {
                let mut doc = toml::Value::try_from(&self.config)?;
                set_dotted(&mut doc, path, v).map_err(|m| bad_input(format!("--set {s}: {m}")))?;
                RunConfig::deserialize(doc)
                    .map_err(|e| bad_input(format!("--set {s}: {path}: {}", plain_types(e.message().trim()))))
            };
            let typed = parse_set_value(value);
            let is_text = typed.is_str();
            self.config = match with(typed) {
                Ok(c) => c,
                Err(e) if is_text => return Err(e),
                Err(e) => with(toml::Value::String(value.trim().to_string())).map_err(|_| e)?,
            };
            self.set_keys.push((path.to_string(), s.clone()));
        }
        self.switch_to_set_model();
        Ok(())
    }

    /// `--set model=org/name` (or a directory) on a config written for the built-in tiny model
    /// (the demo's too) trains that model instead: its own tokenizer unless `tokenizer.source`
    /// was set as well, and no `[init]` base run of the tiny model (a pretrained model needs
    /// none); its `[model.shape]` is ignored.
    fn switch_to_set_model(&mut self) {
        let set = |k: &str| self.set_keys.iter().any(|(p, _)| p == k);
        if !set("model.source") || self.config.model.source == "tiny" {
            return;
        }
        if !set("tokenizer.source") && self.config.tokenizer.source == "suite" {
            self.config.tokenizer.source = "model".into();
        }
        if self.config.init.as_ref().is_some_and(|i| i.config.is_some()) && !set("init.config") {
            self.config.init = None;
        }
    }

    /// Where a dotted key is: `--set K=V` if it was overridden, else `file:line:col`, else the file.
    pub fn locate(&self, key: &str) -> String {
        if let Some((_, s)) = self.set_keys.iter().rev().find(|(k, _)| k == key) {
            return format!("--set {s}");
        }
        if let Ok(doc) = toml_edit::Document::parse(self.src.as_str()) {
            let mut item = doc.as_item();
            let mut found = true;
            for part in key.split('.') {
                match item.get(part) {
                    Some(i) => item = i,
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            if found {
                if let Some(span) = item.span() {
                    let (l, c) = line_col(&self.src, span.start);
                    return format!("{}:{l}:{c}", self.file);
                }
            }
        }
        self.file.clone()
    }

    /// An error about a field: `<place>: <key>: <message>`.
    pub fn field_error(&self, key: &str, msg: impl std::fmt::Display) -> anyhow::Error {
        bad_input(format!("{}: {key}: {msg}", self.locate(key)))
    }

    /// Check values that parse but make no sense, and resolve relative paths. Returns the
    /// resolved mixture.
    pub fn validate(&mut self) -> Result<Mixture> {
        let c = &self.config;
        if c.train.max_steps == 0 {
            return Err(self.field_error("train.max_steps", "must be at least 1"));
        }
        if c.train.batch_size == 0 {
            return Err(self.field_error("train.batch_size", "must be at least 1"));
        }
        if c.train.grad_accum == 0 || c.train.batch_size % c.train.grad_accum != 0 {
            return Err(
                self.field_error("train.grad_accum", format!("must divide batch_size ({})", c.train.batch_size))
            );
        }
        if !(c.train.lr.is_finite() && c.train.lr > 0.0) {
            return Err(self.field_error("train.lr", format!("must be a positive number (got {})", c.train.lr)));
        }
        for (k, v, lo, hi) in [
            ("train.beta1", c.train.beta1, 0.0, 1.0),
            ("train.beta2", c.train.beta2, 0.0, 1.0),
            ("train.min_lr_ratio", c.train.min_lr_ratio, 0.0, 1.0),
        ] {
            if !(v.is_finite() && v >= lo && v < hi + f64::EPSILON && !(k != "train.min_lr_ratio" && v >= 1.0)) {
                return Err(self.field_error(k, format!("must be in [{lo}, {hi}) (got {v})")));
            }
        }
        for (k, v) in [
            ("train.weight_decay", c.train.weight_decay),
            ("train.grad_clip", c.train.grad_clip),
            ("train.eps", c.train.eps),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(self.field_error(k, format!("must be a non-negative number (got {v})")));
            }
        }
        if c.train.log_every == 0 {
            return Err(self.field_error("train.log_every", "must be at least 1"));
        }
        if c.checkpoint.every == 0 {
            return Err(self.field_error("checkpoint.every", "must be at least 1"));
        }
        if c.checkpoint.keep_last == 0 {
            return Err(
                self.field_error("checkpoint.keep_last", "must be at least 1 (the latest checkpoint is always kept)")
            );
        }
        // A Slurm job runs on a node whose cores this machine does not know (its trainer bounds
        // the threads to its own node's); a local run is bounded here.
        let max_threads = crate::util::max_threads();
        if c.launcher != Launcher::Slurm && c.threads > max_threads {
            return Err(self.field_error(
                "threads",
                format!(
                    "must be at most {max_threads} (4 × this machine's {} cores; 0 = every core), got {}",
                    crate::util::cores(),
                    c.threads
                ),
            ));
        }
        if c.data.seq_len < 16 {
            return Err(self.field_error("data.seq_len", "must be at least 16"));
        }
        if !["f32", "bf16", "f16"].contains(&c.model.dtype.as_str()) {
            return Err(self.field_error("model.dtype", format!("'{}' is not f32, bf16 or f16", c.model.dtype)));
        }
        if !["f32", "same"].contains(&c.model.master_dtype.as_str()) {
            return Err(
                self.field_error("model.master_dtype", format!("'{}' is not f32 or same", c.model.master_dtype))
            );
        }
        if !["auto", "fused", "composite"].contains(&c.model.kernels.as_str()) {
            return Err(
                self.field_error("model.kernels", format!("'{}' is not auto, fused or composite", c.model.kernels))
            );
        }
        if c.launcher == Launcher::Slurm && c.pause == Pause::Hold {
            return Err(self.field_error("pause", "a Slurm run releases its allocation when paused: use release"));
        }
        if let Some(sl) = &c.slurm {
            for (k, v) in [
                ("slurm.partition", &sl.partition),
                ("slurm.account", &sl.account),
                ("slurm.qos", &sl.qos),
                ("slurm.time", &sl.time),
                ("slurm.gpu_type", &sl.gpu_type),
                ("slurm.mem", &sl.mem),
            ] {
                if v.as_deref()
                    .is_some_and(|v| v.is_empty() || v.chars().any(|ch| ch.is_whitespace() || ch.is_control()))
                {
                    return Err(self.field_error(k, "must be one word (no spaces)"));
                }
            }
            if sl.cpus == Some(0) {
                return Err(self.field_error("slurm.cpus", "must be at least 1"));
            }
            if let Some(x) = sl.extra.iter().find(|x| !x.starts_with('-')) {
                return Err(self.field_error("slurm.extra", format!("'{x}' is not an sbatch option (--name=value)")));
            }
        }
        let s = &c.model.shape;
        if c.model.source == "tiny" {
            for (k, v) in [
                ("model.shape.hidden_size", s.hidden_size),
                ("model.shape.intermediate_size", s.intermediate_size),
                ("model.shape.num_hidden_layers", s.num_hidden_layers),
                ("model.shape.num_attention_heads", s.num_attention_heads),
            ] {
                if v == 0 {
                    return Err(self.field_error(k, "must be at least 1"));
                }
            }
            if s.hidden_size % s.num_attention_heads != 0 {
                return Err(self.field_error(
                    "model.shape.num_attention_heads",
                    format!("must divide hidden_size ({})", s.hidden_size),
                ));
            }
            if (s.hidden_size / s.num_attention_heads) % 2 != 0 {
                return Err(self.field_error(
                    "model.shape.num_attention_heads",
                    "head size (hidden_size / heads) must be even for RoPE",
                ));
            }
            let kv = s.num_key_value_heads.unwrap_or(s.num_attention_heads);
            if kv == 0 || s.num_attention_heads % kv != 0 {
                return Err(self.field_error(
                    "model.shape.num_key_value_heads",
                    format!("must divide num_attention_heads ({})", s.num_attention_heads),
                ));
            }
            if !["llama", "qwen2"].contains(&s.architecture.as_str()) {
                return Err(
                    self.field_error("model.shape.architecture", format!("'{}' is not llama or qwen2", s.architecture))
                );
            }
            if s.max_position_embeddings < c.data.seq_len {
                return Err(self.field_error(
                    "model.shape.max_position_embeddings",
                    format!("is smaller than data.seq_len ({})", c.data.seq_len),
                ));
            }
        }
        // Languages and tasks.
        if c.data.tasks.is_empty() {
            return Err(self.field_error("data.tasks", "names no task"));
        }
        for (i, entry) in c.data.tasks.iter().enumerate() {
            let (name, w) = split_task(entry);
            if let Some(w) = w {
                if task_weight(w).is_none() {
                    return Err(self.field_error(
                        "data.tasks",
                        format!("'{entry}': the weight '{w}' is not a positive number (write e.g. \"mr:2\")"),
                    ));
                }
            }
            if c.data.tasks[..i].iter().any(|t| split_task(t).0 == name) {
                return Err(self.field_error("data.tasks", format!("'{name}' is listed twice")));
            }
        }
        let user_tasks: Vec<String> = c.data.task_names().into_iter().filter(|t| Task::builtin(t).is_none()).collect();
        if !user_tasks.is_empty() && c.data.files.is_empty() {
            return Err(self.field_error(
                "data.tasks",
                format!("unknown task '{}' (built-in: mr, sm, if, lm; other names need data.files)", user_tasks[0]),
            ));
        }
        for (key, list) in
            [("data.seen", &c.data.seen), ("data.heldout", &c.data.heldout), ("eval.langs", &c.eval.langs)]
        {
            for (i, code) in list.iter().enumerate() {
                if lang::get(code).is_none() {
                    return Err(self
                        .field_error(key, format!("unknown language '{code}' (known: {})", lang::codes().join(" "))));
                }
                if list[..i].contains(code) {
                    return Err(self.field_error(key, format!("'{code}' is listed twice")));
                }
            }
        }
        if c.data.heldout.iter().any(|h| h == "en") {
            return Err(self.field_error(
                "data.heldout",
                "'en' is English, every run's anchor language: it is trained and evaluated, never held out",
            ));
        }
        for t in &c.eval.tasks {
            if Task::builtin(t).is_none() && !user_tasks.contains(t) {
                return Err(self.field_error("eval.tasks", format!("unknown task '{t}'")));
            }
        }
        for l in &c.data.mr_levels {
            if !(1..=3).contains(l) {
                return Err(self.field_error("data.mr_levels", format!("level {l} is not 1, 2 or 3")));
            }
        }
        if c.data.mr_levels.is_empty() {
            return Err(self.field_error("data.mr_levels", "names no level"));
        }
        let ctx = c.data.spec_context();
        let mix =
            Mixture::parse(&c.data.mixture, &ctx).map_err(|e| self.field_error("data.mixture", format!("{e:#}")))?;
        for code in mix.seen() {
            if c.data.heldout.iter().any(|h| h == code) {
                return Err(self.field_error(
                    "data.heldout",
                    format!("'{code}' is both seen (weight > 0 in the mixture) and held out"),
                ));
            }
        }
        // Relative paths are relative to the config file.
        let dir = self.dir.clone();
        for f in &mut self.config.data.files {
            if f.is_relative() {
                *f = dir.join(&*f);
            }
        }
        if let Some(init) = &mut self.config.init {
            if init.config.is_none() == init.run.is_none() {
                return Err(bad_input(format!(
                    "{}: init: give exactly one of init.config or init.run",
                    self.locate("init")
                )));
            }
            if let Some(p) = &mut init.config {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        let src = &self.config.model.source;
        if src != "tiny" && (src.starts_with('.') || src.starts_with('/')) {
            let p = dir.join(src);
            self.config.model.source = p.display().to_string();
        }
        let ts = &self.config.tokenizer.source;
        if ts != "suite" && ts != "model" && Path::new(ts).is_relative() {
            self.config.tokenizer.source = dir.join(ts).display().to_string();
        }
        for f in &self.config.data.files {
            if !f.exists() {
                return Err(self.field_error("data.files", format!("{}: no such file", f.display())));
            }
        }
        Ok(mix)
    }

    /// The evaluated languages: `eval.langs`, or English + seen + held-out.
    pub fn eval_langs(&self, mix: &Mixture) -> Vec<String> {
        eval_langs(&self.config, mix)
    }
}

/// The evaluated languages of a config: `eval.langs`, or English + seen + held-out (suite order).
pub fn eval_langs(c: &RunConfig, mix: &Mixture) -> Vec<String> {
    if !c.eval.langs.is_empty() {
        return c.eval.langs.clone();
    }
    let mut v: Vec<String> = vec!["en".into()];
    // In a design over the configured seen languages they are seen at every N or share, 0
    // included (the English-only baseline).
    let designated = if designates_seen(&c.data.mixture) { c.data.seen.clone() } else { Vec::new() };
    for l in mix.seen().into_iter().map(String::from).chain(designated).chain(c.data.heldout.iter().cloned()) {
        if !v.contains(&l) {
            v.push(l);
        }
    }
    v.sort_by_key(|c| lang::order(c));
    v
}

/// Whether a mixture SPEC is a design over the configured seen languages: the additive
/// design (`en=1000,n=400`), whose `n=` goes to them, or the `multilingual=0.4` shorthand, whose
/// share does. They stay seen when n or the share is 0 (the design's English-only baseline), so
/// that the baseline is evaluated, and grouped, as the runs it is compared with.
pub fn designates_seen(spec: &str) -> bool {
    spec.split(',').any(|i| i.split_once('=').is_some_and(|(k, _)| matches!(k.trim(), "n" | "multilingual")))
}

/// The group a language has in a run: English is the anchor; languages in the mixture (and,
/// in a design over the configured seen languages, those) are seen; the rest unseen.
pub fn group_of(code: &str, c: &RunConfig, mix: &Mixture) -> lang::Group {
    if code == "en" {
        lang::Group::Anchor
    } else if mix.seen().contains(&code) || (designates_seen(&c.data.mixture) && c.data.seen.iter().any(|s| s == code))
    {
        lang::Group::Seen
    } else {
        lang::Group::Unseen
    }
}

/// serde's type names as a user reads them.
fn plain_types(msg: &str) -> String {
    let mut m = msg.to_string();
    for (rust, plain) in [
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
    ] {
        m = m.replace(rust, plain);
    }
    m
}

fn parse_set_value(v: &str) -> toml::Value {
    let v = v.trim();
    #[derive(Deserialize)]
    struct W {
        v: toml::Value,
    }
    match toml::from_str::<W>(&format!("v = {v}")) {
        Ok(w) => w.v,
        Err(_) => toml::Value::String(v.to_string()),
    }
}

fn set_dotted(doc: &mut toml::Value, path: &str, v: toml::Value) -> std::result::Result<(), String> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = doc;
    for (i, p) in parts.iter().enumerate() {
        let Some(t) = cur.as_table_mut() else {
            return Err(format!("'{}' is not a table", parts[..i].join(".")));
        };
        if i == parts.len() - 1 {
            t.insert(p.to_string(), v);
            return Ok(());
        }
        cur = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Ok(())
}

/// Render a resolved config as the `run.toml` text.
pub fn to_toml(c: &RunConfig) -> Result<String> {
    Ok(toml::to_string_pretty(c)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str, sets: &[&str]) -> Result<(Loaded, Mixture)> {
        let mut l = Loaded::parse("cfg.toml", src, Path::new("."))?;
        l.apply_sets(&sets.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        let m = l.validate()?;
        Ok((l, m))
    }

    fn err(src: &str, sets: &[&str]) -> String {
        let e = load(src, sets).unwrap_err();
        assert!(crate::error::is_bad_input(&e), "{e:#}");
        format!("{e:#}")
    }

    #[test]
    fn defaults_and_overrides() {
        let (l, m) = load(
            "seed = 3\n[train]\nlr = 0.01\n",
            &[
                "max_steps=200",
                "mixture=en=0.5,es=0.5",
                "train.warmup_steps=7",
                "model.shape.hidden_size=64",
                "lr=2e-3",
            ],
        )
        .unwrap();
        let c = &l.config;
        assert_eq!(c.seed, 3);
        assert_eq!(c.train.max_steps, 200);
        assert_eq!(c.train.warmup_steps, 7);
        assert_eq!(c.train.lr, 2e-3);
        assert_eq!(c.model.shape.hidden_size, 64);
        assert_eq!(m.languages(), ["en", "es"]);
        assert_eq!(l.locate("train.lr"), "--set lr=2e-3");
        assert_eq!(l.locate("seed"), "cfg.toml:1:8");
        assert_eq!(eval_langs(c, &m), ["en", "es", "ar", "ko", "pt"]);
    }

    /// The English-only baseline of a design over the seen languages (`multilingual=0`,
    /// `n=0`) is evaluated on them, grouped as seen, like the runs it is compared with; a
    /// plain weight SPEC evaluates what it trains on.
    #[test]
    fn english_only_baselines_are_evaluated_on_the_designs_seen_languages() {
        let cfg = "[data]\nseen = [\"es\", \"ja\"]\nheldout = [\"ko\"]\n";
        for spec in ["multilingual=0", "multilingual=0.4", "en=100,n=0"] {
            let (l, m) = load(cfg, &[&format!("mixture={spec}")]).unwrap();
            assert_eq!(eval_langs(&l.config, &m), ["en", "es", "ja", "ko"], "{spec}");
            let groups: Vec<_> = ["en", "es", "ja", "ko"].iter().map(|c| group_of(c, &l.config, &m)).collect();
            assert_eq!(
                groups,
                [lang::Group::Anchor, lang::Group::Seen, lang::Group::Seen, lang::Group::Unseen],
                "{spec}"
            );
        }
        let (l, m) = load(cfg, &["mixture=en=1"]).unwrap();
        assert_eq!(eval_langs(&l.config, &m), ["en", "ko"]);
    }

    #[test]
    fn tasks_carry_optional_weights() {
        let (l, m) = load("[data]\ntasks = [\"mr:2\", \"sm\", \"if\"]\n", &[]).unwrap();
        assert_eq!(l.config.data.task_names(), ["mr", "sm", "if"]);
        assert_eq!(m.tasks, vec![(Task::Mr, 0.5), (Task::Sm, 0.25), (Task::If, 0.25)]);
        // a SPEC that names its tasks overrides them; one that does not keeps them
        let (_, m) = load("[data]\ntasks = [\"mr:2\", \"sm\"]\n", &["mixture=en=1,tasks=sm"]).unwrap();
        assert_eq!(m.tasks, vec![(Task::Sm, 1.0)]);
        let (_, m) = load("[data]\ntasks = [\"mr:3\", \"sm\"]\n", &["mixture=multilingual=0"]).unwrap();
        assert_eq!(m.tasks, vec![(Task::Mr, 0.75), (Task::Sm, 0.25)]);
        assert!(err("[data]\ntasks = [\"mr:0\"]\n", &[])
            .contains("cfg.toml:2:9: data.tasks: 'mr:0': the weight '0' is not a positive number"));
        assert!(err("[data]\ntasks = [\"mr:x\"]\n", &[]).contains("the weight 'x' is not a positive number"));
        assert!(err("[data]\ntasks = [\"mr\", \"mr:2\"]\n", &[]).contains("data.tasks: 'mr' is listed twice"));
        assert!(err("[data]\ntasks = [\"poem:2\"]\n", &[]).contains("unknown task 'poem'"));
    }

    #[test]
    fn run_toml_round_trips() {
        let (l, _) = load("name = \"x\"\n[lineage]\nparent = \"p\"\nfork_step = 4\n", &[]).unwrap();
        let text = to_toml(&l.config).unwrap();
        let back: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, l.config);
    }

    #[test]
    fn bad_configs_are_located() {
        assert!(err("[train]\nmax_stepz = 3\n", &[]).contains("cfg.toml:2:1"));
        assert!(err("[train]\nmax_stepz = 3\n", &[]).contains("max_stepz"));
        assert!(err("[train]\nmax_steps = \"many\"\n", &[]).contains("cfg.toml:2:13"));
        assert!(err("[train]\nmax_steps = 0\n", &[]).contains("cfg.toml:2:13: train.max_steps: must be at least 1"));
        assert!(err("", &["max_steps=0"]).contains("--set max_steps=0: train.max_steps: must be at least 1"));
        assert!(err("", &["max_steps=ten"]).contains("--set max_steps=ten"));
        // A value takes the type of the key it sets: a name stays text whatever it looks like;
        // a number's key refuses text, naming the key and the type it holds.
        for name in ["nan", "true", "inf", "1e3", "42", "[1]"] {
            let (l, _) = load("", &[&format!("name={name}")]).unwrap();
            assert_eq!(l.config.name.as_deref(), Some(name));
        }
        let e = err("", &["max_steps=abc"]);
        assert!(e.contains("--set max_steps=abc: train.max_steps:") && e.contains("expected a whole number"), "{e}");
        let e = err("", &["lr=true"]);
        assert!(e.contains("train.lr") && e.contains("expected a number"), "{e}");
        assert!(err("", &["nosuch=1"]).contains("--set nosuch=1"));
        assert!(err("", &["noequals"]).contains("expected KEY=VALUE"));
        assert!(err("[data]\nmixture = \"en=1,xx=2\"\n", &[])
            .contains("cfg.toml:2:11: data.mixture: mixture 'en=1,xx=2', column 6: unknown language 'xx'"));
        assert!(err("[data]\nheldout = [\"es\"]\n", &[]).contains("'es' is both seen"));
        assert!(err("[data]\nheldout = [\"es\", \"es\"]\nmixture=\"en=1\"\n", &[]).contains("listed twice"));
        assert!(err("[train]\nlr = -1.0\n", &[]).contains("train.lr"));
        assert!(err("[train]\nlr = nan\n", &[]).contains("train.lr"));
        assert!(err(
            "[model.shape]\nhidden_size = 100\nintermediate_size = 8\nnum_hidden_layers = 1\nnum_attention_heads = 3\n",
            &[]
        )
        .contains("num_attention_heads"));
        assert!(err("this is not toml", &[]).contains("cfg.toml:1:"));
        assert!(err("", &["data.tasks=[\"poetry\"]"]).contains("unknown task 'poetry'"));
        assert!(err("", &["device=tpu"]).contains("device"));
        let e = Loaded::read(Path::new("/nonexistent/cfg.toml")).unwrap_err();
        assert!(crate::error::is_bad_input(&e) && e.to_string().contains("no such config file"));
    }
}

//! One training or evaluation example, and the tasks it can belong to.

use serde::{Deserialize, Serialize};

/// A task of the built-in suite, or a user task name (from user JSONL data).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Task {
    /// Math reasoning: word problems, metric = final-number accuracy.
    Mr,
    /// Summarization: news item -> one sentence, metric = ROUGE-L F1.
    Sm,
    /// Instruction following with checkable constraints, metric = share satisfied.
    If,
    /// Raw text (pretraining), metric = loss only.
    Lm,
    /// A user task from JSONL data, metric = loss only unless it names a built-in metric.
    User(String),
}

impl Task {
    pub const BUILTIN: [Task; 4] = [Task::Mr, Task::Sm, Task::If, Task::Lm];

    pub fn as_str(&self) -> &str {
        match self {
            Task::Mr => "mr",
            Task::Sm => "sm",
            Task::If => "if",
            Task::Lm => "lm",
            Task::User(s) => s,
        }
    }

    pub fn parse(s: &str) -> Task {
        match s {
            "mr" => Task::Mr,
            "sm" => Task::Sm,
            "if" => Task::If,
            "lm" => Task::Lm,
            other => Task::User(other.to_string()),
        }
    }

    /// The built-in task a name refers to, if any.
    pub fn builtin(s: &str) -> Option<Task> {
        match Task::parse(s) {
            Task::User(_) => None,
            t => Some(t),
        }
    }

    /// A one-line description, for `mixscope data tasks`.
    pub fn describe(&self) -> &'static str {
        match self {
            Task::Mr => "math reasoning: word problems with a worked answer ending in the final number",
            Task::Sm => "summarization: a short news item to one sentence",
            Task::If => "instruction following: repeat / list / uppercase with start, end and quote constraints",
            Task::Lm => "raw text in every language, for pretraining the demo's base model",
            Task::User(_) => "user data (JSONL)",
        }
    }

    /// The name of the task's metric as written in eval events.
    pub fn metric(&self) -> &'static str {
        match self {
            Task::Mr => "accuracy",
            Task::Sm => "rouge_l",
            Task::If => "if_pass",
            Task::Lm | Task::User(_) => "loss",
        }
    }

    /// True when the model is trained on the response only (prompt tokens carry no loss).
    pub fn is_chat(&self) -> bool {
        !matches!(self, Task::Lm)
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Task> for String {
    fn from(t: Task) -> String {
        t.as_str().to_string()
    }
}

impl From<String> for Task {
    fn from(s: String) -> Task {
        Task::parse(&s)
    }
}

/// A checkable constraint of an instruction-following example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Constraint {
    /// The word appears exactly `times` times.
    Repeat { word: String, times: u32 },
    /// Exactly `n` numbered lines, distinct, each naming an item of `vocab`.
    List { n: u32, vocab: Vec<String> },
    /// The word in capitals, and no lower-case letters.
    Upper { word: String },
    /// The answer begins with `word`.
    Start { word: String },
    /// The answer ends with `word`.
    End { word: String },
    /// The whole answer is inside quotation marks.
    Quote { open: String, close: String },
}

/// Task-specific facts about an example that its metric needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Meta {
    /// MR: the problem family (add, sub, mul, multi, unit). SM: the story kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// MR: the difficulty level (1: one-digit operands, 2: two digits, 3: three digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u8>,
    /// MR: the correct final number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<i64>,
    /// IF: the constraints the answer must satisfy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
}

/// One example. For LM, `prompt` is empty and `response` is the whole text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub task: Task,
    pub lang: String,
    pub prompt: String,
    pub response: String,
    #[serde(default, skip_serializing_if = "is_default_meta")]
    pub meta: Meta,
}

fn is_default_meta(m: &Meta) -> bool {
    *m == Meta::default()
}

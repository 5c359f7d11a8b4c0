//! Task metrics (being written; see numbers.rs).
pub mod numbers;

use crate::data::{Example, Task};

/// A generation's score under its task's metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub metric: &'static str,
    pub value: f64,
    /// The generation is written in the prompt's language.
    pub lang_ok: bool,
}

/// Temporary scorer: MR accuracy only (the full metrics module replaces this).
pub fn score(ex: &Example, generation: &str) -> Scores {
    match ex.task {
        Task::Mr => Scores {
            metric: "accuracy",
            value: (numbers::final_number(generation, &ex.lang) == ex.meta.answer) as u8 as f64,
            lang_ok: true,
        },
        _ => Scores { metric: ex.task.metric(), value: f64::NAN, lang_ok: true },
    }
}

//! Data: the languages, the built-in task suite, mixtures and the resumable sampler.

pub mod assets;
pub mod example;
pub mod jsonl;
pub mod lang;
pub mod mixture;
pub mod pull;
pub mod sampler;
pub mod script;
pub mod suite;
pub mod template;
pub mod tokenizer;

pub use example::{Constraint, Example, Meta, Task};

//! The integration tests, one test crate (`cargo test --test it`), so that the build links
//! mixscope and its dependencies (candle, tokenizers, ratatui …) once rather than once per
//! file. Each module is what a file of `tests/` was; `cargo test --test it tui::` runs one.

mod common;
mod engine_common;

mod cli;
mod data_pull;
mod e2e_tmux;
mod engine_model;
mod engine_ops;
mod engine_optim;
mod fuzz;
mod fuzz_regressions;
mod groups;
mod hub;
mod integrity;
mod interop;
mod layers;
mod metrics;
mod notes;
mod oracle;
mod reliability;
mod report;
mod samples;
mod slurm;
mod supervisor;
mod sweep;
mod training;
mod tui;
mod tui_notes;
mod tui_samples;

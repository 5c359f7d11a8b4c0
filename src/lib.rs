//! mixscope: run and watch multilingual post-training experiments.
//!
//! Layers (see ARCHITECTURE.md): `data` (languages, suite, mixtures, sampler, tokenizer),
//! `eval` (task metrics), `train` (the candle engine), `runs` (the run-directory contract),
//! `supervisor` (child processes and slots), `sweep` (grids of runs), `report` (CSV and figures), `tui` (the terminal UI), `cli`.

pub mod analysis;
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod gpu;
pub mod hub;
pub mod model;
pub mod report;
pub mod runs;
pub mod supervisor;
pub mod sweep;
pub mod tensorboard;
pub mod train;
pub mod tui;
pub mod userconf;
pub mod util;

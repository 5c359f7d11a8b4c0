//! The training engine: a trainable Llama / Qwen2 model in candle with fused differentiable CPU
//! kernels, our own AdamW, the training loop, evaluation and checkpoints. It never imports the
//! TUI: the run directory is its only output.

pub mod batch;
pub mod checkpoint;
pub mod evaluate;
pub mod hub;
pub mod model;
pub mod model_config;
pub mod ops;
pub mod optim;
pub mod schedule;
pub mod setup;
pub mod trainer;

pub use trainer::{train, Outcome, TrainOptions};

//! Task metrics (being written; see numbers.rs).
pub mod numbers;

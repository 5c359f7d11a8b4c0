//! Error kinds that decide the process exit code.
//!
//! Everything the user can fix by editing their input (a config, a mixture SPEC, a data file,
//! a run name) is a [`BadInput`]: the CLI prints it and exits with code 2. Everything else is an
//! ordinary `anyhow::Error` and exits with code 1.

use std::fmt;

/// Bad input: the message says what is wrong and where (file:line:col, field name or position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Build a [`BadInput`] error wrapped in `anyhow::Error`.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// `bail_input!("field {} ...", x)`: return early with a [`BadInput`].
#[macro_export]
macro_rules! bail_input {
    ($($arg:tt)*) => {
        return Err($crate::error::bad_input(format!($($arg)*)))
    };
}

/// True when any error in the chain is a [`BadInput`].
pub fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.downcast_ref::<BadInput>().is_some())
}

/// Exit code for an error: 2 for bad input, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if is_bad_input(err) {
        2
    } else {
        1
    }
}

/// Turn a byte offset into a 1-based (line, column) pair; columns count characters.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|s| s.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// Format a TOML deserialisation error as `file:line:col: message`.
pub fn toml_error(file: &str, src: &str, err: &toml::de::Error) -> anyhow::Error {
    let msg = err.message().trim().to_string();
    match err.span() {
        Some(span) => {
            let (l, c) = line_col(src, span.start);
            bad_input(format!("{file}:{l}:{c}: {msg}"))
        }
        None => bad_input(format!("{file}: {msg}")),
    }
}

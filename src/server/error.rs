//! Why the server (or an operator command) could not start, and its exit code.

use crate::config::ConfigError;

/// Why the server (or a command) could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Fix the named variable; exit code 2.
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Runtime(String),
}

impl StartError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            Self::Runtime(_) => 1,
        }
    }
}

//! Exit codes and one-line error reports.

use std::process::ExitCode;

/// An error that ends the command, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Anything else (exit 1).
    #[error("{0}")]
    Other(String),
}

/// Exit code of a successful run.
pub const OK: u8 = 0;
/// Exit code when an HA invariant broke or the command failed.
pub const FAILED: u8 = 1;
/// Exit code for bad arguments or configuration.
pub const USAGE: u8 = 2;

impl CliError {
    /// The exit code.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => USAGE,
            CliError::Other(_) => FAILED,
        }
    }

    /// Prints the one-line error to stderr and returns the exit code.
    pub fn report(&self) -> ExitCode {
        eprintln!("tenure: error: {self}");
        ExitCode::from(self.code())
    }
}

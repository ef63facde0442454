//! How a command fails: bad usage (exit 2) or a failure at run time (exit 1),
//! by the kind of the job's error.

/// A command failed: bad usage (exit 2) or at run time (exit 1).
#[derive(Debug)]
pub enum CliError {
    /// Unknown option, bad value, missing argument.
    Usage(String),
    /// Missing input, malformed record, I/O or runtime failure.
    Runtime(anyhow::Error),
}

impl From<weir_runtime::JobError> for CliError {
    fn from(e: weir_runtime::JobError) -> Self {
        match e {
            weir_runtime::JobError::Invalid(message) => CliError::Usage(message),
            other => CliError::Runtime(other.into()),
        }
    }
}

/// Shorthand for a usage error.
pub fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

//! The one error type of weir's batch layer.

use serde::{Deserialize, Serialize};

/// Why a job could not run or finish.
///
/// Every variant names the input and, where there is one, the position in it. Errors
/// travel between workers of different processes at the end of a job (so that every
/// process knows that the job failed), which is why they hold text, not sources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum JobError {
    /// A file or directory could not be opened, read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the operating system said.
        message: String,
    },
    /// A record could not be parsed.
    #[error("{position}: {message}")]
    Malformed {
        /// Input and position, as `file:line` (or `generated text:line`).
        position: String,
        /// What is wrong with the record.
        message: String,
    },
    /// A job option has a value the job cannot work with.
    #[error("{0}")]
    Invalid(String),
    /// A checkpoint could not be written, read or restored.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// An external service (a Kafka broker) failed or refused a request.
    #[error("{0}")]
    Service(String),
    /// The timely runtime could not start or a worker failed.
    #[error("runtime: {0}")]
    Runtime(String),
    /// The computation cannot go on with this data and these parameters (a
    /// singular system, a layout larger than a worker can index): not a
    /// usage error, since every option was valid.
    #[error("{0}")]
    Compute(String),
    /// A fault in weir or a library it uses (a value that would not
    /// serialise, say): never the user's input.
    #[error("internal error: {0}")]
    Internal(String),
}

impl JobError {
    /// Whether the error is bad usage (an option value the job cannot take:
    /// the command line exits 2); every other kind is a failure at run time
    /// (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, JobError::Invalid(_))
    }
}

impl JobError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, err: &std::io::Error) -> Self {
        JobError::Io {
            path: path.as_ref().display().to_string(),
            message: err.to_string(),
        }
    }
}

impl From<weir_progress::CheckpointError> for JobError {
    fn from(e: weir_progress::CheckpointError) -> Self {
        JobError::Checkpoint(e.to_string())
    }
}

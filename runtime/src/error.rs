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
    #[error("{position}: {message}{}", remedy.map(|r| format!(": {r}")).unwrap_or_default())]
    Malformed {
        /// Input and position, as `file:line` (or `generated text:line`).
        position: String,
        /// What is wrong with the record.
        message: String,
        /// A setting that would let the job take the record, if one would.
        remedy: Option<Remedy>,
    },
    /// The job was asked for something it cannot do (no input files, a
    /// user the model does not have).
    #[error("{0}")]
    Invalid(String),
    /// A setting has a value the job cannot work with: `"{setting} {message}"`,
    /// such as `rank must be at least 1`.
    #[error("{setting} {message}")]
    Setting {
        /// Which setting.
        setting: Setting,
        /// What is wrong with its value.
        message: String,
    },
    /// The job cannot go on as it is set up; `remedy` would let it.
    #[error("{message}: {remedy}")]
    Remedy {
        /// What stops the job (naming the input or directory).
        message: String,
        /// The change of settings that lets it run.
        remedy: Remedy,
    },
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
        matches!(
            self,
            JobError::Invalid(_) | JobError::Setting { .. } | JobError::Remedy { .. }
        )
    }

    /// A setting's value is refused: `message` says why.
    pub fn setting(setting: Setting, message: impl Into<String>) -> Self {
        JobError::Setting {
            setting,
            message: message.into(),
        }
    }
}

/// A setting of a job, in the terms of the library's job structs. Library
/// messages name settings this way; the command line shows each as its flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Setting {
    /// Iterations at most.
    Iterations,
    /// Rounds at most (CoCoA).
    Rounds,
    /// Factors per user and item (ALS).
    Rank,
    /// Regularisation λ.
    Lambda,
    /// User and item blocks (ALS).
    Blocks,
    /// The share of ratings held out for testing.
    TestFraction,
    /// The scale of a generated R-MAT graph.
    RmatScale,
    /// The node a search starts from.
    Source,
    /// Iterations between loop checkpoints.
    CheckpointEvery,
    /// Restoring from the latest checkpoint.
    RestoreLatest,
    /// 64-bit node ids.
    WideIds,
}

impl Setting {
    /// Every setting.
    pub const ALL: [Setting; 11] = [
        Setting::Iterations,
        Setting::Rounds,
        Setting::Rank,
        Setting::Lambda,
        Setting::Blocks,
        Setting::TestFraction,
        Setting::RmatScale,
        Setting::Source,
        Setting::CheckpointEvery,
        Setting::RestoreLatest,
        Setting::WideIds,
    ];
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Setting::Iterations => "iterations",
            Setting::Rounds => "rounds",
            Setting::Rank => "rank",
            Setting::Lambda => "lambda",
            Setting::Blocks => "blocks",
            Setting::TestFraction => "test fraction",
            Setting::RmatScale => "R-MAT scale",
            Setting::Source => "source",
            Setting::CheckpointEvery => "checkpoint every",
            Setting::RestoreLatest => "restore latest",
            Setting::WideIds => "wide ids",
        })
    }
}

/// A change of one setting that would let a job run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remedy {
    /// Turn the setting on (run or resume with it).
    Set(Setting),
    /// Turn the setting off.
    Unset(Setting),
}

impl std::fmt::Display for Remedy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remedy::Set(Setting::RestoreLatest) => f.write_str("restore the latest checkpoint"),
            Remedy::Set(s) => write!(f, "run with {s}"),
            Remedy::Unset(s) => write!(f, "run without {s}"),
        }
    }
}

/// Why a line of input was refused: what [`crate::operators::ReadLines`]'s
/// parsers return. A `String` converts into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// What is wrong with the line.
    pub message: String,
    /// A setting that would let the job take it, if one would.
    pub remedy: Option<Remedy>,
}

impl From<String> for Rejected {
    fn from(message: String) -> Self {
        Rejected {
            message,
            remedy: None,
        }
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

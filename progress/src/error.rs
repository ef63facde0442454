//! Errors of checkpointing and recovery.

/// Why a checkpoint could not be written, read or restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// A file or directory of the checkpoint store could not be used.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the operating system said.
        message: String,
    },
    /// A checkpoint file is damaged: missing, truncated, or its checksum differs.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No complete, undamaged checkpoint exists to restore from.
    #[error("no valid checkpoint to restore in {dir}{}", tried_text(.tried))]
    NoValidCheckpoint {
        /// The checkpoint directory.
        dir: String,
        /// Why each complete checkpoint was rejected, newest first.
        tried: Vec<String>,
    },
    /// A checkpoint whose keys were routed to workers by another hash than
    /// this build's: restoring it would put keys on the wrong workers.
    #[error(
        "{path}: written by a weir that routes keys by {}, this one routes by {}: restore it with the weir that wrote it",
        if found.is_empty() { "an unrecorded hash" } else { found.as_str() },
        crate::route::KEY_HASH
    )]
    KeyHash {
        /// The manifest.
        path: String,
        /// The hash it names.
        found: String,
    },
    /// Another participant of the job failed, so no further checkpoint is taken.
    #[error("stopped because another worker failed")]
    Aborted,
    /// The checkpoint to restore holds the state or source positions of
    /// operators that this job does not have (its query or weir version
    /// changed): restoring it would drop their state, or read their input
    /// again.
    #[error(
        "{path}: holds the state or positions of {} that this job does not have (its plan differs from the one that wrote it): restore it with the same job and weir version, or start afresh in an empty checkpoint directory",
        operators.join(", ")
    )]
    Unclaimed {
        /// The manifest.
        path: String,
        /// The operators of the checkpoint that the job lacks.
        operators: Vec<String>,
    },
    /// A fresh start was asked for where an earlier run left checkpoints.
    #[error(
        "{dir} holds checkpoints of an earlier run: restore from them, or use an empty checkpoint directory"
    )]
    Exists {
        /// The checkpoint directory.
        dir: String,
    },
}

fn tried_text(tried: &[String]) -> String {
    if tried.is_empty() {
        " (it holds no complete checkpoint)".to_string()
    } else {
        format!(" (rejected: {})", tried.join("; "))
    }
}

impl CheckpointError {
    /// An I/O error on `path`.
    pub fn io(path: impl std::fmt::Display, err: &std::io::Error) -> Self {
        CheckpointError::Io {
            path: path.to_string(),
            message: err.to_string(),
        }
    }
}

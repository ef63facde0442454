//! How a command fails: bad usage (exit 2) or a failure at run time (exit 1),
//! by the kind of the job's error.

use weir_runtime::JobError;
use weir_runtime::error::{Remedy, Setting};

/// A command failed: bad usage (exit 2) or at run time (exit 1).
#[derive(Debug)]
pub enum CliError {
    /// Unknown option, bad value, missing argument.
    Usage(String),
    /// Missing input, malformed record, I/O or runtime failure.
    Runtime(anyhow::Error),
}

impl From<JobError> for CliError {
    /// Says a job's error in the command line's terms: settings as their
    /// flags, remedies as the flags to give.
    fn from(e: JobError) -> Self {
        match e {
            JobError::Invalid(message) => CliError::Usage(message),
            JobError::Setting { setting, message } => {
                CliError::Usage(format!("{} {message}", flag(setting)))
            }
            JobError::Remedy { message, remedy } => {
                CliError::Usage(format!("{message}: {}", advice(remedy)))
            }
            JobError::Malformed {
                position,
                message,
                remedy: Some(remedy),
            } => CliError::Runtime(anyhow::anyhow!("{position}: {message}: {}", advice(remedy))),
            other => CliError::Runtime(other.into()),
        }
    }
}

/// The flag that gives `setting`.
pub fn flag(setting: Setting) -> &'static str {
    match setting {
        Setting::Iterations => "--iterations",
        Setting::Rounds => "--rounds",
        Setting::Rank => "--rank",
        Setting::Lambda => "--lambda",
        Setting::Blocks => "--blocks",
        Setting::TestFraction => "--test-fraction",
        Setting::RmatScale => "--rmat",
        Setting::Source => "--source",
        Setting::CheckpointEvery => "--checkpoint-every",
        Setting::RestoreLatest => "--restore latest",
        Setting::WideIds => "--wide-ids",
    }
}

/// A remedy as the flags to run with.
fn advice(remedy: Remedy) -> String {
    match remedy {
        Remedy::Set(setting) => format!("run with {}", flag(setting)),
        Remedy::Unset(setting) => format!("run without {}", flag(setting)),
    }
}

/// Shorthand for a usage error.
pub fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

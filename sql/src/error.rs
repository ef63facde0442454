//! The errors of planning and running SQL, by kind.

use datafusion_common::DataFusionError;
use weir_runtime::JobError;

/// Why a statement could not be planned or run.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text is not SQL that parses (the message names line and column).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// The statement parses but does not plan: an unknown table or column
    /// (with DataFusion's suggestion), a type that does not fit.
    #[error("{0}")]
    Plan(String),
    /// A construct weir does not run yet.
    #[error("not supported yet: {0}")]
    Unsupported(String),
    /// A table's files could not be read or do not match its declaration.
    #[error("{location}: {message}")]
    Input {
        /// The file or directory.
        location: String,
        /// What went wrong.
        message: String,
    },
    /// Evaluating an expression or aggregate failed on the data.
    #[error("{0}")]
    Execution(String),
    /// The job failed (a worker, a malformed record, I/O).
    #[error(transparent)]
    Job(#[from] JobError),
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::SQL(parse, _) => SqlError::Syntax(parse.to_string()),
            DataFusionError::NotImplemented(what) => SqlError::Unsupported(what.clone()),
            DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => {
                SqlError::Plan(e.strip_backtrace())
            }
            DataFusionError::ArrowError(..) | DataFusionError::Execution(_) => {
                SqlError::Execution(e.strip_backtrace())
            }
            _ => SqlError::Plan(e.strip_backtrace()),
        }
    }
}

impl From<arrow::error::ArrowError> for SqlError {
    fn from(e: arrow::error::ArrowError) -> Self {
        SqlError::Execution(e.to_string())
    }
}

impl From<SqlError> for JobError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Job(job) => job,
            SqlError::Input { location, message } => JobError::Io {
                path: location,
                message,
            },
            other => JobError::Compute(other.to_string()),
        }
    }
}

/// Shorthand.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

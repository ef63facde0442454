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
    /// An operator needed more memory than its share of the budget.
    #[error("{0}")]
    Memory(String),
    /// Evaluating an expression or aggregate failed on the data.
    #[error("{0}")]
    Execution(String),
    /// The job failed (a worker, a malformed record, I/O).
    #[error(transparent)]
    Job(#[from] JobError),
}

/// DataFusion's message on one line, without its advice to file a bug
/// report (a planning error of the user's query is not DataFusion's bug).
pub fn one_line(message: &str) -> String {
    let message = message
        .split("This issue was likely caused by a bug")
        .next()
        .unwrap_or(message);
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        let message = one_line(&e.strip_backtrace());
        match e.find_root() {
            DataFusionError::SQL(parse, _) => SqlError::Syntax(one_line(&parse.to_string())),
            DataFusionError::NotImplemented(what) => SqlError::Unsupported(one_line(what)),
            DataFusionError::ArrowError(..) | DataFusionError::Execution(_) => {
                SqlError::Execution(message)
            }
            _ => SqlError::Plan(message),
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

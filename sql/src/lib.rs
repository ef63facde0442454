//! weir's SQL: Apache DataFusion parses, plans and optimizes; weir runs the
//! plan as a timely dataflow on every worker of every process.
//!
//! How the modules depend on each other:
//! - [`error`]: the error kinds of planning and running.
//! - [`catalog`]: tables declared with `CREATE EXTERNAL TABLE` (CSV, JSON,
//!   Parquet, text), their files and schemas; [`context`] shows them, and
//!   DataFusion's functions, to DataFusion's SQL planner.
//! - [`window`]: event-time windows as table functions in `FROM` (`tumble`,
//!   `hop`, `session`), a node of DataFusion's logical plan.
//! - [`plan`]: DataFusion's optimized logical plan translated into weir's
//!   operators, with DataFusion's physical expressions and aggregates inside.
//! - [`batch`]: Arrow record batches as timely data (Arrow IPC between
//!   processes).
//! - [`exec`]: the operators (scan, filter, project, unnest, two-phase
//!   aggregate, hash join, sort, limit) and the run of a plan on a worker.
//! - [`session`]: statements one after another on one timely execution,
//!   from a script or as they come (an interactive prompt); [`settings`]
//!   holds what `SET` gives its queries.
//! - [`stream`]: queries over unbounded tables as checkpointed streaming
//!   jobs (the runner of `weir-streaming`).
//! - [`table`]: the Table API: programs built with DataFusion's plan builder
//!   and expressions, run as [`session`] runs queries.
//! - [`tpch`]: TPC-H's tables generated as Parquet, and its 22 queries.
//! - [`nexmark`]: Nexmark's person, auction and bid events as tables, and
//!   as Parquet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod batch;
pub mod catalog;
pub mod context;
pub mod error;
pub mod exec;
pub mod nexmark;
pub mod plan;
pub mod session;
pub mod settings;
pub mod stream;
pub mod table;
pub mod tpch;
pub mod window;

pub use error::SqlError;
pub use session::{Outcome, Session, run_interactive, run_script};

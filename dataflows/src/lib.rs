//! Batch dataflows for weir: inputs, operators, the job runner and the batch jobs.
//!
//! How the modules depend on each other:
//! - [`error`]: the one error type, used everywhere.
//! - [`generate`] (seeded generators) and [`input`] (files or generators, split across
//!   all workers of all processes) produce lines.
//! - [`exec`] runs a job's dataflow on a timely configuration, writes its part
//!   files and agrees on the outcome across processes.
//! - [`operators`] are the reusable timely operators (reading lines with flow
//!   control, folding by key); they use [`exec::WorkerCtx`] and [`input`].
//! - [`graph`]: edge lists and R-MAT graphs as streams, and each worker's
//!   CSR share of a graph, built once before a loop.
//! - [`algorithms`]: iterative graph algorithms over [`graph`]'s layout, each
//!   with a sequential reference.
//! - [`jobs`] are the jobs the CLI runs, built from the operators, each with a
//!   sequential reference.
//! - [`testing`] runs jobs at several worker counts and on two-process clusters.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod algorithms;
pub mod error;
pub mod exec;
pub mod generate;
pub mod graph;
pub mod input;
pub mod jobs;
pub mod operators;

pub use error::JobError;
pub use weir_progress::testing;

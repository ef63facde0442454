//! Batch dataflows for weir: the graph code and the batch jobs, on
//! `weir-runtime`'s runner, inputs and operators.
//!
//! How the modules depend on each other:
//! - [`graph`]: edge lists and R-MAT graphs as streams, and each worker's
//!   CSR share of a graph, built once before a loop.
//! - [`algorithms`]: iterative graph algorithms over [`graph`]'s layout, each
//!   with a sequential reference.
//! - [`jobs`] are the jobs the CLI runs, built from the runtime's operators,
//!   each with a sequential reference.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod algorithms;
pub mod graph;
pub mod jobs;

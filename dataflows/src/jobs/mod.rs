//! Batch jobs: each a dataflow built from `weir_runtime::operators`, a `run` entry point
//! for the CLI, and a small sequential `reference` that tests compare it against.

pub mod graph;
pub mod join;
pub mod wordcount;

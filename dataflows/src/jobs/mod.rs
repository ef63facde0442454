//! Batch jobs: each a dataflow built from [`crate::operators`], a `run` entry point
//! for the CLI, and a small sequential `reference` that tests compare it against.

pub mod graph;
pub mod join;
pub mod loops;
pub mod wordcount;

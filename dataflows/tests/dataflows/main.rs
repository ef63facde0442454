//! Integration tests of weir's batch dataflows: one module per topic.
#![allow(clippy::unwrap_used)]

mod common;
mod graphs;
mod join;
mod wordcount;

//! Integration tests of weir's progress core: one module per topic.
#![allow(clippy::unwrap_used)]

mod checkpoints;
mod convergence;
mod store;

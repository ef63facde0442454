//! Graph algorithms as timely iterations over the per-worker layout of
//! [`crate::graph::layout`]: [`pagerank`], connected components ([`cc`]) and
//! breadth-first search ([`bfs`]), each with a sequential reference.
//!
//! All three are supersteps ([`superstep`]): each worker scatters messages
//! along its CSR, combined per destination before the exchange, and gathers
//! the messages for its nodes once the frontier says the iteration's messages
//! are all in. The loop stops through `weir-progress`'s convergence helper and
//! can be checkpointed every K iterations with its loop checkpoints.

pub mod bfs;
pub mod cc;
pub mod pagerank;
pub mod propagate;
pub mod superstep;

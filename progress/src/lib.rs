//! Frontier-driven coordination for weir.
//!
//! Everything in weir that other systems coordinate with barriers, driver loops or
//! timers is decided here from timely's progress tracking: a checkpoint of epoch `e`
//! is complete when the frontier of every stateful operator on every worker has
//! passed `e`; an iteration has converged when the frontier of its loop has passed
//! the round whose aggregated change satisfied the stop predicate.
//!
//! This crate depends only on `timely`. It will hold epochs, the checkpoint
//! coordinator, the durable state store, recovery and convergence detection; the
//! batch layer (`weir-dataflows`) builds on it, and `weir-ml` and `weir-streaming`
//! build on both.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

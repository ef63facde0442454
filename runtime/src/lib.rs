//! weir's runtime: what every job crate (batch, ML, streaming) builds on.
//!
//! How the modules depend on each other:
//! - [`error`]: the one error type, used everywhere.
//! - [`generate`] (seeded generators) and [`input`] (files or generators, split
//!   across all workers of all processes) produce lines.
//! - [`exec`] runs a job's dataflow on a timely configuration, writes its part
//!   files and agrees on the outcome across processes; it holds the worker
//!   context, the failure slot and the record counters.
//! - [`operators`] are the reusable timely operators (reading lines with flow
//!   control, generating chunks, folding by key, acting when a stream is done);
//!   they use [`exec::WorkerCtx`] and [`input`].
//! - [`loops`]: what every iterative job does with loop checkpoints;
//!   [`local_index`]: the bound on `u32` indices of per-worker layouts.
//! - [`clock`] and [`source_ctx`]: when a streaming job's live epochs end, and
//!   what the sources and sinks of one worker share.
//! - [`time`]: the timestamp of batch dataflows (chunks in phases, then the
//!   end), which [`exec`] and [`operators`] run on.
//! - [`spill`]: the lazy temporary directory operators spill to.
//! - [`text`]: the tokenizer the word counts share; [`units`]: byte counts
//!   for people, 1024-based like the size options.
//! - [`testing`] (from `weir-progress`) runs jobs at several worker counts and
//!   on two-process clusters.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod clock;
pub mod error;
pub mod exec;
pub mod generate;
pub mod input;
pub mod local_index;
pub mod loops;
pub mod operators;
pub mod source_ctx;
pub mod spill;
pub mod text;
pub mod time;
pub mod units;

pub use error::JobError;
pub use weir_progress::testing;

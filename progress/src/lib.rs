//! Frontier-driven coordination for weir.
//!
//! Everything in weir that other systems coordinate with barriers, driver loops or
//! timers is decided from timely's progress tracking: a checkpoint of epoch `e` is
//! complete when the frontier of every stateful operator on every worker has
//! passed `e` and each has durably written its state as of `e`; an iteration has
//! converged when the frontier of its loop has passed the round whose aggregated
//! change satisfied the stop predicate.
//!
//! How the modules depend on each other:
//! - [`error`]: the error type of everything below.
//! - [`backend`]: where files live ([`backend::LocalFs`]; an object store would
//!   implement [`backend::Backend`] too).
//! - [`background`]: a thread working through jobs in order, off the data
//!   path (snapshot writes, manifest commits).
//! - [`store`]: checkpoints on a backend: part files, manifests with checksums
//!   ([`manifest`]), validation and fallback on restore, retention.
//! - [`route`]: the key hash shared by exchange routing and rescaling.
//! - [`byte_string`]: keys and values of state that are strings of bytes.
//! - [`state`]: keyed state with incremental snapshots, and its restore (with
//!   repartitioning) from a [`store::Manifest`]; [`snapshot`]: the background
//!   thread that writes them.
//! - [`checkpoint`]: the timely side: stateful operators that snapshot when their
//!   frontier passes a checkpoint epoch, and what they acknowledge;
//!   [`coordinate`]: the coordinator that commits a checkpoint when the
//!   frontier of the acknowledgements passes it.
//! - [`loop_state`]: checkpoints of an iterative loop's records every K
//!   iterations, and resuming mid-loop at any worker count.
//! - [`convergence`]: the gate that ends a loop once the frontier has passed
//!   the round whose aggregated change met the stop predicate, and the
//!   per-round reports.
//! - [`agree`]: all-gather and decide-once among all workers, through timely.
//! - [`recovery`]: how a job restarts: the checkpoint, source positions, and
//!   the epochs to replay identically after a fallback.
//! - [`testing`]: runs computations at several worker counts and on two-process
//!   clusters, for the tests of every weir crate.
//!
//! This crate depends only on `timely` among weir's building blocks (plus serde,
//! bincode, serde_json and crc32c for its files); `weir-runtime` builds on it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agree;
pub mod backend;
pub mod background;
pub mod byte_string;
pub mod checkpoint;
pub mod convergence;
pub mod coordinate;
pub mod error;
pub mod loop_state;
pub mod manifest;
pub mod recovery;
pub mod route;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod testing;

pub use error::CheckpointError;

//! Streaming on weir: file and Kafka sources and sinks with exactly-once
//! delivery, and event-time windows, coordinated by checkpoints that progress
//! tracking decides.
//!
//! How the modules depend on each other:
//! - [`dir_source`]: a source watching a directory; its positions go into
//!   every checkpoint, and a restore resumes (and replays) from them.
//! - [`dir_sink`]: a sink whose files become visible only once the checkpoint
//!   covering their epoch is complete.
//! - [`event_time`]: the event time of a JSON line, read in one pass.
//! - [`kafka`]: a source with its offsets in checkpoints, transactional
//!   (exactly-once) and idempotent sinks, the broker for tests, and a reader of
//!   the committed log that applies transaction markers itself.
//! - [`operators`]: the stream–table lookup join and `key_by`.
//! - [`window`]: tumbling, sliding and session windows on event time, fired
//!   by watermarks that travel with epochs.
//! - [`stop`]: when a source with a stop time stops: all its workers agree.
//! - [`run`]: the runner: restore decision on worker 0, coordinator, publishing,
//!   failure propagation; used by every job in [`jobs`].
//! - [`jobs`]: the streaming jobs (`weir stream wordcount`, the Yahoo pipeline
//!   and its event generator).
//! - [`testing`]: seeded inputs and output checks for tests of streaming jobs.
//!
//! Depends on `weir-progress` (epochs, checkpoints, recovery) and on
//! `weir-runtime` (errors, words, counters, the source context and the epoch clock).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dir_sink;
pub mod dir_source;
pub mod event_time;
pub mod jobs;
pub mod kafka;
pub mod operators;
pub mod run;
pub mod stop;
pub mod testing;
pub mod window;

//! Streaming on weir: Kafka and file sources and sinks, event time, windows and
//! exactly-once delivery.
//!
//! Depends on `weir-progress` (epochs, checkpoints: a transactional sink commits
//! epoch `e` only when the checkpoint covering `e` is complete) and on
//! `weir-dataflows` (operators, job runner).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

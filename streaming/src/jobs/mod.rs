//! Streaming jobs.

pub mod wordcount;

//! Streaming jobs.

pub mod wordcount;
pub mod yahoo;
pub mod yahoo_events;
mod yahoo_verify;

//! Integration tests of weir's streaming jobs: one module per topic.
#![allow(clippy::unwrap_used)]

mod common;
mod kafka_protocol;
mod kafka_watermarks;
mod kafka_wordcount;
mod recovery;
mod windows;
mod wordcount;
mod yahoo;

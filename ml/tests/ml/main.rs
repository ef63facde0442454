//! The ML crate's integration tests, one module per topic.
#![allow(clippy::unwrap_used)]

mod als;
mod cocoa;

//! The ML jobs the CLI runs.

pub mod als;
pub mod cocoa;

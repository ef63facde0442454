//! Integration tests of weir's SQL: one module per topic.
#![allow(clippy::unwrap_used)]

mod dir_stream;
mod nexmark;
mod oracle;
mod queries;
mod spill;
mod stream;
mod table_api;
mod tpch;
mod windows;

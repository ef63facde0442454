//! End-to-end tests of the `weir` binary: one module per topic.
#![allow(clippy::unwrap_used)]

mod chaos;
mod errors;
mod exactly_once;
mod graphs;
mod jobs;
mod kafka_chaos;
mod ml;
mod plots;
mod sql;
mod sql_dir;
mod sql_kafka;
mod sql_session;
mod sql_stream;
mod sql_upsert;
mod support;
mod yahoo;

//! Kafka: a source whose offsets live in weir's checkpoints, an exactly-once
//! transactional sink committed by checkpoints, and the tools around them.
//!
//! - [`wire`]: the requests made on the wire directly (reading the committed
//!   log with transaction markers applied; ending a crashed producer's
//!   transaction).
//! - [`broker`]: starts the project's own broker for tests and benchmarks.
//! - [`dead_letter`]: records that do not parse, to a dead-letter topic.
//! - [`retry`]: waiting out an unreachable broker, with backoff.
//! - [`sink`]: the sinks and the exactly-once protocol; [`txn_pool`]: each
//!   worker's transactional producers and the thread that flushes and commits
//!   them; [`sink_recovery`]: what checkpoints keep for the sink, and settling
//!   what a crashed run left open.

pub mod broker;
pub mod dead_letter;
pub mod producer;
mod reader;
pub mod retry;
pub mod sink;
pub mod sink_recovery;
pub mod source;
pub mod txn_pool;
pub mod wire;

use weir_runtime::JobError;

/// What went wrong talking to Kafka. Every variant names the broker, topic or
/// transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KafkaError {
    /// No broker could be reached (after retries, where there are any).
    #[error("kafka broker {brokers} unreachable: {message}")]
    Unreachable {
        /// The broker list.
        brokers: String,
        /// Why.
        message: String,
    },
    /// A broker answered something this client cannot use.
    #[error("kafka broker {broker}: {message}")]
    Protocol {
        /// The broker.
        broker: String,
        /// What was wrong.
        message: String,
    },
    /// A topic (or partition) is missing or failed.
    #[error("kafka topic {topic}: {message}")]
    Topic {
        /// `topic` or `topic/partition`.
        topic: String,
        /// What was wrong.
        message: String,
    },
    /// A transactional producer failed.
    #[error("kafka transaction {id}: {message}")]
    Transaction {
        /// The `transactional.id`.
        id: String,
        /// What was wrong.
        message: String,
    },
    /// A client call failed.
    #[error("kafka {context}: {message}")]
    Client {
        /// What was being done.
        context: String,
        /// What the client said.
        message: String,
    },
    /// The broker for tests could not start.
    #[error("kafka test broker: {0}")]
    Harness(String),
}

impl KafkaError {
    /// A client error while doing `context`.
    pub fn client(context: impl Into<String>, error: impl std::fmt::Display) -> Self {
        KafkaError::Client {
            context: context.into(),
            message: error.to_string(),
        }
    }
}

impl From<KafkaError> for JobError {
    fn from(e: KafkaError) -> Self {
        JobError::Service(e.to_string())
    }
}

//! Producers for weir's sinks: transactional (exactly-once) and idempotent
//! (at-least-once), both `rdkafka` with bundled librdkafka.
//!
//! A transactional producer also learns its producer id and epoch (from
//! librdkafka's statistics, which report them), because the two-phase commit
//! stores them in the checkpoint: a process restored after a crash between
//! "checkpoint complete" and "commit" ends the transaction itself with them
//! ([`super::wire::end_transaction`]).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde::{Deserialize, Serialize};

use super::KafkaError;

/// How long a blocking producer call may take before it is an error.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A record for a sink: topic, key, value and headers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Produce {
    /// Target topic.
    pub topic: String,
    /// Key (`None`: the producer's partitioner spreads records).
    pub key: Option<Vec<u8>>,
    /// Value (`None`: a tombstone, the deletion of its key in a compacted
    /// topic).
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Record timestamp (milliseconds since the Unix epoch; `None`: now).
    pub timestamp: Option<i64>,
    /// Partition (`None`: chosen by the key, or spread).
    pub partition: Option<i32>,
}

impl Produce {
    /// The record of `key` with `value` (a tombstone, the key's deletion,
    /// without one).
    pub fn keyed(topic: &str, key: Vec<u8>, value: Option<Vec<u8>>) -> Self {
        Produce {
            key: Some(key),
            value,
            ..Produce::value(topic, Vec::new())
        }
    }

    /// A record with a value only.
    pub fn value(topic: &str, value: impl Into<Vec<u8>>) -> Self {
        Produce {
            topic: topic.to_string(),
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
            partition: None,
        }
    }
}

/// The client settings every weir client shares.
pub fn base_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "weir")
        .set("log_level", "3")
        .set("socket.timeout.ms", "10000")
        .set("message.timeout.ms", "30000");
    config
}

/// The id and epoch a transactional producer was given by its coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch (bumped by every `init_transactions`).
    pub epoch: i16,
}

/// Keeps the newest producer identity from librdkafka's statistics, and the
/// first failed delivery.
#[derive(Default)]
pub struct SinkContext {
    seen: Mutex<(u64, Option<Identity>)>,
    changed: Condvar,
    failed: Mutex<Option<String>>,
}

#[derive(Deserialize)]
struct Stats {
    eos: Option<Eos>,
}

#[derive(Deserialize)]
struct Eos {
    producer_id: i64,
    producer_epoch: i64,
}

impl ClientContext for SinkContext {
    fn stats_raw(&self, statistics: &[u8]) {
        let identity = serde_json::from_slice::<Stats>(statistics)
            .ok()
            .and_then(|s| s.eos)
            .filter(|e| e.producer_id >= 0 && e.producer_epoch >= 0)
            .and_then(|e| {
                Some(Identity {
                    producer_id: e.producer_id,
                    epoch: i16::try_from(e.producer_epoch).ok()?,
                })
            });
        if let Ok(mut seen) = self.seen.lock() {
            seen.0 += 1;
            seen.1 = identity;
            self.changed.notify_all();
        }
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, message)) = result
            && let Ok(mut failed) = self.failed.lock()
            && failed.is_none()
        {
            use rdkafka::Message;
            *failed = Some(format!(
                "a record for {} was not delivered: {e}",
                message.topic()
            ));
        }
    }
}

impl SinkContext {
    /// The first failed delivery, if any.
    fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    /// Waits for statistics reported after `after` reports and returns the identity.
    fn identity_after(&self, after: u64, limit: Duration) -> Option<Identity> {
        let deadline = Instant::now() + limit;
        let mut seen = self.seen.lock().ok()?;
        loop {
            if seen.0 > after
                && let Some(identity) = seen.1
            {
                return Some(identity);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            seen = self.changed.wait_timeout(seen, left).ok()?.0;
        }
    }

    fn reports(&self) -> u64 {
        self.seen.lock().map(|s| s.0).unwrap_or(0)
    }
}

/// A transactional producer with a stable `transactional.id`.
pub struct TxnProducer {
    producer: ThreadedProducer<SinkContext>,
    id: String,
    brokers: String,
    identity: Identity,
}

impl TxnProducer {
    /// Creates the producer and initialises its transactions: this fences any
    /// earlier producer with the same id (a zombie) and aborts what it left open.
    pub fn open(brokers: &str, id: &str) -> Result<Self, KafkaError> {
        let producer: ThreadedProducer<SinkContext> = base_config(brokers)
            .set("transactional.id", id)
            .set("enable.idempotence", "true")
            .set("statistics.interval.ms", "50")
            .set("linger.ms", "5")
            .create_with_context(SinkContext::default())
            .map_err(|e| KafkaError::client(format!("producer {id}"), e))?;
        let before = producer.context().reports();
        producer
            .init_transactions(CALL_TIMEOUT)
            .map_err(|e| txn_error(id, brokers, "init_transactions", e))?;
        let identity = producer
            .context()
            .identity_after(before, Duration::from_secs(10))
            .ok_or_else(|| KafkaError::Transaction {
                id: id.to_string(),
                message: "the producer did not report its producer id".into(),
            })?;
        Ok(TxnProducer {
            producer,
            id: id.to_string(),
            brokers: brokers.to_string(),
            identity,
        })
    }

    /// The `transactional.id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Producer id and epoch.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// Begins a transaction.
    pub fn begin(&self) -> Result<(), KafkaError> {
        self.producer
            .begin_transaction()
            .map_err(|e| txn_error(&self.id, &self.brokers, "begin_transaction", e))
    }

    /// Queues `record` (waits while the local queue is full).
    pub fn send(&self, record: &Produce) -> Result<(), KafkaError> {
        send(&self.producer, record, &self.id)
    }

    /// Waits until every queued record is in the broker's log (still invisible
    /// to `read_committed` readers until the commit).
    pub fn flush(&self) -> Result<(), KafkaError> {
        flush(&self.producer).map_err(|e| txn_error(&self.id, &self.brokers, "flush", e))
    }

    /// Commits the open transaction.
    pub fn commit(&self) -> Result<(), KafkaError> {
        self.commit_within(CALL_TIMEOUT)
    }

    /// Commits the open transaction, waiting at most `timeout`.
    pub fn commit_within(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer
            .commit_transaction(timeout)
            .map_err(|e| txn_error(&self.id, &self.brokers, "commit_transaction", e))
    }

    /// Flushes and aborts the open transaction (without the flush, librdkafka
    /// drops what it has not sent, and the broker never sees the abort).
    pub fn abort(&self) -> Result<(), KafkaError> {
        let _ = flush(&self.producer);
        self.producer
            .abort_transaction(CALL_TIMEOUT)
            .map_err(|e| txn_error(&self.id, &self.brokers, "abort_transaction", e))
    }

    /// Statistics reports seen (for tests).
    pub fn reports(&self) -> u64 {
        self.producer.context().reports()
    }
}

/// An idempotent producer: no duplicates from its own retries, but no
/// transactions (a restored job may write records again: at-least-once).
pub struct IdempotentProducer {
    producer: ThreadedProducer<SinkContext>,
    brokers: String,
}

impl IdempotentProducer {
    /// Creates the producer.
    pub fn open(brokers: &str) -> Result<Self, KafkaError> {
        let producer = base_config(brokers)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create_with_context(SinkContext::default())
            .map_err(|e| KafkaError::client("idempotent producer", e))?;
        Ok(IdempotentProducer {
            producer,
            brokers: brokers.to_string(),
        })
    }

    /// Queues `record`.
    pub fn send(&self, record: &Produce) -> Result<(), KafkaError> {
        send(&self.producer, record, "idempotent producer")
    }

    /// Waits until every queued record is acknowledged.
    pub fn flush(&self) -> Result<(), KafkaError> {
        flush(&self.producer).map_err(|e| unreachable_or(&self.brokers, "flush", e))?;
        match self.producer.context().failure() {
            Some(message) => Err(KafkaError::Unreachable {
                brokers: self.brokers.clone(),
                message,
            }),
            None => Ok(()),
        }
    }
}

/// Waits until every queued record is delivered, at most [`CALL_TIMEOUT`].
///
/// Not rdkafka's `flush`: between its checks that one polls for events for a
/// fixed 100 ms (the producer's own thread takes them), so every flush took
/// 100 ms at least, which was most of an exactly-once sink's latency.
fn flush(producer: &ThreadedProducer<SinkContext>) -> Result<(), RdError> {
    let started = Instant::now();
    loop {
        match producer.flush(Duration::ZERO) {
            Err(RdError::Flush(RDKafkaErrorCode::OperationTimedOut))
                if started.elapsed() < CALL_TIMEOUT =>
            {
                std::thread::sleep(FLUSH_CHECK);
            }
            done => return done,
        }
    }
}

/// How often [`flush`] looks whether the queue is empty.
const FLUSH_CHECK: Duration = Duration::from_micros(500);

fn send(
    producer: &ThreadedProducer<SinkContext>,
    record: &Produce,
    who: &str,
) -> Result<(), KafkaError> {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (key, value) in &record.headers {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    let mut base = BaseRecord::<Vec<u8>, Vec<u8>>::to(&record.topic).headers(headers);
    if let Some(value) = &record.value {
        base = base.payload(value);
    }
    if let Some(key) = &record.key {
        base = base.key(key);
    }
    if let Some(ts) = record.timestamp {
        base = base.timestamp(ts);
    }
    if let Some(partition) = record.partition {
        base = base.partition(partition);
    }
    let started = Instant::now();
    loop {
        match producer.send(base) {
            Ok(()) => return Ok(()),
            Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if started.elapsed() < CALL_TIMEOUT =>
            {
                base = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => {
                return Err(KafkaError::client(
                    format!("{who}: sending to {}", record.topic),
                    e,
                ));
            }
        }
    }
}

fn txn_error(id: &str, brokers: &str, call: &str, e: RdError) -> KafkaError {
    match unreachable_or(brokers, call, e) {
        unreachable @ KafkaError::Unreachable { .. } => unreachable,
        other => KafkaError::Transaction {
            id: id.to_string(),
            message: other.to_string(),
        },
    }
}

/// A timeout or transport error says the broker is unreachable.
fn unreachable_or(brokers: &str, call: &str, e: RdError) -> KafkaError {
    let code = e.rdkafka_error_code();
    let transport = matches!(
        code,
        Some(
            RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::BrokerNotAvailable
        )
    );
    if transport {
        KafkaError::Unreachable {
            brokers: brokers.to_string(),
            message: format!("{call}: {e}"),
        }
    } else {
        KafkaError::client(call, e)
    }
}

//! The few Kafka requests weir makes on the wire itself (with the
//! `kafka-protocol` crate), where a client library has no API for them:
//!
//! - [`read_committed`]: a partition's log as a correct `read_committed`
//!   consumer would see it, computed from the raw record batches and the
//!   transaction markers in the log (the broker used here does not filter
//!   aborted records itself; this reader is right on it and on Apache Kafka);
//! - [`end_transaction`]: commits (or aborts) a transaction that a crashed
//!   producer left open, given its producer id and epoch — the second phase of
//!   the two-phase commit, completed by a new process after a crash.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, EndTxnRequest, FetchRequest, FindCoordinatorRequest, MetadataRequest, ProducerId,
    RequestHeader, ResponseHeader, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;

use super::KafkaError;

/// Request versions used (all without topic ids, all widely supported).
const METADATA: i16 = 9;
const FETCH: i16 = 11;
const FIND_COORDINATOR: i16 = 3;
const END_TXN: i16 = 3;
/// Bytes asked for per fetch.
const FETCH_BYTES: i32 = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka's error codes that this module tells apart.
const UNKNOWN_TOPIC: i16 = 3;
const INVALID_TXN_STATE: i16 = 48;

/// One connection to one broker.
pub struct Connection {
    stream: TcpStream,
    addr: String,
    correlation: i32,
}

impl Connection {
    /// Connects to `addr` (`host:port`).
    pub fn connect(addr: &str) -> Result<Self, KafkaError> {
        let unreachable = |message: String| KafkaError::Unreachable {
            brokers: addr.to_string(),
            message,
        };
        let sockets = addr
            .to_socket_addrs()
            .map_err(|e| unreachable(e.to_string()))?;
        let mut last = None;
        for socket in sockets {
            match TcpStream::connect_timeout(&socket, TIMEOUT) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    stream
                        .set_read_timeout(Some(TIMEOUT * 3))
                        .map_err(|e| unreachable(e.to_string()))?;
                    return Ok(Connection {
                        stream,
                        addr: addr.to_string(),
                        correlation: 0,
                    });
                }
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(unreachable(last.unwrap_or_else(|| "no address".into())))
    }

    /// Connects to the first reachable broker of a comma-separated list.
    pub fn bootstrap(brokers: &str) -> Result<Self, KafkaError> {
        let mut last = None;
        for addr in brokers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Connection::connect(addr) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| KafkaError::Unreachable {
            brokers: brokers.to_string(),
            message: "no broker given".into(),
        }))
    }

    /// Sends `request` at `version` and reads its response.
    pub fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, KafkaError> {
        let protocol = |message: String| KafkaError::Protocol {
            broker: self.addr.clone(),
            message,
        };
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("weir")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .and_then(|()| request.encode(&mut body, version))
            .map_err(|e| protocol(format!("cannot encode a request: {e}")))?;
        let size = i32::try_from(body.len()).map_err(|_| protocol("request too large".into()))?;
        let io = |e: std::io::Error| KafkaError::Unreachable {
            brokers: self.addr.clone(),
            message: e.to_string(),
        };
        self.stream.write_all(&size.to_be_bytes()).map_err(io)?;
        self.stream.write_all(&body).map_err(io)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io)?;
        let size = usize::try_from(i32::from_be_bytes(size))
            .map_err(|_| protocol("negative response size".into()))?;
        let mut response = vec![0u8; size];
        self.stream.read_exact(&mut response).map_err(io)?;
        let mut response = Bytes::from(response);
        let header = ResponseHeader::decode(&mut response, R::Response::header_version(version))
            .map_err(|e| protocol(format!("bad response header: {e}")))?;
        if header.correlation_id != self.correlation {
            return Err(protocol(format!(
                "response {} to request {}",
                header.correlation_id, self.correlation
            )));
        }
        R::Response::decode(&mut response, version)
            .map_err(|e| protocol(format!("bad response: {e}")))
    }
}

/// A record as a `read_committed` consumer receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedRecord {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Record timestamp (milliseconds since the Unix epoch).
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The producer id that wrote it (`-1`: a producer without one).
    pub producer_id: i64,
}

/// What [`read_committed`] found in a topic.
#[derive(Clone, Debug, Default)]
pub struct TopicLog {
    /// Committed and non-transactional records below each partition's last
    /// stable offset, per partition in offset order.
    pub records: Vec<CommittedRecord>,
    /// Records of aborted transactions (not delivered).
    pub aborted: usize,
    /// Records held back by a transaction still open (not delivered yet).
    pub open: usize,
    /// Partitions of the topic.
    pub partitions: usize,
}

/// Control record types (the key of a control record).
const ABORT_MARKER: i16 = 0;
const COMMIT_MARKER: i16 = 1;

/// Reads every partition of `topic` to its high watermark and applies the
/// transaction markers in the log: per partition and producer id, records of a
/// transaction are delivered when its COMMIT marker comes and dropped at ABORT;
/// nothing at or after the first record of a transaction still open is
/// delivered (the last stable offset).
pub fn read_committed(brokers: &str, topic: &str) -> Result<TopicLog, KafkaError> {
    let mut bootstrap = Connection::bootstrap(brokers)?;
    let (leaders, addrs) = partition_leaders(&mut bootstrap, topic)?;
    let mut connections: HashMap<BrokerId, Connection> = HashMap::new();
    let mut log = TopicLog {
        partitions: leaders.len(),
        ..TopicLog::default()
    };
    for (&partition, leader) in &leaders {
        let connection = match connections.entry(*leader) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let addr = addrs.get(leader).ok_or_else(|| KafkaError::Protocol {
                    broker: brokers.to_string(),
                    message: format!(
                        "{topic}/{partition}: leader {leader:?} is not a known broker"
                    ),
                })?;
                e.insert(Connection::connect(addr)?)
            }
        };
        read_partition(connection, topic, partition, &mut log)?;
    }
    Ok(log)
}

/// The leader of each partition, and each broker's address.
type Leaders = (BTreeMap<i32, BrokerId>, HashMap<BrokerId, String>);

/// The leader of each partition of `topic`, and each broker's address.
fn partition_leaders(connection: &mut Connection, topic: &str) -> Result<Leaders, KafkaError> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(false);
    let response = connection.call(&request, METADATA)?;
    let addrs = response
        .brokers
        .iter()
        .map(|b| (b.node_id, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let Some(t) = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
    else {
        return Err(KafkaError::Topic {
            topic: topic.to_string(),
            message: "not in the broker's metadata".into(),
        });
    };
    if t.error_code != 0 {
        return Err(KafkaError::Topic {
            topic: topic.to_string(),
            message: describe_error(t.error_code),
        });
    }
    let leaders = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id))
        .collect();
    Ok((leaders, addrs))
}

/// Fetches in a row without a record, below the high watermark, after which
/// a read fails (10 ms apart: 5 s).
const EMPTY_FETCHES: u32 = 500;

/// Reads one partition from offset 0 to its high watermark into `log`.
fn read_partition(
    connection: &mut Connection,
    topic: &str,
    partition: i32,
    log: &mut TopicLog,
) -> Result<(), KafkaError> {
    let at = |message: String| KafkaError::Topic {
        topic: format!("{topic}/{partition}"),
        message,
    };
    // records of transactions not yet ended, per producer id
    let mut pending: HashMap<i64, Vec<CommittedRecord>> = HashMap::new();
    let mut delivered: Vec<CommittedRecord> = Vec::new();
    let mut offset = 0i64;
    // fetches in a row that brought nothing though the log goes on
    let mut empty = 0u32;
    loop {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            // (some brokers answer nothing at all to max_wait 0)
            .with_max_wait_ms(1)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_BYTES)
            .with_isolation_level(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(FETCH_BYTES),
                    ]),
            ]);
        let response = connection.call(&request, FETCH)?;
        if response.error_code != 0 {
            return Err(at(describe_error(response.error_code)));
        }
        let data = response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| at("missing from the fetch response".into()))?;
        if data.error_code != 0 {
            return Err(at(describe_error(data.error_code)));
        }
        let high_watermark = data.high_watermark;
        let mut bytes = data.records.clone().unwrap_or_default();
        let mut progressed = false;
        while let Some(mut batch) = whole_batch(&mut bytes) {
            let set = RecordBatchDecoder::decode(&mut batch)
                .map_err(|e| at(format!("bad record batch at offset {offset}: {e}")))?;
            for record in set.records {
                offset = offset.max(record.offset + 1);
                progressed = true;
                if record.control {
                    let kind = record
                        .key
                        .as_ref()
                        .filter(|k| k.len() >= 4)
                        .map(|k| i16::from_be_bytes([k[2], k[3]]));
                    let ended = pending.remove(&record.producer_id).unwrap_or_default();
                    match kind {
                        Some(COMMIT_MARKER) => delivered.extend(ended),
                        Some(ABORT_MARKER) => log.aborted += ended.len(),
                        _ => {
                            return Err(at(format!(
                                "unknown control record at offset {}",
                                record.offset
                            )));
                        }
                    }
                    continue;
                }
                let committed = CommittedRecord {
                    producer_id: record.producer_id,
                    partition,
                    offset: record.offset,
                    timestamp: record.timestamp,
                    key: record.key,
                    value: record.value,
                    headers: record
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.as_str().to_string(), v))
                        .collect(),
                };
                if record.transactional {
                    pending
                        .entry(record.producer_id)
                        .or_default()
                        .push(committed);
                } else {
                    delivered.push(committed);
                }
            }
        }
        if offset >= high_watermark {
            break;
        }
        // a loaded broker may answer a fetch with nothing: ask again, but
        // never stop short of the high watermark in silence (regression:
        // the checker read part of a topic and reported wrong counts)
        empty = if progressed { 0 } else { empty + 1 };
        if empty >= EMPTY_FETCHES {
            return Err(at(format!(
                "{EMPTY_FETCHES} fetches at offset {offset} brought no record, \
                 though the high watermark is {high_watermark}"
            )));
        }
        if empty > 0 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    // the last stable offset: the first record of a transaction still open
    let stable = pending
        .values()
        .filter_map(|records| records.first().map(|r| r.offset))
        .min();
    log.open += pending.values().map(Vec::len).sum::<usize>();
    delivered.sort_by_key(|r| r.offset);
    if let Some(stable) = stable {
        let held = delivered.iter().filter(|r| r.offset >= stable).count();
        log.open += held;
        delivered.retain(|r| r.offset < stable);
    }
    log.records.extend(delivered);
    Ok(())
}

/// Splits the next whole record batch off `bytes` (a fetch may end in a partial one).
fn whole_batch(bytes: &mut Bytes) -> Option<Bytes> {
    if bytes.len() < 12 {
        return None;
    }
    let length = i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let total = 12 + usize::try_from(length).ok()?;
    if bytes.len() < total {
        return None;
    }
    let batch = bytes.split_to(total);
    Some(batch)
}

/// Ends the transaction of `transactional_id` that producer `producer_id` at
/// `epoch` left open: commits it when `commit`, else aborts it. Returns
/// `Ok(false)` when the broker has no such open transaction (it was ended
/// already, or a newer producer took the id over).
pub fn end_transaction(
    brokers: &str,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> Result<bool, KafkaError> {
    let txn_error = |message: String| KafkaError::Transaction {
        id: transactional_id.to_string(),
        message,
    };
    let mut bootstrap = Connection::bootstrap(brokers)?;
    let found = bootstrap.call(
        &FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(transactional_id.to_string()))
            .with_key_type(1),
        FIND_COORDINATOR,
    )?;
    if found.error_code != 0 {
        return Err(txn_error(format!(
            "no transaction coordinator: {}",
            describe_error(found.error_code)
        )));
    }
    let addr = format!("{}:{}", found.host.as_str(), found.port);
    let mut coordinator = if addr == bootstrap.addr {
        bootstrap
    } else {
        Connection::connect(&addr)?
    };
    let response = coordinator.call(
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_committed(commit),
        END_TXN,
    )?;
    match response.error_code {
        0 => Ok(true),
        // fenced, unknown or ended already: nothing of this producer is open
        47 | 49 | 59 | 90 | INVALID_TXN_STATE => Ok(false),
        code => Err(txn_error(format!(
            "ending the transaction of producer {producer_id} epoch {epoch}: {}",
            describe_error(code)
        ))),
    }
}

/// A Kafka error code with its name, for messages.
fn describe_error(code: i16) -> String {
    let name = match code {
        UNKNOWN_TOPIC => "UNKNOWN_TOPIC_OR_PARTITION",
        6 => "NOT_LEADER_OR_FOLLOWER",
        15 => "COORDINATOR_NOT_AVAILABLE",
        47 => "INVALID_PRODUCER_EPOCH",
        INVALID_TXN_STATE => "INVALID_TXN_STATE",
        49 => "INVALID_PRODUCER_ID_MAPPING",
        59 => "UNKNOWN_PRODUCER_ID",
        90 => "PRODUCER_FENCED",
        _ => "",
    };
    if name.is_empty() {
        format!("Kafka error code {code}")
    } else {
        format!("{name} (Kafka error code {code})")
    }
}

/// Rejects a topic the broker does not know, naming it.
pub fn require_topic(brokers: &str, topic: &str) -> Result<usize, KafkaError> {
    let mut connection = Connection::bootstrap(brokers)?;
    partition_leaders(&mut connection, topic).map(|(leaders, _)| leaders.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_batch_is_left_for_the_next_fetch() {
        let mut batch = vec![0u8; 8];
        batch.extend_from_slice(&4i32.to_be_bytes());
        batch.extend_from_slice(&[1, 2, 3, 4]);
        let mut bytes = Bytes::from([batch.clone(), batch[..10].to_vec()].concat());
        assert_eq!(whole_batch(&mut bytes).map(|b| b.len()), Some(16));
        assert_eq!(whole_batch(&mut bytes), None);
        assert_eq!(bytes.len(), 10);
    }
}

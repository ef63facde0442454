//! Dead letters: a record that does not parse goes, unchanged, to a
//! dead-letter topic, with the error and its source position in headers
//! (`weir stream yahoo`, and the Kafka tables of `weir sql` that name one).

use super::producer::Produce;
use super::source::KafkaRecord;

/// The metric (in `StreamSummary::metrics`) of records sent to a
/// dead-letter topic.
pub const DEAD_LETTERS: &str = "dead letters";

/// Header key of a dead letter's error.
pub const ERROR_HEADER: &str = "weir.error";
/// Header key of a dead letter's source position (`topic/partition@offset`).
pub const SOURCE_HEADER: &str = "weir.source";

/// The dead letter of `record` (read from `topic`): value and key
/// unchanged, headers kept, plus the error and the source position.
pub fn dead_letter(dead_topic: &str, topic: &str, record: KafkaRecord, error: &str) -> Produce {
    let position = record.position(topic);
    let mut headers = record.headers;
    headers.push((ERROR_HEADER.to_string(), error.as_bytes().to_vec()));
    headers.push((SOURCE_HEADER.to_string(), position.into_bytes()));
    Produce {
        topic: dead_topic.to_string(),
        key: record.key,
        value: Some(record.value),
        headers,
        timestamp: Some(record.timestamp),
        partition: None,
    }
}

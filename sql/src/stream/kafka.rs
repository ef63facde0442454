//! A Kafka table's rows: `weir-streaming`'s Kafka source (offsets in every
//! checkpoint, committed epochs replayed with the same cut, each partition's
//! watermark, idle partitions not holding event time back), its records'
//! JSON values decoded into the table's columns by Arrow's JSON decoder.
//! The event-time column comes from the record's event time as the source
//! reads it for its watermark (the JSON field of its name, in milliseconds,
//! a number or a decimal string; or the record's Kafka timestamp), so rows
//! and watermarks agree. A value that is not a JSON object of the table's
//! columns goes to the table's dead-letter topic, unchanged, with the
//! reason and its `topic/partition@offset` in headers (as in `weir stream
//! yahoo`; exactly once, by its own transactional sink); without one, it
//! fails the job, naming the record's position.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{Schema, SchemaRef};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Scope;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use weir_progress::recovery::Recovery;
use weir_progress::store::CheckpointStore;
use weir_runtime::JobError;
use weir_streaming::kafka::dead_letter::{DEAD_LETTERS, dead_letter};
use weir_streaming::kafka::producer::Produce;
use weir_streaming::kafka::sink::{Guarantee, KafkaSink, WriteKafka};
use weir_streaming::kafka::source::{
    BROKER_TIMEOUT, EventTime, KafkaRecord, KafkaSource, ReadKafka,
};
use weir_streaming::run::StreamCtx;

use super::Epochs;
use super::source::Source;
use crate::batch::Batch;
use crate::catalog::{KafkaTable, Metadata, Table};
use crate::error::{Result, SqlError};
use crate::exec::fail;

/// Reads this worker's partitions of `kafka` (the topic of `table`), its
/// columns `projection`, in `epochs` (with their `stop_when_idle`, the
/// stream ends once no record has come for that long).
pub(crate) fn kafka<'s>(
    scope: Scope<'s, u64>,
    name: &str,
    (table, kafka): (&Table, &KafkaTable),
    projection: Vec<usize>,
    epochs: Epochs,
    job: &StreamCtx,
) -> Option<Source<'s>> {
    let source = KafkaSource {
        brokers: kafka.brokers.clone(),
        topic: kafka.topic.clone(),
        interval: epochs.interval,
        stop_when_idle: epochs.stop_when_idle,
        event_time: match &kafka.event_time {
            Some(column) => EventTime::JsonField(column.clone()),
            None => EventTime::RecordTimestamp,
        },
        out_of_orderness_ms: kafka.watermark_delay_ms,
        idle_epochs: (kafka.idle_timeout_ms / epochs.interval.as_millis().max(1) as u64).max(1),
        broker_timeout: epochs.broker_timeout,
    };
    let partitions = match source.partitions() {
        Ok(p) => p,
        Err(e) => {
            job.source.failure.set(e);
            return None;
        }
    };
    let streams = scope.read_kafka(
        name,
        &source,
        partitions,
        &job.recovery,
        &job.checkpoints,
        &job.source,
    );
    let decoding = Decoding::new(table, kafka, projection);
    let failure = job.source.failure.clone();
    let decoded = streams
        .records
        .unary::<CapacityContainerBuilder<Vec<Decoded>>, _, _, _>(
            Pipeline,
            "KafkaJson",
            move |_, _| {
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        for records in data {
                            if failure.is_set() {
                                return;
                            }
                            match decoding.decode(records) {
                                Ok(decoded) => output.session(&cap).give(decoded),
                                Err(e) => fail(&failure, e),
                            }
                        }
                    })
                }
            },
        );
    let rows = decoded.clone().map(|(rows, _)| Batch(rows));
    let mut acks = streams.acks;
    let mut commit = None;
    if let Some(dead) = DeadLetters::of(table, kafka) {
        let letters = decoded.flat_map(|(_, letters)| letters);
        let sink = KafkaSink {
            committed_before: job.recovery.committed_before(),
            broker_timeout: epochs.broker_timeout,
            ..dead.sink
        };
        let counted = job.metrics.counter(DEAD_LETTERS);
        let (sink_acks, written) =
            letters.write_kafka(&dead.name, &sink, &job.checkpoints, &job.source, &counted);
        acks = acks.concat(sink_acks);
        commit = Some(written);
    }
    Some(Source {
        rows,
        acks,
        watermarks: streams.watermarks,
        commit,
    })
}

/// A batch of records decoded: the rows, and the dead letters of the
/// records that did not decode.
type Decoded = (RecordBatch, Vec<Produce>);

/// Where a Kafka table's records that do not decode go: the exactly-once
/// sink of its dead-letter topic (`OPTIONS ('dead_letter_topic' 'T')`),
/// named in checkpoints after the table.
pub(crate) struct DeadLetters {
    pub(crate) name: String,
    pub(crate) topic: String,
    pub(crate) sink: KafkaSink,
}

impl DeadLetters {
    /// The dead letters of `table`, if it names a topic for them.
    pub(crate) fn of(table: &Table, kafka: &KafkaTable) -> Option<DeadLetters> {
        let topic = kafka.dead_letter_topic.clone()?;
        Some(DeadLetters {
            name: format!("dead letters of {}", table.name),
            topic,
            sink: KafkaSink {
                brokers: kafka.brokers.clone(),
                transactional_prefix: format!("{}-dead", kafka.transactional_id),
                guarantee: Guarantee::ExactlyOnce,
                committed_before: 0,
                broker_timeout: BROKER_TIMEOUT,
            },
        })
    }

    /// Before a run of `workers` workers: the topic must exist, and what
    /// crashed runs left in it is settled (see `Insert::prepare`).
    pub(crate) fn prepare(
        &self,
        store: &CheckpointStore,
        recovery: &Recovery,
        waited: (usize, Duration),
    ) -> std::result::Result<(), JobError> {
        super::insert::prepare(
            &self.sink,
            (&self.topic, &self.name),
            store,
            recovery,
            waited,
        )
    }
}

/// How records become rows of the table.
struct Decoding {
    topic: String,
    /// The columns decoded from JSON (all but the event-time and metadata
    /// ones).
    json: SchemaRef,
    /// The table's columns, each from JSON, event time or metadata.
    schema: SchemaRef,
    columns: Vec<From>,
    projection: Vec<usize>,
    /// Where records that do not decode go, if anywhere.
    dead: Option<String>,
}

/// Where a column of a Kafka table comes from.
#[derive(Clone, Copy)]
enum From {
    Json,
    EventTime,
    Metadata(Metadata),
}

impl Decoding {
    fn new(table: &Table, kafka: &KafkaTable, projection: Vec<usize>) -> Decoding {
        let columns: Vec<From> = table
            .schema
            .fields()
            .iter()
            .map(|f| {
                let name = f.name();
                match kafka.metadata.iter().find(|(_, column)| column == name) {
                    Some((what, _)) => From::Metadata(*what),
                    None if kafka.event_time.as_ref() == Some(name) => From::EventTime,
                    None => From::Json,
                }
            })
            .collect();
        let json = table
            .schema
            .fields()
            .iter()
            .zip(&columns)
            .filter(|(_, source)| matches!(source, From::Json))
            .map(|(f, _)| Arc::clone(f))
            .collect::<Vec<_>>();
        Decoding {
            topic: kafka.topic.clone(),
            json: Arc::new(Schema::new(json)),
            schema: Arc::clone(&table.schema),
            columns,
            projection,
            dead: kafka.dead_letter_topic.clone(),
        }
    }

    /// The rows of `records`, projected, and the dead letters of those that
    /// do not decode (with a dead-letter topic; without one, the first such
    /// record fails the job).
    fn decode(&self, records: &[KafkaRecord]) -> Result<(RecordBatch, Vec<Produce>)> {
        if let Ok(decoded) = self.json_rows(records) {
            return Ok((self.rows(decoded, records)?, Vec::new()));
        }
        // find the records at fault, one at a time
        let (mut good, mut dead) = (Vec::new(), Vec::new());
        for record in records {
            match (self.json_rows(std::slice::from_ref(record)), &self.dead) {
                (Ok(_), _) => good.push(record.clone()),
                (Err(e), None) => return Err(self.bad(record, e)),
                (Err(e), Some(topic)) => {
                    let error = format!("not a JSON object of the table's columns: {e}");
                    dead.push(dead_letter(topic, &self.topic, record.clone(), &error));
                }
            }
        }
        Ok((self.rows(self.json_rows(&good)?, &good)?, dead))
    }

    /// The table's rows of `records`, whose JSON columns are `decoded`,
    /// projected.
    fn rows(&self, decoded: RecordBatch, records: &[KafkaRecord]) -> Result<RecordBatch> {
        let mut json = decoded.columns().iter();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (field, source) in self.schema.fields().iter().zip(&self.columns) {
            columns.push(match source {
                From::Json => Arc::clone(
                    json.next()
                        .ok_or_else(|| SqlError::Plan("fewer JSON columns than declared".into()))?,
                ),
                From::EventTime => Arc::new(
                    records
                        .iter()
                        .map(|r| r.event_time.and_then(|t| i64::try_from(t).ok()))
                        .collect::<TimestampMillisecondArray>(),
                ),
                From::Metadata(what) => what.column(records, field.data_type())?,
            });
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        Ok(batch.project(&self.projection)?)
    }

    /// The JSON columns of `records`.
    fn json_rows(&self, records: &[KafkaRecord]) -> Result<RecordBatch> {
        json_objects(
            &self.json,
            records.iter().map(|r| r.value.as_slice()),
            records.len(),
        )
    }

    /// The error of a record whose value does not decode.
    fn bad(&self, record: &KafkaRecord, e: SqlError) -> SqlError {
        SqlError::Job(JobError::Io {
            path: record.position(&self.topic),
            message: format!("not a JSON object of the table's columns: {e}"),
        })
    }
}

/// The rows of the JSON objects in `values` (each decoded whole, as if a
/// line of its own), with `schema`'s columns: an error unless they are
/// `rows` objects and nothing else.
pub(crate) fn json_objects<'a>(
    schema: &SchemaRef,
    values: impl IntoIterator<Item = &'a [u8]>,
    rows: usize,
) -> Result<RecordBatch> {
    let mut decoder = arrow::json::ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(rows.max(1))
        .build_decoder()?;
    for value in values {
        for mut bytes in [value, b"\n"] {
            // the decoder takes no more once it holds `rows` objects
            while !bytes.is_empty() {
                let decoded = decoder.decode(bytes)?;
                if decoded == 0 {
                    return Err(SqlError::Plan(format!(
                        "more than {rows} JSON values (a value that is not one JSON object)"
                    )));
                }
                bytes = &bytes[decoded..];
            }
        }
    }
    let batch = match decoder.flush()? {
        Some(batch) => batch,
        None => RecordBatch::new_empty(Arc::clone(schema)),
    };
    if batch.num_rows() != rows {
        return Err(SqlError::Plan(format!(
            "{} rows of {rows} values (a value that is not one JSON object)",
            batch.num_rows()
        )));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field};

    use super::*;

    /// Regression: a value of two objects filled the decoder, and the
    /// next value was dropped unseen, so the count still matched.
    #[test]
    fn values_of_other_than_one_object_each_are_refused() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let rows = |values: &[&str], rows| {
            json_objects(&schema, values.iter().map(|v| v.as_bytes()), rows)
                .map(|batch| batch.num_rows())
                .map_err(|e| e.to_string())
        };
        assert_eq!(rows(&[r#"{"a": 1}"#, r#" {"a": 2} "#], 2), Ok(2));
        assert_eq!(
            rows(&["{\"a\": 1}\n\n{\"a\": 2}\n"], 2),
            Ok(2),
            "one text of lines"
        );
        for (values, says) in [
            (&[r#"{"a": 1} {"a": 2}"#, r#"{"a": 3}"#][..], "more than 2"),
            (&[r#"{"a": 1}"#, ""], "1 rows of 2"),
            (&[r#"{"a": 1"#, r#"{"a": 2}"#], "parsing object"),
        ] {
            let err = rows(values, 2).unwrap_err();
            assert!(err.contains(says), "{values:?}: {err}");
        }
    }
}

//! A Kafka table's rows: `weir-streaming`'s Kafka source (offsets in every
//! checkpoint, committed epochs replayed with the same cut, each partition's
//! watermark, idle partitions not holding event time back), its records'
//! JSON values decoded into the table's columns by Arrow's JSON decoder.
//! The event-time column comes from the record's event time as the source
//! reads it for its watermark (the JSON field of its name, in milliseconds,
//! a number or a decimal string; or the record's Kafka timestamp), so rows
//! and watermarks agree. A value that is not a JSON object of the table's
//! columns fails the job, naming the record's `topic/partition@offset`.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{Schema, SchemaRef};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Scope;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use weir_runtime::JobError;
use weir_streaming::kafka::source::{EventTime, KafkaRecord, KafkaSource, ReadKafka};
use weir_streaming::run::StreamCtx;

use super::Epochs;
use super::source::Source;
use crate::batch::Batch;
use crate::catalog::{KafkaTable, Table};
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
    let rows = streams
        .records
        .unary::<CapacityContainerBuilder<Vec<Batch>>, _, _, _>(
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
                                Ok(batch) => output.session(&cap).give(Batch(batch)),
                                Err(e) => fail(&failure, e),
                            }
                        }
                    })
                }
            },
        );
    Some(Source {
        rows,
        acks: streams.acks,
        watermarks: streams.watermarks,
    })
}

/// How records become rows of the table.
struct Decoding {
    topic: String,
    /// The columns decoded from JSON (all but the event-time one).
    json: SchemaRef,
    /// The table's columns.
    schema: SchemaRef,
    /// Where the event-time column is among them.
    time: Option<usize>,
    projection: Vec<usize>,
}

impl Decoding {
    fn new(table: &Table, kafka: &KafkaTable, projection: Vec<usize>) -> Decoding {
        let time = kafka
            .event_time
            .as_ref()
            .and_then(|c| table.schema.index_of(c).ok());
        let json = table
            .schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != time)
            .map(|(_, f)| Arc::clone(f))
            .collect::<Vec<_>>();
        Decoding {
            topic: kafka.topic.clone(),
            json: Arc::new(Schema::new(json)),
            schema: Arc::clone(&table.schema),
            time,
            projection,
        }
    }

    /// The rows of `records`, projected.
    fn decode(&self, records: &[KafkaRecord]) -> Result<RecordBatch> {
        let decoded = match self.json_rows(records) {
            Ok(batch) => batch,
            // find the record at fault, one at a time
            Err(e) => {
                for record in records {
                    if let Err(e) = self.json_rows(std::slice::from_ref(record)) {
                        return Err(self.bad(record, e));
                    }
                }
                return Err(e);
            }
        };
        let mut columns: Vec<ArrayRef> = decoded.columns().to_vec();
        if let Some(at) = self.time {
            let times: TimestampMillisecondArray = records
                .iter()
                .map(|r| r.event_time.and_then(|t| i64::try_from(t).ok()))
                .collect();
            columns.insert(at, Arc::new(times));
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        Ok(batch.project(&self.projection)?)
    }

    /// The JSON columns of `records`.
    fn json_rows(&self, records: &[KafkaRecord]) -> Result<RecordBatch> {
        let mut decoder = arrow::json::ReaderBuilder::new(Arc::clone(&self.json))
            .with_batch_size(records.len().max(1))
            .build_decoder()?;
        for record in records {
            decoder.decode(&record.value)?;
            decoder.decode(b"\n")?;
        }
        let batch = match decoder.flush()? {
            Some(batch) => batch,
            None => RecordBatch::new_empty(Arc::clone(&self.json)),
        };
        if batch.num_rows() != records.len() {
            return Err(SqlError::Plan(format!(
                "{} rows of {} records (a value that is not one JSON object)",
                batch.num_rows(),
                records.len()
            )));
        }
        Ok(batch)
    }

    /// The error of a record whose value does not decode.
    fn bad(&self, record: &KafkaRecord, e: SqlError) -> SqlError {
        SqlError::Job(JobError::Io {
            path: record.position(&self.topic),
            message: format!("not a JSON object of the table's columns: {e}"),
        })
    }
}

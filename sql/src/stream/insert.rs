//! `INSERT INTO` a Kafka table: each row becomes a record whose value is a
//! JSON object of the table's columns, written by `weir-streaming`'s
//! transactional sink (each worker's records of an epoch in a transaction,
//! committed once a checkpoint covers the epoch; a restart settles what a
//! crash left open), exactly as `weir stream yahoo` writes its counts; or,
//! if the table says so, at least once (an idempotent producer, without
//! transactions: a restored query may write records again).

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use timely::dataflow::StreamVec;
use timely::dataflow::operators::vec::Map;
use weir_progress::checkpoint::Ack;
use weir_progress::recovery::Recovery;
use weir_progress::store::CheckpointStore;
use weir_runtime::JobError;
use weir_streaming::kafka::producer::Produce;
use weir_streaming::kafka::sink::{KafkaSink, WriteKafka};
use weir_streaming::kafka::sink_recovery::recover_transactions;
use weir_streaming::kafka::source::BROKER_TIMEOUT;
use weir_streaming::run::{Commit, StreamCtx};

use crate::batch::Batch;
use crate::catalog::{Format, KafkaTable, Table};
use crate::error::{Result, SqlError};
use crate::exec::fail;

/// The name of the sink's participant and transactions in checkpoints.
const SINK: &str = "sink";

/// The Kafka table a streaming query inserts into.
pub(crate) struct Insert {
    topic: String,
    /// Its columns: the query's rows are written under their names.
    schema: SchemaRef,
    sink: KafkaSink,
}

impl Insert {
    /// Inserting rows of `columns` columns into `table`, if it takes them.
    pub(crate) fn new(table: &Table, columns: usize) -> Result<Insert> {
        let Format::Kafka(kafka) = &table.format else {
            return Err(SqlError::Unsupported(format!(
                "INSERT INTO {}: a streaming query inserts into Kafka tables \
                 (write to a directory with --output)",
                table.name
            )));
        };
        if table.schema.fields().len() != columns {
            return Err(SqlError::Plan(format!(
                "INSERT INTO {}: {} columns, the query gives {columns}",
                table.name,
                table.schema.fields().len()
            )));
        }
        Ok(Insert {
            topic: kafka.topic.clone(),
            schema: Arc::clone(&table.schema),
            sink: sink_of(kafka),
        })
    }

    /// The table's topic.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// Before a run of `workers` workers: the topic must exist, and what
    /// crashed runs left in Kafka is settled (on worker 0, before any worker
    /// writes), waiting up to `broker_timeout` on an unreachable broker.
    pub(crate) fn prepare(
        &self,
        store: &CheckpointStore,
        recovery: &Recovery,
        waited: (usize, Duration),
    ) -> std::result::Result<(), JobError> {
        prepare(&self.sink, (&self.topic, SINK), store, recovery, waited)
    }

    /// Writes `rows` (waiting up to `broker_timeout` on an unreachable
    /// broker); returns the sink's acks and its commit step.
    pub(crate) fn write<'s>(
        &self,
        rows: StreamVec<'s, u64, Batch>,
        ctx: &StreamCtx,
        broker_timeout: Duration,
    ) -> (StreamVec<'s, u64, Ack>, Box<dyn Commit<'s> + 's>) {
        let failure = ctx.source.failure.clone();
        let (topic, schema) = (self.topic.clone(), Arc::clone(&self.schema));
        let records = rows.flat_map(move |Batch(batch)| {
            records(&batch, &schema, &topic).unwrap_or_else(|e| {
                fail(&failure, e);
                Vec::new()
            })
        });
        let sink = KafkaSink {
            committed_before: ctx.recovery.committed_before(),
            broker_timeout,
            ..self.sink.clone()
        };
        records.write_kafka(SINK, &sink, &ctx.checkpoints, &ctx.source, &ctx.records_out)
    }
}

/// Before a run of `workers` workers, for `sink`, writing to `topic` under
/// the name `name` in checkpoints: the topic must exist, and what crashed
/// runs left in Kafka is settled (on worker 0, before any worker writes),
/// waiting up to `broker_timeout` on an unreachable broker.
pub(crate) fn prepare(
    sink: &KafkaSink,
    (topic, name): (&str, &str),
    store: &CheckpointStore,
    recovery: &Recovery,
    (workers, broker_timeout): (usize, Duration),
) -> std::result::Result<(), JobError> {
    let sink = KafkaSink {
        broker_timeout,
        ..sink.clone()
    };
    sink.require_topic(topic)?;
    recover_transactions(store, recovery, name, &sink, workers)
}

/// The exactly-once sink of `kafka`.
fn sink_of(kafka: &KafkaTable) -> KafkaSink {
    KafkaSink {
        brokers: kafka.brokers.clone(),
        transactional_prefix: kafka.transactional_id.clone(),
        guarantee: kafka.guarantee,
        committed_before: 0,
        broker_timeout: BROKER_TIMEOUT,
    }
}

/// The records of `batch`'s rows: JSON objects of `schema`'s columns.
fn records(batch: &RecordBatch, schema: &SchemaRef, topic: &str) -> Result<Vec<Produce>> {
    let named = RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())?;
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    writer.write(&named)?;
    writer.finish()?;
    let text = writer.into_inner();
    Ok(text
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| Produce::value(topic, line))
        .collect())
}

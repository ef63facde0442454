//! `INSERT INTO` a Kafka table: each row becomes a record whose value is a
//! JSON object of the table's columns, written by `weir-streaming`'s
//! transactional sink (each worker's records of an epoch in a transaction,
//! committed once a checkpoint covers the epoch; a restart settles what a
//! crash left open), exactly as `weir stream yahoo` writes its counts; or,
//! if the table says so, at least once (an idempotent producer, without
//! transactions: a restored query may write records again). A Kafka table
//! with a `PRIMARY KEY` takes updates too, as upserts (see [`super::encode`]).
//!
//! `INSERT INTO` an unbounded JSON table of files: each row becomes a line
//! of JSON, written by the committing directory sink (each worker's lines
//! of an epoch in a file `epoch-<epoch>-w<worker>.json`, visible once a
//! checkpoint covers the epoch), which a query reading the table takes as
//! files arriving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::StreamVec;
use timely::dataflow::operators::vec::Map;
use weir_progress::checkpoint::Ack;
use weir_progress::recovery::Recovery;
use weir_progress::store::CheckpointStore;
use weir_runtime::JobError;
use weir_streaming::dir_sink::{CommitFiles, DirSink, recover_output};
use weir_streaming::kafka::sink::{KafkaSink, WriteKafka};
use weir_streaming::kafka::sink_recovery::recover_transactions;
use weir_streaming::kafka::source::BROKER_TIMEOUT;
use weir_streaming::run::{Commit, StreamCtx};

use super::encode::Encoding;
use crate::batch::Batch;
use crate::catalog::{Format, KafkaTable, Table};
use crate::error::{Result, SqlError};
use crate::exec::fail;

/// The name of the sink's participant and transactions in checkpoints.
const SINK: &str = "sink";
/// The name of the sink of late rows in checkpoints.
const LATE: &str = "late rows";

/// The table a streaming query inserts into.
pub(crate) struct Insert {
    /// Its name.
    table: String,
    rows: Rows,
    encoding: Encoding,
    target: Target,
}

/// Which rows an [`Insert`] writes.
enum Rows {
    /// The query's, under the table's column names.
    Query,
    /// Late rows, each under its own columns.
    Late,
}

impl Rows {
    /// The sink's name in checkpoints.
    fn name(&self) -> &'static str {
        match self {
            Rows::Query => SINK,
            Rows::Late => LATE,
        }
    }
}

/// Where the rows of an [`Insert`] go.
enum Target {
    /// Records of a Kafka topic.
    Kafka { topic: String, sink: KafkaSink },
    /// JSON lines in files of a directory.
    Dir(PathBuf),
}

impl Insert {
    /// Inserting rows of `columns` columns into `table`, if it takes them;
    /// with `None`, late rows, each written with its own columns.
    pub(crate) fn new(table: &Table, columns: Option<usize>) -> Result<Insert> {
        let target = match (&table.format, &table.stream) {
            (Format::Kafka(kafka), _) => Target::Kafka {
                topic: kafka.topic.clone(),
                sink: sink_of(kafka),
            },
            (Format::Json, Some(stream)) => Target::Dir(stream.dir.clone()),
            _ => {
                let what = match columns {
                    Some(_) => format!("INSERT INTO {}", table.name),
                    None => format!("{} = '{}'", crate::settings::LATE_ROWS, table.name),
                };
                return Err(SqlError::Unsupported(format!(
                    "{what}: a streaming query writes into Kafka tables and \
                     unbounded JSON tables of a directory (or CSV with --output)"
                )));
            }
        };
        let Some(columns) = columns else {
            return Ok(Insert {
                table: table.name.clone(),
                rows: Rows::Late,
                encoding: Encoding::default(),
                target,
            });
        };
        if table.schema.fields().len() != columns {
            return Err(SqlError::Plan(format!(
                "INSERT INTO {}: {} columns, the query gives {columns}",
                table.name,
                table.schema.fields().len()
            )));
        }
        let key = match &table.format {
            Format::Kafka(kafka) => kafka.primary_key.clone(),
            _ => None,
        };
        Ok(Insert {
            table: table.name.clone(),
            rows: Rows::Query,
            encoding: Encoding {
                schema: Some(Arc::clone(&table.schema)),
                key,
                updates: false,
            },
            target,
        })
    }

    /// Takes the query's rows as updates, whose unique key (the group key
    /// of its aggregation) is `unique`, if its table takes them: a Kafka
    /// table whose primary key is that key upserts them.
    pub(crate) fn take_updates(&mut self, unique: Option<Vec<usize>>) -> Result<()> {
        let names = |columns: &[usize]| -> String {
            let schema = self.encoding.schema.as_ref();
            columns
                .iter()
                .map(|&c| schema.map_or(format!("#{c}"), |s| s.field(c).name().clone()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let suggest = match &unique {
            Some(unique) => format!("PRIMARY KEY ({})", names(unique)),
            None => "a PRIMARY KEY of the columns of its GROUP BY".to_string(),
        };
        let refuse = |why: String| {
            Err(SqlError::Unsupported(format!(
                "INSERT INTO {}: the query's rows are updates; {why}",
                self.table
            )))
        };
        if let Target::Dir(_) = self.target {
            return refuse(format!(
                "a directory of files cannot take rows back (as Flink's filesystem \
                 sink): insert them into a Kafka table with {suggest}"
            ));
        }
        let Some(key) = &self.encoding.key else {
            return refuse(format!(
                "a Kafka table takes them as upserts under its primary key (as Flink's \
                 upsert-kafka tables): declare {suggest}"
            ));
        };
        let mut sorted = key.clone();
        sorted.sort_unstable();
        if unique.as_ref() != Some(&sorted) {
            return refuse(format!(
                "its primary key ({}) must be the key of the query's rows ({suggest}), or \
                 an upsert would not replace the row it updates",
                names(key)
            ));
        }
        self.encoding.updates = true;
        Ok(())
    }

    /// Where its rows go: the Kafka topic, or the directory.
    pub(crate) fn target(&self) -> String {
        match &self.target {
            Target::Kafka { topic, .. } => format!("Kafka topic {topic}"),
            Target::Dir(dir) => format!("directory {}", dir.display()),
        }
    }

    /// Whether `other` writes where this does: the same topic of the same
    /// brokers, or the same directory (where their files would collide).
    pub(crate) fn same_target(&self, other: &Insert) -> bool {
        match (&self.target, &other.target) {
            (Target::Kafka { topic, sink }, Target::Kafka { topic: t, sink: s }) => {
                topic == t && sink.brokers == s.brokers
            }
            (Target::Dir(a), Target::Dir(b)) => {
                a == b
                    || a.canonicalize()
                        .ok()
                        .is_some_and(|a| b.canonicalize().ok() == Some(a))
            }
            _ => false,
        }
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
        match &self.target {
            Target::Kafka { topic, sink } => {
                prepare(sink, (topic, self.rows.name()), store, recovery, waited)
            }
            Target::Dir(dir) => recover_output(
                dir,
                recovery.committed_before(),
                recovery.manifest.is_none(),
            ),
        }
    }

    /// What counts the rows it writes: the query's rows out, or its late
    /// rows written.
    fn counted(&self, ctx: &StreamCtx) -> weir_runtime::exec::RecordCounter {
        match self.rows {
            Rows::Query => ctx.records_out.clone(),
            Rows::Late => ctx.metrics.counter("late rows written"),
        }
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
        let encoding = self.encoding.clone();
        let committed_before = ctx.recovery.committed_before();
        match &self.target {
            Target::Kafka { topic, sink } => {
                let topic = topic.clone();
                let records = rows.flat_map(move |Batch(batch)| {
                    encoding.records(&topic, &batch).unwrap_or_else(|e| {
                        fail(&failure, e);
                        Vec::new()
                    })
                });
                let sink = KafkaSink {
                    committed_before,
                    broker_timeout,
                    ..sink.clone()
                };
                let counted = self.counted(ctx);
                records.write_kafka(
                    self.rows.name(),
                    &sink,
                    &ctx.checkpoints,
                    &ctx.source,
                    &counted,
                )
            }
            Target::Dir(dir) => {
                let lines = rows.flat_map(move |Batch(batch)| {
                    encoding.lines(&batch).unwrap_or_else(|e| {
                        fail(&failure, e);
                        Vec::new()
                    })
                });
                let sink = DirSink {
                    dir: dir.clone(),
                    committed_before,
                    extension: "json",
                };
                let counted = self.counted(ctx);
                let (acks, staged) = lines.commit_files(
                    self.rows.name(),
                    &sink,
                    &ctx.checkpoints,
                    &ctx.source,
                    &counted,
                );
                (acks, Box::new(staged))
            }
        }
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

//! Kafka tables: a topic's JSON records as rows, their columns declared;
//! the event-time column and the record's metadata (key, partition,
//! offset, timestamp, headers) as columns named in the options.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Array, Int64Array, ListBuilder, StringBuilder, StructBuilder,
    TimestampMillisecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use datafusion_common::Constraint;
use datafusion_expr::CreateExternalTable;
use weir_streaming::kafka::sink::Guarantee;
use weir_streaming::kafka::source::KafkaRecord;

use super::{Format, IDLE_TIMEOUT_MS, Table, event_time, millis, option};
use crate::error::{Result, SqlError};

/// A Kafka table: `LOCATION 'topic'`, `OPTIONS ('brokers' 'host:port',
/// 'event_time' 'column', 'watermark_delay_ms' 'N', 'idle_timeout_ms' 'N',
/// 'transactional_id' 'prefix', 'dead_letter_topic' 'T', 'metadata.key'
/// 'column', ..., 'sink.delivery-guarantee' 'at-least-once')`. A streaming query reads it, or inserts its rows into it
/// (as JSON objects, exactly once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaTable {
    /// Bootstrap brokers.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// The timestamp column of event time (from the JSON field of its name,
    /// milliseconds as a number or a decimal string); the record's Kafka
    /// timestamp without one.
    pub event_time: Option<String>,
    /// How far out of order events may come, in milliseconds.
    pub watermark_delay_ms: u64,
    /// A partition without records this long (milliseconds) stops holding
    /// event time back (`OPTIONS ('idle_timeout_ms' 'N')`, 5000 by default
    /// as `weir stream yahoo`'s `--idle-timeout`).
    pub idle_timeout_ms: u64,
    /// The prefix of the transactional ids of a query that inserts into it
    /// (`OPTIONS ('transactional_id' 'p')`; by default `weir-sql-<table>`).
    pub transactional_id: String,
    /// Where records that are not JSON objects of its columns go
    /// (`OPTIONS ('dead_letter_topic' 'T')`); without one, such a record
    /// fails the query.
    pub dead_letter_topic: Option<String>,
    /// How a query that inserts into it writes (`OPTIONS
    /// ('sink.delivery-guarantee' 'at-least-once')`, as Flink's Kafka
    /// connector; exactly once by default).
    pub guarantee: Guarantee,
    /// The columns that hold a record's metadata rather than a JSON field
    /// (`OPTIONS ('metadata.partition' 'column')`), as Flink's `METADATA`
    /// columns do.
    pub metadata: Vec<(Metadata, String)>,
    /// The columns of its `PRIMARY KEY`, if it declares one: a query that
    /// inserts into it writes them as each record's key (a JSON object),
    /// and its updates as upserts, as Flink's upsert-kafka tables take
    /// them (a row's last value under its key; a deleted row a tombstone).
    pub primary_key: Option<Vec<usize>>,
}

/// What of a Kafka record a metadata column holds, and of which types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metadata {
    /// The key: `VARCHAR` (UTF-8, invalid bytes replaced) or `BYTEA`; null
    /// without one.
    Key,
    /// The partition: `INT` or `BIGINT`.
    Partition,
    /// The offset: `BIGINT`.
    Offset,
    /// The record's timestamp: `TIMESTAMP(3)`.
    Timestamp,
    /// The headers, in order: `ARRAY<STRUCT<key VARCHAR, value BYTEA>>`
    /// (or `value VARCHAR`).
    Headers,
}

impl Metadata {
    const ALL: [(&'static str, Metadata); 5] = [
        ("key", Metadata::Key),
        ("partition", Metadata::Partition),
        ("offset", Metadata::Offset),
        ("timestamp", Metadata::Timestamp),
        ("headers", Metadata::Headers),
    ];

    /// Whether a column of type `t` can hold it.
    fn fits(self, t: &DataType) -> bool {
        match (self, t) {
            (Metadata::Key, t) => is_text(t) || is_bytes(t),
            (Metadata::Partition, DataType::Int32 | DataType::Int64) => true,
            (Metadata::Offset, DataType::Int64) => true,
            (Metadata::Timestamp, DataType::Timestamp(TimeUnit::Millisecond, None)) => true,
            (Metadata::Headers, DataType::List(item)) => match item.data_type() {
                DataType::Struct(fields) => {
                    fields.len() == 2
                        && is_text(fields[0].data_type())
                        && (is_text(fields[1].data_type()) || is_bytes(fields[1].data_type()))
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// Its column (of type `t`, which it fits) for `records`.
    pub fn column(self, records: &[KafkaRecord], t: &DataType) -> Result<ArrayRef> {
        Ok(cast(&self.plain(records, t)?, t)?)
    }

    /// Its column for `records` in the plain type of the kind of `t`
    /// (text as `Utf8`, bytes as `Binary`).
    fn plain(self, records: &[KafkaRecord], t: &DataType) -> Result<ArrayRef> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Ok(match (self, t) {
            (Metadata::Key, t) if is_text(t) => Arc::new(
                records
                    .iter()
                    .map(|r| r.key.as_deref().map(text))
                    .collect::<arrow::array::StringArray>(),
            ),
            (Metadata::Key, _) => Arc::new(
                records
                    .iter()
                    .map(|r| r.key.as_deref())
                    .collect::<arrow::array::BinaryArray>(),
            ),
            (Metadata::Partition, DataType::Int32) => Arc::new(Int32Array::from_iter_values(
                records.iter().map(|r| r.partition),
            )),
            (Metadata::Partition, _) => Arc::new(Int64Array::from_iter_values(
                records.iter().map(|r| i64::from(r.partition)),
            )),
            (Metadata::Offset, _) => Arc::new(Int64Array::from_iter_values(
                records.iter().map(|r| r.offset),
            )),
            (Metadata::Timestamp, _) => Arc::new(TimestampMillisecondArray::from_iter_values(
                records.iter().map(|r| r.timestamp),
            )),
            (Metadata::Headers, DataType::List(item)) => headers(records, item)?,
            (Metadata::Headers, other) => {
                return Err(SqlError::Plan(format!("headers as {other}")));
            }
        })
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

fn is_bytes(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::BinaryView | DataType::LargeBinary
    )
}

/// The headers of `records` as lists of key-value structs named as `item`'s
/// (keys `Utf8`; values `Binary`, or `Utf8` if `item`'s are text).
fn headers(records: &[KafkaRecord], item: &Arc<Field>) -> Result<ArrayRef> {
    let DataType::Struct(fields) = item.data_type() else {
        return Err(SqlError::Plan(format!(
            "headers as lists of {}",
            item.data_type()
        )));
    };
    let binary = !is_text(fields[1].data_type());
    let plain = Fields::from(vec![
        Field::new(fields[0].name(), DataType::Utf8, true),
        match binary {
            true => Field::new(fields[1].name(), DataType::Binary, true),
            false => Field::new(fields[1].name(), DataType::Utf8, true),
        },
    ]);
    let values = StructBuilder::from_fields(plain.clone(), 0);
    let item = Field::new(item.name(), DataType::Struct(plain), true);
    let mut lists = ListBuilder::new(values).with_field(Arc::new(item));
    for record in records {
        let entries = lists.values();
        for (key, value) in &record.headers {
            if let Some(keys) = entries.field_builder::<StringBuilder>(0) {
                keys.append_value(key);
            }
            match binary {
                true => {
                    if let Some(values) = entries.field_builder::<BinaryBuilder>(1) {
                        values.append_value(value);
                    }
                }
                false => {
                    if let Some(values) = entries.field_builder::<StringBuilder>(1) {
                        values.append_value(String::from_utf8_lossy(value));
                    }
                }
            }
            entries.append(true);
        }
        lists.append(true);
    }
    Ok(Arc::new(lists.finish()))
}

/// A table of a Kafka topic's JSON records (see [`KafkaTable`]): its
/// columns declared, the event-time one a timestamp in milliseconds;
/// only `UNBOUNDED` (a topic has no end).
pub(super) fn table(name: &str, cmd: &CreateExternalTable) -> Result<Table> {
    let plan = |message: String| SqlError::Plan(format!("table {name}: {message}"));
    let [topic] = cmd.locations.as_slice() else {
        return Err(plan("LOCATION names one topic".into()));
    };
    if !cmd.unbounded {
        return Err(plan(
            "a Kafka topic has no end: CREATE UNBOUNDED EXTERNAL TABLE".into(),
        ));
    }
    if cmd.schema.fields().is_empty() {
        return Err(plan("a Kafka table declares its columns".into()));
    }
    let brokers = option(cmd, "brokers")
        .ok_or_else(|| plan("OPTIONS ('brokers' 'host:port') is missing".into()))?;
    let schema: Arc<Schema> = Arc::new(cmd.schema.as_arrow().clone());
    let event_time = event_time(cmd, &schema).map_err(plan)?;
    let mut metadata = Vec::new();
    for (what, kind) in Metadata::ALL {
        let key = format!("metadata.{what}");
        let Some(column) = option(cmd, &key) else {
            continue;
        };
        let field = schema
            .field_with_name(column)
            .map_err(|_| plan(format!("{key} '{column}' is not one of its columns")))?;
        if !kind.fits(field.data_type()) || event_time.as_ref() == Some(column) {
            return Err(plan(format!(
                "{key} '{column}' is {}, which cannot hold a record's {what} (see \
                 the README's Kafka tables)",
                field.data_type()
            )));
        }
        if metadata.iter().any(|(_, c)| c == column) {
            return Err(plan(format!(
                "column '{column}' holds two of a record's metadata"
            )));
        }
        metadata.push((kind, column.clone()));
    }
    let guarantee = match option(cmd, "sink.delivery-guarantee") {
        Some(g) => g
            .parse::<Guarantee>()
            .map_err(|e| plan(format!("option 'sink.delivery-guarantee': {e}")))?,
        None => Guarantee::ExactlyOnce,
    };
    let watermark_delay_ms = millis(cmd, "watermark_delay_ms", 0).map_err(plan)?;
    let idle_timeout_ms = millis(cmd, "idle_timeout_ms", IDLE_TIMEOUT_MS).map_err(plan)?;
    Ok(Table {
        name: name.to_string(),
        format: Format::Kafka(Arc::new(KafkaTable {
            brokers: brokers.clone(),
            topic: topic.clone(),
            event_time,
            watermark_delay_ms,
            idle_timeout_ms,
            transactional_id: option(cmd, "transactional_id")
                .cloned()
                .unwrap_or_else(|| format!("weir-sql-{name}")),
            dead_letter_topic: option(cmd, "dead_letter_topic").cloned(),
            guarantee,
            metadata,
            primary_key: cmd.constraints.iter().find_map(|c| match c {
                Constraint::PrimaryKey(columns) => Some(columns.clone()),
                Constraint::Unique(_) => None,
            }),
        })),
        files: Vec::new(),
        schema,
        unbounded: true,
        stream: None,
    })
}

//! How `INSERT INTO` writes its rows: as lines of JSON objects of the
//! table's columns, and, into a Kafka table, as records whose value is
//! such a line. A Kafka table with a `PRIMARY KEY` also gets each record's
//! key, a JSON object of the key's columns, and takes a query's updates as
//! upserts, as Flink's upsert-kafka tables do: a `+I` or `+U` row is its
//! key's new value, a `-D` row a tombstone (the key's deletion in a
//! compacted topic), and a `-U` row, which the `+U` after it replaces, is
//! not written.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use weir_streaming::kafka::producer::Produce;

use crate::error::{Result, SqlError};
use crate::stream::updating::split_op;

/// How an insert's rows become lines and records.
#[derive(Clone, Debug, Default)]
pub(crate) struct Encoding {
    /// The table's columns (the rows' own without them: late rows).
    pub(crate) schema: Option<SchemaRef>,
    /// The columns of the table's primary key, each record's key.
    pub(crate) key: Option<Vec<usize>>,
    /// Whether the rows are updates (ending with an `op` column), written
    /// as upserts under their keys.
    pub(crate) updates: bool,
}

impl Encoding {
    /// `batch`'s rows as lines of JSON objects.
    pub(crate) fn lines(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        json_lines(batch, self.schema.as_ref())
    }

    /// `batch`'s rows as records of `topic`.
    pub(crate) fn records(&self, topic: &str, batch: &RecordBatch) -> Result<Vec<Produce>> {
        let (rows, ops) = match self.updates {
            true => {
                let (rows, ops) = split_op(batch)?;
                (rows, Some(ops))
            }
            false => (batch.clone(), None),
        };
        let values = json_lines(&rows, self.schema.as_ref())?;
        let Some(key) = &self.key else {
            return Ok(values
                .into_iter()
                .map(|v| Produce::value(topic, v))
                .collect());
        };
        let named = match &self.schema {
            Some(schema) => RecordBatch::try_new(Arc::clone(schema), rows.columns().to_vec())?,
            None => rows,
        };
        let keys = json_lines(&named.project(key)?, None)?;
        let mut records = Vec::with_capacity(values.len());
        for (i, (key, value)) in keys.into_iter().zip(values).enumerate() {
            let value = match ops.as_ref().map(|ops| ops.value(i)) {
                Some("-U") => continue,
                Some("-D") => None,
                _ => Some(value.into_bytes()),
            };
            records.push(Produce::keyed(topic, key.into_bytes(), value));
        }
        Ok(records)
    }
}

/// `batch`'s rows as lines of JSON objects of `schema`'s columns (of its
/// own without one).
fn json_lines(batch: &RecordBatch, schema: Option<&SchemaRef>) -> Result<Vec<String>> {
    let named = match schema {
        Some(schema) => RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())?,
        None => batch.clone(),
    };
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    writer.write(&named)?;
    writer.finish()?;
    let text = String::from_utf8(writer.into_inner())
        .map_err(|e| SqlError::Execution(format!("JSON that is not UTF-8: {e}")))?;
    Ok(text.lines().map(String::from).collect())
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn updates_are_written_as_upserts_under_their_keys() {
        let table = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_from_iter([
            ("a", Arc::new(Int64Array::from(vec![1, 1, 1, 2])) as _),
            ("b", Arc::new(Int64Array::from(vec![5, 5, 6, 7])) as _),
            (
                "op",
                Arc::new(StringArray::from(vec!["+I", "-U", "+U", "-D"])) as _,
            ),
        ])
        .unwrap();
        let encoding = Encoding {
            schema: Some(table),
            key: Some(vec![0]),
            updates: true,
        };
        let records = encoding.records("t", &batch).unwrap();
        let written: Vec<(String, Option<String>)> = records
            .iter()
            .map(|r| {
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                (
                    text(r.key.as_deref().unwrap()),
                    r.value.as_deref().map(text),
                )
            })
            .collect();
        let key = |id: i64| format!("{{\"id\":{id}}}");
        assert_eq!(
            written,
            [
                (key(1), Some("{\"id\":1,\"n\":5}".to_string())),
                (key(1), Some("{\"id\":1,\"n\":6}".to_string())),
                (key(2), None),
            ]
        );
    }
}

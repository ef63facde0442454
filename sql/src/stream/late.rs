//! Late rows: rows that reach a window operator after event time has passed
//! their window (or their session) are counted (the `late rows` metric)
//! and dropped; with `SET weir.late-rows.table = 't'` they go to table
//! `t` instead (a Kafka table or an unbounded JSON table of a directory),
//! each a JSON object of the operator's input columns and `late_in`, the
//! operator that dropped it, exactly once, as rows are inserted.

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema};
use timely::dataflow::StreamVec;
use timely::dataflow::operators::vec::Map;

use crate::batch::Batch;
use crate::error::Result;

/// The column of a late row that names the operator that dropped it.
pub const LATE_IN: &str = "late_in";

/// What a window operator gives: rows, or late rows it dropped.
#[derive(Clone, Debug)]
pub(crate) enum Out {
    /// Rows for the operators downstream.
    Rows(Batch),
    /// Late rows, with their [`LATE_IN`] column.
    Late(Batch),
}

/// The rows of `out`, and its late rows.
pub(crate) fn split<'s>(
    out: StreamVec<'s, u64, Out>,
) -> (StreamVec<'s, u64, Batch>, StreamVec<'s, u64, Batch>) {
    let rows = out.clone().flat_map(|o| match o {
        Out::Rows(b) => Some(b),
        Out::Late(_) => None,
    });
    let late = out.flat_map(|o| match o {
        Out::Late(b) => Some(b),
        Out::Rows(_) => None,
    });
    (rows, late)
}

/// The rows of `batch` that `late` marks, with the [`LATE_IN`] column
/// `operator`; `None` when there are none.
pub(crate) fn late_rows(
    batch: &RecordBatch,
    late: &BooleanArray,
    operator: &str,
) -> Result<Option<Out>> {
    if late.true_count() == 0 {
        return Ok(None);
    }
    let rows = filter_record_batch(batch, late)?;
    let mut fields: Vec<Field> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(LATE_IN, DataType::Utf8, false));
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![operator; rows.num_rows()])));
    let tagged = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(Some(Out::Late(Batch(tagged))))
}

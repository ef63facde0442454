//! Windows assigned to rows in a batch query: a row's tumbling or hopping
//! windows are its own (each worker assigns the rows it has), its columns
//! repeated once per hopping window that holds it.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;

use crate::error::{Result, SqlError};
use crate::window::Windows;

/// What a windowing node does, in terms of its input's columns.
#[derive(Debug)]
pub struct WindowSpec {
    /// The input's event-time column.
    pub time: usize,
    /// The windows.
    pub windows: Windows,
    /// A session window's keys.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The output: the input's columns, then the window's start and end.
    pub schema: SchemaRef,
}

/// `batch`'s rows, once per window (tumbling or hopping) that holds each,
/// with the window's start and end; rows without a time fall in none.
pub(crate) fn assign(batch: &RecordBatch, spec: &WindowSpec) -> Result<RecordBatch> {
    let time = batch.column(spec.time);
    let ticks = cast(time, &DataType::Int64)?;
    let ticks = ticks.as_primitive::<Int64Type>();
    let (mut rows, mut starts) = (Vec::new(), Vec::new());
    for (row, t) in ticks.iter().enumerate() {
        let Some(t) = t else { continue };
        spec.windows
            .starts(t, |start| {
                rows.push(row as u32);
                starts.push(start);
            })
            .ok_or_else(|| {
                SqlError::Execution(format!(
                    "{}: the windows of time {t} (column {}) are out of the range of times",
                    spec.windows.name(),
                    batch.schema().field(spec.time).name()
                ))
            })?;
    }
    let size = spec.windows.size().unwrap_or(0);
    let ends: Int64Array = starts.iter().map(|s| s + size).collect();
    let starts = Int64Array::from(starts);
    let columns = if rows.len() == batch.num_rows()
        && rows.iter().enumerate().all(|(i, &r)| i == r as usize)
    {
        batch.columns().to_vec()
    } else {
        let rows = UInt32Array::from(rows);
        batch
            .columns()
            .iter()
            .map(|c| Ok(take(c, &rows, None)?))
            .collect::<Result<Vec<ArrayRef>>>()?
    };
    let mut columns = columns;
    for bounds in [starts, ends] {
        columns.push(cast(&bounds, time.data_type())?);
    }
    Ok(RecordBatch::try_new(Arc::clone(&spec.schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    fn spec(windows: Windows) -> WindowSpec {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        WindowSpec {
            time: 1,
            windows,
            keys: Vec::new(),
            schema: Arc::new(Schema::new(vec![
                Field::new("v", DataType::Int32, true),
                Field::new("t", ts.clone(), true),
                Field::new("window_start", ts.clone(), false),
                Field::new("window_end", ts, false),
            ])),
        }
    }

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("v", DataType::Int32, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 3])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_500),
                    None,
                    Some(2_000),
                ])),
            ],
        )
        .unwrap()
    }

    fn column(batch: &RecordBatch, i: usize) -> Vec<i64> {
        let values = cast(batch.column(i), &DataType::Int64).unwrap();
        values.as_primitive::<Int64Type>().values().to_vec()
    }

    #[test]
    fn a_hopping_window_repeats_its_rows_and_a_row_without_time_has_none() {
        let hop = Windows::Hop {
            slide: 1_000,
            size: 2_000,
            offset: 0,
        };
        let out = assign(&batch(), &spec(hop)).unwrap();
        assert_eq!(column(&out, 0), [1, 1, 3, 3]);
        assert_eq!(column(&out, 2), [1_000, 0, 2_000, 1_000]);
        assert_eq!(column(&out, 3), [3_000, 2_000, 4_000, 3_000]);
        let tumble = Windows::Tumble {
            size: 1_000,
            offset: 0,
        };
        let out = assign(&batch(), &spec(tumble)).unwrap();
        assert_eq!(column(&out, 0), [1, 3]);
        assert_eq!(column(&out, 2), [1_000, 2_000]);
        assert_eq!(
            out.schema().field(2).data_type(),
            batch().schema().field(1).data_type()
        );
    }
}

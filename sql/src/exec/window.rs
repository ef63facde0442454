//! Windows assigned to rows in a batch query: a row's tumbling or hopping
//! windows are its own (each worker assigns the rows it has), its columns
//! repeated once per hopping window that holds it. Session windows need a
//! key's rows together: they go to the worker that owns their keys' hash,
//! which holds them (within its memory budget: they do not spill) until
//! all are in, then sorts them by key and time and cuts a session wherever
//! two rows are more than the gap apart.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::kernels::boolean::is_not_null;
use arrow::compute::{
    SortColumn, cast, concat_batches, filter_record_batch, lexsort_to_indices, take,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use weir_runtime::exec::WorkerCtx;
use weir_runtime::time::BatchTime;

use super::{Held, Pool, evaluate, fail, map, route, row_converter};
use crate::batch::Batch;
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

impl WindowSpec {
    /// Whether rows go to the worker of their keys (session windows).
    pub(crate) fn keys_route(&self) -> bool {
        matches!(self.windows, Windows::Session { .. })
    }
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
    let mut columns = if rows.len() == batch.num_rows()
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
    for bounds in [starts, ends] {
        columns.push(cast(&bounds, time.data_type())?);
    }
    Ok(RecordBatch::try_new(Arc::clone(&spec.schema), columns)?)
}

/// Session windows: rows routed by their keys, assigned once all are in.
pub(crate) fn sessions<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
    ctx: &WorkerCtx,
    spec: Arc<WindowSpec>,
    pool: &Pool,
) -> StreamVec<'s, BatchTime, Batch> {
    let with_keys = Arc::clone(&spec);
    let keyed = map(input, &ctx.failure, "SessionKeys", move |batch| {
        let mut columns = batch.columns().to_vec();
        for key in &with_keys.keys {
            columns.push(evaluate(key, batch)?);
        }
        Ok(RecordBatch::try_new_with_options(
            keyed_schema(batch, &columns),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?)
    });
    let inputs = spec.schema.fields().len() - 2;
    let keys: Vec<usize> = (inputs..inputs + spec.keys.len()).collect();
    let routed = route(keyed, &ctx.failure, ctx.peers, move |_| keys.clone());
    let failure = ctx.failure.clone();
    let mut memory = pool.reserve();
    routed.unary_frontier::<CapacityContainerBuilder<Vec<Batch>>, _, _, _>(
        Exchange::new(|(to, _): &(u64, Batch)| *to),
        "Sessions",
        move |cap, _| {
            let mut cap = Some(cap.delayed(&BatchTime::End));
            let mut held = Held::default();
            move |(input, frontier), output| {
                input.for_each(|_, data| held.extend(data.drain(..).map(|(_, b)| b.0)));
                if let Err(e) = memory.hold("session windows", held.bytes()) {
                    fail(&failure, e);
                }
                if failure.is_set() {
                    cap = None;
                    held.take();
                } else if frontier.is_empty()
                    && let Some(cap) = cap.take()
                {
                    match assign_sessions(&held.take(), &spec, inputs) {
                        Ok(Some(out)) => output.session(&cap).give(Batch(out)),
                        Ok(None) => {}
                        Err(e) => fail(&failure, e),
                    }
                    memory.release();
                }
            }
        },
    )
}

/// The schema of `batch` with the key columns `columns` past its own.
fn keyed_schema(batch: &RecordBatch, columns: &[ArrayRef]) -> SchemaRef {
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, column) in columns.iter().enumerate().skip(fields.len()) {
        fields.push(Field::new(
            format!("key{i}"),
            column.data_type().clone(),
            true,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// The rows of `batches` (their first `inputs` columns, then their keys)
/// with their session windows, sorted by key and time.
fn assign_sessions(
    batches: &[RecordBatch],
    spec: &WindowSpec,
    inputs: usize,
) -> Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let Windows::Session { gap } = spec.windows else {
        return Ok(None);
    };
    let all = concat_batches(&first.schema(), batches)?;
    let timed = is_not_null(all.column(spec.time))?;
    let all = filter_record_batch(&all, &timed)?;
    let keys: Vec<ArrayRef> = all.columns()[inputs..].to_vec();
    let mut sort: Vec<SortColumn> = keys
        .iter()
        .map(|k| SortColumn {
            values: Arc::clone(k),
            options: None,
        })
        .collect();
    sort.push(SortColumn {
        values: Arc::clone(all.column(spec.time)),
        options: None,
    });
    let order = lexsort_to_indices(&sort, None)?;
    // no keys: all rows are of one key
    let rows = match keys.is_empty() {
        true => None,
        false => Some(row_converter(keys.iter().map(|k| k.data_type()))?.convert_columns(&keys)?),
    };
    let same_key = |a: usize, b: usize| rows.as_ref().is_none_or(|r| r.row(a) == r.row(b));
    let ticks = cast(all.column(spec.time), &DataType::Int64)?;
    let ticks = ticks.as_primitive::<Int64Type>().values();
    let mut starts = Vec::with_capacity(order.len());
    let mut ends = Vec::with_capacity(order.len());
    let order = order.values();
    let mut first = 0;
    for i in 1..=order.len() {
        let cut = i == order.len() || {
            let (previous, row) = (order[i - 1] as usize, order[i] as usize);
            !same_key(previous, row) || ticks[row].saturating_sub(ticks[previous]) > gap
        };
        if !cut {
            continue;
        }
        let (start, last) = (ticks[order[first] as usize], ticks[order[i - 1] as usize]);
        let end = last.checked_add(gap).ok_or_else(|| {
            SqlError::Execution(format!(
                "session: the window of time {last} (column {}) ends out of the range of times",
                all.schema().field(spec.time).name()
            ))
        })?;
        starts.extend(std::iter::repeat_n(start, i - first));
        ends.extend(std::iter::repeat_n(end, i - first));
        first = i;
    }
    let indices = UInt32Array::from(order.to_vec());
    let mut columns = all.columns()[..inputs]
        .iter()
        .map(|c| Ok(take(c, &indices, None)?))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let time_type = all.column(spec.time).data_type();
    for bounds in [Int64Array::from(starts), Int64Array::from(ends)] {
        columns.push(cast(&bounds, time_type)?);
    }
    Ok(Some(RecordBatch::try_new(
        Arc::clone(&spec.schema),
        columns,
    )?))
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

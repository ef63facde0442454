//! Session windows over a stream: `session(table, time, gap [, key, ...])`
//! gives each row the window of its run of rows of the same keys no more
//! than `gap` apart, as the batch engine does (`exec::window`). A session
//! is known only once no row can join it: the rows of a key are held
//! (keyed state of `weir-progress`, by the keys' routing hash, each row in
//! Arrow's row format) until event time has passed the end of their
//! session (its last row's time plus the gap), then go out with its start
//! and end. A row can join a session while event time has not passed its
//! end, so a row at or after the watermark never meets a session that went
//! out; a row before it is late: dropped and counted.
//!
//! Event time rides on epochs as in `aggregate`: every source worker's
//! watermark reaches every worker at the end of each epoch. A session goes
//! out in the epoch whose watermark passes its end, so an aggregation
//! grouped by its end fires it in that epoch (`plan::trace` tells it that a
//! session is complete once the watermark is past its end, not at it).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::{cast, concat_batches, take};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::row::RowConverter;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use weir_progress::byte_string::ByteString;
use weir_progress::checkpoint::{Ack, StatefulUnary};
use weir_runtime::exec::RecordCounter;
use weir_streaming::run::StreamCtx;
use weir_streaming::window::{Frontier, Watermark};

use super::aggregate::{Item, Routed, key_rows, route_by, with_watermarks};
use super::late::{Out, late_rows};
use crate::batch::Batch;
use crate::error::{Result, SqlError};
use crate::exec::{WindowSpec, evaluate, row_converter};
use crate::stream::keyed::Keyed;
use crate::window::Windows;

/// The state's shared value that holds event time (the watermark).
const WATERMARK: &str = "watermark";

/// A key's held rows: the time of its earliest, and the rows.
type KeyRows = (i64, Vec<ByteString>);

/// Assigns session windows to `rows` as `spec` says; `watermarks` are the
/// sources' (every source worker's, at every epoch). Returns the rows with
/// their windows, each once its session is complete, and the state's acks.
pub(crate) fn sessions<'s>(
    rows: StreamVec<'s, u64, Batch>,
    watermarks: StreamVec<'s, u64, Watermark>,
    spec: Arc<WindowSpec>,
    name: &str,
    ctx: &StreamCtx,
) -> (StreamVec<'s, u64, Out>, StreamVec<'s, u64, Ack>) {
    let late = (
        ctx.metrics.counter("late rows"),
        format!("session window {name}"),
    );
    let routing = Arc::clone(&spec);
    let routed = with_watermarks(rows, watermarks, ctx, move |batch, peers| {
        route_by(&routing.keys, batch, peers)
    });
    let failure = ctx.source.failure.clone();
    routed.stateful_unary(
        Exchange::new(|r: &Routed| r.to),
        name,
        &ctx.checkpoints,
        super::per_epoch(
            failure,
            move |state| Worker::new(&spec, state, late.clone()),
            |w, _, items, state, out| w.apply(items, state, out),
        ),
    )
}

/// A worker's encodings and the index of its keys by their earliest row.
struct Worker {
    spec: Arc<WindowSpec>,
    gap: i64,
    /// The input's columns, a row as bytes.
    rows: RowConverter,
    /// The keys, as bytes.
    keys: RowConverter,
    /// The input's schema.
    input: SchemaRef,
    /// Keys by the time of their earliest held row (an entry may be stale:
    /// the key's state says).
    earliest: super::ByTime,
    /// The count of late rows, and the name they are given out under.
    late: (RecordCounter, String),
}

impl Worker {
    fn new(
        spec: &Arc<WindowSpec>,
        state: &Keyed<KeyRows>,
        late: (RecordCounter, String),
    ) -> Result<Worker> {
        let Windows::Session { gap } = spec.windows else {
            return Err(SqlError::Plan("not a session window".into()));
        };
        let inputs = spec.schema.fields().len() - 2;
        let input = Arc::new(spec.schema.project(&(0..inputs).collect::<Vec<_>>())?);
        let key_types = spec
            .keys
            .iter()
            .map(|k| Ok(k.data_type(&input)?))
            .collect::<Result<Vec<DataType>>>()?;
        let earliest = super::by_time(state);
        Ok(Worker {
            gap,
            rows: row_converter(input.fields().iter().map(|f| f.data_type()))?,
            keys: row_converter(&key_types)?,
            input,
            spec: Arc::clone(spec),
            earliest,
            late,
        })
    }

    /// Holds the epoch's rows (dropping late ones), then sends out every
    /// session the epoch's watermark has passed.
    fn apply(
        &mut self,
        items: Vec<Routed>,
        state: &mut Keyed<KeyRows>,
        out: &mut Vec<Out>,
    ) -> Result<()> {
        let before = state
            .shared(WATERMARK)
            .map(|w| i64::try_from(w).unwrap_or(i64::MAX));
        let mut watermarks = Vec::new();
        for routed in items {
            match routed.item {
                Item::Rows(Batch(batch)) => out.extend(self.hold(&batch, before, state)?),
                Item::Watermark(w) => watermarks.push(w),
            }
        }
        let passed = match Watermark::combine(watermarks) {
            Some(Frontier::End) => Frontier::End,
            Some(Frontier::At(w)) => {
                let w = state.shared(WATERMARK).map_or(w, |old| old.max(w));
                state.set_shared(WATERMARK, w);
                Frontier::At(w)
            }
            None => return Ok(()),
        };
        let ready = self.close(passed, state)?;
        if let Some(first) = ready.first() {
            out.push(Out::Rows(Batch(concat_batches(&first.schema(), &ready)?)));
        }
        Ok(())
    }

    /// Adds `batch`'s rows to their keys' (rows without a time fall in no
    /// window; rows before the watermark `before` are late: they are given
    /// back).
    fn hold(
        &mut self,
        batch: &RecordBatch,
        before: Option<i64>,
        state: &mut Keyed<KeyRows>,
    ) -> Result<Option<Out>> {
        let times = self.times(batch.column(self.spec.time))?;
        let keys: Vec<ArrayRef> = self
            .spec
            .keys
            .iter()
            .map(|k| evaluate(k, batch))
            .collect::<Result<_>>()?;
        let keys = key_rows(&self.keys, &keys, batch.num_rows())?;
        let inputs = self.input.fields().len();
        let rows = self.rows.convert_columns(&batch.columns()[..inputs])?;
        let mut late = vec![false; batch.num_rows()];
        let mut added: BTreeMap<ByteString, KeyRows> = BTreeMap::new();
        for (i, (t, key)) in times.iter().zip(keys).enumerate() {
            let Some(t) = *t else { continue };
            if before.is_some_and(|w| t < w) {
                late[i] = true;
                continue;
            }
            let entry = added.entry(key).or_insert((t, Vec::new()));
            entry.0 = entry.0.min(t);
            entry.1.push(ByteString::from(rows.row(i).as_ref()));
        }
        let late = BooleanArray::from(late);
        self.late.0.add(late.true_count() as u64);
        let input = batch.project(&(0..inputs).collect::<Vec<_>>())?;
        let late = late_rows(&input, &late, &self.late.1)?;
        for (key, (first, rows)) in added {
            let held = state.update(
                key.clone(),
                || (first, Vec::new()),
                |(earliest, held)| {
                    *earliest = (*earliest).min(first);
                    held.extend(rows);
                },
            );
            self.earliest.entry(held.0).or_default().insert(key);
        }
        Ok(late)
    }

    /// The times of `column` in milliseconds (as the window's bounds).
    fn times(&self, column: &ArrayRef) -> Result<Vec<Option<i64>>> {
        let ticks = cast(column, &DataType::Int64)?;
        Ok(ticks.as_primitive::<Int64Type>().iter().collect())
    }

    /// The rows of every session that `passed` is past the end of, with
    /// their windows; the rest stay held.
    fn close(&mut self, passed: Frontier, state: &mut Keyed<KeyRows>) -> Result<Vec<RecordBatch>> {
        let complete = |end: i64| match passed {
            Frontier::End => true,
            Frontier::At(w) => u64::try_from(end).map_or(end < 0, |e| e < w),
        };
        // a key's first session ends at least `gap` after its first row
        let mut due = Vec::new();
        while let Some(entry) = self.earliest.first_entry() {
            if !complete(entry.key().saturating_add(self.gap)) {
                break;
            }
            due.push(entry.remove_entry());
        }
        let mut ready = Vec::new();
        for (first, keys) in due {
            for key in keys {
                let Some((_, rows)) = state.get(&key).filter(|(e, _)| *e == first) else {
                    continue;
                };
                let (done, rest) = self.cut(rows, &complete)?;
                ready.extend(done);
                match rest {
                    Some((t, rows)) => {
                        self.earliest.entry(t).or_default().insert(key.clone());
                        state.insert(key, (t, rows));
                    }
                    None => {
                        state.remove(&key);
                    }
                }
            }
        }
        Ok(ready)
    }

    /// A key's `rows` cut into sessions: the rows of the complete ones with
    /// their windows, and the rows left (with the earliest time), if any.
    fn cut(
        &self,
        rows: &[ByteString],
        complete: &dyn Fn(i64) -> bool,
    ) -> Result<(Option<RecordBatch>, Option<KeyRows>)> {
        let parser = self.rows.parser();
        let columns = self
            .rows
            .convert_rows(rows.iter().map(|r| parser.parse(r)))?;
        let times = self.times(&columns[self.spec.time])?;
        let mut order: Vec<(i64, usize)> = times
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (t, i)))
            .collect();
        order.sort_unstable();
        let (mut at, mut starts, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        let mut first = 0;
        let mut left = None;
        for i in 1..=order.len() {
            if i < order.len() && order[i].0.saturating_sub(order[i - 1].0) <= self.gap {
                continue;
            }
            let (start, last) = (order[first].0, order[i - 1].0);
            let end = last.checked_add(self.gap).ok_or_else(|| {
                SqlError::Execution(format!(
                    "session: the window of time {last} (column {}) ends out of the range \
                     of times",
                    self.input.field(self.spec.time).name()
                ))
            })?;
            if !complete(end) {
                left = Some(first);
                break;
            }
            for &(_, row) in &order[first..i] {
                at.push(row as u32);
                starts.push(start);
                ends.push(end);
            }
            first = i;
        }
        let rest = left.map(|from| {
            let kept = order[from..]
                .iter()
                .map(|&(_, i)| rows[i].clone())
                .collect();
            (order[from].0, kept)
        });
        if at.is_empty() {
            return Ok((None, rest));
        }
        let at = UInt32Array::from(at);
        let mut out = columns
            .iter()
            .map(|c| Ok(take(c, &at, None)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let time_type = self.input.field(self.spec.time).data_type();
        for bounds in [Int64Array::from(starts), Int64Array::from(ends)] {
            out.push(cast(&bounds, time_type)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.spec.schema), out)?;
        Ok((Some(batch), rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion_physical_expr::expressions::Column;

    fn spec() -> Arc<WindowSpec> {
        let time = DataType::Timestamp(TimeUnit::Millisecond, None);
        Arc::new(WindowSpec {
            time: 0,
            windows: Windows::Session { gap: 10 },
            keys: vec![Arc::new(Column::new("k", 1))],
            schema: Arc::new(Schema::new(vec![
                Field::new("t", time.clone(), true),
                Field::new("k", DataType::Utf8, true),
                Field::new("window_start", time.clone(), true),
                Field::new("window_end", time, true),
            ])),
        })
    }

    fn rows(times: &[i64], keys: &[&str]) -> Routed {
        let schema = Arc::new(spec().schema.project(&[0, 1]).unwrap());
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMillisecondArray::from(times.to_vec())),
                Arc::new(StringArray::from(keys.to_vec())),
            ],
        )
        .unwrap();
        Routed {
            to: 0,
            item: Item::Rows(Batch(batch)),
        }
    }

    fn at(w: u64) -> Routed {
        Routed {
            to: 0,
            item: Item::Watermark(Watermark::At(w)),
        }
    }

    /// Each output row as (time, key, start, end), sorted (late rows
    /// left out).
    fn out(batches: Vec<Out>) -> Vec<(i64, String, i64, i64)> {
        let mut rows = Vec::new();
        for b in batches {
            let Out::Rows(Batch(b)) = b else { continue };
            let ticks: Vec<Vec<Option<i64>>> = [0, 2, 3]
                .iter()
                .map(|&c| {
                    let t = cast(b.column(c), &DataType::Int64).unwrap();
                    t.as_primitive::<Int64Type>().iter().collect()
                })
                .collect();
            let keys = b.column(1).as_string::<i32>();
            for (i, key) in keys.iter().enumerate() {
                let v = |c: usize| ticks[c][i].unwrap();
                rows.push((v(0), key.unwrap().to_string(), v(1), v(2)));
            }
        }
        rows.sort();
        rows
    }

    #[test]
    fn a_session_goes_out_once_event_time_is_past_its_end_not_at_it() {
        let spec = spec();
        let mut state = Keyed::new();
        let late = (RecordCounter::default(), "session".to_string());
        let mut worker = Worker::new(&spec, &state, late).unwrap();
        let mut sent = Vec::new();
        // a's session ends at 10: event time at 10 may still bring a row at 10
        let first = vec![rows(&[0, 40], &["a", "b"]), at(10)];
        worker.apply(first, &mut state, &mut sent).unwrap();
        assert_eq!(out(std::mem::take(&mut sent)), vec![]);
        // which joins it (no more than the gap after its last row)
        let second = vec![rows(&[10, 5], &["a", "b"]), at(24)];
        worker.apply(second, &mut state, &mut sent).unwrap();
        // b's row at 5 came after event time passed 5: late, given out
        // with the operator's name
        let late: Vec<&RecordBatch> = sent
            .iter()
            .filter_map(|o| match o {
                Out::Late(Batch(b)) => Some(b),
                Out::Rows(_) => None,
            })
            .collect();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].column(1).as_string::<i32>().value(0), "b");
        assert_eq!(late[0].column(2).as_string::<i32>().value(0), "session");
        assert_eq!(
            out(std::mem::take(&mut sent)),
            vec![(0, "a".into(), 0, 20), (10, "a".into(), 0, 20)]
        );
        assert_eq!(worker.late.0.get(), 1);
        let third = vec![rows(&[45], &["b"]), at(56)];
        worker.apply(third, &mut state, &mut sent).unwrap();
        assert_eq!(
            out(sent),
            vec![(40, "b".into(), 40, 55), (45, "b".into(), 40, 55)]
        );
        assert!(state.is_empty());
    }
}

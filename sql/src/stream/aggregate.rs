//! A streaming aggregation grouped by an event-time window: the state of
//! each group (its key, its window among them) is keyed state of
//! `weir-progress`, checkpointed and restored at any worker count, and a
//! window's groups fire once event time has passed the window's end.
//!
//! As in `weir_streaming::window`, event time rides on epochs: each source
//! worker sends its watermark at the end of every epoch to every worker of
//! the aggregation; once timely's frontier has passed epoch `e`, the
//! aggregation has all of `e`'s rows and watermarks. It folds the rows
//! into their groups' states (DataFusion's accumulators, states encoded in
//! Arrow's row format), takes the smallest watermark as event time (never
//! moving it back), and fires in epoch `e` every window whose end it has
//! reached. A row whose window has fired already is late: it is dropped and
//! counted, and given out as a late row (`late`). The end of the input
//! fires every window.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{cast, filter_record_batch, not};
use arrow::datatypes::{DataType, Int64Type};
use arrow::row::RowConverter;
use datafusion_physical_expr::PhysicalExpr;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::Map;
use weir_progress::byte_string::ByteString;
use weir_progress::checkpoint::{Ack, StatefulUnary};
use weir_progress::route::bytes_hash;
use weir_runtime::exec::RecordCounter;
use weir_streaming::run::StreamCtx;
use weir_streaming::window::{Frontier, Watermark};

use super::late::{Out, late_rows};
use crate::batch::Batch;
use crate::error::{Result, SqlError};
use crate::exec::{Folding, evaluate, fail, row_converter, split_by};
use crate::stream::keyed::Keyed;

/// The state's shared value that holds event time (the watermark).
const WATERMARK: &str = "watermark";

/// A group's state: its window's end, and its aggregates' states.
type GroupState = (i64, ByteString);

/// What the aggregation computes, and where its window's end is.
pub(crate) struct Windowed {
    /// The aggregation.
    pub(crate) folding: Folding,
    /// The group key column of the window's end (or start).
    pub(crate) end: usize,
    /// What is added to that column to give the end (the window's size if
    /// it holds the start).
    pub(crate) past: i64,
}

/// A record of the aggregation's input, addressed to its worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Routed {
    pub(super) to: u64,
    pub(super) item: Item,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Item {
    Rows(Batch),
    Watermark(Watermark),
}

/// Aggregates `rows` by window; `watermarks` are the sources' (every
/// source worker's, at every epoch). Returns the fired groups with the
/// late rows, and the state's acks.
pub(crate) fn aggregate<'s>(
    rows: StreamVec<'s, u64, Batch>,
    watermarks: StreamVec<'s, u64, Watermark>,
    spec: Arc<Windowed>,
    name: &str,
    ctx: &StreamCtx,
) -> (StreamVec<'s, u64, Out>, StreamVec<'s, u64, Ack>) {
    let late = ctx.metrics.counter("late rows");
    let routing = Arc::clone(&spec);
    let routed = with_watermarks(rows, watermarks, ctx, move |batch, peers| {
        route(&routing.folding, batch, peers)
    });
    let failure = ctx.source.failure.clone();
    let operator = format!("window aggregate {name}");
    let make = move |state: &Keyed<GroupState>| {
        let ends = super::by_time(state);
        Ok(Worker {
            codecs: Codecs::new(&spec.folding)?,
            spec: Arc::clone(&spec),
            ends,
            late: (late.clone(), operator.clone()),
        })
    };
    routed.stateful_unary(
        Exchange::new(|r: &Routed| r.to),
        name,
        &ctx.checkpoints,
        super::per_epoch(failure, make, |w: &mut Worker, _, items, state, out| {
            let mut epoch = Epoch {
                spec: &w.spec,
                codecs: &mut w.codecs,
                state,
                ends: &mut w.ends,
                late: &w.late,
            };
            epoch.apply(items, out)
        }),
    )
}

/// A worker's encodings, and its groups by their window's end.
struct Worker {
    spec: Arc<Windowed>,
    codecs: Codecs,
    ends: super::ByTime,
    /// The count of late rows, and the name they are given out under.
    late: (RecordCounter, String),
}

/// `rows` addressed by `route` (given a batch and the number of workers),
/// and `watermarks` (every source worker's) addressed to every worker.
pub(super) fn with_watermarks<'s>(
    rows: StreamVec<'s, u64, Batch>,
    watermarks: StreamVec<'s, u64, Watermark>,
    ctx: &StreamCtx,
    route: impl Fn(&RecordBatch, u64) -> Result<Vec<Routed>> + 'static,
) -> StreamVec<'s, u64, Routed> {
    let peers = ctx.checkpoints.peers as u64;
    let failure = ctx.source.failure.clone();
    let routed = rows.flat_map(move |Batch(batch)| {
        route(&batch, peers).unwrap_or_else(|e| {
            fail(&failure, e);
            Vec::new()
        })
    });
    let fanned = watermarks.flat_map(move |watermark| {
        (0..peers).map(move |to| Routed {
            to,
            item: Item::Watermark(watermark),
        })
    });
    routed.concat(fanned)
}

/// Each row of `batch` to the worker of its group's key (by the key's
/// routing hash, so that restored state lands where its rows go).
pub(super) fn route(folding: &Folding, batch: &RecordBatch, peers: u64) -> Result<Vec<Routed>> {
    route_by(folding.group(), batch, peers)
}

/// Each row of `batch` to the worker of its key `by` (all to worker 0
/// without a key).
pub(super) fn route_by(
    by: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
    peers: u64,
) -> Result<Vec<Routed>> {
    let keys = by
        .iter()
        .map(|e| evaluate(e, batch))
        .collect::<Result<Vec<ArrayRef>>>()?;
    if keys.is_empty() {
        // one group (no GROUP BY): worker 0's
        return Ok(vec![Routed {
            to: 0,
            item: Item::Rows(Batch(batch.clone())),
        }]);
    }
    let parts = split_by(batch, &keys, peers as usize, bytes_hash)?;
    Ok(parts
        .into_iter()
        .map(|(to, part)| Routed {
            to,
            item: Item::Rows(Batch(part)),
        })
        .collect())
}

/// The encodings of group keys and states as bytes.
pub(super) struct Codecs {
    pub(super) keys: RowConverter,
    pub(super) states: RowConverter,
}

impl Codecs {
    pub(super) fn new(folding: &Folding) -> Result<Codecs> {
        let fields = folding.states().fields();
        let (keys, states) = fields.split_at(folding.keys());
        Ok(Codecs {
            keys: row_converter(keys.iter().map(|f| f.data_type()))?,
            states: row_converter(states.iter().map(|f| f.data_type()))?,
        })
    }

    /// The states batch of `folding`'s groups `keys` with `states` (their
    /// encodings).
    pub(super) fn decode(
        &self,
        folding: &Folding,
        keys: &[ByteString],
        states: &[ByteString],
    ) -> Result<RecordBatch> {
        let parse = |converter: &RowConverter, bytes: &[ByteString]| -> Result<Vec<ArrayRef>> {
            let parser = converter.parser();
            let rows: Vec<_> = bytes.iter().map(|b| parser.parse(b)).collect();
            Ok(converter.convert_rows(rows)?)
        };
        let mut columns = parse(&self.keys, keys)?;
        columns.extend(parse(&self.states, states)?);
        Ok(RecordBatch::try_new(Arc::clone(folding.states()), columns)?)
    }

    /// The group keys of the first `k` columns of `batch` as bytes (an
    /// empty key per row when there are none: a single group).
    pub(super) fn encode_keys(&self, batch: &RecordBatch, k: usize) -> Result<Vec<ByteString>> {
        key_rows(&self.keys, &batch.columns()[..k], batch.num_rows())
    }

    /// Each group's state as bytes (none without aggregates).
    pub(super) fn encode_states(&self, merged: &RecordBatch, k: usize) -> Result<Vec<ByteString>> {
        Ok(match merged.num_columns() > k {
            true => {
                let rows = self.states.convert_columns(&merged.columns()[k..])?;
                rows.iter().map(|r| ByteString::from(r.as_ref())).collect()
            }
            false => vec![ByteString::default(); merged.num_rows()],
        })
    }
}

/// Each of `rows` rows' key of columns `keys` as bytes (by `converter`),
/// the key of its state: an empty key per row when there are no columns
/// (a single group).
pub(super) fn key_rows(
    converter: &RowConverter,
    keys: &[ArrayRef],
    rows: usize,
) -> Result<Vec<ByteString>> {
    if keys.is_empty() {
        return Ok(vec![ByteString::default(); rows]);
    }
    let converted = converter.convert_columns(keys)?;
    Ok(converted
        .iter()
        .map(|r| ByteString::from(r.as_ref()))
        .collect())
}

/// One epoch's work on the state.
struct Epoch<'a> {
    spec: &'a Windowed,
    codecs: &'a mut Codecs,
    state: &'a mut Keyed<GroupState>,
    ends: &'a mut super::ByTime,
    late: &'a (RecordCounter, String),
}

impl Epoch<'_> {
    fn apply(&mut self, items: Vec<Routed>, out: &mut Vec<Out>) -> Result<()> {
        let mut batches = Vec::new();
        let mut watermarks = Vec::new();
        for routed in items {
            match routed.item {
                Item::Rows(Batch(b)) => batches.push(b),
                Item::Watermark(w) => watermarks.push(w),
            }
        }
        let watermark = self
            .state
            .shared(WATERMARK)
            .map(|w| i64::try_from(w).unwrap_or(i64::MAX));
        let mut open = Vec::with_capacity(batches.len());
        for batch in batches {
            let ends = self.row_ends(&batch)?;
            let keep: BooleanArray = ends
                .iter()
                .map(|end| Some(watermark.is_none_or(|w| *end > w)))
                .collect();
            let kept = filter_record_batch(&batch, &keep)?;
            let (counter, operator) = self.late;
            counter.add((batch.num_rows() - kept.num_rows()) as u64);
            out.extend(late_rows(&batch, &not(&keep)?, operator)?);
            open.push(kept);
        }
        if let Some(folded) = self.spec.folding.fold(&open)? {
            self.add(folded)?;
        }
        let fire_to = match Watermark::combine(watermarks) {
            Some(Frontier::End) => Frontier::End,
            Some(Frontier::At(w)) => {
                let w = self.state.shared(WATERMARK).map_or(w, |old| old.max(w));
                self.state.set_shared(WATERMARK, w);
                Frontier::At(w)
            }
            None => match self.state.shared(WATERMARK) {
                Some(w) => Frontier::At(w),
                None => return Ok(()),
            },
        };
        self.fire(fire_to, out)
    }

    /// The window end of each row of `batch`.
    fn row_ends(&self, batch: &RecordBatch) -> Result<Vec<i64>> {
        let column = evaluate(&self.spec.folding.group()[self.spec.end], batch)?;
        self.ends_of(&column)
    }

    fn ends_of(&self, column: &ArrayRef) -> Result<Vec<i64>> {
        let ticks = cast(column, &DataType::Int64)?;
        Ok(ticks
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|v| v.saturating_add(self.spec.past))
            .collect())
    }

    /// Merges an epoch's folded states into the groups' states.
    fn add(&mut self, folded: RecordBatch) -> Result<()> {
        let k = self.spec.folding.keys();
        let keys = self.codecs.keys.convert_columns(&folded.columns()[..k])?;
        let mut held = Vec::new();
        let mut held_states = Vec::new();
        for key in keys.iter() {
            if let Some((_, states)) = self.state.get(key.as_ref()) {
                held.push(ByteString::from(key.as_ref()));
                held_states.push(states.clone());
            }
        }
        let mut batches = Vec::new();
        if !held.is_empty() {
            batches.push(
                self.codecs
                    .decode(&self.spec.folding, &held, &held_states)?,
            );
        }
        batches.push(folded);
        let Some(merged) = self.spec.folding.merge(&batches)? else {
            return Ok(());
        };
        let keys = self.codecs.keys.convert_columns(&merged.columns()[..k])?;
        // without aggregates (GROUP BY alone), every group's state is empty
        let states = self.codecs.encode_states(&merged, k)?;
        let ends = self.ends_of(merged.column(self.spec.end))?;
        for ((key, states), end) in keys.iter().zip(states).zip(ends) {
            let key = ByteString::from(key.as_ref());
            // a group's window end is part of its key: only a new group
            // joins the index
            if self.state.insert(key.clone(), (end, states)).is_none() {
                self.ends.entry(end).or_default().insert(key);
            }
        }
        Ok(())
    }

    /// Fires the groups of every window whose end `frontier` has reached.
    fn fire(&mut self, frontier: Frontier, out: &mut Vec<Out>) -> Result<()> {
        let mut keys = Vec::new();
        let mut states = Vec::new();
        while let Some(entry) = self.ends.first_entry() {
            let end = *entry.key();
            let passed = match frontier {
                Frontier::End => true,
                Frontier::At(w) => u64::try_from(end).is_ok_and(|e| e <= w) || end < 0,
            };
            if !passed {
                break;
            }
            for key in entry.remove() {
                if let Some((_, s)) = self.state.remove(&key) {
                    keys.push(key);
                    states.push(s);
                }
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        let states = self.codecs.decode(&self.spec.folding, &keys, &states)?;
        if let Some(fired) = self.spec.folding.evaluate(&[states])? {
            out.push(Out::Rows(Batch(fired)));
        }
        Ok(())
    }
}

/// The error of a window column that is not a timestamp in milliseconds.
pub(crate) fn not_millis(what: &str) -> SqlError {
    SqlError::Unsupported(format!(
        "{what}: a streaming window's time column must be a timestamp in milliseconds \
         (the sources' watermarks are)"
    ))
}

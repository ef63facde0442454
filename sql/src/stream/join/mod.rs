//! A streaming join whose held rows expire with event time: a window join
//! (both sides windowed, joined on the window's bounds) or an interval join
//! (the two sides' event times within a bound of each other). Inner joins
//! give each pair as it meets, semi joins a row when it first meets one;
//! outer and anti joins give a row that met none when it expires, when no
//! later row can meet it (padded with nulls for an outer join), as Flink's
//! interval and window joins do: their output only grows.
//!
//! Both sides are routed by the routing hash of their keys' row bytes, and
//! each worker holds its rows in `weir-progress` keyed state, by key, each
//! row with the time at which it expires (see [`super::bounds`]). Once
//! timely's frontier has passed epoch `e`, the worker has all of `e`'s rows
//! and watermarks of both sides: it joins the new rows of each side with the
//! other side's held rows and new rows (each pair once), holds the new
//! rows, moves each side's event time to its smallest watermark, and drops
//! the rows that the other side's event time has passed their expiry. A
//! join without such a bound (a regular join) holds each row for the
//! state's time to live instead, counted in epochs: a replayed epoch
//! expires exactly the rows it expired before. Its outer, semi and anti
//! forms, and joins of updates, count the rows each row meets instead, and
//! give and take back what a row owes as the count crosses zero (see
//! `worker/count.rs`).

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::{filter_record_batch, not};
use arrow::datatypes::SchemaRef;
use datafusion_common::JoinType;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::Map;
use weir_progress::checkpoint::{Ack, StatefulUnary};
use weir_progress::route::bytes_hash;
use weir_streaming::run::StreamCtx;
use weir_streaming::window::Watermark;

mod held;
mod worker;

use super::bounds::Expiry;
use crate::batch::Batch;
use crate::error::{Result, SqlError};
use crate::exec::{JoinSpec, fail, split_by, with_keys};
use crate::stream::updating::split_op;
use worker::Worker;

/// The two sides.
pub(super) const SIDES: [Side; 2] = [Side::Left, Side::Right];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Side {
    Left,
    Right,
}

impl Side {
    pub(super) fn index(self) -> usize {
        self as usize
    }

    pub(super) fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }

    /// The name of the state's shared value that holds the side's event
    /// time.
    pub(super) fn watermark(self) -> &'static str {
        match self {
            Side::Left => "left watermark",
            Side::Right => "right watermark",
        }
    }
}

/// What the join computes, and when its rows expire.
pub(crate) struct StreamJoin {
    /// Keys, filter, output and kind.
    pub(crate) spec: JoinSpec,
    /// When held rows expire.
    pub(crate) expiry: Expire,
    /// Each side's columns, then its key columns.
    pub(crate) keyed: [SchemaRef; 2],
    /// Whether each side's rows are updates (ending with `op`).
    pub(crate) updates: [bool; 2],
    /// Whether the join's rows are updates (see [`super::plan::join_updates`]).
    pub(crate) emits_updates: bool,
}

/// What a side's rows owe beyond an inner join's pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owes {
    /// Nothing (an inner join's sides, the other side of the rest).
    Nothing,
    /// A semi join's: a row, when it first meets one (it is then done,
    /// unless counting).
    Semi,
    /// An anti join's: a row that met none, when it expires (one that met
    /// one is done, unless counting).
    Anti,
    /// An outer join's: a row that met none, padded with nulls, when it
    /// expires (when counting, at once, taken back when it meets one).
    Padded,
}

impl Owes {
    /// What the left and right rows of a join of `kind` owe (an error for
    /// a kind that does not stream).
    pub(crate) fn of(kind: JoinType) -> Result<[Owes; 2]> {
        use Owes::*;
        Ok(match kind {
            JoinType::Inner => [Nothing, Nothing],
            JoinType::Left => [Padded, Nothing],
            JoinType::Right => [Nothing, Padded],
            JoinType::Full => [Padded, Padded],
            JoinType::LeftSemi => [Semi, Nothing],
            JoinType::RightSemi => [Nothing, Semi],
            JoinType::LeftAnti => [Anti, Nothing],
            JoinType::RightAnti => [Nothing, Anti],
            JoinType::LeftMark | JoinType::RightMark => {
                return Err(SqlError::Unsupported(format!(
                    "a {kind} join of two streams"
                )));
            }
        })
    }

    /// Whether a row that met one is done with (not held).
    pub(crate) fn done_when_met(self) -> bool {
        matches!(self, Owes::Semi | Owes::Anti)
    }

    /// Whether a row that met none is owed when it expires.
    pub(crate) fn owed_unmet(self) -> bool {
        matches!(self, Owes::Anti | Owes::Padded)
    }
}

/// When a join's held rows expire.
pub(crate) enum Expire {
    /// When the other side's event time passes them (see [`Expiry`]).
    EventTime(Expiry),
    /// This many epochs after the one they came in (`SET
    /// table.exec.state.ttl`).
    After(u64),
}

/// A record of the join's input, addressed to its worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Routed {
    to: u64,
    pub(super) side: Side,
    pub(super) item: Item,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Item {
    Rows(Batch),
    /// Rows taken back (an updating side's `-U` and `-D` rows).
    Gone(Batch),
    Watermark(Watermark),
}

/// Joins `left` and `right`, whose sources' watermarks are `marks` (left,
/// right). Returns the joined rows and the state's acks.
pub(crate) fn join<'s>(
    rows: [StreamVec<'s, u64, Batch>; 2],
    marks: [StreamVec<'s, u64, Watermark>; 2],
    join: Arc<StreamJoin>,
    name: &str,
    ctx: &StreamCtx,
) -> (StreamVec<'s, u64, Batch>, StreamVec<'s, u64, Ack>) {
    let peers = ctx.checkpoints.peers as u64;
    let [left, right] = rows;
    let [left_marks, right_marks] = marks;
    let route_side = |rows: StreamVec<'s, u64, Batch>, side: Side| {
        let failure = ctx.source.failure.clone();
        let join = Arc::clone(&join);
        rows.flat_map(move |Batch(batch)| {
            route(&join, side, &batch, peers).unwrap_or_else(|e| {
                fail(&failure, e);
                Vec::new()
            })
        })
    };
    let fan = |marks: StreamVec<'s, u64, Watermark>, side: Side| {
        marks.flat_map(move |watermark| {
            (0..peers).map(move |to| Routed {
                to,
                side,
                item: Item::Watermark(watermark),
            })
        })
    };
    let input = route_side(left, Side::Left)
        .concat(route_side(right, Side::Right))
        .concat(fan(left_marks, Side::Left))
        .concat(fan(right_marks, Side::Right));
    let failure = ctx.source.failure.clone();
    input.stateful_unary(
        Exchange::new(|r: &Routed| r.to),
        name,
        &ctx.checkpoints,
        super::per_epoch(
            failure,
            move |state| Worker::new(&join, state),
            Worker::apply,
        ),
    )
}

/// Each row of `batch` (of `side`), with its keys appended, to the worker
/// of its keys; an updating side's rows without their `op`, those taken
/// back apart.
fn route(join: &StreamJoin, side: Side, batch: &RecordBatch, peers: u64) -> Result<Vec<Routed>> {
    if !join.updates[side.index()] {
        return route_rows(join, side, batch, peers, Item::Rows);
    }
    let (given, gone) = split_updates(batch)?;
    let mut routed = route_rows(join, side, &given, peers, Item::Rows)?;
    routed.extend(route_rows(join, side, &gone, peers, Item::Gone)?);
    Ok(routed)
}

/// [`route`] of rows as `item` makes them.
fn route_rows(
    join: &StreamJoin,
    side: Side,
    batch: &RecordBatch,
    peers: u64,
    item: fn(Batch) -> Item,
) -> Result<Vec<Routed>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let keys = match side {
        Side::Left => &join.spec.keys.left,
        Side::Right => &join.spec.keys.right,
    };
    let keyed = with_keys(batch, keys)?;
    let tail = keyed.columns()[batch.num_columns()..].to_vec();
    Ok(split_by(&keyed, &tail, peers as usize, bytes_hash)?
        .into_iter()
        .map(|(to, part)| Routed {
            to,
            side,
            item: item(Batch(part)),
        })
        .collect())
}

/// Updates as rows given (`+I`, `+U`) and rows taken back (`-U`, `-D`),
/// both without their `op`.
fn split_updates(batch: &RecordBatch) -> Result<(RecordBatch, RecordBatch)> {
    let (rows, ops) = split_op(batch)?;
    let given: BooleanArray = ops
        .iter()
        .map(|op| Some(op.is_some_and(|o| o.starts_with('+'))))
        .collect();
    Ok((
        filter_record_batch(&rows, &given)?,
        filter_record_batch(&rows, &not(&given)?)?,
    ))
}

//! The hash join. Both sides are routed by the hash of their keys (so that a
//! key's rows of both sides meet at one worker; without keys, or for NOT IN,
//! everything goes to worker 0). Each worker builds a hash table of its left
//! rows once the left input is complete (its frontier is empty), then probes
//! it with its right rows, holding them back until then. Rows that an outer,
//! semi, anti or mark join owes for the left side are emitted once the right
//! input is complete too.
//!
//! When what a worker holds before its table is built does not fit in its
//! memory pool beside what the worker's other operators hold, the join
//! spills (a grace hash join, see [`grace`]):
//! both sides go to disk by partitions of their keys, which are joined one
//! at a time once both inputs are complete.

mod built;
mod grace;
mod index;

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::JoinType;
use datafusion_physical_expr::PhysicalExpr;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use weir_runtime::exec::{Failure, WorkerCtx};
use weir_runtime::spill::SpillDir;
use weir_runtime::time::BatchTime;

use super::{Held, Opener, Pool, evaluate, fail, map, route};
use crate::batch::Batch;
use crate::error::Result;
use crate::plan::JoinKeys;
use built::Built;
use grace::Grace;

/// What a join needs at run time (see [`crate::plan::Node::Join`]).
pub struct JoinSpec {
    /// The keys of each side.
    pub keys: Arc<JoinKeys>,
    /// What a pair must also satisfy.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// Which rows the join produces.
    pub join_type: JoinType,
    /// Whether null keys equal each other.
    pub nulls_equal: bool,
    /// NOT IN semantics.
    pub null_aware: bool,
    /// The left side goes to every worker, the right side stays.
    pub broadcast: bool,
    /// The output columns.
    pub schema: SchemaRef,
}

/// Bytes of waiting right rows one activation probes.
const PROBE_BYTES: usize = 64 << 20;

/// `input` with its key columns appended (they route it, then hash it).
fn keyed<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
    failure: &Failure,
    keys: Vec<Arc<dyn PhysicalExpr>>,
) -> StreamVec<'s, BatchTime, Batch> {
    map(input, failure, "JoinKeys", move |batch| {
        with_keys(batch, &keys)
    })
}

/// `batch` with the values of `keys` appended as its last columns.
pub(crate) fn with_keys(
    batch: &RecordBatch,
    keys: &[Arc<dyn PhysicalExpr>],
) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let values = evaluate(k, batch)?;
        fields.push(Field::new(
            format!("__key{i}"),
            values.data_type().clone(),
            true,
        ));
        columns.push(values);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &options,
    )?)
}

/// The pairs of `left`'s and `right`'s rows that meet as `spec` says (equal
/// keys, and its filter), both with their key columns last (see
/// [`with_keys`]): left row indices, and right row indices.
pub(crate) fn meeting(
    left: &RecordBatch,
    right: &RecordBatch,
    spec: &JoinSpec,
) -> Result<(Vec<u32>, Vec<u32>)> {
    Built::new(vec![left.clone()], spec.keys.left.len(), spec.nulls_equal)?.matched(right, spec)
}

/// A bounded left side built once, probed by every batch of a stream (a
/// join that owes nothing for left rows no right row met).
pub(crate) struct Lookup {
    built: Built,
    spec: Arc<JoinSpec>,
}

impl Lookup {
    /// The left side's `rows`, built for `spec`.
    pub(crate) fn new(rows: Vec<RecordBatch>, spec: Arc<JoinSpec>) -> Result<Lookup> {
        let keyed = rows
            .iter()
            .map(|b| with_keys(b, &spec.keys.left))
            .collect::<Result<Vec<_>>>()?;
        Ok(Lookup {
            built: Built::new(keyed, spec.keys.left.len(), spec.nulls_equal)?,
            spec,
        })
    }

    /// What a right batch's rows produce.
    pub(crate) fn probe(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let keyed = with_keys(batch, &self.spec.keys.right)?;
        Ok(match self.built.probe(&keyed, &self.spec)? {
            Some(out) => out,
            None => RecordBatch::new_empty(Arc::clone(&self.spec.schema)),
        })
    }
}

/// Joins `left` and `right` as `spec` says; `built` is opened once this
/// worker's table is built (or its rows go to disk, or the join ends).
pub fn join<'s>(
    left: StreamVec<'s, BatchTime, Batch>,
    right: StreamVec<'s, BatchTime, Batch>,
    ctx: &WorkerCtx,
    spec: Arc<JoinSpec>,
    pool: &Pool,
    built: Opener,
) -> StreamVec<'s, BatchTime, Batch> {
    let k = spec.keys.left.len();
    let left = keyed(left, &ctx.failure, spec.keys.left.clone());
    let right = keyed(right, &ctx.failure, spec.keys.right.clone());
    // the key columns are the last k of each side's keyed batches
    let gathered = k == 0 || spec.null_aware;
    let (left, right) = match spec.broadcast && !gathered {
        true => (to_every_worker(left, ctx.peers), stay(right, ctx.index)),
        false => (
            route_by_tail(left, &ctx.failure, ctx.peers, k, gathered),
            route_by_tail(right, &ctx.failure, ctx.peers, k, gathered),
        ),
    };
    let failure = ctx.failure.clone();
    // NOT IN needs every right key at once, and a join without keys every
    // pair: neither splits into partitions
    let spillable = !gathered;
    let spilled = ctx.spilled.clone();
    let mut memory = pool.reserve();
    let scope = left.scope();
    left.binary_frontier::<_, CapacityContainerBuilder<Vec<Batch>>, _, _, _, _>(
        right,
        Exchange::new(|(to, _): &(u64, Batch)| *to),
        Exchange::new(|(to, _): &(u64, Batch)| *to),
        "HashJoin",
        move |cap, info| {
            let activator = scope.activator_for(info.address);
            let mut cap = Some(cap.delayed(&BatchTime::End));
            let mut building = Held::default();
            let mut table: Option<Built> = None;
            let mut waiting = Held::default();
            let mut grace: Option<Grace> = None;
            move |(left_in, left_frontier), (right_in, right_frontier), output| {
                let mut step = || -> Result<bool> {
                    if let Some(grace) = grace.as_mut() {
                        let mut result = Ok(());
                        left_in.for_each(|_, data| {
                            for (_, b) in data.drain(..) {
                                if result.is_ok() {
                                    result = grace.left(&b.0);
                                }
                            }
                        });
                        right_in.for_each(|_, data| {
                            for (_, b) in data.drain(..) {
                                if result.is_ok() {
                                    result = grace.right(&b.0);
                                }
                            }
                        });
                        result?;
                        let Some(time) = cap.as_ref() else {
                            return Ok(false);
                        };
                        if !(left_frontier.is_empty() && right_frontier.is_empty()) {
                            return Ok(false);
                        }
                        let Some(out) = grace.next(&spec, &mut memory, PROBE_BYTES)? else {
                            return Ok(true);
                        };
                        let mut session = output.session(time);
                        for batch in out {
                            session.give(Batch(batch));
                        }
                        activator.activate();
                        return Ok(false);
                    }
                    left_in.for_each(|_, data| building.extend(data.drain(..).map(|(_, b)| b.0)));
                    right_in.for_each(|_, data| waiting.extend(data.drain(..).map(|(_, b)| b.0)));
                    // the table to build will take its index too; right
                    // rows wait only if it cannot be built yet
                    let mut holding =
                        Built::estimate(building.bytes(), building.widest(), building.rows(), k);
                    if !left_frontier.is_empty() {
                        holding += waiting.bytes();
                    }
                    if table.is_none() && !spillable {
                        memory.hold("a hash join without equality keys", holding)?;
                    } else if table.is_none() && !memory.try_hold(holding) {
                        let dir = SpillDir::new(None, spilled.clone());
                        let mut spill = Grace::new(dir, k);
                        for batch in building.take() {
                            spill.left(&batch)?;
                        }
                        for batch in waiting.take() {
                            spill.right(&batch)?;
                        }
                        memory.release();
                        grace = Some(spill);
                        built.open();
                        activator.activate();
                        return Ok(false);
                    }
                    let Some(time) = cap.as_ref() else {
                        waiting.take();
                        return Ok(false);
                    };
                    if table.is_none() && left_frontier.is_empty() {
                        table = Some(Built::new(building.take(), k, spec.nulls_equal)?);
                        built.open();
                    }
                    let Some(built) = table.as_mut() else {
                        return Ok(false);
                    };
                    let mut session = output.session(time);
                    // a bounded share per activation, so that what the
                    // probes produce drains downstream in between
                    for batch in waiting.take_up_to(PROBE_BYTES) {
                        if let Some(out) = built.probe(&batch, &spec)?
                            && out.num_rows() > 0
                        {
                            session.give(Batch(out));
                        }
                    }
                    if waiting.rows() > 0 {
                        activator.activate();
                        return Ok(false);
                    }
                    if right_frontier.is_empty() {
                        if let Some(out) = built.finish(&spec)?
                            && out.num_rows() > 0
                        {
                            session.give(Batch(out));
                        }
                        return Ok(true);
                    }
                    Ok(false)
                };
                let done = match step() {
                    Ok(done) => done,
                    Err(e) => {
                        fail(&failure, e);
                        true
                    }
                };
                if done || failure.is_set() {
                    built.open();
                    cap = None;
                    building.take();
                    waiting.take();
                    grace = None;
                    table = None;
                    memory.release();
                }
            }
        },
    )
}

/// Every batch to every worker (a copy each: within a process, a count).
fn to_every_worker<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
    peers: usize,
) -> StreamVec<'s, BatchTime, (u64, Batch)> {
    input.flat_map(move |batch| (0..peers as u64).map(move |to| (to, batch.clone())))
}

/// Every batch to this worker.
fn stay<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
    index: usize,
) -> StreamVec<'s, BatchTime, (u64, Batch)> {
    input.map(move |batch| (index as u64, batch))
}

/// Routes batches by their last `k` columns (or all to worker 0).
fn route_by_tail<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
    failure: &Failure,
    peers: usize,
    k: usize,
    gathered: bool,
) -> StreamVec<'s, BatchTime, (u64, Batch)> {
    route(input, failure, peers, move |batch: &RecordBatch| {
        if gathered {
            Vec::new()
        } else {
            let width = batch.num_columns();
            (width - k..width).collect()
        }
    })
}

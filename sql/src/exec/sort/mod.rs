//! ORDER BY and LIMIT: every worker sorts its rows (and keeps only the first
//! `fetch`), worker 0 sorts what they send once every worker's rows are in.
//! A sort past its budget is an external sort: it spills its rows as sorted
//! runs and merges them at the end, a batch per activation (see [`merge`]).

mod merge;

use std::rc::Rc;

use arrow::array::RecordBatch;
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use datafusion_physical_expr::PhysicalSortExpr;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use weir_runtime::exec::WorkerCtx;
use weir_runtime::spill::SpillDir;
use weir_runtime::time::BatchTime;

use super::{Held, Pool, evaluate, fail};
use crate::batch::Batch;
use crate::error::Result;
use merge::{Merge, write_run};

/// The rows of `batches` sorted by `order`, the first `fetch` of them.
fn sorted(
    batches: &[RecordBatch],
    order: &[PhysicalSortExpr],
    fetch: Option<usize>,
) -> Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let all = concat_batches(&first.schema(), batches)?;
    let columns = order
        .iter()
        .map(|o| {
            Ok(SortColumn {
                values: evaluate(&o.expr, &all)?,
                options: Some(o.options),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let indices = lexsort_to_indices(&columns, fetch)?;
    Ok(Some(take_record_batch(&all, &indices)?))
}

/// Sorts at every worker, then at worker 0.
pub fn sort<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
    ctx: &WorkerCtx,
    order: Vec<PhysicalSortExpr>,
    fetch: Option<usize>,
    pool: &Pool,
) -> StreamVec<'s, BatchTime, Batch> {
    let spec = Rc::new((order, fetch));
    let local = sorting(input, Pipeline, "SortLocal", ctx, Rc::clone(&spec), pool);
    sorting(local, Exchange::new(|_: &Batch| 0), "Sort", ctx, spec, pool)
}

/// Collects its input, spilling sorted runs past the budget, until the
/// frontier is empty; then emits it sorted.
fn sorting<'s, P>(
    input: StreamVec<'s, BatchTime, Batch>,
    pact: P,
    name: &str,
    ctx: &WorkerCtx,
    spec: Rc<(Vec<PhysicalSortExpr>, Option<usize>)>,
    pool: &Pool,
) -> StreamVec<'s, BatchTime, Batch>
where
    P: timely::dataflow::channels::pact::ParallelizationContract<BatchTime, Vec<Batch>>,
{
    let failure = ctx.failure.clone();
    let mut dir = SpillDir::new(None, ctx.spilled.clone());
    let mut memory = pool.reserve();
    let scope = input.scope();
    input.unary_frontier::<CapacityContainerBuilder<Vec<Batch>>, _, _, _>(
        pact,
        name,
        move |cap, info| {
            let activator = scope.activator_for(info.address);
            let mut cap = Some(cap.delayed(&BatchTime::End));
            let mut held = Held::default();
            let mut runs = Vec::new();
            let mut merge: Option<Merge> = None;
            move |(input, frontier), output| {
                let (order, fetch) = &*spec;
                let mut step = || -> Result<bool> {
                    input.for_each(|_, data| held.extend(data.drain(..).map(|b| b.0)));
                    let Some(time) = cap.as_ref() else {
                        return Ok(false);
                    };
                    let over = !memory.try_hold(held.bytes());
                    // past the budget, or the rest once there are runs
                    let last = frontier.is_empty() && !runs.is_empty() && merge.is_none();
                    if (over || last)
                        && let Some(run) = sorted(&held.take(), order, *fetch)?
                    {
                        runs.push(write_run(&mut dir, &run)?);
                        memory.release();
                    }
                    if !frontier.is_empty() {
                        return Ok(false);
                    }
                    if runs.is_empty() {
                        if let Some(out) = sorted(&held.take(), order, *fetch)?
                            && out.num_rows() > 0
                        {
                            output.session(time).give(Batch(out));
                        }
                        return Ok(true);
                    }
                    let merging = match &mut merge {
                        Some(merging) => merging,
                        None => merge.insert(Merge::new(&runs, order, *fetch)?),
                    };
                    match merging.next_batch()? {
                        Some(out) => {
                            output.session(time).give(Batch(out));
                            activator.activate();
                            Ok(false)
                        }
                        None => Ok(true),
                    }
                };
                let done = step().unwrap_or_else(|e| {
                    fail(&failure, e);
                    true
                });
                if done || failure.is_set() {
                    cap = None;
                    held.take();
                    merge = None;
                    runs.clear();
                    memory.release();
                }
            }
        },
    )
}

/// Skips `skip` rows and keeps `fetch`: every worker passes on at most
/// `skip + fetch` rows, worker 0 skips and keeps as rows come (in order, for
/// a sorted input), holding none.
pub fn limit<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
    skip: usize,
    fetch: Option<usize>,
) -> StreamVec<'s, BatchTime, Batch> {
    let local = passing(input, Pipeline, "LimitLocal", 0, fetch.map(|f| f + skip));
    passing(local, Exchange::new(|_: &Batch| 0), "Limit", skip, fetch)
}

/// Passes on its rows after the first `skip`, `fetch` of them at most.
fn passing<'s, P>(
    input: StreamVec<'s, BatchTime, Batch>,
    pact: P,
    name: &str,
    skip: usize,
    fetch: Option<usize>,
) -> StreamVec<'s, BatchTime, Batch>
where
    P: timely::dataflow::channels::pact::ParallelizationContract<BatchTime, Vec<Batch>>,
{
    let mut seen = 0usize;
    let end = fetch.map_or(usize::MAX, |f| skip.saturating_add(f));
    input.unary::<CapacityContainerBuilder<Vec<Batch>>, _, _, _>(pact, name, move |_, _| {
        move |input, output| {
            input.for_each_stamp(|cap, data| {
                let mut session = output.session(&cap);
                for Batch(batch) in data.flat_map(|d| d.drain(..)) {
                    let rows = batch.num_rows();
                    let start = skip.saturating_sub(seen).min(rows);
                    let stop = end.saturating_sub(seen).min(rows);
                    seen += rows;
                    if stop > start {
                        session.give(Batch(batch.slice(start, stop - start)));
                    }
                }
            });
        }
    })
}

//! Grouped aggregation in two phases, as Flink and Spark do it: every worker
//! folds its rows into partial states per group (DataFusion's group
//! accumulators); once its input is complete (its frontier is empty) it sends
//! each group's state to the worker that owns the group's key, which merges
//! the states and, once every worker's states are in, evaluates.
//!
//! Memory: a partial phase past its budget sends the states it has on early
//! and starts afresh (the final phase merges them all); a final phase past
//! it spills its states to partitions by key and evaluates them one
//! partition at a time (see [`finish`]).

mod finish;
mod folding;
mod groups;
mod keys;

pub(crate) use folding::Folding;

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_expr::EmitTo;
use datafusion_physical_expr::PhysicalExpr;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use weir_runtime::exec::{Failure, WorkerCtx};
use weir_runtime::time::BatchTime;

use super::{Pool, evaluate, fail, route};
use crate::batch::Batch;
use crate::error::Result;
use crate::plan::Aggregate;
use groups::Groups;

/// The partial phase's output schema: group keys, then every aggregate's
/// state fields.
fn state_schema(key_fields: &[Field], aggregates: &[Aggregate]) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = key_fields.to_vec();
    for a in aggregates {
        for f in a.function.state_fields()? {
            fields.push(f.as_ref().clone().with_nullable(true));
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Aggregates `input` by `group`: partial states on every worker, the final
/// values at the owners of the groups. `keys` names and types the group
/// columns (as the input evaluates them); `output` is the node's schema.
pub fn aggregate<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
    ctx: &WorkerCtx,
    group: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Arc<Vec<Aggregate>>,
    key_fields: Vec<Field>,
    output: SchemaRef,
    pool: &Pool,
) -> StreamVec<'s, BatchTime, Batch> {
    let grouped = !group.is_empty();
    let states = match state_schema(&key_fields, &aggregates) {
        Ok(s) => s,
        Err(e) => {
            fail(&ctx.failure, e);
            Arc::new(Schema::empty())
        }
    };
    let partial = partial(
        input,
        &ctx.failure,
        group,
        Arc::clone(&aggregates),
        key_fields.clone(),
        Arc::clone(&states),
        pool,
    );
    // without groups, every state goes to worker 0 (the hash of no key)
    let keys: Vec<usize> = if grouped {
        (0..key_fields.len()).collect()
    } else {
        Vec::new()
    };
    let routed = route(partial, &ctx.failure, ctx.peers, move |_| keys.clone());
    finish::finish(
        routed,
        ctx,
        finish::Final {
            aggregates,
            key_fields,
            states,
            schema: output,
        },
        pool,
    )
}

/// The partial phase: states per group of this worker's rows, sent on
/// early when they pass the budget.
fn partial<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
    failure: &Failure,
    group: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Arc<Vec<Aggregate>>,
    key_fields: Vec<Field>,
    states: SchemaRef,
    pool: &Pool,
) -> StreamVec<'s, BatchTime, Batch> {
    let failure = failure.clone();
    let grouped = !group.is_empty();
    let mut groups = Groups::or_fail(&key_fields, &aggregates, &failure);
    let mut memory = pool.reserve();
    input.unary_frontier::<CapacityContainerBuilder<Vec<Batch>>, _, _, _>(
        Pipeline,
        "AggregatePartial",
        move |cap, _| {
            let mut cap = Some(cap.delayed(&BatchTime::End));
            move |(input, frontier), output| {
                let mut step = || -> Result<()> {
                    let mut result = Ok(());
                    input.for_each(|_, data| {
                        for Batch(batch) in data.drain(..) {
                            let (Some(g), Some(cap), Ok(())) = (groups.as_mut(), &cap, &result)
                            else {
                                continue;
                            };
                            result = update(g, &group, &aggregates, &batch);
                            if result.is_ok() && grouped && !memory.try_hold(g.bytes()) {
                                result = emit_states(g, grouped, &states).map(|states| {
                                    output
                                        .session(cap)
                                        .give_iterator(states.into_iter().map(Batch))
                                });
                                groups = Groups::or_fail(&key_fields, &aggregates, &failure);
                                memory.release();
                            }
                        }
                    });
                    result?;
                    if let Some(g) = groups.as_mut()
                        && !grouped
                    {
                        // one group, which only distinct or list states grow
                        memory.hold("an aggregation's groups", g.bytes())?;
                    }
                    if !frontier.is_empty() {
                        return Ok(());
                    }
                    let (Some(cap), Some(mut g)) = (cap.take(), groups.take()) else {
                        return Ok(());
                    };
                    if let Some(states) = emit_states(&mut g, grouped, &states)? {
                        output.session(&cap).give(Batch(states));
                    }
                    Ok(())
                };
                if let Err(e) = step() {
                    fail(&failure, e);
                }
                if failure.is_set() || cap.is_none() {
                    cap = None;
                    groups = None;
                    memory.release();
                }
            }
        },
    )
}

/// Folds `batch` into the groups.
fn update(
    g: &mut Groups,
    group: &[Arc<dyn PhysicalExpr>],
    aggregates: &[Aggregate],
    batch: &RecordBatch,
) -> Result<()> {
    let rows = batch.num_rows();
    let keys = group
        .iter()
        .map(|e| evaluate(e, batch))
        .collect::<Result<Vec<_>>>()?;
    let indices = g.assign(&keys, rows)?;
    let total = g.count;
    for (a, acc) in aggregates.iter().zip(g.accumulators.iter_mut()) {
        let (values, filter) = arguments(a, batch)?;
        let filter: Option<&BooleanArray> = filter.as_ref().map(|f| f.as_boolean());
        acc.update_batch(&values, &indices, filter, total)?;
    }
    Ok(())
}

/// The arguments of aggregate `a` over `batch`, and its filter's values.
pub(crate) fn arguments(
    a: &Aggregate,
    batch: &RecordBatch,
) -> Result<(Vec<ArrayRef>, Option<ArrayRef>)> {
    let values = a
        .function
        .expressions()
        .iter()
        .map(|e| evaluate(e, batch))
        .collect::<Result<Vec<_>>>()?;
    let filter = match &a.filter {
        Some(f) => Some(evaluate(f, batch)?),
        None => None,
    };
    Ok((values, filter))
}

/// The groups' keys and states as one batch (`None`: no rows came).
fn emit_states(g: &mut Groups, grouped: bool, states: &SchemaRef) -> Result<Option<RecordBatch>> {
    if g.count == 0 {
        return Ok(None);
    }
    let mut columns = g.key_columns(grouped)?;
    for acc in g.accumulators.iter_mut() {
        columns.extend(acc.state(EmitTo::All)?);
    }
    Ok(Some(RecordBatch::try_new(Arc::clone(states), columns)?))
}

//! Grouped aggregation in two phases, as Flink and Spark do it: every worker
//! folds its rows into partial states per group (DataFusion's group
//! accumulators); once its input is complete (its frontier is empty) it sends
//! each group's state to the worker that owns the group's key, which merges
//! the states and, once every worker's states are in, evaluates.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::row::{OwnedRow, RowConverter};
use datafusion_expr::{EmitTo, GroupsAccumulator};
use datafusion_physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use weir_runtime::exec::{Failure, WorkerCtx};
use weir_runtime::time::BatchTime;

use super::{Budget, evaluate, fail, route, row_converter};
use crate::batch::Batch;
use crate::error::{Result, SqlError};
use crate::plan::Aggregate;

/// Groups and their accumulators.
struct Groups {
    converter: RowConverter,
    index: HashMap<OwnedRow, usize>,
    /// The key of each group (none without GROUP BY).
    keys: Vec<OwnedRow>,
    /// How many groups there are.
    count: usize,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

impl Groups {
    fn new(key_fields: &[Field], aggregates: &[Aggregate]) -> Result<Self> {
        let converter = row_converter(key_fields.iter().map(|f| f.data_type()))?;
        let accumulators = aggregates
            .iter()
            .map(|a| {
                let f = Arc::clone(&a.function);
                if f.groups_accumulator_supported() {
                    Ok(f.create_groups_accumulator()?)
                } else {
                    Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
                        f.create_accumulator()
                    })) as Box<dyn GroupsAccumulator>)
                }
            })
            .collect::<Result<_>>()?;
        Ok(Groups {
            converter,
            index: HashMap::new(),
            keys: Vec::new(),
            count: 0,
            accumulators,
        })
    }

    /// New groups, or `None` with the worker's job failed.
    fn or_fail(key_fields: &[Field], aggregates: &[Aggregate], failure: &Failure) -> Option<Self> {
        Groups::new(key_fields, aggregates)
            .map_err(|e| fail(failure, e))
            .ok()
    }

    /// The group of each row of `keys` (new groups are added).
    fn assign(&mut self, keys: &[ArrayRef], rows: usize) -> Result<Vec<usize>> {
        if keys.is_empty() {
            // without GROUP BY: one group, once a row came
            if rows > 0 {
                self.count = 1;
            }
            return Ok(vec![0; rows]);
        }
        let converted = self.converter.convert_columns(keys)?;
        let mut groups = Vec::with_capacity(rows);
        for row in converted.iter() {
            let next = self.keys.len();
            let group = *self.index.entry(row.owned()).or_insert(next);
            if group == next {
                self.keys.push(row.owned());
                self.count += 1;
            }
            groups.push(group);
        }
        Ok(groups)
    }

    /// Bytes the groups hold: their keys and accumulators.
    fn bytes(&self) -> usize {
        let keys: usize = self.keys.iter().map(|k| k.row().as_ref().len() + 48).sum();
        keys + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    /// The group key columns, in group order.
    fn key_columns(&self, grouped: bool) -> Result<Vec<ArrayRef>> {
        if !grouped {
            return Ok(Vec::new());
        }
        Ok(self
            .converter
            .convert_rows(self.keys.iter().map(|k| k.row()))?)
    }
}

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
    budget: Budget,
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
        states,
        budget,
    );
    // without groups, every state goes to worker 0 (the hash of no key)
    let keys: Vec<usize> = if grouped {
        (0..key_fields.len()).collect()
    } else {
        Vec::new()
    };
    let routed = route(partial, &ctx.failure, ctx.peers, move |_| keys.clone());
    finish(
        routed,
        &ctx.failure,
        aggregates,
        key_fields,
        output,
        ctx.index == 0,
        budget,
    )
}

fn partial<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
    failure: &Failure,
    group: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Arc<Vec<Aggregate>>,
    key_fields: Vec<Field>,
    states: SchemaRef,
    budget: Budget,
) -> StreamVec<'s, BatchTime, Batch> {
    let groups = Groups::or_fail(&key_fields, &aggregates, failure);
    let grouped = !group.is_empty();
    fold_groups(
        input,
        Pipeline,
        "AggregatePartial",
        (failure, budget),
        groups,
        move |g, Batch(batch)| update(g, &group, &aggregates, &batch),
        move |g| emit_states(g, grouped, &states),
    )
}

/// Folds every record of `input` into groups with `fold`; once the input is
/// complete, emits what `emit` makes of the groups.
fn fold_groups<'s, D, P>(
    input: StreamVec<'s, BatchTime, D>,
    pact: P,
    name: &str,
    (failure, budget): (&Failure, Budget),
    groups: Option<Groups>,
    fold: impl Fn(&mut Groups, D) -> Result<()> + 'static,
    emit: impl Fn(&mut Groups) -> Result<Option<RecordBatch>> + 'static,
) -> StreamVec<'s, BatchTime, Batch>
where
    D: Clone + 'static,
    P: timely::dataflow::channels::pact::ParallelizationContract<BatchTime, Vec<D>>,
{
    let failure = failure.clone();
    let mut groups = groups;
    input.unary_frontier::<CapacityContainerBuilder<Vec<Batch>>, _, _, _>(
        pact,
        name,
        move |cap, _| {
            let mut cap = Some(cap.delayed(&BatchTime::End));
            move |(input, frontier), output| {
                input.for_each(|_, data| {
                    for record in data.drain(..) {
                        let Some(g) = groups.as_mut().filter(|_| !failure.is_set()) else {
                            continue;
                        };
                        if let Err(e) = fold(g, record) {
                            fail(&failure, e);
                        } else if budget.exceeded(&failure, "an aggregation's groups", g.bytes()) {
                            groups = None;
                            return;
                        }
                    }
                });
                if !frontier.is_empty() {
                    return;
                }
                let Some(cap) = cap.take() else { return };
                let Some(mut g) = groups.take().filter(|_| !failure.is_set()) else {
                    return;
                };
                match emit(&mut g) {
                    Ok(Some(batch)) => output.session(&cap).give(Batch(batch)),
                    Ok(None) => {}
                    Err(e) => fail(&failure, e),
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
        let filter: Option<&BooleanArray> = filter.as_ref().map(|f| f.as_boolean());
        acc.update_batch(&values, &indices, filter, total)?;
    }
    Ok(())
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

/// The final phase. Without GROUP BY, worker 0 (where every state goes)
/// emits the one row even when no worker saw a row (`count(*)` 0, `sum`
/// null).
fn finish<'s>(
    input: StreamVec<'s, BatchTime, (u64, Batch)>,
    failure: &Failure,
    aggregates: Arc<Vec<Aggregate>>,
    key_fields: Vec<Field>,
    schema: SchemaRef,
    worker_zero: bool,
    budget: Budget,
) -> StreamVec<'s, BatchTime, Batch> {
    let keys = key_fields.len();
    let groups = Groups::or_fail(&key_fields, &aggregates, failure);
    let merging = Arc::clone(&aggregates);
    fold_groups(
        input,
        Exchange::new(|(to, _): &(u64, Batch)| *to),
        "AggregateFinal",
        (failure, budget),
        groups,
        move |g, (_, Batch(batch))| merge(g, keys, &merging, &batch),
        move |g| {
            if keys == 0 && g.count == 0 {
                return if worker_zero {
                    no_rows(&aggregates, &schema).map(Some)
                } else {
                    Ok(None)
                };
            }
            if g.count == 0 {
                return Ok(None);
            }
            let mut columns = g.key_columns(keys > 0)?;
            for acc in g.accumulators.iter_mut() {
                columns.push(acc.evaluate(EmitTo::All)?);
            }
            Ok(Some(RecordBatch::try_new(Arc::clone(&schema), columns)?))
        },
    )
}

/// The one row of an aggregate without GROUP BY over no rows: what fresh
/// accumulators say (`count` 0, `sum` null), as DataFusion answers.
fn no_rows(aggregates: &[Aggregate], schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = aggregates
        .iter()
        .map(|a| {
            Ok(a.function
                .create_accumulator()?
                .evaluate()?
                .to_array_of_size(1)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Merges a batch of partial states into the groups.
fn merge(g: &mut Groups, keys: usize, aggregates: &[Aggregate], batch: &RecordBatch) -> Result<()> {
    let rows = batch.num_rows();
    let key_columns: Vec<ArrayRef> = batch.columns()[..keys].to_vec();
    let indices = g.assign(&key_columns, rows)?;
    let total = g.count;
    let mut at = keys;
    for (a, acc) in aggregates.iter().zip(g.accumulators.iter_mut()) {
        let n = a.function.state_fields()?.len();
        let states = batch
            .columns()
            .get(at..at + n)
            .ok_or_else(|| SqlError::Execution("a partial state batch is too narrow".into()))?;
        acc.merge_batch(states, &indices, total)?;
        at += n;
    }
    Ok(())
}

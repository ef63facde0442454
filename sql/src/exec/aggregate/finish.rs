//! The final phase of an aggregation: each worker merges the partial states
//! of the groups it owns and, once every worker's states are in, evaluates
//! them. Past its budget it spills: its groups' states and every state batch
//! after them go to partition files by key, which are then merged and
//! evaluated one partition per activation (a key's states share one).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, SchemaRef};
use datafusion_expr::EmitTo;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use weir_runtime::exec::WorkerCtx;
use weir_runtime::spill::SpillDir;
use weir_runtime::time::BatchTime;

use super::emit_states;
use super::groups::Groups;
use crate::batch::Batch;
use crate::error::{Result, SqlError};
use crate::exec::spill::{Partitioned, Spilled};
use crate::exec::{Pool, Reservation, fail};
use crate::plan::Aggregate;

/// What the final phase computes.
pub(super) struct Final {
    pub(super) aggregates: Arc<Vec<Aggregate>>,
    /// The group columns.
    pub(super) key_fields: Vec<Field>,
    /// The partial states' schema (group columns first).
    pub(super) states: SchemaRef,
    /// The output's schema.
    pub(super) schema: SchemaRef,
}

impl Final {
    pub(super) fn groups(&self) -> Result<Groups> {
        Groups::new(&self.key_fields, &self.aggregates)
    }

    /// Merges a batch of partial states into the groups.
    pub(super) fn merge(&self, g: &mut Groups, batch: &RecordBatch) -> Result<()> {
        let keys = self.key_fields.len();
        let key_columns: Vec<ArrayRef> = batch.columns()[..keys].to_vec();
        let indices = g.assign(&key_columns, batch.num_rows())?;
        let total = g.count;
        let mut at = keys;
        for (a, acc) in self.aggregates.iter().zip(g.accumulators.iter_mut()) {
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

    /// The groups' final values (`None`: no group).
    pub(super) fn evaluate(&self, g: &mut Groups) -> Result<Option<RecordBatch>> {
        if g.count == 0 {
            return Ok(None);
        }
        let mut columns = g.key_columns(!self.key_fields.is_empty())?;
        for acc in g.accumulators.iter_mut() {
            columns.push(acc.evaluate(EmitTo::All)?);
        }
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.schema),
            columns,
        )?))
    }

    /// The one row of an aggregate without GROUP BY over no rows: what fresh
    /// accumulators say (`count` 0, `sum` null), as DataFusion answers.
    fn no_rows(&self) -> Result<RecordBatch> {
        let columns = self
            .aggregates
            .iter()
            .map(|a| {
                Ok(a.function
                    .create_accumulator()?
                    .evaluate()?
                    .to_array_of_size(1)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// Where the final phase's states are.
enum Held {
    /// Merged into groups in memory.
    Memory(Groups),
    /// Written to partitions, as they come.
    Spilling(Partitioned),
    /// Partitions still to evaluate (from the back).
    Spilled(Vec<Option<Spilled>>),
}

/// The final phase. Without GROUP BY, worker 0 (where every state goes)
/// emits the one row even when no worker saw a row (`count(*)` 0, `sum`
/// null).
pub(super) fn finish<'s>(
    input: StreamVec<'s, BatchTime, (u64, Batch)>,
    ctx: &WorkerCtx,
    plan: Final,
    pool: &Pool,
) -> StreamVec<'s, BatchTime, Batch> {
    let failure = ctx.failure.clone();
    let worker_zero = ctx.index == 0;
    let mut dir = SpillDir::new(None, ctx.spilled.clone());
    let keys: Vec<usize> = (0..plan.key_fields.len()).collect();
    let mut memory = pool.reserve();
    let scope = input.scope();
    input.unary_frontier::<CapacityContainerBuilder<Vec<Batch>>, _, _, _>(
        Exchange::new(|(to, _): &(u64, Batch)| *to),
        "AggregateFinal",
        move |cap, info| {
            let activator = scope.activator_for(info.address);
            let mut cap = Some(cap.delayed(&BatchTime::End));
            let mut held = match plan.groups() {
                Ok(g) => Some(Held::Memory(g)),
                Err(e) => {
                    fail(&failure, e);
                    None
                }
            };
            move |(input, frontier), output| {
                let mut step = || -> Result<bool> {
                    let Some(held) = held.as_mut() else {
                        input.for_each(|_, _| {});
                        return Ok(false);
                    };
                    let mut result = Ok(());
                    input.for_each(|_, data| {
                        for (_, Batch(batch)) in data.drain(..) {
                            if result.is_ok() {
                                result = take(held, &plan, &batch, &mut memory, &mut dir, &keys);
                            }
                        }
                    });
                    result?;
                    let Some(time) = cap.as_ref() else {
                        return Ok(false);
                    };
                    if !frontier.is_empty() {
                        return Ok(false);
                    }
                    let out = match held {
                        Held::Memory(g) if keys.is_empty() && g.count == 0 => {
                            worker_zero.then(|| plan.no_rows()).transpose()?
                        }
                        Held::Memory(g) => plan.evaluate(g)?,
                        Held::Spilling(_) => {
                            let Held::Spilling(parts) =
                                std::mem::replace(held, Held::Spilled(Vec::new()))
                            else {
                                return Ok(false);
                            };
                            *held = Held::Spilled(parts.finish(&dir)?);
                            activator.activate();
                            return Ok(false);
                        }
                        Held::Spilled(todo) => {
                            let Some(part) = todo.pop() else {
                                return Ok(true);
                            };
                            activator.activate();
                            let Some(part) = part else { return Ok(false) };
                            let mut g = plan.groups()?;
                            for batch in part.read()? {
                                plan.merge(&mut g, &batch)?;
                            }
                            memory.hold_partition("an aggregation's groups", g.bytes())?;
                            let out = plan.evaluate(&mut g)?;
                            memory.release();
                            output
                                .session(time)
                                .give_iterator(out.into_iter().map(Batch));
                            return Ok(false);
                        }
                    };
                    output
                        .session(time)
                        .give_iterator(out.into_iter().map(Batch));
                    Ok(true)
                };
                let done = step().unwrap_or_else(|e| {
                    fail(&failure, e);
                    true
                });
                if done || failure.is_set() {
                    cap = None;
                    held = None;
                    memory.release();
                }
            }
        },
    )
}

/// Takes a batch of partial states in: merged, or spilled, or (past the
/// budget) spilled with every group merged so far.
fn take(
    held: &mut Held,
    plan: &Final,
    batch: &RecordBatch,
    memory: &mut Reservation,
    dir: &mut SpillDir,
    keys: &[usize],
) -> Result<()> {
    match held {
        Held::Memory(g) => {
            plan.merge(g, batch)?;
            if keys.is_empty() {
                return memory.hold("an aggregation's groups", g.bytes());
            }
            if memory.try_hold(g.bytes()) {
                return Ok(());
            }
            let mut parts = Partitioned::new(Arc::clone(&plan.states));
            if let Some(states) = emit_states(g, true, &plan.states)? {
                parts.write(dir, &states, keys)?;
            }
            *held = Held::Spilling(parts);
            memory.release();
            Ok(())
        }
        Held::Spilling(parts) => parts.write(dir, batch, keys),
        Held::Spilled(_) => Err(SqlError::Execution(
            "partial states came after the aggregation's input was complete".into(),
        )),
    }
}

//! Runs a [`Plan`] as a timely dataflow on every worker of a configuration:
//! each node becomes operators on streams of Arrow batches, rows move between
//! workers by the hash of their keys (`route`) or to worker 0 (`gather`),
//! and timely's frontiers say when an operator's input is complete (a final
//! aggregate, a sort) and when a join's probe side may be read (`gate`).

mod aggregate;
mod gate;
mod join;
mod memory;
mod scan;
mod sort;
mod spill;
mod unnest;
mod window;
mod write;

pub(crate) use aggregate::{Folding, arguments};
pub(crate) use gate::{Gate, Opener};
pub(crate) use join::{JoinSpec, Lookup, meeting, with_keys};
pub use memory::Budget;
pub(crate) use memory::{Held, Pool, Reservation};
pub(crate) use scan::read_all;
pub use unnest::UnnestSpec;
pub use window::WindowSpec;
pub use write::{Destination, FileFormat};

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion_physical_expr::PhysicalExpr;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::{Concatenate, Probe};
use timely::dataflow::{ProbeHandle, Scope, StreamVec};
use timely::progress::Timestamp;
use timely::worker::Worker;
use weir_progress::agree::all_gather;
use weir_runtime::JobError;
use weir_runtime::exec::{Failure, RecordCounter, WorkerCtx};
use weir_runtime::time::BatchTime;

use crate::batch::Batch;
use crate::error::{Result, SqlError};
use crate::plan::{Node, Plan};

/// What a query produced, in the process that hosts worker 0.
#[derive(Debug)]
pub struct Output {
    /// The result's batches, in order (empty in other processes).
    pub batches: Vec<RecordBatch>,
    /// The result's schema.
    pub schema: SchemaRef,
    /// Rows read by all workers.
    pub rows_in: u64,
    /// Rows of the result (also when written to files).
    pub rows_out: u64,
    /// Bytes all workers spilled to disk (joins past their memory budget).
    pub spilled: u64,
    /// Whether this process hosts worker 0.
    pub leader: bool,
    /// Workers in all processes.
    pub workers: usize,
    /// Wall-clock time in this process.
    pub elapsed: Duration,
}

impl Output {
    /// Rows in the result.
    pub fn rows(&self) -> usize {
        self.rows_out as usize
    }
}

/// What each worker tells the others at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Report {
    rows_in: u64,
    rows_out: u64,
    spilled: u64,
    error: Option<JobError>,
}

/// Runs `plan` on this worker; every worker of the configuration runs it
/// alongside. Every worker returns the same error if any worker failed.
/// With `destination`, every worker writes its share of the result there
/// (an ordered result: worker 0, one file) instead of sending it to worker 0.
/// Otherwise worker 0 keeps the first `keep` rows (`None`: all) and counts
/// the rest.
pub fn run_on(
    worker: &mut Worker,
    plan: &Plan,
    destination: Option<&Destination>,
    budget: Budget,
    keep: Option<usize>,
) -> Result<Output, JobError> {
    let start = Instant::now();
    let ctx = WorkerCtx {
        index: worker.index(),
        peers: worker.peers(),
        local_peers: 0,
        failure: Failure::default(),
        records_in: RecordCounter::default(),
        flow: ProbeHandle::new(),
        spilled: Rc::default(),
    };
    let collected: Rc<RefCell<Vec<RecordBatch>>> = Rc::default();
    let rows_out: Rc<std::cell::Cell<u64>> = Rc::default();
    let done = ProbeHandle::new();
    worker.dataflow::<BatchTime, _, _>(|scope| {
        let open = timely::dataflow::operators::generic::operator::empty(scope);
        let root = build(&plan.root, scope, &ctx, &Pool::new(budget), &open);
        let root = if ordered(&plan.root) || destination.is_some() {
            root
        } else {
            gather(root)
        };
        let sink = Rc::clone(&collected);
        let counted = Rc::clone(&rows_out);
        let mut room = match destination {
            Some(_) => usize::MAX,
            None => keep.unwrap_or(usize::MAX),
        };
        root.unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Pipeline,
            "Collect",
            move |_, _| {
                move |input, _output| {
                    input.for_each(|_, data| {
                        for Batch(batch) in data.drain(..) {
                            counted.set(counted.get() + batch.num_rows() as u64);
                            let take = batch.num_rows().min(room);
                            if take > 0 {
                                room -= take;
                                sink.borrow_mut().push(batch.slice(0, take));
                            }
                        }
                    });
                }
            },
        )
        .probe_with(&done);
    });
    worker.step_or_park_while(None, || !done.done());
    let mut batches = std::mem::take(&mut *collected.borrow_mut());
    let rows_out = rows_out.get();
    if let Some(destination) = destination
        && !ctx.failure.is_set()
        && (ctx.index == 0 || !ordered(&plan.root))
    {
        if let Err(e) = destination.write(ctx.index, &plan.schema, &batches) {
            ctx.failure.set(e);
        }
        batches.clear();
    }
    let report = Report {
        rows_in: ctx.records_in.get(),
        rows_out,
        spilled: ctx.spilled.get(),
        error: ctx.failure.take(),
    };
    let reports = all_gather(worker, report);
    let error = reports.iter().find_map(|r| r.error.clone());
    if let Some(destination) = destination {
        destination.settle(ctx.index, error.is_none())?;
    }
    if let Some(error) = error {
        return Err(error);
    }
    Ok(Output {
        batches,
        schema: Arc::clone(&plan.schema),
        rows_in: reports.iter().map(|r| r.rows_in).sum(),
        rows_out: reports.iter().map(|r| r.rows_out).sum(),
        spilled: reports.iter().map(|r| r.spilled).sum(),
        leader: ctx.index == 0,
        workers: ctx.peers,
        elapsed: start.elapsed(),
    })
}

/// Whether `node` leaves its rows in order at worker 0 already.
fn ordered(node: &Node) -> bool {
    matches!(node, Node::Sort { .. } | Node::Limit { .. })
}

/// A row converter for keys of `types` (Arrow's row format: equal keys,
/// equal bytes).
pub(crate) fn row_converter<'a>(
    types: impl IntoIterator<Item = &'a arrow::datatypes::DataType>,
) -> Result<RowConverter> {
    Ok(RowConverter::new(
        types
            .into_iter()
            .map(|t| SortField::new(t.clone()))
            .collect(),
    )?)
}

/// Whether a key column of `data_type`, alone, is held by value (as 64-bit
/// integers) in a worker's hash tables rather than in Arrow's row format.
pub(crate) fn integer_key(data_type: &arrow::datatypes::DataType) -> bool {
    matches!(
        data_type,
        arrow::datatypes::DataType::Int64 | arrow::datatypes::DataType::Int32
    )
}

/// The values of an integer key column as 64-bit integers (a null's value
/// is arbitrary).
pub(crate) fn int_values(key: &ArrayRef) -> Result<arrow::buffer::ScalarBuffer<i64>> {
    let ints = arrow::compute::cast(key, &arrow::datatypes::DataType::Int64)?;
    Ok(ints
        .as_primitive::<arrow::datatypes::Int64Type>()
        .values()
        .clone())
}

/// An integer key's hash in a worker's hash tables: a folded multiply, so
/// that every bit of the key reaches the low bits that place it.
pub(crate) fn int_hash(key: i64) -> u64 {
    let product = u128::from(key as u64) * 0x9e37_79b9_7f4a_7c15;
    (product as u64) ^ ((product >> 64) as u64)
}

/// Fails the worker's job with `e` (the first error wins).
pub(crate) fn fail(failure: &Failure, e: impl Into<SqlError>) {
    failure.set(JobError::from(e.into()));
}

/// Evaluates `expr` on `batch` as an array of its rows.
pub(crate) fn evaluate(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef> {
    Ok(expr.evaluate(batch)?.into_array(batch.num_rows())?)
}

/// Sends each row to the worker that owns the hash of its `keys` columns
/// (XXH3-64 of their Arrow row encoding); with no keys, everything to
/// worker 0.
pub(crate) fn route<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
    failure: &Failure,
    peers: usize,
    keys: impl Fn(&RecordBatch) -> Vec<usize> + 'static,
) -> StreamVec<'s, BatchTime, (u64, Batch)> {
    let failure = failure.clone();
    input.unary::<CapacityContainerBuilder<Vec<(u64, Batch)>>, _, _, _>(
        Pipeline,
        "Route",
        move |_, _| {
            move |input, output| {
                input.for_each_stamp(|cap, data| {
                    let mut session = output.session(&cap);
                    for Batch(batch) in data.flat_map(|d| d.drain(..)) {
                        let keys = keys(&batch);
                        if keys.is_empty() || peers == 1 {
                            session.give((0, Batch(batch)));
                            continue;
                        }
                        match split(&batch, &keys, peers, ROUTE_SEED) {
                            Ok(parts) => session
                                .give_iterator(parts.into_iter().map(|(to, b)| (to, Batch(b)))),
                            Err(e) => fail(&failure, e),
                        }
                    }
                });
            }
        },
    )
}

/// The seed of the hash that routes rows to workers (XXH3's default).
const ROUTE_SEED: u64 = 0;

/// `batch`'s rows by the part (of `parts`) that owns their key: the XXH3-64,
/// seeded with `seed`, of the `keys` columns' Arrow row encoding.
pub(crate) fn split(
    batch: &RecordBatch,
    keys: &[usize],
    parts: usize,
    seed: u64,
) -> Result<Vec<(u64, RecordBatch)>> {
    let columns: Vec<ArrayRef> = keys.iter().map(|&k| Arc::clone(batch.column(k))).collect();
    split_by(batch, &columns, parts, |row| {
        twox_hash::XxHash3_64::oneshot_with_seed(seed, row)
    })
}

/// `batch`'s rows by the part (of `parts`) that `hash` of the Arrow row
/// encoding of their `keys` (columns of `batch`'s rows) chooses.
pub(crate) fn split_by(
    batch: &RecordBatch,
    keys: &[ArrayRef],
    parts: usize,
    hash: impl Fn(&[u8]) -> u64,
) -> Result<Vec<(u64, RecordBatch)>> {
    let converter = row_converter(keys.iter().map(|c| c.data_type()))?;
    let rows = converter.convert_columns(keys)?;
    let parts = parts.max(1);
    let mut chosen: Vec<Vec<u32>> = vec![Vec::new(); parts];
    for (i, row) in rows.iter().enumerate() {
        let to = hash(row.as_ref()) % parts as u64;
        chosen[to as usize].push(i as u32);
    }
    let mut out = Vec::new();
    for (to, indices) in chosen.into_iter().enumerate() {
        if indices.is_empty() {
            continue;
        }
        let indices = UInt32Array::from(indices);
        let columns = batch
            .columns()
            .iter()
            .map(|c| Ok(take(c, &indices, None)?))
            .collect::<Result<Vec<_>>>()?;
        out.push((to as u64, RecordBatch::try_new(batch.schema(), columns)?));
    }
    Ok(out)
}

/// Every batch to worker 0.
pub(crate) fn gather<'s>(
    input: StreamVec<'s, BatchTime, Batch>,
) -> StreamVec<'s, BatchTime, Batch> {
    input.unary::<CapacityContainerBuilder<Vec<Batch>>, _, _, _>(
        Exchange::new(|_: &Batch| 0),
        "Gather",
        |_, _| {
            |input, output| {
                input.for_each_stamp(|cap, data| {
                    let mut session = output.session(&cap);
                    for batch in data.flat_map(|d| d.drain(..)) {
                        session.give(batch);
                    }
                });
            }
        },
    )
}

/// Applies `f` to every batch (a failure is set, and the batch dropped).
pub(crate) fn map<'s, T: Timestamp>(
    input: StreamVec<'s, T, Batch>,
    failure: &Failure,
    name: &str,
    f: impl Fn(&RecordBatch) -> Result<RecordBatch> + 'static,
) -> StreamVec<'s, T, Batch> {
    let failure = failure.clone();
    input.unary::<CapacityContainerBuilder<Vec<Batch>>, _, _, _>(Pipeline, name, move |_, _| {
        move |input, output| {
            input.for_each_stamp(|cap, data| {
                let mut session = output.session(&cap);
                for Batch(batch) in data.flat_map(|d| d.drain(..)) {
                    if failure.is_set() {
                        continue;
                    }
                    match f(&batch) {
                        Ok(out) if out.num_rows() > 0 => session.give(Batch(out)),
                        Ok(_) => {}
                        Err(e) => fail(&failure, e),
                    }
                }
            });
        }
    })
}

/// The first `keys` fields of an aggregation's output `schema`: its group
/// key columns.
pub(crate) fn key_fields(schema: &SchemaRef, keys: usize) -> Vec<Field> {
    schema.fields()[..keys.min(schema.fields().len())]
        .iter()
        .map(|f| f.as_ref().clone())
        .collect()
}

/// What a node that maps each batch by itself does to a batch: filter,
/// project, unnest, tumbling and hopping windows (`None` for other nodes).
pub(crate) type RowOp = Box<dyn Fn(&RecordBatch) -> Result<RecordBatch>>;

/// The name and function of a node that maps each batch by itself.
pub(crate) fn row_op(node: &Node) -> Option<(&'static str, RowOp)> {
    Some(match node {
        Node::Filter { predicate, .. } => {
            let predicate = Arc::clone(predicate);
            let f = move |batch: &RecordBatch| {
                let mask = evaluate(&predicate, batch)?;
                Ok(filter_record_batch(batch, mask.as_boolean())?)
            };
            ("Filter", Box::new(f))
        }
        Node::Project { exprs, schema, .. } => {
            let (exprs, out) = (exprs.clone(), Arc::clone(schema));
            let f = move |batch: &RecordBatch| {
                let columns = exprs
                    .iter()
                    .map(|e| evaluate(e, batch))
                    .collect::<Result<Vec<_>>>()?;
                let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                Ok(RecordBatch::try_new_with_options(
                    Arc::clone(&out),
                    columns,
                    &options,
                )?)
            };
            ("Project", Box::new(f))
        }
        Node::Unnest { spec, .. } => {
            let spec = Arc::clone(spec);
            (
                "Unnest",
                Box::new(move |batch: &RecordBatch| unnest::unnest(batch, &spec)),
            )
        }
        Node::Window { spec, .. } if !spec.keys_route() => {
            let spec = Arc::clone(spec);
            (
                "Window",
                Box::new(move |batch: &RecordBatch| window::assign(batch, &spec)),
            )
        }
        _ => return None,
    })
}

/// `input` through the row operator `node`.
pub(crate) fn mapped<'s, T: Timestamp>(
    node: &Node,
    input: StreamVec<'s, T, Batch>,
    failure: &Failure,
) -> StreamVec<'s, T, Batch> {
    match row_op(node) {
        Some((name, f)) => map(input, failure, name, f),
        None => {
            fail(failure, SqlError::Plan("not a row operator".into()));
            input
        }
    }
}

/// The dataflow of `node` on one worker; its scans start once `gate` is
/// complete.
fn build<'s>(
    node: &Node,
    scope: Scope<'s, BatchTime>,
    ctx: &WorkerCtx,
    pool: &Pool,
    gate: &Gate<'s>,
) -> StreamVec<'s, BatchTime, Batch> {
    match node {
        Node::Scan { table, projection } => scan::scan(gate.clone(), ctx, table, projection),
        Node::Window { input, spec } if spec.keys_route() => window::sessions(
            build(input, scope, ctx, pool, gate),
            ctx,
            Arc::clone(spec),
            pool,
        ),
        Node::Filter { input, .. }
        | Node::Project { input, .. }
        | Node::Unnest { input, .. }
        | Node::Window { input, .. } => {
            mapped(node, build(input, scope, ctx, pool, gate), &ctx.failure)
        }
        Node::Aggregate {
            input,
            group,
            aggregates,
            schema,
        } => {
            let key_fields = key_fields(schema, group.len());
            aggregate::aggregate(
                build(input, scope, ctx, pool, gate),
                ctx,
                group.clone(),
                Arc::clone(aggregates),
                key_fields,
                Arc::clone(schema),
                pool,
            )
        }
        Node::Sort {
            input,
            order,
            fetch,
        } => sort::sort(
            build(input, scope, ctx, pool, gate),
            ctx,
            order.clone(),
            *fetch,
            pool,
        ),
        Node::Limit { input, skip, fetch } => {
            sort::limit(build(input, scope, ctx, pool, gate), *skip, *fetch)
        }
        Node::Join {
            left,
            right,
            on,
            filter,
            join_type,
            nulls_equal,
            null_aware,
            broadcast,
            schema,
        } => {
            let built = Opener::default();
            let probe_gate = built.gate(gate.clone());
            join::join(
                build(left, scope, ctx, pool, gate),
                build(right, scope, ctx, pool, &probe_gate),
                ctx,
                Arc::new(join::JoinSpec {
                    keys: Arc::clone(on),
                    filter: filter.clone(),
                    join_type: *join_type,
                    nulls_equal: *nulls_equal,
                    null_aware: *null_aware,
                    broadcast: *broadcast,
                    schema: Arc::clone(schema),
                }),
                pool,
                built,
            )
        }
        Node::Union { inputs, schema } => {
            let out = Arc::clone(schema);
            let streams: Vec<_> = inputs
                .iter()
                .map(|i| build(i, scope, ctx, pool, gate))
                .collect();
            map(
                scope.concatenate(streams),
                &ctx.failure,
                "Union",
                move |batch| {
                    Ok(RecordBatch::try_new(
                        Arc::clone(&out),
                        batch.columns().to_vec(),
                    )?)
                },
            )
        }
        Node::Empty { one_row } => empty(scope, ctx, *one_row && ctx.index == 0),
    }
}

/// No rows, or (on one worker) a row of no columns.
fn empty<'s>(
    scope: Scope<'s, BatchTime>,
    _ctx: &WorkerCtx,
    one_row: bool,
) -> StreamVec<'s, BatchTime, Batch> {
    source(scope, "Empty", move |cap, _| {
        let mut cap = Some(cap);
        move |output| {
            if let Some(cap) = cap.take()
                && one_row
            {
                let options = RecordBatchOptions::new().with_row_count(Some(1));
                if let Ok(batch) = RecordBatch::try_new_with_options(
                    Arc::new(Schema::empty()),
                    Vec::new(),
                    &options,
                ) {
                    output.session(&cap).give(Batch(batch));
                }
            }
        }
    })
}

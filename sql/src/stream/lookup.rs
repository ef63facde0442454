//! A lookup join: a stream joined with a bounded table (the Yahoo
//! benchmark's campaigns). Every worker reads the whole table, with its
//! filters and projections, when the dataflow is built, and probes it with
//! each batch of its share of the stream, where the batch is: the stream is
//! neither routed nor held, so the join keeps no state to checkpoint (a
//! restored run reads the table again), and the stream's watermarks and
//! event-time bounds pass through it.
//!
//! The table is the join's left (built) side, as the planner puts the
//! smaller side, and a stream is never smaller; the join owes nothing for
//! table rows that no stream row met (an inner join, a stream-side outer
//! join, or a semi or anti join of the stream's rows). What it gives for a
//! stream row depends on that row alone, so a stream of updates is joined
//! update by update: each row's output keeps its `op`.

use std::cell::RefCell;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::SchemaRef;
use datafusion_common::JoinType;
use timely::dataflow::StreamVec;
use weir_runtime::exec::Failure;

use crate::batch::Batch;
use crate::error::{Result, SqlError};
use crate::exec::{JoinSpec, Lookup, map, read_all, row_op};
use crate::plan::Node;
use crate::stream::updating::{signed, split_op, with_op};

/// Whether `node` reads no unbounded table.
pub(crate) fn bounded(node: &Node) -> bool {
    match node {
        Node::Scan { table, .. } => !table.unbounded,
        other => other.inputs().into_iter().all(bounded),
    }
}

/// Whether a join of type `join_type` with a bounded left side streams
/// (it owes nothing for left rows), and whether its left side is read
/// whole by every worker (a scan, filtered, projected or unnested); the
/// reason if not.
pub(crate) fn check(left: &Node, join_type: JoinType) -> Result<()> {
    if !matches!(
        join_type,
        JoinType::Inner | JoinType::Right | JoinType::RightSemi | JoinType::RightAnti
    ) {
        let kind = join_type.to_string().to_lowercase();
        return Err(SqlError::Unsupported(format!(
            "a {kind} join of a bounded table with a stream (it would owe the \
             table's rows that no row of the stream met: inner, stream-side \
             outer, semi and anti joins stream)"
        )));
    }
    readable(left)
}

/// Whether every worker can read `node` by itself.
fn readable(node: &Node) -> Result<()> {
    match node {
        Node::Scan { .. } => Ok(()),
        Node::Filter { input, .. } | Node::Project { input, .. } | Node::Unnest { input, .. } => {
            readable(input)
        }
        _ => Err(SqlError::Unsupported(
            "a bounded side of a join with a stream that is not a table's scan, \
             filtered, projected or unnested"
                .into(),
        )),
    }
}

/// Every row of the bounded `node` (checked by [`check`]).
fn rows(node: &Node) -> Result<Vec<RecordBatch>> {
    if let Node::Scan { table, projection } = node {
        return Ok(read_all(table, projection)?);
    }
    let (Some((_, op)), Some(input)) = (row_op(node), input_of(node)) else {
        return Err(SqlError::Plan("a lookup table that is not read".into()));
    };
    rows(input)?.iter().map(op).collect()
}

fn input_of(node: &Node) -> Option<&Node> {
    match node {
        Node::Filter { input, .. } | Node::Project { input, .. } | Node::Unnest { input, .. } => {
            Some(input)
        }
        _ => None,
    }
}

/// Joins `stream` (the right side; updates if `updates`) with every row of
/// `table` (the left), as `spec` says.
pub(crate) fn lookup<'s>(
    stream: StreamVec<'s, u64, Batch>,
    (table, updates): (&Node, bool),
    spec: Arc<JoinSpec>,
    failure: &Failure,
) -> StreamVec<'s, u64, Batch> {
    let signed = updates.then(|| with_op(&spec.schema));
    let built = rows(table).and_then(|rows| Lookup::new(rows, spec));
    let built = match built {
        Ok(built) => RefCell::new(built),
        Err(e) => {
            crate::exec::fail(failure, e);
            return super::empty(stream.scope());
        }
    };
    map(stream, failure, "Lookup", move |batch| {
        let mut built = built.borrow_mut();
        match &signed {
            Some(schema) => probe_updates(&mut built, batch, schema),
            None => built.probe(batch),
        }
    })
}

/// What the updates of `batch` give, each output row with the `op` of the
/// update it came of (`schema`: the join's columns, then `op`).
fn probe_updates(
    built: &mut Lookup,
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let (rows, ops) = split_op(batch)?;
    let mut parts = Vec::new();
    for op in ["+I", "-U", "+U", "-D"] {
        let these: BooleanArray = ops.iter().map(|o| Some(o == Some(op))).collect();
        let part = filter_record_batch(&rows, &these)?;
        if part.num_rows() == 0 {
            continue;
        }
        parts.push(signed(&built.probe(&part)?, schema, op)?);
    }
    Ok(concat_batches(schema, &parts)?)
}

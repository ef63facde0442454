//! A streaming aggregation without a window: its results change as rows
//! come, so it emits updates, as Flink's group aggregation does. Each row
//! it emits ends with an `op` column: `+I` a group's first result, `-U` a
//! result withdrawn, `+U` the result that replaces it (a result that did
//! not change is not emitted again), `-D` the result of a group gone.
//! Applying them in epoch order gives the current results.
//!
//! Over rows that only come, groups fold as a batch aggregation's do
//! (DataFusion's group accumulators); over updates (an aggregation of an
//! aggregation's results), `-U` and `-D` rows take back what they withdraw
//! (`retract`).
//!
//! Each group's state (DataFusion's accumulators' states, in Arrow's row
//! format) is keyed state of `weir-progress`, routed by the group key's
//! routing hash, checkpointed and restored at any worker count. A group
//! lives for the state's time to live (`SET table.exec.state.ttl`, counted
//! in epochs) after its last row, then goes without a word (as in Flink,
//! its last result stands; a later row starts the group afresh).

mod extremum;
mod retract;

pub(crate) use retract::retractable;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::RowConverter;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Map;
use weir_progress::byte_string::ByteString;
use weir_progress::checkpoint::{Ack, StatefulUnary};
use weir_streaming::run::StreamCtx;

use super::aggregate::{Codecs, Item, Routed, key_rows, route};
use crate::batch::Batch;
use crate::error::{Result, SqlError};
use crate::exec::{Folding, fail, map, row_converter, row_op};
use crate::plan::Node;
use crate::stream::keyed::Keyed;
use retract::Retractor;
use weir_runtime::exec::Failure;

/// The name of the column of updates' kinds.
pub(crate) const OP: &str = "op";

/// A group's state: the epoch after which it expires, and its aggregates'
/// states.
type GroupState = (i64, ByteString);

/// What the aggregation computes, and how long its groups live.
pub(crate) struct Updating {
    /// The aggregation.
    pub(crate) folding: Folding,
    /// Epochs a group lives after its last row.
    pub(crate) ttl: u64,
    /// Whether its input is updates (rows taken back as well as given).
    pub(crate) updates: bool,
}

/// `schema` with the `op` column after its columns.
pub(crate) fn with_op(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(OP, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// The rows of `batch`, updates, without their `op` column (the last), and
/// their ops.
pub(crate) fn split_op(batch: &RecordBatch) -> Result<(RecordBatch, StringArray)> {
    let last = batch.num_columns().saturating_sub(1);
    let ops = batch
        .column(last)
        .as_string_opt::<i32>()
        .ok_or_else(|| SqlError::Execution("updates without their op".into()))?
        .clone();
    Ok((batch.project(&(0..last).collect::<Vec<_>>())?, ops))
}

/// `batch`'s rows as updates of kind `op`, under `schema` (their columns,
/// then `op`).
pub(crate) fn signed(batch: &RecordBatch, schema: &SchemaRef, op: &str) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![op; batch.num_rows()])));
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Aggregates `rows` by group, emitting each epoch's updates. Returns the
/// updates (the aggregation's columns, then `op`) and the state's acks.
pub(crate) fn aggregate<'s>(
    rows: StreamVec<'s, u64, Batch>,
    spec: Arc<Updating>,
    name: &str,
    ctx: &StreamCtx,
) -> (StreamVec<'s, u64, Batch>, StreamVec<'s, u64, Ack>) {
    let peers = ctx.checkpoints.peers as u64;
    let failure = ctx.source.failure.clone();
    let routing = Arc::clone(&spec);
    let routed = rows.flat_map(move |Batch(batch)| {
        route(&routing.folding, &batch, peers).unwrap_or_else(|e| {
            fail(&failure, e);
            Vec::new()
        })
    });
    let failure = ctx.source.failure.clone();
    routed.stateful_unary(
        Exchange::new(|r: &Routed| r.to),
        name,
        &ctx.checkpoints,
        super::per_epoch(
            failure,
            move |state| Worker::new(&spec, state),
            Worker::apply,
        ),
    )
}

/// How a worker folds its groups: rows that only come (states merged as
/// DataFusion's group accumulators give them), or updates that also take
/// rows back.
enum Kind {
    Appended(Codecs),
    Updates(Retractor),
}

/// One epoch's changes: the results of the touched groups that had one,
/// their results now (a group gone has none), and their new states (`None`:
/// the group is gone).
#[derive(Default)]
pub(super) struct Epoch {
    pub(super) before: Option<RecordBatch>,
    pub(super) after: Option<RecordBatch>,
    pub(super) states: Vec<(ByteString, Option<ByteString>)>,
}

/// A worker's encodings and the expiry index of its groups.
struct Worker {
    spec: Arc<Updating>,
    kind: Kind,
    /// Group keys as bytes.
    keys: RowConverter,
    /// Results as bytes (to see whether one changed).
    results: RowConverter,
    /// Groups by the epoch after which they expire (an entry may be stale:
    /// the group's state says when it expires).
    expiring: super::ByTime,
    schema: SchemaRef,
}

impl Worker {
    fn new(spec: &Arc<Updating>, state: &Keyed<GroupState>) -> Result<Worker> {
        let expiring = super::by_time(state);
        let output = spec.folding.output();
        let k = spec.folding.keys();
        let kind = match spec.updates {
            true => Kind::Updates(Retractor::new(&spec.folding)?),
            false => Kind::Appended(Codecs::new(&spec.folding)?),
        };
        Ok(Worker {
            kind,
            keys: row_converter(output.fields()[..k].iter().map(|f| f.data_type()))?,
            results: row_converter(output.fields().iter().map(|f| f.data_type()))?,
            schema: with_op(output),
            spec: Arc::clone(spec),
            expiring,
        })
    }

    /// Expires the groups whose time ran out before `epoch`, then folds the
    /// epoch's rows into their groups and emits what changed.
    fn apply(
        &mut self,
        epoch: u64,
        items: Vec<Routed>,
        state: &mut Keyed<GroupState>,
        out: &mut Vec<Batch>,
    ) -> Result<()> {
        let now = i64::try_from(epoch).unwrap_or(i64::MAX);
        self.expire(state, now);
        let batches: Vec<RecordBatch> = items
            .into_iter()
            .filter_map(|r| match r.item {
                Item::Rows(Batch(b)) if b.num_rows() > 0 => Some(b),
                _ => None,
            })
            .collect();
        let changed = match &self.kind {
            Kind::Appended(codecs) => appended(&self.spec.folding, codecs, &batches, state)?,
            Kind::Updates(retractor) => match batches.first() {
                Some(first) => {
                    retractor.apply(&concat_batches(&first.schema(), &batches)?, state)?
                }
                None => Epoch::default(),
            },
        };
        let expiry = i64::try_from(epoch.saturating_add(self.spec.ttl)).unwrap_or(i64::MAX);
        for (key, states) in changed.states {
            match states {
                Some(states) => {
                    self.expiring.entry(expiry).or_default().insert(key.clone());
                    state.insert(key, (expiry, states));
                }
                None => {
                    state.remove(&key);
                }
            }
        }
        if let Some(changes) = self.changes(changed.before.as_ref(), changed.after.as_ref())? {
            out.push(Batch(changes));
        }
        Ok(())
    }

    /// The updates from results `before` (of the groups that had one) to
    /// results `after`: `-D` for a group gone.
    fn changes(
        &self,
        before: Option<&RecordBatch>,
        after: Option<&RecordBatch>,
    ) -> Result<Option<RecordBatch>> {
        let k = self.spec.folding.keys();
        let key_bytes =
            |batch: &RecordBatch| key_rows(&self.keys, &batch.columns()[..k], batch.num_rows());
        let mut old: HashMap<ByteString, u32> = HashMap::new();
        let mut old_rows = Vec::new();
        if let Some(before) = before {
            for (i, key) in key_bytes(before)?.into_iter().enumerate() {
                old.insert(key, i as u32);
            }
            let rows = self.results.convert_columns(before.columns())?;
            old_rows = rows.iter().map(|r| r.as_ref().to_vec()).collect();
        }
        let (mut emitted, mut ops) = (Vec::new(), Vec::new());
        let mut withdrawn: BTreeMap<u32, &str> = BTreeMap::new();
        if let Some(after) = after {
            let new_rows = self.results.convert_columns(after.columns())?;
            for (i, key) in key_bytes(after)?.into_iter().enumerate() {
                match old.remove(&key) {
                    Some(j) if old_rows[j as usize] == new_rows.row(i).as_ref() => {}
                    Some(j) => {
                        withdrawn.insert(j, "-U");
                        emitted.push(i as u32);
                        ops.push("+U");
                    }
                    None => {
                        emitted.push(i as u32);
                        ops.push("+I");
                    }
                }
            }
        }
        withdrawn.extend(old.into_values().map(|j| (j, "-D")));
        let mut parts = Vec::new();
        if let Some(before) = before.filter(|_| !withdrawn.is_empty()) {
            let (at, ops): (Vec<u32>, Vec<&str>) = withdrawn.into_iter().unzip();
            parts.push(self.tagged(before, at, ops)?);
        }
        if let Some(after) = after.filter(|_| !emitted.is_empty()) {
            parts.push(self.tagged(after, emitted, ops)?);
        }
        Ok(match parts.is_empty() {
            true => None,
            false => Some(concat_batches(&self.schema, &parts)?),
        })
    }

    /// Rows `at` of `batch`, each with its `op`.
    fn tagged(&self, batch: &RecordBatch, at: Vec<u32>, ops: Vec<&str>) -> Result<RecordBatch> {
        let rows = take_record_batch(batch, &UInt32Array::from(at))?;
        let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
        columns.push(Arc::new(StringArray::from(ops)));
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// Drops the groups whose last row came `ttl` or more epochs before
    /// `now` (whether or not this worker ran in between).
    fn expire(&mut self, state: &mut Keyed<GroupState>, now: i64) {
        while let Some(entry) = self.expiring.first_entry() {
            if *entry.key() >= now {
                break;
            }
            let at = *entry.key();
            for key in entry.remove() {
                if state.get(&key).is_some_and(|(expiry, _)| *expiry == at) {
                    state.remove(&key);
                }
            }
        }
    }
}

/// Folds `batches` (rows that only come) into the groups of `state`.
fn appended(
    folding: &Folding,
    codecs: &Codecs,
    batches: &[RecordBatch],
    state: &Keyed<GroupState>,
) -> Result<Epoch> {
    let Some(folded) = folding.fold(batches)? else {
        return Ok(Epoch::default());
    };
    let k = folding.keys();
    let mut held_keys = Vec::new();
    let mut held_states = Vec::new();
    for key in codecs.encode_keys(&folded, k)? {
        if let Some((_, states)) = state.get(&key) {
            held_states.push(states.clone());
            held_keys.push(key);
        }
    }
    let held = match held_keys.is_empty() {
        true => None,
        false => Some(codecs.decode(folding, &held_keys, &held_states)?),
    };
    let parts: Vec<RecordBatch> = held.iter().cloned().chain([folded]).collect();
    let Some(merged) = folding.merge(&parts)? else {
        return Ok(Epoch::default());
    };
    let keys = codecs.encode_keys(&merged, k)?;
    let states = codecs.encode_states(&merged, k)?;
    Ok(Epoch {
        before: match held {
            Some(held) => folding.evaluate(&[held])?,
            None => None,
        },
        after: folding.evaluate(&[merged])?,
        states: keys.into_iter().zip(states.into_iter().map(Some)).collect(),
    })
}

/// Updates through the filter or projection `node`: a projection keeps
/// each row's `op`.
pub(crate) fn mapped<'s>(
    node: &Node,
    rows: StreamVec<'s, u64, Batch>,
    failure: &Failure,
) -> StreamVec<'s, u64, Batch> {
    let Some((name, f)) = row_op(node) else {
        fail(failure, SqlError::Plan("not a row operator".into()));
        return rows;
    };
    let schema = match node {
        Node::Project { schema, .. } => Some(with_op(schema)),
        _ => None,
    };
    map(rows, failure, name, move |batch: &RecordBatch| {
        let out = f(batch)?;
        let Some(schema) = &schema else {
            return Ok(out);
        };
        let mut columns = out.columns().to_vec();
        columns.push(Arc::clone(batch.column(batch.num_columns() - 1)));
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    })
}

//! Streaming queries: a query over `UNBOUNDED` tables runs as a streaming
//! job of `weir stream`'s kind. Records carry epochs (timely's time), the
//! sources close an epoch at every checkpoint interval and record their
//! positions in its checkpoint, and the runner of `weir_streaming::run`
//! restores, replays and commits; a query's rows of an epoch are handed over
//! once a checkpoint covers the epoch (see `sink`).
//!
//! What streams so far: scans of Nexmark tables (`source`) with their
//! watermarks; filters, projections, unnesting, and tumbling and hopping
//! windows, which map each batch by itself; and aggregations grouped by a
//! window's start or end (`aggregate`), whose groups fire as event time
//! passes their window; and inner and semi joins whose rows expire with
//! event time (`join`: window and interval joins, when `bounds` finds how
//! late a row can meet the other side), or else, with `SET
//! table.exec.state.ttl`, after that many epochs (regular joins). With
//! that setting, aggregations without a window emit updates (`updating`).
//! Session windows hold each key's rows until event time has passed their
//! session (`session`). Kafka tables (`kafka`) send records that do not
//! decode to a dead-letter topic; `insert` writes into one. Other
//! aggregations and joins are refused at plan time with the reason.

mod aggregate;
mod bounds;
mod dir;
mod encode;
mod explain;
mod insert;
mod join;
mod kafka;
mod keyed;
mod late;
mod lookup;
mod plan;
mod session;
mod sink;
mod source;
mod updating;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::operators::Concatenate;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::{Scope, StreamVec};
use weir_progress::checkpoint::Ack;
use weir_progress::recovery::Recovery;
use weir_progress::store::CheckpointStore;
use weir_runtime::JobError;
use weir_streaming::dir_sink::{CommitFiles, DirSink, TSV, recover_output};
use weir_streaming::run::{Built, Commit, StreamCtx, StreamOptions, StreamSummary, run_stream};

use keyed::{ByTime, by_time, per_epoch};
pub(crate) use lookup::bounded;
pub use plan::StreamPlan;
use plan::window_of;
pub use sink::{Deliver, Sink, csv};
pub use source::SPLITS;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::JoinType;
use datafusion_physical_expr::PhysicalExpr;
use weir_streaming::window::Watermark;

use crate::batch::Batch;
use crate::catalog::Format;
use crate::error::{Result, SqlError};
use crate::exec::{Folding, JoinSpec, key_fields, mapped};
use crate::plan::{JoinKeys, Node};

/// How a streaming query cuts its input into epochs, and how long it
/// waits on a Kafka broker.
#[derive(Clone, Copy, Debug)]
pub struct Epochs {
    /// An epoch (a checkpoint) closes every `interval`.
    pub interval: Duration,
    /// A Kafka table's stream ends once no record has come for this long.
    pub stop_when_idle: Option<Duration>,
    /// How long a Kafka broker may stay unreachable before the job fails.
    pub broker_timeout: Duration,
}

impl Epochs {
    /// Epochs of `interval`, streams without end, brokers waited on for
    /// the default 30 s.
    pub fn every(interval: Duration) -> Epochs {
        Epochs {
            interval,
            stop_when_idle: None,
            broker_timeout: weir_streaming::kafka::source::BROKER_TIMEOUT,
        }
    }
}

/// Runs `query` as a streaming job on `config` until its sources end
/// (bounded Nexmark tables end after their `events`, Kafka tables once
/// idle, if `epochs` says so), closing epochs as `epochs` says; its rows
/// go to the Kafka table it inserts into, or else to `sink`.
pub fn run(
    config: timely::Config,
    query: Arc<StreamPlan>,
    options: &StreamOptions,
    epochs: Epochs,
    sink: Sink,
) -> std::result::Result<StreamSummary, JobError> {
    let (settle, inserting) = (sink.clone(), Arc::clone(&query));
    let prepare = move |recovery: &Recovery, store: &CheckpointStore, workers: usize| {
        let waited = (workers, epochs.broker_timeout);
        for dead in &inserting.dead {
            dead.prepare(store, recovery, waited)?;
        }
        if let Some(late) = &inserting.late {
            late.prepare(store, recovery, waited)?;
        }
        if let Some(into) = &inserting.into {
            return into.prepare(store, recovery, waited);
        }
        match &settle {
            Sink::Dir(dir) => recover_output(
                dir,
                recovery.committed_before(),
                recovery.manifest.is_none(),
            ),
            Sink::Deliver(_) => Ok(()),
        }
    };
    run_stream(config, options, prepare, move |scope, ctx| {
        let mut parts = Parts {
            acks: Vec::new(),
            commits: Vec::new(),
            late: Vec::new(),
            operators: 0,
            built: BTreeMap::new(),
        };
        // a row's time to live, in epochs (at least one)
        let ttl = query
            .state_ttl
            .map(|ttl| ttl.as_nanos().div_ceil(epochs.interval.as_nanos().max(1)))
            .map(|n| u64::try_from(n).unwrap_or(u64::MAX));
        let rows = build(&query.plan.root, scope, ctx, (epochs, ttl), &mut parts).rows;
        let Parts {
            mut acks,
            mut commits,
            late,
            ..
        } = parts;
        if let Some(table) = &query.late {
            let late = scope.concatenate(late);
            let (sink_acks, commit) = table.write(late, ctx, epochs.broker_timeout);
            acks.push(sink_acks);
            commits.push(commit);
        }
        if let Some(into) = &query.into {
            let (sink_acks, commit) = into.write(rows, ctx, epochs.broker_timeout);
            acks.push(sink_acks);
            commits.push(commit);
            return Built { acks, commits };
        }
        let commit: Box<dyn Commit<'_>> = match &sink {
            Sink::Deliver(deliver) => Box::new(Delivered {
                rows,
                committed_before: ctx.recovery.committed_before(),
                worker: ctx.checkpoints.index,
                source: ctx.source.clone(),
                counted: ctx.records_out.clone(),
                deliver: Arc::clone(deliver),
            }),
            Sink::Dir(dir) => {
                let failure = ctx.source.failure.clone();
                let lines = rows.flat_map(move |Batch(batch)| match csv(&batch) {
                    Ok(text) => text.lines().map(String::from).collect(),
                    Err(e) => {
                        crate::exec::fail(&failure, e);
                        Vec::new()
                    }
                });
                let sink = DirSink {
                    dir: dir.clone(),
                    committed_before: ctx.recovery.committed_before(),
                    extension: TSV,
                };
                let (sink_acks, staged) = lines.commit_files(
                    "sink",
                    &sink,
                    &ctx.checkpoints,
                    &ctx.source,
                    &ctx.records_out,
                );
                acks.push(sink_acks);
                Box::new(staged)
            }
        };
        commits.push(commit);
        Built { acks, commits }
    })
}

/// The rows of a query, waiting for the committed stream.
struct Delivered<'s> {
    rows: StreamVec<'s, u64, Batch>,
    committed_before: u64,
    worker: usize,
    source: weir_runtime::source_ctx::SourceCtx,
    counted: weir_runtime::exec::RecordCounter,
    deliver: Deliver,
}

impl<'s> Commit<'s> for Delivered<'s> {
    fn publish(
        self: Box<Self>,
        committed: StreamVec<'s, u64, weir_progress::checkpoint::Committed>,
    ) -> StreamVec<'s, u64, ()> {
        sink::deliver(
            (self.rows, self.committed_before),
            committed,
            self.worker,
            &self.source,
            &self.counted,
            self.deliver,
        )
    }
}

/// What a query's operators give the runner besides its rows: the acks of
/// its sources and stateful operators, and the commit steps of its sinks
/// of dead letters; and how many operators it has built (each named by its
/// place).
struct Parts<'s> {
    acks: Vec<StreamVec<'s, u64, Ack>>,
    commits: Vec<Box<dyn Commit<'s> + 's>>,
    /// The late rows of its window operators.
    late: Vec<StreamVec<'s, u64, Batch>>,
    operators: usize,
    /// The flows of the nodes built so far, by the whole subtree each heads
    /// (its `Debug` form): a part that a query holds twice (Nexmark q5 scans
    /// `bid` and aggregates it by window the same way in two subqueries) is
    /// built once and its rows go to both consumers, as Flink reuses sub-plans.
    built: BTreeMap<String, Flow<'s>>,
}

/// A node's rows, and the watermarks of the sources under it.
#[derive(Clone)]
struct Flow<'s> {
    rows: StreamVec<'s, u64, Batch>,
    watermarks: Option<StreamVec<'s, u64, Watermark>>,
}

/// The dataflow of `node` on one worker, cutting epochs as `epochs` says
/// and holding the rows of joins without a time bound for `ttl` epochs;
/// what else its operators give the runner goes to `parts`. A subtree equal
/// to one built already is not built again: its flow is shared.
fn build<'s>(
    node: &Node,
    scope: Scope<'s, u64>,
    ctx: &StreamCtx,
    options: (Epochs, Option<u64>),
    parts: &mut Parts<'s>,
) -> Flow<'s> {
    let subtree = subtree(node);
    if let Some(flow) = parts.built.get(&subtree) {
        return flow.clone();
    }
    let flow = build_new(node, scope, ctx, options, parts);
    parts.built.insert(subtree, flow.clone());
    flow
}

/// What makes two subtrees the same, for [`build`] to build them once (and
/// `EXPLAIN` to show them once): `node` and all under it, as `Debug` shows
/// them.
fn subtree(node: &Node) -> String {
    format!("{node:?}")
}

/// [`build`] of a node not built before.
fn build_new<'s>(
    node: &Node,
    scope: Scope<'s, u64>,
    ctx: &StreamCtx,
    (epochs, ttl): (Epochs, Option<u64>),
    parts: &mut Parts<'s>,
) -> Flow<'s> {
    let failure = &ctx.source.failure;
    parts.operators += 1;
    match node {
        Node::Scan { table, projection } => {
            let name = format!("{}#{}", table.name, parts.operators);
            let source = match &table.format {
                Format::Nexmark(nexmark) => Some(source::nexmark(
                    scope,
                    &name,
                    *nexmark,
                    projection.clone(),
                    epochs.interval,
                    ctx,
                )),
                Format::Kafka(topic) => kafka::kafka(
                    scope,
                    &name,
                    (table, topic),
                    projection.clone(),
                    epochs,
                    ctx,
                ),
                _ => table.stream.as_ref().map(|stream| {
                    dir::dir(
                        scope,
                        &name,
                        (table, stream),
                        projection.clone(),
                        epochs,
                        ctx,
                    )
                }),
            };
            let Some(source) = source else {
                return Flow {
                    rows: empty(scope),
                    watermarks: None,
                };
            };
            parts.acks.push(source.acks);
            parts.commits.extend(source.commit);
            Flow {
                rows: source.rows,
                watermarks: Some(source.watermarks),
            }
        }
        Node::Window { input, spec } if spec.keys_route() => {
            let name = format!("session#{}", parts.operators);
            let flow = build(input, scope, ctx, (epochs, ttl), parts);
            let Some(watermarks) = flow.watermarks else {
                crate::exec::fail(
                    failure,
                    SqlError::Plan("a stream without watermarks".into()),
                );
                return Flow {
                    rows: empty(scope),
                    watermarks: None,
                };
            };
            let (out, state_acks) =
                session::sessions(flow.rows, watermarks.clone(), Arc::clone(spec), &name, ctx);
            parts.acks.push(state_acks);
            let (rows, late) = late::split(out);
            parts.late.push(late);
            Flow {
                rows,
                watermarks: Some(watermarks),
            }
        }
        Node::Filter { input, .. }
        | Node::Project { input, .. }
        | Node::Unnest { input, .. }
        | Node::Window { input, .. } => {
            let flow = build(input, scope, ctx, (epochs, ttl), parts);
            let rows = match plan::updating(input) {
                true => updating::mapped(node, flow.rows, failure),
                false => mapped(node, flow.rows, failure),
            };
            Flow {
                rows,
                watermarks: flow.watermarks,
            }
        }
        Node::Aggregate {
            input,
            group,
            aggregates,
            schema,
        } => {
            let name = format!("aggregate#{}", parts.operators);
            let flow = build(input, scope, ctx, (epochs, ttl), parts);
            let key_fields = key_fields(schema, group.len());
            if let (Ok(None), Some(ttl)) = (window_of(input, group), ttl) {
                let folding = Folding::new(
                    group.clone(),
                    Arc::clone(aggregates),
                    key_fields,
                    Arc::clone(schema),
                );
                let folding = match folding {
                    Ok(folding) => folding,
                    Err(e) => {
                        crate::exec::fail(failure, e);
                        return Flow {
                            rows: empty(scope),
                            watermarks: None,
                        };
                    }
                };
                let spec = Arc::new(updating::Updating {
                    folding,
                    ttl,
                    updates: plan::updating(input),
                });
                let (rows, state_acks) = updating::aggregate(flow.rows, spec, &name, ctx);
                parts.acks.push(state_acks);
                return Flow {
                    rows,
                    watermarks: None,
                };
            }
            let windowed = window_of(input, group).and_then(|window| {
                let (end, past) = window.ok_or_else(|| SqlError::Plan("no window".into()))?;
                Ok(aggregate::Windowed {
                    folding: Folding::new(
                        group.clone(),
                        Arc::clone(aggregates),
                        key_fields,
                        Arc::clone(schema),
                    )?,
                    end,
                    past,
                })
            });
            let (Ok(windowed), Some(watermarks)) = (windowed, flow.watermarks) else {
                crate::exec::fail(failure, SqlError::Plan("a stream without a window".into()));
                return Flow {
                    rows: empty(scope),
                    watermarks: None,
                };
            };
            let (out, state_acks) = aggregate::aggregate(
                flow.rows,
                watermarks.clone(),
                Arc::new(windowed),
                &name,
                ctx,
            );
            parts.acks.push(state_acks);
            let (rows, late) = late::split(out);
            parts.late.push(late);
            // its groups fire as these pass their windows
            Flow {
                rows,
                watermarks: Some(watermarks),
            }
        }
        Node::Join {
            left,
            right,
            on,
            filter,
            nulls_equal,
            join_type,
            schema,
            ..
        } => {
            if lookup::bounded(left) {
                let flow = build(right, scope, ctx, (epochs, ttl), parts);
                let spec = JoinSpec {
                    keys: Arc::clone(on),
                    filter: filter.clone(),
                    join_type: *join_type,
                    nulls_equal: *nulls_equal,
                    null_aware: false,
                    broadcast: true,
                    schema: Arc::clone(schema),
                };
                return Flow {
                    rows: lookup::lookup(
                        flow.rows,
                        (left, plan::updating(right)),
                        Arc::new(spec),
                        failure,
                    ),
                    watermarks: flow.watermarks,
                };
            }
            let name = format!("join#{}", parts.operators);
            let flows = [
                build(left, scope, ctx, (epochs, ttl), parts),
                build(right, scope, ctx, (epochs, ttl), parts),
            ];
            let join = stream_join(
                (left, right),
                (on, filter),
                (*join_type, *nulls_equal),
                schema,
                ttl,
            );
            let join = match join {
                Ok(join) => join,
                Err(e) => {
                    crate::exec::fail(failure, e);
                    return Flow {
                        rows: empty(scope),
                        watermarks: None,
                    };
                }
            };
            let [left, right] = flows;
            // a join whose rows live for the time to live reads no event
            // time (its updating sides have none)
            let (l, r, lw, rw) = match (left.watermarks, right.watermarks, &join.expiry) {
                (Some(lw), Some(rw), _) => (left.rows, right.rows, lw, rw),
                (_, _, join::Expire::After(_)) => {
                    (left.rows, right.rows, empty(scope), empty(scope))
                }
                _ => {
                    crate::exec::fail(
                        failure,
                        SqlError::Plan("a join of streams without watermarks".into()),
                    );
                    return Flow {
                        rows: empty(scope),
                        watermarks: None,
                    };
                }
            };
            let (rows, state_acks) = join::join([l, r], [lw, rw], Arc::new(join), &name, ctx);
            parts.acks.push(state_acks);
            Flow {
                rows,
                watermarks: None,
            }
        }
        // refused by `check`
        _ => Flow {
            rows: empty(scope),
            watermarks: None,
        },
    }
}

/// The streaming form of a join (checked by `check`): its rows expire with
/// event time when `bounds` finds how, else after `ttl` epochs.
fn stream_join(
    (left, right): (&Node, &Node),
    (on, filter): (&Arc<JoinKeys>, &Option<Arc<dyn PhysicalExpr>>),
    (join_type, nulls_equal): (JoinType, bool),
    schema: &SchemaRef,
    ttl: Option<u64>,
) -> Result<join::StreamJoin> {
    let unbounded = || SqlError::Plan("a join without bounds".into());
    let updates = [plan::updating(left), plan::updating(right)];
    // updates have no event time: their rows live for the time to live
    let bounds = match updates.contains(&true) {
        true => None,
        false => bounds::expiry(left, right, on, filter.as_ref()),
    };
    let expiry = match (bounds, ttl) {
        (Some(bounds), _) => join::Expire::EventTime(bounds),
        (None, Some(epochs)) => join::Expire::After(epochs),
        (None, None) => return Err(unbounded()),
    };
    let keyed = |node: &Node, keys: &[Arc<dyn PhysicalExpr>]| -> Result<SchemaRef> {
        let input = bounds::schema(node).ok_or_else(unbounded)?;
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (i, k) in keys.iter().enumerate() {
            fields.push(Field::new(format!("__key{i}"), k.data_type(&input)?, true));
        }
        Ok(Arc::new(Schema::new(fields)))
    };
    Ok(join::StreamJoin {
        keyed: [keyed(left, &on.left)?, keyed(right, &on.right)?],
        spec: JoinSpec {
            keys: Arc::clone(on),
            filter: filter.clone(),
            join_type,
            nulls_equal,
            null_aware: false,
            broadcast: false,
            schema: Arc::clone(schema),
        },
        expiry,
        updates,
        emits_updates: plan::join_updates((left, right), (on, filter.as_ref()), join_type),
    })
}

/// A stream without rows.
fn empty<'s, D: Clone + 'static>(scope: Scope<'s, u64>) -> StreamVec<'s, u64, D> {
    timely::dataflow::operators::generic::operator::empty(scope)
}

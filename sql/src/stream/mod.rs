//! Streaming queries: a query over `UNBOUNDED` tables runs as a streaming
//! job of `weir stream`'s kind. Records carry epochs (timely's time), the
//! sources close an epoch at every checkpoint interval and record their
//! positions in its checkpoint, and the runner of `weir_streaming::run`
//! restores, replays and commits; a query's rows of an epoch are handed over
//! once a checkpoint covers the epoch (see [`sink`]).
//!
//! What streams so far: scans of Nexmark tables ([`source`]), filters,
//! projections, unnesting, and tumbling and hopping windows, which map
//! each batch by itself. Aggregations and joins (state kept across
//! epochs) are refused at plan time with the reason.

mod sink;
mod source;

use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::{Scope, StreamVec};
use weir_progress::checkpoint::Ack;
use weir_runtime::JobError;
use weir_streaming::run::{Built, StreamCtx, StreamOptions, StreamSummary, run_stream};

pub use sink::Deliver;
pub use source::SPLITS;

use crate::batch::Batch;
use crate::catalog::Format;
use crate::error::{Result, SqlError};
use crate::exec::mapped;
use crate::plan::{Node, Plan};

/// A streaming query, checked to stream.
pub struct StreamPlan {
    plan: Plan,
}

impl StreamPlan {
    /// `plan` if every node of it streams; otherwise what does not.
    pub fn new(plan: Plan) -> Result<StreamPlan> {
        check(&plan.root)?;
        Ok(StreamPlan { plan })
    }

    /// Its plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
}

/// Whether `node` streams.
fn check(node: &Node) -> Result<()> {
    let refuse = |what: &str| {
        Err(SqlError::Unsupported(format!(
            "{what} in a streaming query (filters, projections, unnest, \
             tumble and hop windows stream so far)"
        )))
    };
    match node {
        Node::Scan { table, .. } => match table.format {
            Format::Nexmark(_) if table.unbounded => Ok(()),
            _ => refuse(&format!("the bounded table {}", table.name)),
        },
        Node::Filter { input, .. } | Node::Project { input, .. } | Node::Unnest { input, .. } => {
            check(input)
        }
        Node::Window { input, spec } if !spec.keys_route() => check(input),
        Node::Window { .. } => refuse("a session window"),
        Node::Union { .. } => refuse("UNION"),
        Node::Aggregate { .. } => refuse("an aggregation"),
        Node::Join { .. } => refuse("a join"),
        Node::Sort { .. } | Node::Limit { .. } => refuse("ORDER BY or LIMIT"),
        Node::Empty { .. } => refuse("a query without a table"),
    }
}

/// Runs `query` as a streaming job on `config` until its sources end
/// (bounded Nexmark tables end after their `events`), closing an epoch (a
/// checkpoint) every `interval`; `deliver` receives every worker's rows of
/// each committed epoch.
pub fn run(
    config: timely::Config,
    query: Arc<StreamPlan>,
    options: &StreamOptions,
    interval: Duration,
    deliver: Deliver,
) -> std::result::Result<StreamSummary, JobError> {
    run_stream(
        config,
        options,
        |_, _, _| Ok(()),
        move |scope, ctx| {
            let mut acks = Vec::new();
            let mut sources = 0;
            let rows = build(
                &query.plan.root,
                scope,
                ctx,
                interval,
                &mut acks,
                &mut sources,
            );
            let committed_rows = Committed {
                rows,
                worker: ctx.checkpoints.index,
                source: ctx.source.clone(),
                deliver: Arc::clone(&deliver),
            };
            Built {
                acks,
                commits: vec![Box::new(committed_rows)],
            }
        },
    )
}

/// The rows of a query, waiting for the committed stream.
struct Committed<'s> {
    rows: StreamVec<'s, u64, Batch>,
    worker: usize,
    source: weir_runtime::source_ctx::SourceCtx,
    deliver: Deliver,
}

impl<'s> weir_streaming::run::Commit<'s> for Committed<'s> {
    fn publish(
        self: Box<Self>,
        committed: StreamVec<'s, u64, weir_progress::checkpoint::Committed>,
    ) -> StreamVec<'s, u64, ()> {
        sink::deliver(
            self.rows,
            committed,
            self.worker,
            &self.source,
            self.deliver,
        )
    }
}

/// The dataflow of `node` on one worker; its sources' acks go to `acks`
/// (each source named by its place, the `sources`-th).
fn build<'s>(
    node: &Node,
    scope: Scope<'s, u64>,
    ctx: &StreamCtx,
    interval: Duration,
    acks: &mut Vec<StreamVec<'s, u64, Ack>>,
    sources: &mut usize,
) -> StreamVec<'s, u64, Batch> {
    let failure = &ctx.source.failure;
    match node {
        Node::Scan { table, projection } => {
            *sources += 1;
            let name = format!("{}#{}", table.name, sources);
            let Format::Nexmark(nexmark) = table.format else {
                return empty(scope);
            };
            let (rows, source_acks) =
                source::nexmark(scope, &name, nexmark, projection.clone(), interval, ctx);
            acks.push(source_acks);
            rows
        }
        Node::Filter { input, .. }
        | Node::Project { input, .. }
        | Node::Unnest { input, .. }
        | Node::Window { input, .. } => {
            let rows = build(input, scope, ctx, interval, acks, sources);
            mapped(node, rows, failure)
        }
        // refused by `check`
        _ => empty(scope),
    }
}

/// A stream without rows.
fn empty<'s>(scope: Scope<'s, u64>) -> StreamVec<'s, u64, Batch> {
    timely::dataflow::operators::generic::operator::empty(scope)
}

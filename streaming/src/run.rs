//! Runs a checkpointed streaming job on a timely configuration.
//!
//! Before any worker builds its dataflow, worker 0 decides how the job starts
//! ([`Recovery::prepare`]: fresh, or which checkpoint, falling back past damaged
//! ones, and which epochs to replay) and settles what a crashed run left in the
//! output; every worker then gets the same decision. The job's acknowledgements
//! go to the coordinator, whose committed epochs publish the sinks' files. The
//! job ends when its sources stop (`--stop-when-idle`) and the last checkpoint
//! is committed, or when a worker fails (every worker then stops: see
//! [`weir_progress::checkpoint::Committed::Abort`]).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::{Concatenate, Inspect, Probe};
use timely::dataflow::{ProbeHandle, Scope, StreamVec};
use weir_progress::agree::{all_gather, decide_once};
use weir_progress::checkpoint::{Ack, Checkpoints, Committed, Schedule};
use weir_progress::coordinate::Coordinate;
use weir_progress::recovery::Recovery;
use weir_progress::store::{CheckpointStore, Restore};
use weir_runtime::JobError;
use weir_runtime::exec::{RecordCounter, execute};

use crate::dir_sink::Staged;
use weir_runtime::clock::EpochClock;
use weir_runtime::source_ctx::SourceCtx;

/// How a streaming job checkpoints and restarts.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Where checkpoints go.
    pub checkpoint_dir: PathBuf,
    /// Restore from this checkpoint (`None`: a fresh start).
    pub restore: Option<Restore>,
    /// Checkpoints to keep.
    pub retain: usize,
    /// Lines read by this process, for progress bars.
    pub progress: Option<Arc<AtomicU64>>,
}

/// What a job's dataflow needs from the runner on one worker.
pub struct StreamCtx {
    /// Checkpointing context (register participants with it).
    pub checkpoints: Checkpoints,
    /// How this run starts.
    pub recovery: Arc<Recovery>,
    /// Shared by the worker's sources and sinks.
    pub source: SourceCtx,
    /// Lines written by this worker's sinks.
    pub records_out: RecordCounter,
    /// The job's own counters (dead letters, late events, ...), summed over
    /// all workers into [`StreamSummary::metrics`].
    pub metrics: Metrics,
}

/// Named counters of one worker.
#[derive(Clone, Default)]
pub struct Metrics(Rc<RefCell<BTreeMap<String, RecordCounter>>>);

impl Metrics {
    /// The counter called `name` (created at 0).
    pub fn counter(&self, name: &str) -> RecordCounter {
        self.0
            .borrow_mut()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn values(&self) -> BTreeMap<String, u64> {
        self.0
            .borrow()
            .iter()
            .map(|(k, c)| (k.clone(), c.get()))
            .collect()
    }
}

/// The second phase of a sink: makes its pending output visible as the
/// committed stream brings complete checkpoints.
pub trait Commit<'s> {
    /// Connects to the committed stream; the result's frontier passes an epoch
    /// once its output is visible.
    fn publish(self: Box<Self>, committed: StreamVec<'s, u64, Committed>)
    -> StreamVec<'s, u64, ()>;
}

impl<'s> Commit<'s> for Staged {
    fn publish(
        self: Box<Self>,
        committed: StreamVec<'s, u64, Committed>,
    ) -> StreamVec<'s, u64, ()> {
        Staged::publish(*self, committed)
    }
}

/// What a job's dataflow gives the runner.
pub struct Built<'s> {
    /// The acknowledgements of every participant.
    pub acks: Vec<StreamVec<'s, u64, Ack>>,
    /// The sinks' commit steps.
    pub commits: Vec<Box<dyn Commit<'s> + 's>>,
}

/// The outcome of a streaming job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSummary {
    /// Lines read by all workers.
    pub records_in: u64,
    /// Lines written by all workers.
    pub records_out: u64,
    /// Checkpoints committed.
    pub checkpoints: u64,
    /// The checkpoint restored, if any.
    pub restored: Option<u64>,
    /// Damaged checkpoints skipped on restore.
    pub warnings: Vec<String>,
    /// Workers in all processes.
    pub workers: usize,
    /// Whether this process hosts worker 0.
    pub leader: bool,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// The job's own counters, summed over all workers.
    pub metrics: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Report {
    records_in: u64,
    records_out: u64,
    metrics: BTreeMap<String, u64>,
    error: Option<JobError>,
}

/// Runs a streaming job: `prepare_output(recovery, store, workers)` runs once,
/// on worker 0, after the restore point is chosen and before any dataflow (it
/// settles what a crashed run left in the sinks); `build` makes one worker's
/// dataflow.
pub fn run_stream<P, F>(
    config: timely::Config,
    options: &StreamOptions,
    prepare_output: P,
    build: F,
) -> Result<StreamSummary, JobError>
where
    P: Fn(&Recovery, &CheckpointStore, usize) -> Result<(), JobError> + Send + Sync + 'static,
    F: for<'s> Fn(Scope<'s, u64>, &StreamCtx) -> Built<'s> + Send + Sync + 'static,
{
    let options = options.clone();
    let start = Instant::now();
    let mut summary = execute(config, move |worker| {
        let store = CheckpointStore::local(&options.checkpoint_dir)?;
        let peers = worker.peers();
        // worker 0 also picks the origin of epoch boundaries (see [`EpochClock`])
        let decided: Result<(Recovery, u64), JobError> = decide_once(worker, || {
            let recovery = Recovery::prepare(&store, options.restore.as_ref())?;
            prepare_output(&recovery, &store, peers)?;
            Ok((recovery, EpochClock::wall_now()))
        });
        let (recovery, origin) = decided?;
        let recovery = Arc::new(recovery);
        if worker.index() == 0
            && let Some(fresh) = &recovery.fresh_restore
        {
            eprintln!("weir: restore latest: {fresh}");
        }
        let mut checkpoints = Checkpoints::new(
            store,
            Schedule { every: 1 },
            recovery.manifest.clone().map(Arc::new),
            worker.index(),
            worker.peers(),
        );
        checkpoints.retain = options.retain;
        let ctx = StreamCtx {
            checkpoints,
            recovery: Arc::clone(&recovery),
            source: SourceCtx {
                records_in: RecordCounter::with_process(options.progress.clone()),
                clock: EpochClock::from_wall(origin),
                ..SourceCtx::default()
            },
            records_out: RecordCounter::default(),
            metrics: Metrics::default(),
        };
        let probe = ProbeHandle::new();
        let committed_count = std::rc::Rc::new(std::cell::Cell::new(0u64));
        worker.dataflow::<u64, _, _>(|scope| {
            let built = build(scope, &ctx);
            // a checkpoint of another plan would lose state or read input again
            if let Err(e) = ctx.checkpoints.check_claimed() {
                ctx.source.failure.set(JobError::from(e));
            }
            let committed = scope.concatenate(built.acks).coordinate(&ctx.checkpoints);
            let count = std::rc::Rc::clone(&committed_count);
            let committed = committed.inspect(move |c| {
                if let Committed::Checkpoint(_) = c {
                    count.set(count.get() + 1);
                }
            });
            for commit in built.commits {
                commit.publish(committed.clone()).probe_with(&probe);
            }
            committed.probe_with(&probe);
        });
        worker.step_or_park_while(None, || !probe.done());
        let error = ctx
            .source
            .failure
            .take()
            .or_else(|| ctx.checkpoints.failure().map(JobError::from));
        let reports = all_gather(
            worker,
            Report {
                records_in: ctx.source.records_in.get(),
                records_out: ctx.records_out.get(),
                metrics: ctx.metrics.values(),
                error,
            },
        );
        // the error that started it, not another worker's "stopped because ..."
        let aborted = JobError::from(weir_progress::CheckpointError::Aborted);
        let mut errors = reports.iter().filter_map(|r| r.error.clone());
        let first = errors.clone().find(|e| *e != aborted);
        if let Some(error) = first.or_else(|| errors.next()) {
            return Err(error);
        }
        Ok(StreamSummary {
            records_in: reports.iter().map(|r| r.records_in).sum(),
            records_out: reports.iter().map(|r| r.records_out).sum(),
            checkpoints: committed_count.get(),
            restored: recovery.manifest.as_ref().map(|m| m.epoch),
            warnings: recovery.warnings.clone(),
            workers: worker.peers(),
            leader: worker.index() == 0,
            elapsed: Duration::ZERO,
            metrics: {
                let mut sum: BTreeMap<String, u64> = BTreeMap::new();
                for (name, n) in reports.iter().flat_map(|r| r.metrics.iter()) {
                    *sum.entry(name.clone()).or_insert(0) += n;
                }
                sum
            },
        })
    })?;
    summary.elapsed = start.elapsed();
    Ok(summary)
}

//! The graph jobs behind `weir pagerank`, `weir cc` and `weir bfs`: the graph
//! (an edge list or R-MAT) is read once into each worker's CSR, then the
//! algorithm runs as a timely loop; optional loop checkpoints every K
//! iterations, and a resume from the latest one.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use weir_progress::convergence::Round;

use crate::algorithms::graphs::pagerank::PageRank;
use crate::algorithms::graphs::superstep::{LoopOptions, Report};
use crate::algorithms::graphs::{bfs, cc, pagerank};
use crate::graph::NodeId;
use crate::graph::input::GraphInput;
use crate::graph::layout::Block;
use weir_runtime::error::{JobError, Remedy, Setting};
use weir_runtime::exec::{JobOptions, JobSummary, WorkerCtx, run_job};
use weir_runtime::loops::{LoopCheckpointing, OpenLoop, Rounds, iterations_run, resumed};

/// Which algorithm a graph job runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Algorithm {
    /// PageRank for at most `iterations`, stopping early once the L1 change
    /// of an iteration is below `tolerance`.
    PageRank {
        /// The damping factor.
        params: PageRank,
        /// Iterations at most.
        iterations: u64,
        /// Stop below this L1 change (`None`: run all iterations).
        tolerance: Option<f64>,
    },
    /// Connected components, to the fixed point.
    Cc,
    /// Hop distances from `source`, to the fixed point.
    Bfs {
        /// The source node.
        source: u64,
    },
}

impl Algorithm {
    /// The job's name.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::PageRank { .. } => "pagerank",
            Algorithm::Cc => "cc",
            Algorithm::Bfs { .. } => "bfs",
        }
    }

    /// What an iteration's total measures.
    pub fn measure(&self) -> &'static str {
        match self {
            Algorithm::PageRank { .. } => "L1 change",
            Algorithm::Cc | Algorithm::Bfs { .. } => "nodes changed",
        }
    }
}

/// A graph job.
#[derive(Clone)]
pub struct GraphJob {
    /// The graph.
    pub input: GraphInput,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Loop checkpoints, if any.
    pub checkpoints: Option<LoopCheckpointing>,
    /// Called with every iteration's total (in the process of worker 0).
    pub report: Option<Report>,
    /// 64-bit node ids (for edge lists with ids of 2^32 - 1 and above);
    /// otherwise 32-bit, half the memory for edges and messages.
    pub wide_ids: bool,
}

/// What a graph job did.
#[derive(Clone, Debug)]
pub struct GraphSummary {
    /// Records read and written, time, memory.
    pub job: JobSummary,
    /// Every iteration's total, in order (in the process of worker 0; empty
    /// in the others).
    pub rounds: Vec<Round>,
    /// The iteration a resumed run started at.
    pub resumed_at: Option<u64>,
}

impl GraphSummary {
    /// Iterations run in all, counting those before a resume.
    pub fn iterations(&self) -> u64 {
        iterations_run(&self.rounds, self.resumed_at)
    }
}

/// Runs a graph job on `config`.
pub fn run(
    config: timely::Config,
    job: GraphJob,
    options: &JobOptions,
) -> Result<GraphSummary, JobError> {
    job.input.validate()?;
    if let Algorithm::PageRank { iterations: 0, .. } = job.algorithm {
        return Err(JobError::setting(Setting::Iterations, "must be at least 1"));
    }
    let open = job
        .checkpoints
        .as_ref()
        .map(LoopCheckpointing::open)
        .transpose()?;
    if let (Some(checkpointing), Some(open)) = (&job.checkpoints, &open) {
        check_id_width(checkpointing, open, job.wide_ids)?;
    }
    let first = open.as_ref().map_or(0, |o| o.first);
    let rounds = Rounds::default();
    let report = rounds.report(job.report.clone());
    let summary = if job.wide_ids {
        run_with::<u64>(config, &job, options, open, first, report)?
    } else {
        if let Algorithm::Bfs { source } = job.algorithm
            && u32::from_u64(source).is_none()
        {
            return Err(JobError::Remedy {
                message: format!("source {source} does not fit in 32-bit node ids"),
                remedy: Remedy::Set(Setting::WideIds),
            });
        }
        run_with::<u32>(config, &job, options, open, first, report)?
    };
    let rounds = rounds.taken();
    Ok(GraphSummary {
        job: summary,
        rounds,
        resumed_at: (first > 0).then_some(first),
    })
}

/// A loop checkpoint directory remembers the width of the ids its records
/// hold: a resume with the other width would misread them.
fn check_id_width(
    checkpointing: &LoopCheckpointing,
    open: &OpenLoop,
    wide: bool,
) -> Result<(), JobError> {
    let want = if wide { "64" } else { "32" };
    let path = checkpointing.dir.join("node-id-bits");
    if open.first == 0 {
        // a fresh loop: its checkpoints will hold this width
        return std::fs::write(&path, want).map_err(|e| JobError::io(&path, &e));
    }
    let found = match std::fs::read_to_string(&path) {
        Ok(found) => found.trim().to_string(),
        // checkpoints from before the width was recorded hold 32-bit ids
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "32".to_string(),
        Err(e) => return Err(JobError::io(&path, &e)),
    };
    if found == want {
        return Ok(());
    }
    Err(JobError::Remedy {
        message: format!(
            "{}: the loop checkpoints hold {found}-bit node ids",
            checkpointing.dir.display()
        ),
        remedy: if found == "64" {
            Remedy::Set(Setting::WideIds)
        } else {
            Remedy::Unset(Setting::WideIds)
        },
    })
}

fn run_with<N: NodeId>(
    config: timely::Config,
    job: &GraphJob,
    options: &JobOptions,
    open: Option<OpenLoop>,
    first: u64,
    report: Report,
) -> Result<JobSummary, JobError> {
    let algorithm = job.algorithm;
    let input = job.input.clone();
    run_job(config, options, move |scope, ctx| {
        let edges = input.edges::<N>(scope, ctx);
        let (index, peers) = (ctx.index, ctx.peers);
        let loop_options =
            |max_iterations: u64, stop: Arc<dyn Fn(u64, f64) -> bool + Send + Sync>| LoopOptions {
                first,
                max_iterations,
                stop,
                report: Some(Arc::clone(&report)),
                checkpoints: open.as_ref().map(|o| o.for_worker(index, peers)),
                failure: ctx.failure.clone(),
            };
        let fixed_point: Arc<dyn Fn(u64, f64) -> bool + Send + Sync> =
            Arc::new(|_, changed| changed == 0.0);
        match algorithm {
            Algorithm::PageRank {
                params,
                iterations,
                tolerance,
            } => {
                let stop = Arc::new(move |_, change| tolerance.is_some_and(|t| change < t));
                let resumed = resumed_nodes(open.as_ref(), ctx);
                pagerank::pagerank(
                    edges,
                    params,
                    loop_options(iterations, stop),
                    resumed,
                    index,
                    peers,
                )
            }
            Algorithm::Cc => {
                let resumed = resumed_nodes(open.as_ref(), ctx);
                cc::cc(
                    edges,
                    loop_options(u64::MAX, fixed_point),
                    resumed,
                    index,
                    peers,
                )
            }
            Algorithm::Bfs { source } => {
                let resumed = resumed_nodes(open.as_ref(), ctx);
                bfs::bfs(
                    edges,
                    N::from_u64(source).unwrap_or(N::NONE),
                    loop_options(u64::MAX, fixed_point),
                    resumed,
                    index,
                    peers,
                )
            }
        }
    })
}

/// The resumed node values of this worker (any old worker's; they are
/// routed to their owners).
fn resumed_nodes<N: NodeId, S: DeserializeOwned>(
    open: Option<&OpenLoop>,
    ctx: &WorkerCtx,
) -> Option<Vec<(N, S)>> {
    resumed::<Block<S, N>>(open, ctx).map(|blocks| blocks.into_iter().flatten().collect())
}

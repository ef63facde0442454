//! The job behind `weir als`: read (or generate) ratings, split them, train
//! blocked ALS as a timely loop with optional loop checkpoints, and collect
//! the model.

use std::sync::Arc;

use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::{Filter, Map};
use weir_progress::convergence::Round;
use weir_runtime::JobError;
use weir_runtime::error::Setting;
use weir_runtime::exec::{JobOptions, JobSummary, run_job};
use weir_runtime::loops::{LoopCheckpointing, Rounds, iterations_run, resumed};

use crate::als::layout::Partition;
use crate::als::{AlsLoop, AlsParams, Errors, ItemBlock, Report, als};
use crate::model::Model;
use crate::ratings::{RatingsInput, Split};

/// An ALS job.
#[derive(Clone)]
pub struct AlsJob {
    /// The ratings.
    pub input: RatingsInput,
    /// Which ratings are held out for testing.
    pub split: Split,
    /// Rank, λ, seed.
    pub params: AlsParams,
    /// Blocks per side (`None`: one per worker).
    pub blocks: Option<u64>,
    /// Iterations at most.
    pub iterations: u64,
    /// Stop once the train RMSE improves by less than this.
    pub tolerance: Option<f64>,
    /// Loop checkpoints, if any.
    pub checkpoints: Option<LoopCheckpointing>,
    /// Called with every iteration's errors (in the process of worker 0).
    pub report: Option<Report>,
    /// Collect the factors into the summary (for `--output` and tests).
    pub keep_model: bool,
}

/// What an ALS job did.
#[derive(Clone, Debug)]
pub struct AlsSummary {
    /// Records read, time, memory.
    pub job: JobSummary,
    /// Every iteration's errors (in the process of worker 0; empty in others).
    pub rounds: Vec<Round<Errors>>,
    /// The iteration a resumed run started at.
    pub resumed_at: Option<u64>,
    /// The factors, when asked for.
    pub model: Option<Model>,
}

impl AlsSummary {
    /// Iterations run in all, counting those before a resume.
    pub fn iterations(&self) -> u64 {
        iterations_run(&self.rounds, self.resumed_at)
    }
}

/// Runs an ALS job on `config`.
pub fn run(
    config: timely::Config,
    job: AlsJob,
    options: &JobOptions,
) -> Result<AlsSummary, JobError> {
    job.input.validate()?;
    job.split.validate()?;
    if job.iterations == 0 {
        return Err(JobError::setting(Setting::Iterations, "must be at least 1"));
    }
    if job.params.rank == 0 {
        return Err(JobError::setting(Setting::Rank, "must be at least 1"));
    }
    if !(job.params.lambda >= 0.0 && job.params.lambda.is_finite()) {
        return Err(JobError::setting(
            Setting::Lambda,
            format!("must be a non-negative number, not {}", job.params.lambda),
        ));
    }
    if job.blocks == Some(0) {
        return Err(JobError::setting(Setting::Blocks, "must be at least 1"));
    }
    let open = job
        .checkpoints
        .as_ref()
        .map(LoopCheckpointing::open)
        .transpose()?;
    let first = open.as_ref().map_or(0, |o| o.first);
    let rounds = Rounds::default();
    let report = rounds.report(job.report.clone());
    let options = JobOptions {
        output: None,
        show: if job.keep_model { usize::MAX - 1 } else { 0 },
        ..options.clone()
    };
    let (input, split, params) = (job.input.clone(), job.split.clone(), job.params);
    let (iterations, tolerance, blocks, keep) =
        (job.iterations, job.tolerance, job.blocks, job.keep_model);
    let summary = run_job(config, &options, move |scope, ctx| {
        let holdout = split.clone();
        let mut ratings = input
            .ratings(scope, ctx)
            .map(move |r| (r, holdout.holds_out(&r)));
        if let Split::File(test) = &split {
            ratings = ratings.concat(test.ratings(scope, ctx).map(|r| (r, true)));
        }
        let partition = Partition {
            blocks: blocks.unwrap_or(ctx.peers as u64),
            peers: ctx.peers,
        };
        let options = AlsLoop {
            first,
            max_iterations: iterations,
            tolerance,
            report: Some(Arc::clone(&report)),
            checkpoints: open.as_ref().map(|o| o.for_worker(ctx.index, ctx.peers)),
        };
        let resumed = resumed::<ItemBlock>(open.as_ref(), ctx);
        let factors = als(
            ratings,
            params,
            partition,
            options,
            resumed,
            ctx.failure.clone(),
            ctx.index,
        );
        if keep {
            factors
        } else {
            factors.filter(|_| false)
        }
    })?;
    let rounds = rounds.taken();
    let model = match &summary.records {
        Some(lines) if keep => Some(Model::from_lines(params.rank, lines)?),
        _ => None,
    };
    Ok(AlsSummary {
        job: summary,
        rounds,
        resumed_at: (first > 0).then_some(first),
        model,
    })
}

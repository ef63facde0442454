//! The job behind `weir cocoa`: read (or generate) labelled examples, train
//! the SVM with CoCoA/CoCoA+ as a timely loop with optional loop
//! checkpoints, and measure test accuracy.

use std::sync::Arc;

use weir_progress::convergence::Round;
use weir_runtime::JobError;
use weir_runtime::error::Setting;
use weir_runtime::exec::{JobOptions, JobSummary, run_job};
use weir_runtime::loops::{LoopCheckpointing, Rounds, iterations_run, resumed};

use crate::cocoa::sdca::{CocoaParams, Duality, accuracy};
use crate::cocoa::{CocoaLoop, CocoaState, Report, cocoa};
use crate::libsvm::SvmInput;

/// A CoCoA job.
#[derive(Clone)]
pub struct CocoaJob {
    /// Training examples.
    pub input: SvmInput,
    /// Test examples, if any.
    pub test: Option<SvmInput>,
    /// λ, H, aggregation, seed.
    pub params: CocoaParams,
    /// Rounds at most.
    pub rounds: u64,
    /// Stop once the duality gap is below this.
    pub tolerance: Option<f64>,
    /// Loop checkpoints, if any.
    pub checkpoints: Option<LoopCheckpointing>,
    /// Called with every round's sums (in the process of worker 0).
    pub report: Option<Report>,
}

/// What a CoCoA job did.
#[derive(Clone, Debug)]
pub struct CocoaSummary {
    /// Records read, time, memory.
    pub job: JobSummary,
    /// Every round's sums (in the process of worker 0).
    pub rounds: Vec<Round<Duality>>,
    /// The round a resumed run started at.
    pub resumed_at: Option<u64>,
    /// The weights (0-based).
    pub weights: Vec<f64>,
    /// Accuracy on the test examples.
    pub test_accuracy: Option<f64>,
}

impl CocoaSummary {
    /// Rounds run in all, counting those before a resume.
    pub fn rounds_run(&self) -> u64 {
        iterations_run(&self.rounds, self.resumed_at)
    }
}

/// Runs a CoCoA job on `config`.
pub fn run(
    config: timely::Config,
    job: CocoaJob,
    options: &JobOptions,
) -> Result<CocoaSummary, JobError> {
    job.input.validate()?;
    if let Some(test) = &job.test {
        test.validate()?;
    }
    if job.rounds == 0 {
        return Err(JobError::setting(Setting::Rounds, "must be at least 1"));
    }
    if !(job.params.lambda > 0.0 && job.params.lambda.is_finite()) {
        return Err(JobError::setting(
            Setting::Lambda,
            format!("must be a positive number, not {}", job.params.lambda),
        ));
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
        show: usize::MAX - 1,
        ..options.clone()
    };
    let (input, params, max_rounds, tolerance) =
        (job.input.clone(), job.params, job.rounds, job.tolerance);
    let summary = run_job(config, &options, move |scope, ctx| {
        let examples = input.examples(scope, ctx);
        let options = CocoaLoop {
            first,
            max_rounds,
            tolerance,
            report: Some(Arc::clone(&report)),
            checkpoints: open.as_ref().map(|o| o.for_worker(ctx.index, ctx.peers)),
        };
        let resumed = resumed::<CocoaState>(open.as_ref(), ctx);
        cocoa(examples, params, options, resumed, ctx.index, ctx.peers)
    })?;
    let mut weights = Vec::new();
    for line in summary.records.iter().flatten() {
        let parsed = line
            .split_once('\t')
            .and_then(|(j, w)| Some((j.parse::<usize>().ok()?, w.parse::<f64>().ok()?)));
        let Some((j, w)) = parsed else {
            return Err(JobError::Runtime(format!(
                "unreadable weight line {line:?}"
            )));
        };
        if weights.len() < j {
            weights.resize(j, 0.0);
        }
        weights[j - 1] = w;
    }
    let test_accuracy = match &job.test {
        Some(test) => Some(accuracy(&test.all()?, &weights)),
        None => None,
    };
    let rounds = rounds.taken();
    Ok(CocoaSummary {
        job: summary,
        rounds,
        resumed_at: (first > 0).then_some(first),
        weights,
        test_accuracy,
    })
}

use weir_runtime::JobError;
use weir_runtime::exec::{JobOptions, JobSummary};
use weir_runtime::testing;

/// Options that return every record in the summary.
pub fn all_records() -> JobOptions {
    JobOptions {
        show: usize::MAX - 1,
        ..Default::default()
    }
}

/// Runs `job` on every test layout; returns (layout, summary of process 0).
pub fn on_every_layout<F>(job: F) -> Vec<(String, Result<JobSummary, JobError>)>
where
    F: Fn(timely::Config) -> Result<JobSummary, JobError> + Send + Sync + Clone + 'static,
{
    testing::on_every_layout(job).unwrap()
}

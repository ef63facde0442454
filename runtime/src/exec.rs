//! Runs a batch job on a timely configuration: builds the same dataflow on every
//! worker of every process, drives it to completion, then agrees across all workers
//! on the outcome before any output becomes visible.
//!
//! A worker that hits bad input records the error in its [`Failure`] slot and stops
//! reading; the others finish their share. At the end every worker learns every
//! report (an all-gather through timely itself), so all processes agree whether the
//! job failed. Part files are written under hidden names and renamed to
//! `part-NNNNN` only when the whole job succeeded, so a failed job never leaves
//! output that looks complete.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Probe;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{ProbeHandle, Scope, StreamVec};
use timely::worker::Worker;

use crate::error::JobError;
use crate::time::BatchTime;
pub use weir_progress::agree::all_gather;

/// How a job delivers its result.
#[derive(Clone, Debug, Default)]
pub struct JobOptions {
    /// Write `part-NNNNN` files (one per worker, global index) into this directory.
    pub output: Option<PathBuf>,
    /// Return all output records in the summary when there are at most this many.
    pub show: usize,
    /// Incremented with the number of records read by this process, for progress bars.
    pub progress: Option<Arc<AtomicU64>>,
}

/// The first error a worker met; operators set it, sources stop when it is set.
#[derive(Clone, Default)]
pub struct Failure(Rc<RefCell<Option<JobError>>>);

impl Failure {
    /// Records `error` unless an earlier error is recorded already.
    pub fn set(&self, error: JobError) {
        let mut slot = self.0.borrow_mut();
        if slot.is_none() {
            *slot = Some(error);
        }
    }
    /// Whether an error was recorded.
    pub fn is_set(&self) -> bool {
        self.0.borrow().is_some()
    }
    /// Takes the recorded error out.
    pub fn take(&self) -> Option<JobError> {
        self.0.borrow_mut().take()
    }
}

/// What the operators of one worker share.
pub struct WorkerCtx {
    /// Global index of this worker.
    pub index: usize,
    /// Number of workers in all processes.
    pub peers: usize,
    /// Number of workers in this process.
    pub local_peers: usize,
    /// This worker's error slot.
    pub failure: Failure,
    /// Records read by this worker (and, for progress bars, by this process).
    pub records_in: RecordCounter,
    /// Frontier of the operator that consumes input: sources read ahead of it by at
    /// most a few chunks, which bounds the data in flight (flow control by progress
    /// tracking). Jobs attach it with `probe_with(&ctx.flow)`.
    pub flow: ProbeHandle<BatchTime>,
    /// Bytes this worker wrote to spill files.
    pub spilled: Rc<Cell<u64>>,
}

/// Counts records read: this worker's count, and the process-wide count that
/// progress bars watch.
#[derive(Clone, Default)]
pub struct RecordCounter {
    worker: Rc<Cell<u64>>,
    process: Option<Arc<AtomicU64>>,
}

impl RecordCounter {
    /// A counter that also adds to a process-wide count (for progress bars).
    pub fn with_process(process: Option<Arc<AtomicU64>>) -> Self {
        RecordCounter {
            worker: Rc::default(),
            process,
        }
    }

    /// Counts `n` more records.
    pub fn add(&self, n: u64) {
        self.worker.set(self.worker.get() + n);
        if let Some(p) = &self.process {
            p.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Records this worker counted.
    pub fn get(&self) -> u64 {
        self.worker.get()
    }
}

/// The outcome of a job, as seen by one process.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSummary {
    /// Records read by all workers.
    pub records_in: u64,
    /// Records written by all workers.
    pub records_out: u64,
    /// Every output record, sorted, when there were at most `show` of them.
    pub records: Option<Vec<String>>,
    /// Wall-clock time of the job in this process.
    pub elapsed: Duration,
    /// Workers in all processes.
    pub workers: usize,
    /// Whether this process hosts worker 0 (and so should print the summary).
    pub leader: bool,
    /// Peak resident set size of this process in bytes, where the OS tells it.
    pub peak_rss: Option<u64>,
    /// Bytes all workers wrote to spill files.
    pub spilled_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Report {
    index: usize,
    records_in: u64,
    records_out: u64,
    sample: Vec<String>,
    spilled: u64,
    error: Option<JobError>,
}

/// Checks that `dir` can take a job's output: creates it, and refuses one that
/// already holds `part-*` files (like Spark, weir does not mix two runs' results).
pub fn prepare_output(dir: &Path) -> Result<(), JobError> {
    std::fs::create_dir_all(dir).map_err(|e| JobError::io(dir, &e))?;
    let entries = std::fs::read_dir(dir).map_err(|e| JobError::io(dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| JobError::io(dir, &e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("part-") {
            return Err(JobError::Io {
                path: dir.display().to_string(),
                message: format!(
                    "output directory already holds results ({}); remove them or choose another directory",
                    name.to_string_lossy()
                ),
            });
        }
    }
    Ok(())
}

/// The name of worker `index`'s output file.
pub fn part_name(index: usize) -> String {
    format!("part-{index:05}")
}

/// Writes one worker's output lines, counting them and keeping a sample.
struct PartSink {
    file: Option<(BufWriter<File>, PathBuf, PathBuf)>,
    records: u64,
    sample: Vec<String>,
    keep: usize,
}

impl PartSink {
    fn open(dir: Option<&Path>, index: usize, keep: usize) -> Result<Self, JobError> {
        let file = match dir {
            Some(dir) => {
                let done = dir.join(part_name(index));
                let tmp = dir.join(format!(".{}.inprogress", part_name(index)));
                let file = File::create(&tmp).map_err(|e| JobError::io(&tmp, &e))?;
                Some((BufWriter::with_capacity(1 << 20, file), tmp, done))
            }
            None => None,
        };
        Ok(PartSink {
            file,
            records: 0,
            sample: Vec::new(),
            keep,
        })
    }

    fn write(&mut self, line: &str) -> Result<(), JobError> {
        self.records += 1;
        if self.sample.len() < self.keep {
            self.sample.push(line.to_owned());
        }
        if let Some((writer, tmp, _)) = &mut self.file {
            writer
                .write_all(line.as_bytes())
                .and_then(|()| writer.write_all(b"\n"))
                .map_err(|e| JobError::io(tmp, &e))?;
        }
        Ok(())
    }

    /// Makes the file visible (`commit`) or removes it.
    fn finish(self, commit: bool) -> Result<(), JobError> {
        if let Some((writer, tmp, done)) = self.file {
            let file = writer
                .into_inner()
                .map_err(|e| JobError::io(&tmp, e.error()))?;
            if commit {
                file.sync_all().map_err(|e| JobError::io(&tmp, &e))?;
                std::fs::rename(&tmp, &done).map_err(|e| JobError::io(&done, &e))?;
            } else {
                drop(file);
                let _ = std::fs::remove_file(&tmp);
            }
        }
        Ok(())
    }
}

/// Workers in all processes and in this process, for a configuration.
pub fn workers(config: &timely::Config) -> (usize, usize) {
    match &config.communication {
        timely::CommunicationConfig::Thread => (1, 1),
        timely::CommunicationConfig::Process(n) | timely::CommunicationConfig::ProcessBinary(n) => {
            (*n, *n)
        }
        timely::CommunicationConfig::Cluster {
            threads, addresses, ..
        } => (threads * addresses.len(), *threads),
    }
}

/// Runs a batch job: `build` makes the dataflow of one worker and returns the stream
/// of output lines (tab-separated fields, no newline).
///
/// Every process of a cluster calls this with the same arguments; each returns the
/// same totals. Errors found by any worker fail the job on every process.
pub fn run_job<F>(
    config: timely::Config,
    options: &JobOptions,
    build: F,
) -> Result<JobSummary, JobError>
where
    F: for<'s> Fn(Scope<'s, BatchTime>, &WorkerCtx) -> StreamVec<'s, BatchTime, String>
        + Send
        + Sync
        + 'static,
{
    if let Some(dir) = &options.output {
        prepare_output(dir)?;
    }
    let (_, local_peers) = workers(&config);
    let options = options.clone();
    let start = Instant::now();
    let mut summary = execute(config, move |worker| {
        run_worker(worker, &options, local_peers, &build)
    })?;
    summary.elapsed = start.elapsed();
    summary.peak_rss = peak_rss();
    Ok(summary)
}

/// Runs `work` on every worker of `config` and returns the first local
/// worker's result (the workers of a job agree on the outcome, so any one
/// speaks for the process), or the first error.
pub fn execute<T, W>(config: timely::Config, work: W) -> Result<T, JobError>
where
    T: Send + 'static,
    W: Fn(&mut Worker) -> Result<T, JobError> + Send + Sync + 'static,
{
    let guards = timely::execute(config, work).map_err(JobError::Runtime)?;
    let mut first = None;
    for result in guards.join() {
        let outcome = result.map_err(JobError::Runtime)??;
        first.get_or_insert(outcome);
    }
    first.ok_or_else(|| JobError::Runtime("no workers ran".into()))
}

fn run_worker<F>(
    worker: &mut Worker,
    options: &JobOptions,
    local_peers: usize,
    build: &F,
) -> Result<JobSummary, JobError>
where
    F: for<'s> Fn(Scope<'s, BatchTime>, &WorkerCtx) -> StreamVec<'s, BatchTime, String>,
{
    let ctx = WorkerCtx {
        index: worker.index(),
        peers: worker.peers(),
        local_peers,
        failure: Failure::default(),
        records_in: RecordCounter {
            worker: Rc::default(),
            process: options.progress.clone(),
        },
        flow: ProbeHandle::new(),
        spilled: Rc::default(),
    };
    let keep = options.show.saturating_add(1);
    let sink = match PartSink::open(options.output.as_deref(), ctx.index, keep) {
        Ok(sink) => sink,
        Err(e) => {
            ctx.failure.set(e);
            PartSink::open(None, ctx.index, keep)?
        }
    };
    let sink = Rc::new(RefCell::new(sink));
    let done = ProbeHandle::new();
    worker.dataflow::<BatchTime, _, _>(|scope| {
        let failure = ctx.failure.clone();
        let sink = Rc::clone(&sink);
        build(scope, &ctx)
            .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, "Output", move |_, _| {
                move |input, output| {
                    input.for_each_stamp(|_, data| {
                        let mut sink = sink.borrow_mut();
                        for batch in data {
                            for line in batch.drain(..) {
                                if failure.is_set() {
                                    continue;
                                }
                                if let Err(e) = sink.write(&line) {
                                    failure.set(e);
                                }
                            }
                        }
                    });
                    // Nothing leaves this operator: its output frontier, followed by
                    // the probe, says which lines are written.
                    let _ = output;
                }
            })
            .probe_with(&done);
    });
    worker.step_or_park_while(None, || !done.done());

    let mut sink = Rc::try_unwrap(sink)
        .map_err(|_| JobError::Runtime("output sink still in use".into()))?
        .into_inner();
    let report = Report {
        index: ctx.index,
        records_in: ctx.records_in.get(),
        records_out: sink.records,
        sample: std::mem::take(&mut sink.sample),
        spilled: ctx.spilled.get(),
        error: ctx.failure.take(),
    };
    let reports = all_gather(worker, report);
    let error = reports.iter().find_map(|r| r.error.clone());
    sink.finish(error.is_none())?;
    if let Some(error) = error {
        return Err(error);
    }
    let records_in: u64 = reports.iter().map(|r| r.records_in).sum();
    let records_out: u64 = reports.iter().map(|r| r.records_out).sum();
    let spilled_bytes: u64 = reports.iter().map(|r| r.spilled).sum();
    let records = (records_out <= options.show as u64).then(|| {
        let mut all: Vec<String> = reports.into_iter().flat_map(|r| r.sample).collect();
        all.sort();
        all
    });
    Ok(JobSummary {
        records_in,
        records_out,
        records,
        elapsed: Duration::ZERO,
        workers: ctx.peers,
        leader: ctx.index == 0,
        peak_rss: None,
        spilled_bytes,
    })
}

/// Peak resident set size of this process (Linux: `VmHWM` of `/proc/self/status`).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

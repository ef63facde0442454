//! `weir demo`: every job on its embedded default data, with a progress bar per
//! step (on a terminal) and a summary table.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use weir_dataflows::jobs::{join, wordcount};
use weir_ml::als::AlsParams;
use weir_ml::cocoa::sdca::{Aggregation, CocoaParams};
use weir_ml::jobs::als::{self, AlsJob};
use weir_ml::jobs::cocoa::{self, CocoaJob};
use weir_ml::libsvm::{SvmInput, SyntheticSvm};
use weir_ml::ratings::{RatingsInput, Split, Synthetic};
use weir_runtime::JobError;
use weir_runtime::exec::{JobOptions, JobSummary};

use crate::cli::{self, CliError, Command};

type Step = Box<dyn Fn(timely::Config, &JobOptions) -> Result<JobSummary, JobError>>;

/// The demo's steps: name, records it reads, and how to run it.
fn steps(memory_budget: u64) -> Vec<(&'static str, u64, Step)> {
    let wordcount_input = wordcount::default_input();
    let join_spec = join::default_spec(memory_budget);
    let wordcount_records = wordcount_input.known_lines().unwrap_or(0);
    let join_records = [&join_spec.left, &join_spec.right]
        .iter()
        .filter_map(|side| side.input.known_lines())
        .sum();
    vec![
        (
            "wordcount",
            wordcount_records,
            Box::new(move |config, options| {
                wordcount::run(config, wordcount_input.clone(), options)
            }),
        ),
        (
            "join",
            join_records,
            Box::new(move |config, options| {
                join::run(config, join_spec.clone(), options).map(|(summary, _)| summary)
            }),
        ),
        (
            "als",
            Synthetic::DEFAULT.ratings,
            Box::new(|config, options| {
                let job = AlsJob {
                    input: RatingsInput::Synthetic(Synthetic::DEFAULT),
                    split: Split::Fraction {
                        fraction: 0.2,
                        seed: 42,
                    },
                    params: AlsParams {
                        rank: 10,
                        lambda: 0.1,
                        seed: 42,
                    },
                    blocks: None,
                    iterations: 10,
                    tolerance: None,
                    checkpoints: None,
                    report: None,
                    keep_model: false,
                };
                als::run(config, job, options).map(|s| s.job)
            }),
        ),
        (
            "cocoa",
            SyntheticSvm::DEFAULT.examples,
            Box::new(|config, options| {
                let job = CocoaJob {
                    input: SvmInput::Synthetic(SyntheticSvm::DEFAULT),
                    test: None,
                    params: CocoaParams {
                        lambda: 1e-3,
                        local_iters: 1000,
                        aggregation: Aggregation::Add,
                        seed: 42,
                    },
                    rounds: 100,
                    tolerance: Some(1e-3),
                    checkpoints: None,
                    report: None,
                };
                cocoa::run(config, job, options).map(|s| s.job)
            }),
        ),
    ]
}

pub fn command() -> Command {
    let mut c = Command::new(
        "demo",
        "weir demo [--memory-budget SIZE] [timely flags]",
        "Runs every weir job on its embedded (generated, seeded) data and prints a summary\n\
         table: job, records in and out, time and throughput.",
        true,
    );
    c.flags(&[&cli::MEMORY_BUDGET]);
    c
}

pub fn main(args: &[String]) -> Result<(), CliError> {
    let command = command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    if cli::OUTPUT.given(&m) {
        return Err(cli::usage(
            "demo: --output is not supported; run a job on its own to write files",
        ));
    }
    let budget = cli::MEMORY_BUDGET
        .get(&m)?
        .unwrap_or_else(join::default_memory_budget);
    let config = cli::timely_config(&m)?;
    let show_bars = std::io::stderr().is_terminal() && cli::process_zero(&m);
    let mut rows = Vec::new();
    for (name, total, run) in steps(budget) {
        let progress = Arc::new(AtomicU64::new(0));
        let options = JobOptions {
            output: None,
            show: 0,
            progress: Some(Arc::clone(&progress)),
        };
        let bar = ProgressBar::with_draw_target(
            Some(total),
            if show_bars {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} records {elapsed}")
                .map_err(|e| CliError::Runtime(e.into()))?
                .progress_chars("=> "),
        );
        bar.set_prefix(name);
        let done = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (bar, progress, done) = (bar.clone(), Arc::clone(&progress), Arc::clone(&done));
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    bar.set_position(progress.load(Ordering::Relaxed));
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let result = run(config.clone(), &options);
        done.store(true, Ordering::Relaxed);
        let _ = ticker.join();
        bar.finish_and_clear();
        let summary = result?;
        rows.push((name, summary));
    }
    if rows.first().is_some_and(|(_, s)| s.leader) {
        print!("{}", table(&rows));
    }
    Ok(())
}

fn table(rows: &[(&str, JobSummary)]) -> String {
    let mut out = format!(
        "{:<10} {:>12} {:>12} {:>9} {:>14} {:>8}\n",
        "job", "records in", "records out", "time (s)", "records/s", "workers"
    );
    for (name, s) in rows {
        let secs = s.elapsed.as_secs_f64();
        out.push_str(&format!(
            "{:<10} {:>12} {:>12} {:>9.2} {:>14.0} {:>8}\n",
            name,
            s.records_in,
            s.records_out,
            secs,
            s.records_in as f64 / secs.max(1e-9),
            s.workers
        ));
    }
    out
}

//! `weir demo`: what weir is, in well under a minute on all cores. The batch
//! jobs on their embedded data, PageRank and connected components converging,
//! ALS with its test RMSE, CoCoA, and a streaming word count that is killed
//! (kill -9) in the middle and restored with `--restore latest`, with its
//! exactly-once check. A progress bar per step on a terminal, and a table.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use weir_dataflows::algorithms::graphs::pagerank::PageRank;
use weir_dataflows::graph::input::{GraphInput, Rmat};
use weir_dataflows::jobs::graph::{self, Algorithm, GraphJob};
use weir_dataflows::jobs::{join, wordcount};
use weir_ml::als::AlsParams;
use weir_ml::cocoa::sdca::{Aggregation, CocoaParams};
use weir_ml::jobs::als::{self, AlsJob};
use weir_ml::jobs::cocoa::{self, CocoaJob};
use weir_ml::libsvm::{SvmInput, SyntheticSvm};
use weir_ml::ratings::{RatingsInput, Split, Synthetic};
use weir_progress::convergence::Round;
use weir_runtime::exec::{JobOptions, JobSummary};

use crate::cli::{self, CliError, Command};
use crate::demo_stream;

pub fn command() -> Command {
    let mut c = Command::new(
        "demo",
        "weir demo [--memory-budget SIZE] [timely flags]",
        "Runs weir's jobs on embedded (generated, seeded) data, on every core unless -w\n\
         says otherwise: word count and join; PageRank and connected components\n\
         converging; ALS with its test RMSE; CoCoA; and a streaming word count over a\n\
         directory that is killed (kill -9) in the middle, restored with --restore\n\
         latest, and checked exactly once. Prints a table: job, records in and out,\n\
         time, throughput, workers and the result.",
        true,
    );
    c.flags(&[&cli::MEMORY_BUDGET]);
    c
}

/// A row of the table.
pub struct Row {
    pub name: &'static str,
    pub summary: JobSummary,
    pub result: String,
}

/// What every step gets: where to run, and how to show its progress.
pub struct Step {
    pub config: timely::Config,
    pub bars: bool,
}

impl Step {
    /// A bar for a step: `length` units (records, iterations), or a spinner.
    pub fn bar(
        &self,
        name: &str,
        length: Option<u64>,
        unit: &str,
    ) -> Result<ProgressBar, CliError> {
        let target = if self.bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(length, target);
        let template = match length {
            Some(_) => format!("{{prefix:>10}} [{{bar:40}}] {{pos}}/{{len}} {unit} {{msg}}"),
            None => format!("{{prefix:>10}} {{spinner}} {{pos}} {unit} {{msg}}"),
        };
        bar.set_style(
            ProgressStyle::with_template(&template)
                .map_err(|e| CliError::Runtime(e.into()))?
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        Ok(bar)
    }

    /// Runs a batch job with a bar of the records it has read.
    fn records(
        &self,
        name: &'static str,
        total: u64,
        outputs: &str,
        run: impl FnOnce(timely::Config, &JobOptions) -> Result<JobSummary, CliError>,
    ) -> Result<Row, CliError> {
        let progress = Arc::new(AtomicU64::new(0));
        let options = JobOptions {
            output: None,
            show: 0,
            progress: Some(Arc::clone(&progress)),
        };
        let bar = self.bar(name, Some(total), "records")?;
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
        let result = run(self.config.clone(), &options);
        done.store(true, Ordering::Relaxed);
        let _ = ticker.join();
        bar.finish_and_clear();
        let summary = result?;
        let result = format!("{} {outputs}", summary.records_out);
        Ok(Row {
            name,
            summary,
            result,
        })
    }
}

/// A report that moves `bar` to each iteration and shows `text` of its total.
fn reporting<V: 'static>(
    bar: &ProgressBar,
    text: impl Fn(&V) -> String + Send + Sync + 'static,
) -> Arc<dyn Fn(Round<V>) + Send + Sync> {
    let bar = bar.clone();
    Arc::new(move |round: Round<V>| {
        bar.set_position(round.iteration + 1);
        bar.set_message(text(&round.value));
    })
}

fn wordcount_step(step: &Step) -> Result<Row, CliError> {
    let input = wordcount::default_input();
    let total = input.known_lines().unwrap_or(0);
    step.records(
        "wordcount",
        total,
        "distinct words",
        move |config, options| Ok(wordcount::run(config, input, options)?),
    )
}

fn join_step(step: &Step, budget: u64) -> Result<Row, CliError> {
    let spec = join::default_spec(budget);
    let total = [&spec.left, &spec.right]
        .iter()
        .filter_map(|side| side.input.known_lines())
        .sum();
    step.records("join", total, "joined rows", move |config, options| {
        Ok(join::run(config, spec, options).map(|(summary, _)| summary)?)
    })
}

/// PageRank to a tolerance, or connected components to the fixed point, on
/// the embedded R-MAT graph.
fn graph_step(step: &Step, algorithm: Algorithm) -> Result<Row, CliError> {
    let length = match algorithm {
        Algorithm::PageRank { iterations, .. } => Some(iterations),
        _ => None,
    };
    let name = algorithm.name();
    let bar = step.bar(name, length, "iterations")?;
    let measure = algorithm.measure();
    let job = GraphJob {
        input: GraphInput::Rmat(Rmat {
            scale: 14,
            edge_factor: 16,
            seed: 1,
        }),
        algorithm,
        checkpoints: None,
        report: Some(reporting(&bar, move |v: &f64| format!("{measure} {v:.3e}"))),
        wide_ids: false,
    };
    let result = graph::run(step.config.clone(), job, &quiet());
    bar.finish_and_clear();
    let summary = result?;
    let last = summary.rounds.last().map(|r| r.value).unwrap_or_default();
    let result = match algorithm {
        Algorithm::PageRank { .. } => format!(
            "converged: {} iterations, last L1 change {last:.1e}",
            summary.iterations()
        ),
        _ => format!("fixed point after {} iterations", summary.iterations()),
    };
    Ok(Row {
        name,
        summary: summary.job,
        result,
    })
}

fn als_step(step: &Step) -> Result<Row, CliError> {
    let iterations = 10;
    let bar = step.bar("als", Some(iterations), "iterations")?;
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
        iterations,
        tolerance: None,
        checkpoints: None,
        report: Some(reporting(&bar, |e: &weir_ml::als::Errors| {
            format!("train RMSE {:.4}", e.train_rmse())
        })),
        keep_model: false,
    };
    let result = als::run(step.config.clone(), job, &quiet());
    bar.finish_and_clear();
    let summary = result?;
    let rmse = summary.rounds.last().and_then(|r| r.value.test_rmse());
    let result = match rmse {
        Some(rmse) => format!(
            "test RMSE {rmse:.4} after {} iterations",
            summary.iterations()
        ),
        None => format!("{} iterations", summary.iterations()),
    };
    Ok(Row {
        name: "als",
        summary: summary.job,
        result,
    })
}

fn cocoa_step(step: &Step) -> Result<Row, CliError> {
    let rounds = 100;
    let bar = step.bar("cocoa", Some(rounds), "rounds")?;
    let job = CocoaJob {
        input: SvmInput::Synthetic(SyntheticSvm::DEFAULT),
        test: None,
        params: CocoaParams {
            lambda: 1e-3,
            local_iters: 1000,
            aggregation: Aggregation::Add,
            seed: 42,
        },
        rounds,
        tolerance: Some(1e-3),
        checkpoints: None,
        report: Some(reporting(&bar, |d: &weir_ml::cocoa::sdca::Duality| {
            format!("duality gap {:.2e}", d.gap())
        })),
    };
    let result = cocoa::run(step.config.clone(), job, &quiet());
    bar.finish_and_clear();
    let summary = result?;
    let gap = summary
        .rounds
        .last()
        .map(|r| r.value.gap())
        .unwrap_or_default();
    Ok(Row {
        name: "cocoa",
        result: format!(
            "duality gap {gap:.1e} after {} rounds",
            summary.rounds_run()
        ),
        summary: summary.job,
    })
}

fn quiet() -> JobOptions {
    JobOptions {
        show: 0,
        ..Default::default()
    }
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
    let config = cli::timely_config_or_all_cores(&m)?;
    let leader = cli::process_zero(&m);
    let step = Step {
        config,
        bars: std::io::stderr().is_terminal() && leader,
    };
    let pagerank = Algorithm::PageRank {
        params: PageRank { damping: 0.85 },
        iterations: 50,
        tolerance: Some(1e-6),
    };
    let mut rows = vec![
        wordcount_step(&step)?,
        join_step(&step, budget)?,
        graph_step(&step, pagerank)?,
        graph_step(&step, Algorithm::Cc)?,
        als_step(&step)?,
        cocoa_step(&step)?,
    ];
    // the streaming step starts processes of its own: in a cluster, process
    // 0 runs it on its machine
    let mut story = Vec::new();
    if leader {
        let (row, told) = demo_stream::run(&step)?;
        rows.push(row);
        story = told;
    }
    if rows.first().is_some_and(|r| r.summary.leader) {
        print!("{}", table(&rows));
        println!();
        for line in story {
            println!("{line}");
        }
    }
    Ok(())
}

fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<10} {:>12} {:>12} {:>9} {:>14} {:>8}  {}\n",
        "job", "records in", "records out", "time (s)", "records/s", "workers", "result"
    );
    for row in rows {
        let s = &row.summary;
        let secs = s.elapsed.as_secs_f64();
        out.push_str(&format!(
            "{:<10} {:>12} {:>12} {:>9.2} {:>14.0} {:>8}  {}\n",
            row.name,
            s.records_in,
            s.records_out,
            secs,
            s.records_in as f64 / secs.max(1e-9),
            s.workers,
            row.result
        ));
    }
    out
}

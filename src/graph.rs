//! `weir pagerank`, `weir cc` and `weir bfs`.

use std::path::PathBuf;

use indicatif::ProgressBar;
use weir_dataflows::algorithms::graphs::pagerank::PageRank;
use weir_dataflows::algorithms::graphs::superstep::Report;
use weir_dataflows::graph::input::{GraphInput, Rmat};
use weir_dataflows::jobs::graph::{self, Algorithm, GraphJob, GraphSummary};
use weir_runtime::input::LineInput;

use crate::cli::{self, CliError, Command, usage};
use crate::flag::Flag;
use crate::iterative;
use crate::plot::{self, Curve, Plot};

fn command(name: &'static str, usage_line: &'static str, about: &'static str) -> Command {
    let mut c = Command::new(name, usage_line, about, true);
    c.flags(&[&EDGES, &RMAT, &EDGE_FACTOR, &SEED, &WIDE_IDS]);
    iterative::loop_flags(&mut c);
    c
}

const EDGES: Flag<PathBuf> = Flag::new(
    "edges",
    "PATH",
    "an edge-list file: `src dst [weight]` lines, # comments",
)
.repeat();
/// Without `--edges`, the graph (the embedded default: scale 14, edge factor 16, seed 1).
const RMAT: Flag<u32> = Flag::new(
    "rmat",
    "SCALE",
    "without --edges, a generated Graph500 R-MAT graph of 2^SCALE nodes",
)
.default("14");
const EDGE_FACTOR: Flag<u64> = Flag::new("edge-factor", "F", "R-MAT edges per node").default("16");
const SEED: Flag<u64> = Flag::new("seed", "S", "R-MAT seed").default("1");
const WIDE_IDS: Flag<bool> = Flag::switch(
    "wide-ids",
    "64-bit node ids, for edge lists with ids of 2^32 - 1 and above (default: 32-bit, half the memory)",
);
const ITERATIONS: Flag<u64> = Flag::new("iterations", "N", "iterations at most").default("20");
const TOLERANCE: Flag<f64> = Flag::new("tolerance", "EPS", "stop once the L1 change is below EPS");
const DAMPING: Flag<f64> = Flag::new("damping", "D", "the damping factor d").default("0.85");
const SOURCE: Flag<u64> = Flag::new("source", "NODE", "the node to search from");

pub fn pagerank_command() -> Command {
    let mut c = command(
        "pagerank",
        "weir pagerank [--edges PATH | --rmat SCALE] [--iterations N] [--tolerance EPS] [--damping D] [timely flags]",
        "PageRank: ranks start at 1/N; each iteration r'(v) = (1-d)/N + d(sum of r(u)/outdeg(u)\n\
         over edges u->v + D/N), D the rank of nodes without out-edges, so ranks sum to 1.\n\
         Stops after N iterations or once an iteration's L1 change is below EPS.\n\
         Output lines: node<TAB>rank. Without --edges: a generated R-MAT graph.",
    );
    c.flags(&[&ITERATIONS, &TOLERANCE, &DAMPING]);
    c
}

pub fn cc_command() -> Command {
    command(
        "cc",
        "weir cc [--edges PATH | --rmat SCALE] [timely flags]",
        "Connected components of the undirected graph, to the fixed point.\n\
         Output lines: node<TAB>smallest node id in its component.",
    )
}

pub fn bfs_command() -> Command {
    let mut c = command(
        "bfs",
        "weir bfs --source NODE [--edges PATH | --rmat SCALE] [timely flags]",
        "Breadth-first search: hop distances from NODE along edge direction.\n\
         Output lines: node<TAB>distance; unreachable nodes are omitted.",
    );
    c.flags(&[&SOURCE]);
    c
}

fn input(m: &getopts::Matches) -> Result<GraphInput, CliError> {
    let files = EDGES.all(m)?;
    if !files.is_empty() {
        if RMAT.given(m) {
            return Err(usage("give --edges or --rmat, not both"));
        }
        return Ok(GraphInput::Edges(LineInput::Files(files)));
    }
    let rmat = Rmat {
        scale: RMAT.value(m)?,
        edge_factor: EDGE_FACTOR.value(m)?,
        seed: SEED.value(m)?,
    };
    rmat.validate()?;
    Ok(GraphInput::Rmat(rmat))
}

fn algorithm(name: &str, m: &getopts::Matches) -> Result<Algorithm, CliError> {
    Ok(match name {
        "pagerank" => {
            let damping = DAMPING.value(m)?;
            if !(0.0..1.0).contains(&damping) {
                return Err(usage(format!("--damping {damping}: must be in [0, 1)")));
            }
            Algorithm::PageRank {
                params: PageRank { damping },
                iterations: ITERATIONS.value(m)?,
                tolerance: TOLERANCE.get(m)?,
            }
        }
        "bfs" => Algorithm::Bfs {
            source: SOURCE.value(m)?,
        },
        _ => Algorithm::Cc,
    })
}

/// An iteration's measure: PageRank's L1 change, or a count of nodes.
fn value(algorithm: Algorithm, value: f64) -> String {
    match algorithm {
        Algorithm::PageRank { .. } => format!("{value:.6e}"),
        _ => format!("{value:.0}"),
    }
}

/// Per-iteration progress: a bar on a terminal, a line per iteration otherwise.
fn progress(algorithm: Algorithm, leader: bool) -> Result<(Report, ProgressBar), CliError> {
    let length = match algorithm {
        Algorithm::PageRank { iterations, .. } => Some(iterations),
        _ => None,
    };
    iterative::iteration_progress(
        algorithm.name(),
        "iteration",
        length,
        leader,
        move |round, took| {
            format!(
                "{} {} ({:.3} s)",
                algorithm.measure(),
                value(algorithm, round.value),
                took.as_secs_f64()
            )
        },
    )
}

pub fn main(name: &'static str, args: &[String]) -> Result<(), CliError> {
    let command = match name {
        "pagerank" => pagerank_command(),
        "bfs" => bfs_command(),
        _ => cc_command(),
    };
    let Some((m, config, options)) = cli::parse_job(&command, args)? else {
        return Ok(());
    };
    let input = input(&m)?;
    let algorithm = algorithm(name, &m)?;
    let leader = cli::process_zero(&m);
    let plot = plot::path(&m)?;
    let (report, bar) = progress(algorithm, leader)?;
    let job = GraphJob {
        input: input.clone(),
        algorithm,
        checkpoints: iterative::loop_checkpoints(&m)?,
        report: Some(report),
        wide_ids: WIDE_IDS.given(&m),
    };
    cli::note(&m, format!("{name}: input {}", describe(&input)));
    let summary = graph::run(config, job, &options)?;
    bar.finish_and_clear();
    finish(name, &summary, &options, algorithm)?;
    if let Some(path) = plot
        && summary.job.leader
    {
        Plot {
            title: format!("weir {name}: {}", describe(&input)),
            x_label: "iteration",
            y_label: algorithm.measure().to_string(),
            log: true,
            curves: vec![Curve {
                label: algorithm.measure().to_string(),
                points: summary
                    .rounds
                    .iter()
                    .map(|r| (r.iteration, r.value))
                    .collect(),
            }],
        }
        .write(&path)?;
        cli::note(&m, format!("{name}: plotted to {}", path.display()));
    }
    Ok(())
}

fn describe(input: &GraphInput) -> String {
    match input {
        GraphInput::Edges(lines) => lines.describe(),
        GraphInput::Rmat(r) => format!(
            "R-MAT scale {} edge factor {} seed {} ({} edges)",
            r.scale,
            r.edge_factor,
            r.seed,
            r.edges()
        ),
    }
}

fn finish(
    name: &str,
    summary: &GraphSummary,
    options: &weir_runtime::exec::JobOptions,
    algorithm: Algorithm,
) -> Result<(), CliError> {
    if let Algorithm::Bfs { source } = algorithm
        && summary.job.records_out == 0
    {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "--source {source}: the node is not in the graph (no edge names it)"
        )));
    }
    cli::report(name, &summary.job, options);
    if summary.job.leader {
        let last = summary.rounds.last().map(|r| {
            format!(
                ", last {} {}",
                algorithm.measure(),
                value(algorithm, r.value)
            )
        });
        let resumed = summary
            .resumed_at
            .map(|i| format!(" (resumed at iteration {i})"))
            .unwrap_or_default();
        eprintln!(
            "{name}: {} iterations{resumed}{}",
            summary.iterations(),
            last.unwrap_or_default()
        );
    }
    Ok(())
}

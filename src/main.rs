//! `weir <job> [options] [timely flags]`: the command-line front end of weir.
#![forbid(unsafe_code)]

mod als;
mod cli;
mod cocoa;
mod demo;
mod error;
mod generate;
mod graph;
mod iterative;
mod join;
mod plot;
mod stream;
mod stream_kafka;
mod stream_options;
mod wordcount;

use std::process::ExitCode;

use cli::CliError;

const JOBS: &[(&str, &str)] = &[
    (
        "demo",
        "run every job on its embedded data, with a summary table",
    ),
    (
        "wordcount",
        "count words of text files (or of generated text)",
    ),
    (
        "join",
        "inner equi-join of two CSV/TSV files, spilling past a memory budget",
    ),
    (
        "stream",
        "exactly-once streaming jobs with checkpoints (stream wordcount)",
    ),
    (
        "pagerank",
        "PageRank of an edge list or R-MAT graph (timely iterations)",
    ),
    ("cc", "connected components of an edge list or R-MAT graph"),
    ("bfs", "breadth-first hop distances from a node"),
    (
        "als",
        "blocked ALS matrix factorisation of ratings (MovieLens or synthetic)",
    ),
    (
        "recommend",
        "top unrated items for a user from an ALS model",
    ),
    (
        "cocoa",
        "CoCoA / CoCoA+ linear SVM of LIBSVM data (timely rounds)",
    ),
    ("gen", "write seeded generated text or tables"),
];

fn main() -> ExitCode {
    install_panic_hook();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(message)) => {
            eprintln!("weir: {message}");
            let job = args.first().map(String::as_str).unwrap_or("");
            if JOBS.iter().any(|(name, _)| *name == job) {
                eprintln!("Try 'weir {job} --help'.");
            } else {
                eprintln!("Try 'weir --help'.");
            }
            ExitCode::from(2)
        }
        Err(CliError::Runtime(error)) => {
            eprintln!("weir: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// A panic (a bug, or timely's reaction to a peer process that went away) ends the
/// process with one line on stderr and exit code 1, not a backtrace from every thread.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown cause");
        let hint = if message.contains("communication") || message.contains("MergeQueue") {
            " (a peer process failed or exited; run every process with the same -w, -n and hostfile)"
        } else {
            ""
        };
        eprintln!("weir: fatal: {message}{hint}");
        std::process::exit(1);
    }));
}

fn help() -> String {
    let mut text = String::from(
        "weir: batch, iterative and streaming jobs as timely dataflows\n\n\
         Usage: weir <job> [options] [timely flags]\n       weir <job> --help\n\nJobs:\n",
    );
    for (name, about) in JOBS {
        text.push_str(&format!("  {name:<12} {about}\n"));
    }
    text.push_str(
        "\nEvery job takes timely's flags: -w threads per process, -n processes,\n\
         -p this process's index, -h hostfile (help is --help, never -h).\n",
    );
    text
}

fn dispatch(args: &[String]) -> Result<(), CliError> {
    let Some(job) = args.first() else {
        print!("{}", help());
        return Err(cli::usage("no job given"));
    };
    let rest = &args[1..];
    match job.as_str() {
        "--help" | "help" => {
            print!("{}", help());
            Ok(())
        }
        "demo" => demo::main(rest),
        "wordcount" => wordcount::main(rest),
        "join" => join::main(rest),
        "gen" => generate::main(rest),
        "pagerank" => graph::main("pagerank", rest),
        "cc" => graph::main("cc", rest),
        "bfs" => graph::main("bfs", rest),
        "als" => als::main(rest),
        "recommend" => als::recommend(rest),
        "cocoa" => cocoa::main(rest),
        "stream" => stream::main(rest),
        other => Err(cli::usage(format!("unknown job '{other}'"))),
    }
}

//! `weir <job> [options] [timely flags]`: the command-line front end of weir.
#![forbid(unsafe_code)]

mod als;
mod cli;
mod cocoa;
mod demo;
mod demo_stream;
mod error;
mod flag;
mod generate;
mod graph;
mod iterative;
mod join;
mod plot;
mod sql;
mod sql_prompt;
mod stream;
mod stream_kafka;
mod stream_options;
mod wordcount;

use std::process::ExitCode;

use cli::CliError;

/// mimalloc, as datafusion-cli uses: Arrow's buffers come and go by the
/// megabyte, and glibc's arenas keep much of what is freed (TPC-H q18 at
/// SF10 under `--memory-budget 2GB` peaked at 3.0 GiB with them, 2.6 GiB
/// with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A job of the command line: its name, what it does, how it runs.
struct Job {
    name: &'static str,
    about: &'static str,
    run: fn(&[String]) -> Result<(), CliError>,
}

/// Every job, in the order `weir --help` lists them; dispatch reads the same
/// table, so the two cannot drift.
const JOBS: &[Job] = &[
    Job {
        name: "demo",
        about: "run every job on its embedded data, with a summary table",
        run: demo::main,
    },
    Job {
        name: "wordcount",
        about: "count words of text files (or of generated text)",
        run: wordcount::main,
    },
    Job {
        name: "join",
        about: "inner equi-join of two CSV/TSV files, spilling past a memory budget",
        run: join::main,
    },
    Job {
        name: "stream",
        about: "exactly-once streaming jobs with checkpoints (stream wordcount)",
        run: stream::main,
    },
    Job {
        name: "pagerank",
        about: "PageRank of an edge list or R-MAT graph (timely iterations)",
        run: |args| graph::main("pagerank", args),
    },
    Job {
        name: "cc",
        about: "connected components of an edge list or R-MAT graph",
        run: |args| graph::main("cc", args),
    },
    Job {
        name: "bfs",
        about: "breadth-first hop distances from a node",
        run: |args| graph::main("bfs", args),
    },
    Job {
        name: "als",
        about: "blocked ALS matrix factorisation of ratings (MovieLens or synthetic)",
        run: als::main,
    },
    Job {
        name: "recommend",
        about: "top unrated items for a user from an ALS model",
        run: als::recommend,
    },
    Job {
        name: "cocoa",
        about: "CoCoA / CoCoA+ linear SVM of LIBSVM data (timely rounds)",
        run: cocoa::main,
    },
    Job {
        name: "sql",
        about: "SQL over CSV, JSON and Parquet files (DataFusion plans, timely runs)",
        run: sql::main,
    },
    Job {
        name: "gen",
        about: "write seeded generated text or tables",
        run: generate::main,
    },
];

fn main() -> ExitCode {
    install_panic_hook();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(message)) => {
            eprintln!("weir: {message}");
            let job = args.first().map(String::as_str).unwrap_or("");
            if JOBS.iter().any(|j| j.name == job) {
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
    for job in JOBS {
        text.push_str(&format!("  {:<12} {}\n", job.name, job.about));
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
    match JOBS.iter().find(|j| j.name == job.as_str()) {
        Some(found) => (found.run)(&args[1..]),
        None if job == "--help" || job == "help" => {
            print!("{}", help());
            Ok(())
        }
        None => Err(cli::usage(format!("unknown job '{job}'"))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    /// Every command of the binary.
    fn commands() -> Vec<crate::cli::Command> {
        vec![
            crate::demo::command(),
            crate::wordcount::command(),
            crate::join::command(),
            crate::generate::command(),
            crate::graph::pagerank_command(),
            crate::graph::cc_command(),
            crate::graph::bfs_command(),
            crate::als::als_command(),
            crate::als::recommend_command(),
            crate::cocoa::command(),
            crate::stream::command(),
            crate::stream_kafka::produce_command(),
            crate::stream_kafka::yahoo_command(),
            crate::stream_kafka::verify_command(),
            crate::sql::command(),
        ]
    }

    #[test]
    fn every_declared_default_parses_and_no_flag_is_declared_twice() {
        for command in commands() {
            let mut seen = HashSet::new();
            for flag in command.declared() {
                assert!(
                    seen.insert(flag.long()),
                    "{}: --{} declared twice",
                    command.name,
                    flag.long()
                );
                if let Err(e) = flag.check_default() {
                    panic!("{}: {e}", command.name);
                }
            }
            // the help is derived from the declarations
            let help = command.help();
            for flag in command.declared() {
                assert!(help.contains(&format!("--{}", flag.long())), "{help}");
            }
        }
    }

    /// Library errors name settings; the command line names their flags.
    #[test]
    fn every_setting_a_job_can_refuse_is_a_flag_of_some_command() {
        let declared: HashSet<&str> = commands()
            .iter()
            .flat_map(|c| c.declared().map(|f| f.long()).collect::<Vec<_>>())
            .collect();
        for setting in weir_runtime::error::Setting::ALL {
            let flag = crate::error::flag(setting);
            let long = flag.split(' ').next().and_then(|f| f.strip_prefix("--"));
            assert!(
                long.is_some_and(|l| declared.contains(l)),
                "{setting}: {flag} is no command's flag"
            );
        }
    }

    #[test]
    fn every_listed_job_dispatches() {
        for job in super::JOBS {
            assert!(
                (job.run)(&["--help".to_string()]).is_ok(),
                "{} --help",
                job.name
            );
        }
    }
}

//! `weir sql`: SQL statements, planned by DataFusion and run by weir on
//! timely's workers.

use std::path::PathBuf;

use arrow::util::pretty::pretty_format_batches;
use weir_sql::exec::{Destination, FileFormat};
use weir_sql::{Outcome, run_script};

use crate::cli::{self, CliError, Command};
use crate::flag::Flag;

pub fn command() -> Command {
    let mut c = Command::new(
        "sql",
        "weir sql (-e \"STATEMENTS\" | -f FILE.sql) [--show N | --output DIR [--format F]] [timely flags]",
        "Runs SQL statements, separated by ';'. Tables are declared with\n\
         CREATE EXTERNAL TABLE name [(columns)] STORED AS CSV|JSON|PARQUET LOCATION 'path'\n\
         [OPTIONS ('has_header' 'true', 'delimiter' '|')]; a location is a file or a\n\
         directory of .csv/.json/.parquet files, shared across every worker of every\n\
         process. DataFusion parses, plans and optimizes each query; weir runs it as a\n\
         timely dataflow. Process 0 prints each result as a table (its first --show rows)\n\
         and its row count; EXPLAIN shows DataFusion's plan and weir's, with its exchanges.",
        true,
    );
    c.flags(&[&EXECUTE, &FILE, &FORMAT, &cli::MEMORY_BUDGET]);
    c
}

const FORMAT: Flag<FileFormat> = Flag::new(
    "format",
    "csv|parquet|json",
    "the files --output writes (one per worker; one for an ordered result)",
)
.default("csv");

const EXECUTE: Flag<String> = Flag::new("execute", "SQL", "the statements to run").short("e");
const FILE: Flag<PathBuf> = Flag::new("file", "FILE", "a file of statements to run").short("f");

pub fn main(args: &[String]) -> Result<(), CliError> {
    let Some((m, config, options)) = cli::parse_job(&command(), args)? else {
        return Ok(());
    };
    let sql = match (EXECUTE.get(&m)?, FILE.get(&m)?) {
        (Some(sql), None) => sql,
        (None, Some(file)) => std::fs::read_to_string(&file)
            .map_err(|e| CliError::Runtime(anyhow::anyhow!("{}: {e}", file.display())))?,
        (Some(_), Some(_)) => return Err(cli::usage("sql: give -e or -f, not both")),
        (None, None) => return Err(cli::usage("sql: give the statements with -e or -f")),
    };
    let destination = options.output.clone().map(|dir| Destination {
        dir,
        format: FORMAT.value(&m).unwrap_or(FileFormat::Csv),
    });
    if destination.is_none() && FORMAT.given(&m) {
        return Err(cli::usage("sql: --format applies to --output"));
    }
    let budget = cli::MEMORY_BUDGET.get(&m)?;
    let outcomes = run_script(config, &sql, destination.clone(), budget)
        .map_err(|e| CliError::Runtime(e.into()))?;
    let leader = cli::process_zero(&m);
    for outcome in outcomes {
        if !leader {
            continue;
        }
        match (&outcome, &destination) {
            (Outcome::Rows(output), Some(d)) => eprintln!(
                "sql: {} rows written to {} ({:?}) in {:.3} s on {} workers",
                output.rows(),
                d.dir.display(),
                d.format,
                output.elapsed.as_secs_f64(),
                output.workers
            ),
            _ => print(&outcome, options.show)?,
        }
    }
    Ok(())
}

/// Prints what a statement did.
fn print(outcome: &Outcome, show: usize) -> Result<(), CliError> {
    match outcome {
        Outcome::Declared { table, columns } => {
            eprintln!("sql: table {table} ({})", columns.join(", "));
        }
        Outcome::Explain { logical, weir } => {
            println!("DataFusion's optimized logical plan:\n{logical}\n\nweir's plan:\n{weir}");
        }
        Outcome::Rows(output) => {
            let mut shown = Vec::new();
            let mut left = show;
            for batch in &output.batches {
                if left == 0 {
                    break;
                }
                let take = batch.num_rows().min(left);
                shown.push(batch.slice(0, take));
                left -= take;
            }
            if shown.is_empty() {
                shown.push(arrow::array::RecordBatch::new_empty(output.schema.clone()));
            }
            let table = pretty_format_batches(&shown).map_err(|e| CliError::Runtime(e.into()))?;
            println!("{table}");
            let rows = output.rows();
            let more = if rows > show {
                format!(" (the first {show} shown)")
            } else {
                String::new()
            };
            println!(
                "{rows} row{}{more} in {:.3} s on {} worker{}",
                if rows == 1 { "" } else { "s" },
                output.elapsed.as_secs_f64(),
                output.workers,
                if output.workers == 1 { "" } else { "s" }
            );
        }
    }
    Ok(())
}

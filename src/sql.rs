//! `weir sql`: SQL statements, planned by DataFusion and run by weir on
//! timely's workers.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;

use arrow::util::pretty::pretty_format_batches;
use weir_sql::exec::{Destination, FileFormat};
use weir_sql::session::Streaming;
use weir_sql::stream::{Sink, csv};
use weir_sql::{Outcome, run_script};

use crate::cli::{self, CliError, Command};
use crate::flag::Flag;
use crate::stream_options::{
    Checkpointing, checkpoint_flags, checkpointed, checkpointing, interval, report, stop_when_idle,
};

pub fn command() -> Command {
    let mut c = Command::new(
        "sql",
        "weir sql [-e \"STATEMENTS\" | -f FILE.sql] [--show N | --output DIR [--format F]] [timely flags]\n\
         \x20      weir sql -e|-f ... --checkpoint-dir CK [--checkpoint-interval 500ms] [--restore latest]",
        "Runs SQL statements, separated by ';'. Tables are declared with\n\
         CREATE EXTERNAL TABLE name [(columns)] STORED AS CSV|JSON|PARQUET LOCATION 'path'\n\
         [OPTIONS ('has_header' 'true', 'delimiter' '|')]; a location is a file or a\n\
         directory of .csv/.json/.parquet files, shared across every worker of every\n\
         process. DataFusion parses, plans and optimizes each query; weir runs it as a\n\
         timely dataflow. Process 0 prints each result as a table (its first --show rows)\n\
         and its row count; EXPLAIN shows DataFusion's plan and weir's, with its exchanges.\n\
         Without -e or -f, process 0 reads statements as they come: at a prompt with\n\
         history (~/.weir_history) on a terminal, else from standard input; the other\n\
         processes run each one alongside. \\q ends the session.\n\
         With --checkpoint-dir, the statements declare tables and end with one query over\n\
         UNBOUNDED tables (CREATE UNBOUNDED EXTERNAL TABLE t STORED AS NEXMARK LOCATION\n\
         'bid' OPTIONS ('events' 'N', 'rate' 'R')), which runs as a streaming job: every\n\
         worker prints its rows of each epoch as CSV lines once the checkpoint covering the\n\
         epoch is complete; with --output DIR, it writes them to DIR/epoch-<E>-w<W>.tsv,\n\
         visible only once that checkpoint is complete. After a crash, the same command\n\
         with --restore latest goes on from the last complete checkpoint: nothing written\n\
         to DIR is lost or repeated (printed rows of an epoch cut short by the crash are).\n\
         Kafka tables: CREATE UNBOUNDED EXTERNAL TABLE t (columns) STORED AS KAFKA\n\
         LOCATION 'topic' OPTIONS ('brokers' 'host:port', 'event_time' 'column') reads a\n\
         topic's JSON records; INSERT INTO t SELECT ... writes the query's rows to one as\n\
         JSON objects, in transactions committed with the checkpoints (exactly once).",
        true,
    );
    c.flags(&[&EXECUTE, &FILE, &FORMAT, &cli::MEMORY_BUDGET]);
    checkpoint_flags(&mut c, &INTERVAL, Some(&IDLE));
    c
}

const INTERVAL: Flag<std::time::Duration> = interval("500ms");
const IDLE: Flag<std::time::Duration> = stop_when_idle(
    "end the streams of Kafka tables once no record has come for this long \
     (every window then fires)",
);

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
        (None, None) => return interactive(&m, config, &options),
    };
    if checkpointed(&m) {
        if FORMAT.given(&m) {
            return Err(cli::usage(
                "sql: a streaming query writes CSV (no --format)",
            ));
        }
        return stream(&m, config, &sql, options.output.clone());
    }
    let destination = options.output.clone().map(|dir| Destination {
        dir,
        format: FORMAT.value(&m).unwrap_or(FileFormat::Csv),
    });
    if destination.is_none() && FORMAT.given(&m) {
        return Err(cli::usage("sql: --format applies to --output"));
    }
    let budget = cli::MEMORY_BUDGET.get(&m)?;
    let outcomes = run_script(
        config,
        &sql,
        destination.clone(),
        budget,
        Some(options.show),
    )
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

/// Runs the script's query over unbounded tables as a streaming job.
fn stream(
    m: &getopts::Matches,
    config: timely::Config,
    sql: &str,
    output: Option<PathBuf>,
) -> Result<(), CliError> {
    let Checkpointing {
        options,
        interval,
        stop_when_idle,
        broker_timeout,
    } = checkpointing(m, &INTERVAL, Some(&IDLE))?;
    let epochs = weir_sql::stream::Epochs {
        interval,
        stop_when_idle,
        broker_timeout,
    };
    let mut session = weir_sql::Session::default();
    let plan = match session
        .stream_script(sql)
        .map_err(|e| CliError::Runtime(e.into()))?
    {
        Streaming::Run(plan) => plan,
        Streaming::Explain(outcome) => {
            if cli::process_zero(m) {
                print(&outcome, 0)?;
            }
            return Ok(());
        }
    };
    if let (Some(target), Some(_)) = (plan.inserts_into(), &output) {
        return Err(cli::usage(format!(
            "sql: the query inserts into {target} (no --output)"
        )));
    }
    if let Some(nested) = plan
        .plan()
        .schema
        .fields()
        .iter()
        .find(|f| f.data_type().is_nested())
    {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "sql: column {} is {}, which a CSV line cannot hold (cast it to VARCHAR)",
            nested.name(),
            nested.data_type()
        )));
    }
    let sink = match output {
        Some(dir) => Sink::Dir(dir),
        None => Sink::Deliver(Arc::new(|_, _, batch: &RecordBatch| match csv(batch) {
            Ok(text) => {
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
            }
            Err(e) => eprintln!("weir: sql: a row did not print: {e}"),
        })),
    };
    let summary = weir_sql::stream::run(config, Arc::from(plan), &options, epochs, sink)
        .map_err(|e| CliError::Runtime(e.into()))?;
    report("sql", &summary);
    Ok(())
}

/// Statements as they come (see `sql_prompt`); an error ends a statement,
/// not the session.
fn interactive(
    m: &getopts::Matches,
    config: timely::Config,
    options: &weir_runtime::exec::JobOptions,
) -> Result<(), CliError> {
    if options.output.is_some() {
        return Err(cli::usage("sql: --output writes the result of -e or -f"));
    }
    let show = options.show;
    let budget = cli::MEMORY_BUDGET.get(m)?;
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = failed.clone();
    let report = move |outcome: Result<Outcome, weir_sql::SqlError>| {
        let message = match outcome {
            Ok(outcome) => match print(&outcome, show) {
                Ok(()) => return,
                Err(CliError::Runtime(e)) => format!("{e:#}"),
                Err(CliError::Usage(e)) => e,
            },
            Err(e) => e.to_string(),
        };
        eprintln!("weir: {message}");
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    weir_sql::run_interactive(
        config,
        budget,
        Some(show),
        crate::sql_prompt::statements,
        report,
    )
    .map_err(|e| CliError::Runtime(e.into()))?;
    // a script piped in fails as a whole when a statement failed (as sqlite3
    // and duckdb do); each error was named as it happened
    let failed = failed.load(std::sync::atomic::Ordering::Relaxed);
    if failed > 0 && !crate::sql_prompt::is_terminal() {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "sql: {failed} statement(s) failed"
        )));
    }
    Ok(())
}

/// Prints what a statement did.
fn print(outcome: &Outcome, show: usize) -> Result<(), CliError> {
    match outcome {
        Outcome::Declared { table, columns } => {
            eprintln!("sql: table {table} ({})", columns.join(", "));
        }
        Outcome::Set { variable, value } => eprintln!("sql: {variable} = {value}"),
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
            let spilled = if output.spilled > 0 {
                format!(", {} spilled", weir_runtime::units::bytes(output.spilled))
            } else {
                String::new()
            };
            println!(
                "{rows} row{}{more} in {:.3} s on {} worker{}{spilled}",
                if rows == 1 { "" } else { "s" },
                output.elapsed.as_secs_f64(),
                output.workers,
                if output.workers == 1 { "" } else { "s" }
            );
        }
    }
    Ok(())
}

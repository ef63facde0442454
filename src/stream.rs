//! `weir stream <job>`: checkpointed, exactly-once streaming jobs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_progress::store::Restore;
use weir_streaming::dir_source::DirSource;
use weir_streaming::jobs::wordcount;
use weir_streaming::run::{StreamOptions, StreamSummary};

use crate::cli::{self, CliError, Command};

pub fn command() -> Command {
    let mut c = Command::new(
        "stream wordcount",
        "weir stream wordcount --source dir:IN --sink dir:OUT --checkpoint-dir CK\n\
         \x20      [--checkpoint-interval 500ms] [--restore latest|PATH] [--stop-when-idle 3s] [timely flags]",
        "Counts the words of files as they arrive in IN, exactly once.\n\
         Each epoch (one checkpoint interval) the words whose count changed are written\n\
         as word<TAB>count to OUT/epoch-<epoch>-w<worker>.tsv, visible only once the\n\
         checkpoint that covers the epoch is complete. Files in IN must appear whole\n\
         (write them under a name starting with '.', then rename). After a crash, run\n\
         the same command with --restore latest: nothing visible is lost or repeated.",
        false,
    );
    c.opts
        .optopt("", "source", "where lines come from: dir:PATH", "dir:IN");
    c.opts
        .optopt("", "sink", "where results go: dir:PATH", "dir:OUT");
    c.opts
        .optopt("", "checkpoint-dir", "where checkpoints go", "CK");
    c.opts.optopt(
        "",
        "checkpoint-interval",
        "length of an epoch, each one a checkpoint (default 500ms)",
        "DURATION",
    );
    c.opts.optopt(
        "",
        "restore",
        "restore the newest intact checkpoint, or the checkpoint directory PATH",
        "latest|PATH",
    );
    c.opts.optopt(
        "",
        "stop-when-idle",
        "exit 0 once no new file has come for this long and all is committed",
        "DURATION",
    );
    c.opts.optopt(
        "",
        "retain",
        "complete checkpoints to keep (default 3)",
        "N",
    );
    timely::Config::install_options(&mut c.opts);
    c
}

pub fn main(args: &[String]) -> Result<(), CliError> {
    match args.first().map(String::as_str) {
        Some("wordcount") => wordcount_main(&args[1..]),
        Some("--help") | None => {
            print!(
                "Streaming jobs:\n  wordcount    exactly-once running word counts of files arriving in a directory\n\n\
                 Usage: weir stream <job> --help\n"
            );
            if args.is_empty() {
                Err(cli::usage("stream: no job given"))
            } else {
                Ok(())
            }
        }
        Some(other) => Err(cli::usage(format!(
            "stream: unknown job '{other}' (jobs: wordcount)"
        ))),
    }
}

fn duration(m: &getopts::Matches, name: &str) -> Result<Option<Duration>, CliError> {
    m.opt_str(name)
        .map(|text| {
            humantime::parse_duration(&text)
                .map_err(|e| cli::usage(format!("invalid value '{text}' for --{name}: {e}")))
        })
        .transpose()
}

/// `dir:PATH` → PATH.
fn dir_spec(m: &getopts::Matches, name: &str) -> Result<PathBuf, CliError> {
    let spec: String = cli::required(m, name)?;
    match spec.split_once(':') {
        Some(("dir", path)) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => Err(cli::usage(format!(
            "--{name} '{spec}': expected dir:PATH (Kafka comes with the Kafka connector)"
        ))),
    }
}

/// `latest`, or a checkpoint directory `chk-<epoch>` inside `checkpoints`.
fn restore(m: &getopts::Matches, checkpoints: &Path) -> Result<Option<Restore>, CliError> {
    let Some(text) = m.opt_str("restore") else {
        return Ok(None);
    };
    if text == "latest" {
        return Ok(Some(Restore::Latest));
    }
    let path = PathBuf::from(&text);
    let epoch = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("chk-"))
        .and_then(|e| e.parse::<u64>().ok())
        .ok_or_else(|| {
            cli::usage(format!(
                "--restore '{text}': expected 'latest' or a checkpoint directory chk-<epoch>"
            ))
        })?;
    let parent = path.parent().unwrap_or(Path::new("."));
    let same = match (parent.canonicalize(), checkpoints.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        return Err(cli::usage(format!(
            "--restore '{text}' is not inside --checkpoint-dir {}",
            checkpoints.display()
        )));
    }
    Ok(Some(Restore::Epoch(epoch)))
}

fn wordcount_main(args: &[String]) -> Result<(), CliError> {
    let command = command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    let config = cli::timely_config(&m)?;
    let input = dir_spec(&m, "source")?;
    let output = dir_spec(&m, "sink")?;
    let checkpoint_dir: PathBuf = cli::required(&m, "checkpoint-dir")?;
    let interval = duration(&m, "checkpoint-interval")?.unwrap_or(Duration::from_millis(500));
    if interval.is_zero() {
        return Err(cli::usage("--checkpoint-interval must be more than 0"));
    }
    let retain: usize = cli::opt_or(&m, "retain", 3)?;
    if retain == 0 {
        return Err(cli::usage("--retain must be at least 1"));
    }
    let source = DirSource {
        dir: input,
        interval,
        stop_when_idle: duration(&m, "stop-when-idle")?,
    };
    let options = StreamOptions {
        restore: restore(&m, &checkpoint_dir)?,
        checkpoint_dir,
        retain,
        progress: None,
    };
    source.validate()?;
    cli::note(
        &m,
        format!(
            "stream wordcount: {} -> {}, checkpoints in {} every {}",
            source.dir.display(),
            output.display(),
            options.checkpoint_dir.display(),
            humantime::format_duration(interval)
        ),
    );
    let summary = wordcount::run(config, source, &output, &options)?;
    report(&summary);
    Ok(())
}

fn report(summary: &StreamSummary) {
    if !summary.leader {
        return;
    }
    for warning in &summary.warnings {
        eprintln!("stream wordcount: warning: {warning}");
    }
    if let Some(epoch) = summary.restored {
        eprintln!("stream wordcount: restored from the checkpoint of epoch {epoch}");
    }
    eprintln!(
        "stream wordcount: {} lines in, {} lines out, {} checkpoints committed in {:.2} s on {} worker{}",
        summary.records_in,
        summary.records_out,
        summary.checkpoints,
        summary.elapsed.as_secs_f64(),
        summary.workers,
        if summary.workers == 1 { "" } else { "s" }
    );
}

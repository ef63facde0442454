//! What every checkpointed streaming job of `weir stream` shares: the
//! checkpoint options, their values, and the summary it prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_progress::store::Restore;
use weir_streaming::kafka::source::BROKER_TIMEOUT;
use weir_streaming::run::{StreamOptions, StreamSummary};

use crate::cli::{self, CliError};

/// Declares the options every checkpointed streaming job shares.
pub fn checkpoint_options(opts: &mut getopts::Options, default_interval: &str, idle: &str) {
    opts.optopt("", "checkpoint-dir", "where checkpoints go", "DIR");
    opts.optopt(
        "",
        "checkpoint-interval",
        &format!("length of an epoch, each one a checkpoint (default {default_interval})"),
        "DURATION",
    );
    opts.optopt(
        "",
        "restore",
        "restore the newest intact checkpoint, or the checkpoint directory PATH",
        "latest|PATH",
    );
    opts.optopt("", "stop-when-idle", idle, "DURATION");
    opts.optopt(
        "",
        "broker-timeout",
        "how long a Kafka broker may stay unreachable before the job fails (default 30s)",
        "DURATION",
    );
    opts.optopt(
        "",
        "retain",
        "complete checkpoints to keep (default 3)",
        "N",
    );
}

/// The shared options' values (see [`checkpoint_options`]).
pub struct Checkpointing {
    pub options: StreamOptions,
    pub interval: Duration,
    pub stop_when_idle: Option<Duration>,
    pub broker_timeout: Duration,
}

pub fn checkpointing(
    m: &getopts::Matches,
    default_interval: Duration,
) -> Result<Checkpointing, CliError> {
    let checkpoint_dir: PathBuf = cli::required(m, "checkpoint-dir")?;
    let interval = duration(m, "checkpoint-interval")?.unwrap_or(default_interval);
    if interval.is_zero() {
        return Err(cli::usage("--checkpoint-interval must be more than 0"));
    }
    let retain: usize = cli::opt_or(m, "retain", 3)?;
    if retain == 0 {
        return Err(cli::usage("--retain must be at least 1"));
    }
    Ok(Checkpointing {
        stop_when_idle: duration(m, "stop-when-idle")?,
        broker_timeout: duration(m, "broker-timeout")?.unwrap_or(BROKER_TIMEOUT),
        interval,
        options: StreamOptions {
            restore: restore(m, &checkpoint_dir)?,
            checkpoint_dir,
            retain,
            progress: None,
        },
    })
}

pub fn duration(m: &getopts::Matches, name: &str) -> Result<Option<Duration>, CliError> {
    m.opt_str(name)
        .map(|text| {
            humantime::parse_duration(&text)
                .map_err(|e| cli::usage(format!("invalid value '{text}' for --{name}: {e}")))
        })
        .transpose()
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

pub fn report(job: &str, summary: &StreamSummary) {
    if !summary.leader {
        return;
    }
    for warning in &summary.warnings {
        eprintln!("{job}: warning: {warning}");
    }
    if let Some(epoch) = summary.restored {
        eprintln!("{job}: restored from the checkpoint of epoch {epoch}");
    }
    eprintln!(
        "{job}: {} records in, {} records out, {} checkpoints committed in {:.2} s on {} worker{}",
        summary.records_in,
        summary.records_out,
        summary.checkpoints,
        summary.elapsed.as_secs_f64(),
        summary.workers,
        if summary.workers == 1 { "" } else { "s" }
    );
}

//! What every checkpointed streaming job of `weir stream` shares: the
//! checkpoint options, their values, and the summary it prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_progress::store::Restore;
use weir_streaming::run::{StreamOptions, StreamSummary};

use crate::cli::{self, CliError, Command};
use crate::flag::{self, Flag};

/// The checkpoint interval of a job, whose default is the job's.
pub const fn interval(default: &'static str) -> Flag<Duration> {
    Flag::parsed(
        "checkpoint-interval",
        "DURATION",
        "length of an epoch, each one a checkpoint",
        flag::positive_duration,
    )
    .default(default)
}

/// `--stop-when-idle`, whose help says what the job does then.
pub const fn stop_when_idle(doc: &'static str) -> Flag<Duration> {
    Flag::parsed("stop-when-idle", "DURATION", doc, flag::duration)
}

const CHECKPOINT_DIR: Flag<PathBuf> = Flag::new("checkpoint-dir", "DIR", "where checkpoints go");
const RESTORE: Flag<RestoreArg> = Flag::parsed(
    "restore",
    "latest|PATH",
    "restore the newest intact checkpoint, or the checkpoint directory PATH",
    restore_arg,
);
/// `--broker-timeout`, also the Kafka commands' own.
pub const BROKER_TIMEOUT: Flag<Duration> = Flag::parsed(
    "broker-timeout",
    "DURATION",
    "how long a Kafka broker may stay unreachable before the job fails",
    flag::duration,
)
.default("30s");
const RETAIN: Flag<usize> = Flag::parsed(
    "retain",
    "N",
    "complete checkpoints to keep",
    flag::at_least_one,
)
.default("3");

/// Adds the flags every checkpointed streaming job shares, with the job's
/// own `interval` and `stop_when_idle` (see [`interval`], [`stop_when_idle`];
/// a job whose sources end by themselves has none).
pub fn checkpoint_flags(
    c: &mut Command,
    interval: &'static Flag<Duration>,
    idle: Option<&'static Flag<Duration>>,
) {
    c.flags(&[&CHECKPOINT_DIR, interval, &RESTORE]);
    if let Some(idle) = idle {
        c.flags(&[idle]);
    }
    c.flags(&[&BROKER_TIMEOUT, &RETAIN]);
}

/// Whether the command line asks for checkpoints (a streaming run).
pub fn checkpointed(m: &getopts::Matches) -> bool {
    CHECKPOINT_DIR.given(m)
}

/// The shared options' values (see [`checkpoint_flags`]).
pub struct Checkpointing {
    pub options: StreamOptions,
    pub interval: Duration,
    pub stop_when_idle: Option<Duration>,
    pub broker_timeout: Duration,
}

/// The values of the flags of [`checkpoint_flags`].
pub fn checkpointing(
    m: &getopts::Matches,
    interval: &Flag<Duration>,
    idle: Option<&Flag<Duration>>,
) -> Result<Checkpointing, CliError> {
    let checkpoint_dir = CHECKPOINT_DIR.value(m)?;
    Ok(Checkpointing {
        stop_when_idle: match idle {
            Some(idle) => idle.get(m)?,
            None => None,
        },
        broker_timeout: BROKER_TIMEOUT.value(m)?,
        interval: interval.value(m)?,
        options: StreamOptions {
            restore: restore(RESTORE.get(m)?, &checkpoint_dir)?,
            checkpoint_dir,
            retain: RETAIN.value(m)?,
            progress: None,
        },
    })
}

/// A `--restore` value before it is checked against `--checkpoint-dir`.
#[derive(Clone)]
enum RestoreArg {
    Latest,
    Checkpoint { path: PathBuf, epoch: u64 },
}

fn restore_arg(text: &str) -> Result<RestoreArg, String> {
    if text == "latest" {
        return Ok(RestoreArg::Latest);
    }
    let path = PathBuf::from(text);
    let epoch = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("chk-"))
        .and_then(|e| e.parse::<u64>().ok())
        .ok_or("expected 'latest' or a checkpoint directory chk-<epoch>")?;
    Ok(RestoreArg::Checkpoint { path, epoch })
}

/// `latest`, or a checkpoint directory `chk-<epoch>` inside `checkpoints`.
fn restore(arg: Option<RestoreArg>, checkpoints: &Path) -> Result<Option<Restore>, CliError> {
    let (path, epoch) = match arg {
        None => return Ok(None),
        Some(RestoreArg::Latest) => return Ok(Some(Restore::Latest)),
        Some(RestoreArg::Checkpoint { path, epoch }) => (path, epoch),
    };
    let text = path.display();
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

#[cfg(test)]
mod tests {
    use super::BROKER_TIMEOUT;

    /// The flag's default is the library's, written down twice: keep them one.
    #[test]
    fn the_broker_timeout_default_is_the_library_default() {
        let default = BROKER_TIMEOUT.default.map(super::flag::duration);
        assert_eq!(
            default,
            Some(Ok(weir_streaming::kafka::source::BROKER_TIMEOUT))
        );
    }
}

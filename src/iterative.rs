//! What every iterative job of the command shares: its loop-checkpoint
//! options, its per-iteration progress (a bar on a terminal, else a line per
//! iteration), and the fault injection of the crash tests.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use weir_progress::convergence::{Report, Round};
use weir_runtime::loops::LoopCheckpointing;

use crate::cli::Command;
use crate::error::{CliError, usage};
use crate::flag::{self, Flag};

/// Adds `--plot` and the loop checkpoints' flags: `--checkpoint-dir`,
/// `--checkpoint-every` and `--restore`.
pub fn loop_flags(c: &mut Command) {
    c.flags(&[
        &crate::plot::PLOT,
        &CHECKPOINT_DIR,
        &CHECKPOINT_EVERY,
        &RESTORE,
    ]);
}

const CHECKPOINT_DIR: Flag<PathBuf> =
    Flag::new("checkpoint-dir", "DIR", "write loop checkpoints into DIR");
const CHECKPOINT_EVERY: Flag<u64> = Flag::parsed(
    "checkpoint-every",
    "K",
    "checkpoint every K iterations",
    flag::at_least_one,
)
.default("5");
const RESTORE: Flag<bool> = Flag::parsed(
    "restore",
    "latest",
    "resume from the latest loop checkpoint in --checkpoint-dir",
    |text| match text {
        "latest" => Ok(true),
        _ => Err("only `latest` is supported".to_string()),
    },
);

/// The loop checkpoints asked for by [`loop_flags`].
pub fn loop_checkpoints(m: &getopts::Matches) -> Result<Option<LoopCheckpointing>, CliError> {
    let restore = RESTORE.get(m)?.unwrap_or(false);
    let Some(dir) = CHECKPOINT_DIR.get(m)? else {
        if restore || CHECKPOINT_EVERY.given(m) {
            return Err(usage(
                "--restore and --checkpoint-every need --checkpoint-dir",
            ));
        }
        return Ok(None);
    };
    Ok(Some(LoopCheckpointing {
        dir,
        every: CHECKPOINT_EVERY.value(m)?,
        restore,
    }))
}

/// Per-iteration progress of an iterative job: a bar on stderr when process
/// 0 runs on a terminal, else a line `{prefix}: {unit} N: {text}` per
/// iteration from process 0, where `line` makes the text from the round and
/// the time since the previous one. `length` is the most iterations, if
/// known (else a spinner). The report also serves the crash tests
/// ([`fault_after`]). Finish the bar once the job is over.
pub fn iteration_progress<V: 'static>(
    prefix: &'static str,
    unit: &'static str,
    length: Option<u64>,
    leader: bool,
    line: impl Fn(&Round<V>, Duration) -> String + Send + Sync + 'static,
) -> Result<(Report<V>, ProgressBar), CliError> {
    let terminal = leader && std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        length,
        if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let template = match length {
        Some(_) => "{prefix} [{bar:30}] iteration {pos}/{len} {msg}",
        None => "{prefix} {spinner} iteration {pos} {msg}",
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .map_err(|e| CliError::Runtime(e.into()))?
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    let last = Mutex::new(Instant::now());
    let shown = bar.clone();
    let report: Report<V> = Arc::new(move |round: Round<V>| {
        fault_after(round.iteration);
        let took = last
            .lock()
            .map(|mut t| {
                let took = t.elapsed();
                *t = Instant::now();
                took
            })
            .unwrap_or_default();
        let text = line(&round, took);
        if terminal {
            shown.set_position(round.iteration + 1);
            shown.set_message(text);
        } else if leader {
            eprintln!("{prefix}: {unit} {}: {text}", round.iteration);
        }
    });
    Ok((report, bar))
}

/// For the crash tests: with `WEIR_FAULT_ABORT_AFTER_ITERATION=N`, dies
/// (like kill -9: no cleanup) once iteration N is done.
pub fn fault_after(iteration: u64) {
    static FAULT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let fault = FAULT.get_or_init(|| {
        std::env::var("WEIR_FAULT_ABORT_AFTER_ITERATION")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if *fault == Some(iteration) {
        eprintln!("weir: fault injected: aborting after iteration {iteration}");
        std::process::abort();
    }
}

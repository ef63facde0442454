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

use crate::cli::opt_or;
use crate::error::{CliError, usage};

/// Installs `--checkpoint-dir`, `--checkpoint-every` and `--restore` (loop
/// checkpoints of an iterative job).
pub fn loop_options(opts: &mut getopts::Options) {
    crate::plot::option(opts);
    opts.optopt(
        "",
        "checkpoint-dir",
        "write loop checkpoints into DIR",
        "DIR",
    );
    opts.optopt(
        "",
        "checkpoint-every",
        "checkpoint every K iterations (default 5)",
        "K",
    );
    opts.optopt(
        "",
        "restore",
        "resume from the latest loop checkpoint in --checkpoint-dir",
        "latest",
    );
}

/// The loop checkpoints asked for by [`loop_options`].
pub fn loop_checkpoints(m: &getopts::Matches) -> Result<Option<LoopCheckpointing>, CliError> {
    let restore = match m.opt_str("restore").as_deref() {
        None => false,
        Some("latest") => true,
        Some(other) => {
            return Err(usage(format!(
                "--restore {other}: only `latest` is supported"
            )));
        }
    };
    let Some(dir) = m.opt_str("checkpoint-dir") else {
        if restore || m.opt_present("checkpoint-every") {
            return Err(usage(
                "--restore and --checkpoint-every need --checkpoint-dir",
            ));
        }
        return Ok(None);
    };
    Ok(Some(LoopCheckpointing {
        dir: PathBuf::from(dir),
        every: opt_or(m, "checkpoint-every", 5)?,
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

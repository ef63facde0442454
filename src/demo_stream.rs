//! The demo's streaming step: `weir stream wordcount` over a directory of
//! arriving files, killed with kill -9 in the middle, restarted with the same
//! command and `--restore latest`, and its committed output checked against
//! the true totals: every count committed exactly once.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weir_progress::store::CheckpointStore;
use weir_runtime::JobError;
use weir_runtime::exec::{JobSummary, workers};
use weir_streaming::testing::{add_file, check_word_counts, reference, text};

use crate::demo::{Row, Step};
use crate::error::CliError;

/// Files in the directory before the job starts.
const BEFORE: usize = 30;
/// Files up to this one arrive while the first run is live.
const LIVE: usize = 60;
/// Files up to this one arrive while the job is down.
const ALL: usize = 80;
/// The first run is killed once this many files have arrived (and a
/// checkpoint is complete).
const KILL_AFTER: usize = 45;

fn runtime(message: String) -> CliError {
    CliError::Runtime(anyhow::anyhow!("demo stream: {message}"))
}

/// `weir stream wordcount` on `root`'s `in`, `out` and `ck`, with `threads`
/// workers and `extra` flags.
fn start(root: &Path, threads: usize, extra: &[&str]) -> Result<Child, CliError> {
    let exe = std::env::current_exe().map_err(|e| runtime(format!("own executable: {e}")))?;
    Command::new(exe)
        .current_dir(root)
        .args([
            "stream",
            "wordcount",
            "--source",
            "dir:in",
            "--sink",
            "dir:out",
        ])
        .args(["--checkpoint-dir", "ck", "--checkpoint-interval", "100ms"])
        .args(["-w", &threads.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| runtime(format!("could not start weir stream wordcount: {e}")))
}

/// What a run that stopped on its own said.
fn failed(child: Child) -> CliError {
    let said = child
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    runtime(format!("weir stream wordcount failed: {said}"))
}

/// The newest complete checkpoint in `ck`, if any.
fn newest_checkpoint(ck: &Path) -> Result<Option<u64>, CliError> {
    if !ck.exists() {
        return Ok(None);
    }
    let store = CheckpointStore::local(ck).map_err(JobError::from)?;
    Ok(store.complete().map_err(JobError::from)?.last().copied())
}

fn adds(dir: &Path, i: usize) -> Result<(), CliError> {
    add_file(dir, i).map_err(|e| runtime(format!("{}: {e}", dir.display())))
}

/// Runs the step; returns its row and what happened, line by line.
pub fn run(step: &Step) -> Result<(Row, Vec<String>), CliError> {
    let (_, threads) = workers(&step.config);
    let root = tempfile::tempdir().map_err(|e| runtime(format!("temporary directory: {e}")))?;
    let (input, output) = (root.path().join("in"), root.path().join("out"));
    for dir in [&input, &output] {
        std::fs::create_dir(dir).map_err(|e| runtime(format!("{}: {e}", dir.display())))?;
    }
    let bar = step.bar("stream", Some(ALL as u64), "files")?;
    let started = Instant::now();
    for i in 0..BEFORE {
        adds(&input, i)?;
    }
    bar.set_position(BEFORE as u64);
    bar.set_message("running");
    let mut first = start(root.path(), threads, &[])?;
    let mut next = BEFORE;
    let deadline = Instant::now() + Duration::from_secs(30);
    let killed_at = loop {
        if let Ok(Some(_)) = first.try_wait() {
            return Err(failed(first));
        }
        let checkpoint = newest_checkpoint(&root.path().join("ck"))?;
        if next >= KILL_AFTER
            && let Some(epoch) = checkpoint
        {
            first.kill().map_err(|e| runtime(format!("kill -9: {e}")))?;
            let _ = first.wait();
            break epoch;
        }
        if Instant::now() > deadline {
            let _ = first.kill();
            return Err(runtime("no checkpoint completed within 30 s".into()));
        }
        if next < LIVE {
            adds(&input, next)?;
            next += 1;
            bar.set_position(next as u64);
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let at_kill = next;
    bar.set_message(format!("killed (kill -9) after checkpoint {killed_at}"));
    for i in next..ALL {
        adds(&input, i)?;
    }
    bar.set_position(ALL as u64);
    bar.set_message("restored with --restore latest");
    let second = start(
        root.path(),
        threads,
        &["--restore", "latest", "--stop-when-idle", "1s"],
    )?;
    let ran = second
        .wait_with_output()
        .map_err(|e| runtime(format!("restored run: {e}")))?;
    bar.finish_and_clear();
    if !ran.status.success() {
        return Err(runtime(format!(
            "the restored run failed: {}",
            String::from_utf8_lossy(&ran.stderr).trim()
        )));
    }
    let totals = reference(0..ALL);
    let lines = check_word_counts(&output, &totals)
        .map_err(|e| runtime(format!("exactly-once check FAILED: {e}")))?;
    let records_in = (0..ALL).map(|i| text(i).lines().count() as u64).sum();
    let story = vec![
        format!(
            "stream: {BEFORE} files were in the directory, more arrived every 25 ms; \
             killed with kill -9 after checkpoint {killed_at}, with {at_kill} files in"
        ),
        format!(
            "stream: {} more files arrived while it was down; restarted with the same \
             command and --restore latest",
            ALL - at_kill
        ),
        format!(
            "stream: exactly once: {lines} committed lines, no (epoch, word) twice, every \
             word's count rising, and the final counts of all {} words equal the true \
             totals of all {ALL} files",
            totals.len()
        ),
    ];
    let row = Row {
        name: "stream",
        summary: JobSummary {
            records_in,
            records_out: lines as u64,
            records: None,
            elapsed: started.elapsed(),
            workers: threads,
            leader: true,
            peak_rss: None,
            spilled_bytes: 0,
        },
        result: format!("killed, restored, exactly once (checkpoint {killed_at})"),
    };
    Ok((row, story))
}

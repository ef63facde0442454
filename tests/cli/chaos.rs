//! `weir stream wordcount` under kill -9: a two-process run is killed (SIGKILL,
//! either process) at random points while files keep arriving, restarted with
//! `--restore latest` each time, and its committed output must be exactly what
//! an uninterrupted run commits.

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use weir_streaming::testing::{add_file, check_word_counts, reference};

use crate::support::{has_manifest, hostfile, weir};

const KILLS: usize = 20;

/// Starts both processes of the job; restores when a checkpoint is complete.
fn start(root: &Path, extra: &[&str]) -> [Child; 2] {
    let hosts = hostfile(root, 2);
    let complete = has_manifest(&root.join("ck"));
    let spawn = |p: &str| {
        let mut command = weir();
        command
            .current_dir(root)
            .args([
                "stream",
                "wordcount",
                "--source",
                "dir:in",
                "--sink",
                "dir:out",
            ])
            .args(["--checkpoint-dir", "ck", "--checkpoint-interval", "40ms"])
            .args(extra)
            .args(["-n", "2", "-p", p, "-h"])
            .arg(&hosts)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if complete {
            command.args(["--restore", "latest"]);
        }
        command.spawn().unwrap()
    };
    // process 1 connects to process 0, retrying only every second: start 0 first
    let first = spawn("0");
    std::thread::sleep(Duration::from_millis(100));
    [first, spawn("1")]
}

/// Output files visible in `dir`.
fn visible(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

/// Waits for `child` to exit, killing it after `limit`.
fn reap(child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().unwrap();
}

#[test]
fn kill_9_of_either_process_at_20_random_points_commits_every_count_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // files keep arriving during all the kills
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let feeder = {
        let (stop, written, input) = (Arc::clone(&stop), Arc::clone(&written), input.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                add_file(&input, i).unwrap();
                i += 1;
                written.store(i, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };

    let (mut committed, mut progressed) = (0, 0);
    for kill in 0..KILLS {
        let mut children = start(root.path(), &[]);
        std::thread::sleep(Duration::from_millis(rng.random_range(200..2500)));
        let victim = rng.random_range(0..2);
        children[victim].kill().unwrap(); // SIGKILL
        children[victim].wait().unwrap();
        let survivor = &mut children[1 - victim];
        // it notices its peer died (or, killed before the two connected, is stopped)
        reap(survivor, Duration::from_secs(3));
        assert!(
            !survivor.wait().unwrap().success(),
            "kill {kill} (seed {seed}): the surviving process exited 0"
        );
        let now = visible(&root.path().join("out"));
        if now > committed {
            progressed += 1;
        }
        committed = now;
    }
    assert!(
        progressed >= KILLS / 4,
        "seed {seed}: only {progressed} of {KILLS} runs committed anything before the kill"
    );
    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();
    let files = written.load(Ordering::SeqCst);

    let children = start(root.path(), &["--stop-when-idle", "1s"]);
    for (p, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "final run, process {p} (seed {seed}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lines = check_word_counts(&root.path().join("out"), &reference(0..files))
        .unwrap_or_else(|e| panic!("seed {seed}, {files} files: {e}"));
    assert!(lines > 0);
}

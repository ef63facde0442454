//! `weir stream yahoo` under kill -9, on the project's real broker: a
//! two-process exactly-once run is killed (SIGKILL of a random process at a
//! random moment, or an abort right before a transaction commit, after the
//! checkpoint completed) while events keep arriving, restarted with
//! `--restore latest` each time; at the end the committed output must equal
//! the counts computed sequentially from the input — no window missing,
//! duplicated or wrong — and every malformed record must be in the dead-letter
//! topic exactly once.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use weir_streaming::jobs::yahoo::{dead_letters_once, expected_from_input, load_campaigns, verify};
use weir_streaming::jobs::yahoo_events::{Amount, EventGenerator, produce};
use weir_streaming::kafka::broker::Broker;
use weir_streaming::kafka::producer::{IdempotentProducer, Produce};

use crate::support::{hostfile, weir};

const KILLS: usize = 12;

/// Whether a checkpoint is complete in `root/ck`.
fn has_checkpoint(root: &Path) -> bool {
    std::fs::read_dir(root.join("ck"))
        .map(|dirs| {
            dirs.flatten()
                .any(|d| d.path().join("MANIFEST.json").exists())
        })
        .unwrap_or(false)
}

/// The yahoo command on `root`'s files.
fn yahoo(root: &Path, brokers: &str, extra: &[&str]) -> std::process::Command {
    let mut command = weir();
    command
        .current_dir(root)
        .args(["stream", "yahoo", "--brokers", brokers])
        .args(["--input-topic", "events", "--output-topic", "out"])
        .args(["--campaigns", "campaigns.csv", "--checkpoint-dir", "ck"])
        .args([
            "--checkpoint-interval",
            "100ms",
            "--max-out-of-orderness",
            "2s",
        ])
        .args(["--broker-timeout", "5s"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if has_checkpoint(root) {
        command.args(["--restore", "latest"]);
    }
    command
}

/// Starts both processes; `fault` makes process `.0` abort before its `.1`-th commit.
fn start(root: &Path, brokers: &str, extra: &[&str], fault: Option<(usize, u64)>) -> [Child; 2] {
    let hosts = hostfile(root, 2);
    let spawn = |p: usize| {
        let mut command = yahoo(root, brokers, extra);
        command
            .args(["-n", "2", "-p", &p.to_string(), "-h"])
            .arg(&hosts);
        if let Some((victim, n)) = fault
            && victim == p
        {
            command.env("WEIR_FAULT_KILL_BEFORE_COMMIT", n.to_string());
        }
        command.spawn().unwrap()
    };
    // process 1 connects to process 0, retrying only every second: start 0 first
    let first = spawn(0);
    std::thread::sleep(Duration::from_millis(100));
    [first, spawn(1)]
}

/// Waits for `child` to exit, killing it after `limit`; returns whether it exited by itself.
fn reap(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().unwrap();
    false
}

/// A broker with the job's topics, and its campaigns file in `root`.
fn setup(root: &Path, seed: u64) -> (Broker, EventGenerator) {
    let broker = Broker::start().unwrap();
    broker.create_topic("events", 4).unwrap();
    broker.create_topic("out", 2).unwrap();
    broker.create_topic("events.dead", 1).unwrap();
    let generator = EventGenerator::new(seed);
    generator
        .write_campaigns(&root.join("campaigns.csv"))
        .unwrap();
    (broker, generator)
}

/// Checks the committed output and dead letters against the input.
fn check(root: &Path, brokers: &str, seed: u64) -> usize {
    let campaigns = load_campaigns(&root.join("campaigns.csv")).unwrap();
    let (expected, malformed) = expected_from_input(brokers, "events", &campaigns).unwrap();
    let mut verdict = verify(brokers, "out", &expected).unwrap();
    verdict.dead_letters = Some((
        malformed.len(),
        dead_letters_once(brokers, "events.dead", &malformed).unwrap(),
    ));
    assert!(verdict.ok(), "seed {seed}:\n{}", verdict.describe());
    assert_eq!(verdict.open, 0, "seed {seed}");
    assert!(!expected.is_empty(), "seed {seed}");
    malformed.len()
}

#[test]
fn a_two_process_run_killed_mid_way_is_restored_on_three_workers() {
    let root = tempfile::tempdir().unwrap();
    let (broker, mut generator) = setup(root.path(), 11);
    let brokers = broker.brokers();
    let send = |generator: &mut EventGenerator, n: u64| {
        produce(
            &brokers,
            "events",
            20_000,
            Amount::Count(n),
            generator,
            &|_| {},
        )
        .unwrap();
        let bad = IdempotentProducer::open(&brokers).unwrap();
        bad.send(&Produce::value("events", "{not an event"))
            .unwrap();
        bad.flush().unwrap();
    };
    send(&mut generator, 3000);
    let mut children = start(root.path(), &brokers, &[], None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !has_checkpoint(root.path()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    for child in &mut children {
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert!(has_checkpoint(root.path()), "no checkpoint within 20 s");
    send(&mut generator, 2000);
    let out = yahoo(
        root.path(),
        &brokers,
        &["--stop-when-idle", "1s", "-w", "3"],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("restored from the checkpoint"), "{err}");
    assert_eq!(check(root.path(), &brokers, 11), 2);
}

#[test]
fn kill_9_of_either_process_and_before_commits_keeps_every_window_count_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (broker, mut generator) = setup(root.path(), seed);
    let brokers = broker.brokers();

    // events (and now and then a malformed record) keep arriving during all the kills
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (stop, brokers) = (Arc::clone(&stop), brokers.clone());
        std::thread::spawn(move || {
            let bad = IdempotentProducer::open(&brokers).unwrap();
            while !stop.load(Ordering::SeqCst) {
                let amount = Amount::For(Duration::from_millis(250));
                produce(&brokers, "events", 2000, amount, &mut generator, &|_| {}).unwrap();
                bad.send(&Produce::value("events", "{not an event"))
                    .unwrap();
                bad.flush().unwrap();
            }
        })
    };

    let mut before_commit = 0;
    for kill in 0..KILLS {
        // every third run: a process aborts right before a transaction commit
        let fault = (kill % 3 == 2).then(|| (rng.random_range(0..2), rng.random_range(1..6)));
        let mut children = start(root.path(), &brokers, &[], fault);
        match fault {
            Some((victim, _)) => {
                let aborted = reap(&mut children[victim], Duration::from_secs(20));
                let mut err = String::new();
                if let Some(mut pipe) = children[victim].stderr.take() {
                    pipe.read_to_string(&mut err).unwrap();
                }
                assert!(
                    aborted && err.contains("aborting before a commit"),
                    "kill {kill} (seed {seed}): the fault never fired: {err}"
                );
                before_commit += 1;
                reap(&mut children[1 - victim], Duration::from_secs(3));
            }
            None => {
                std::thread::sleep(Duration::from_millis(rng.random_range(300..2500)));
                let victim = rng.random_range(0..2);
                children[victim].kill().unwrap(); // SIGKILL
                children[victim].wait().unwrap();
                reap(&mut children[1 - victim], Duration::from_secs(3));
            }
        }
        for child in &mut children {
            assert!(
                !child.wait().unwrap().success(),
                "kill {kill} (seed {seed}): a process exited 0"
            );
        }
    }
    assert!(before_commit >= 3);
    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();

    let children = start(root.path(), &brokers, &["--stop-when-idle", "1500ms"], None);
    for (p, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "final run, process {p} (seed {seed}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(check(root.path(), &brokers, seed) >= KILLS, "seed {seed}");
}

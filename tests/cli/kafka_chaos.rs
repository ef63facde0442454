//! `weir stream yahoo` under kill -9, on the project's real broker. A
//! two-process exactly-once run is killed over and over — from its first
//! second on (before its first checkpoint too), at random moments, and right
//! before a transaction commit — while a producer writes bursts and pauses of
//! events (and malformed records) to several partitions; every restart is the
//! same command (`--restore latest`), as a supervisor would repeat it. At the
//! end the committed output must equal the counts computed sequentially from
//! the input — no window missing, duplicated or wrong — and every malformed
//! record must be in the dead-letter topic exactly once.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use weir_streaming::jobs::yahoo_events::{Amount, produce};

use crate::support::has_manifest;
use crate::yahoo::{check, reap, send_malformed, setup, start, succeed, yahoo};

/// Kills (of one process or both) over the chaos test.
const KILLS: usize = 32;

#[test]
fn a_two_process_run_killed_mid_way_is_restored_on_three_workers() {
    let root = tempfile::tempdir().unwrap();
    let (broker, mut generator) = setup(root.path(), 11, 4);
    let brokers = broker.brokers();
    let send = |generator: &mut weir_streaming::jobs::yahoo_events::EventGenerator, n: u64| {
        produce(
            &brokers,
            "events",
            20_000,
            Amount::Count(n),
            generator,
            &|_| {},
        )
        .unwrap();
        send_malformed(&brokers);
    };
    send(&mut generator, 3000);
    let extra = ["--checkpoint-interval", "100ms"];
    let mut children = start(root.path(), &brokers, &extra, None);
    let ck = root.path().join("ck");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !has_manifest(&ck) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    for child in &mut children {
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert!(has_manifest(&ck), "no checkpoint within 20 s");
    send(&mut generator, 2000);
    let out = yahoo(
        root.path(),
        &brokers,
        &[&extra[..], &["--stop-when-idle", "1s", "-w", "3"]].concat(),
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("restored from the checkpoint"), "{err}");
    assert_eq!(check(root.path(), &brokers, 11), 2);
}

/// Writes bursts of events (12,000/s for 0.2-1.2 s, each followed by one
/// malformed record) and pauses (0-0.8 s) until `stop`, counting the bursts
/// in `bursts`.
fn feed(brokers: String, seed: u64, stop: Arc<AtomicBool>, bursts: Arc<AtomicU64>) {
    let mut generator = weir_streaming::jobs::yahoo_events::EventGenerator::new(seed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    while !stop.load(Ordering::SeqCst) {
        let burst = Amount::For(Duration::from_millis(rng.random_range(200..1200)));
        produce(&brokers, "events", 12_000, burst, &mut generator, &|_| {}).unwrap();
        send_malformed(&brokers);
        bursts.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..800)));
    }
}

#[test]
fn kill_9_from_the_first_second_and_before_commits_keeps_every_window_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let seed: u64 = std::env::var("WEIR_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("chaos seed {seed} (WEIR_CHAOS_SEED={seed} repeats its choices)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (broker, _) = setup(root.path(), seed, 4);
    let brokers = broker.brokers();
    let ck = root.path().join("ck");

    // events arrive during all the kills, in bursts and pauses
    let stop = Arc::new(AtomicBool::new(false));
    let bursts = Arc::new(AtomicU64::new(0));
    let feeder = {
        let (stop, bursts, brokers) = (Arc::clone(&stop), Arc::clone(&bursts), brokers.clone());
        std::thread::spawn(move || feed(brokers, seed, stop, bursts))
    };

    // the same command every time: the job's own --restore latest decides
    let extra = ["--checkpoint-interval", "300ms"];
    let (mut before_first_checkpoint, mut before_commit) = (0, 0);
    for kill in 0..KILLS {
        let fault = (kill % 4 == 3).then(|| (rng.random_range(0..2), rng.random_range(1..4)));
        let mut children = start(root.path(), &brokers, &extra, fault);
        let context = format!("kill {kill} (seed {seed})");
        match fault {
            Some((victim, _)) => {
                // a process aborts right before a transaction commit
                let aborted = reap(&mut children[victim], Duration::from_secs(30));
                let mut err = String::new();
                if let Some(mut pipe) = children[victim].stderr.take() {
                    pipe.read_to_string(&mut err).unwrap();
                }
                assert!(
                    aborted && err.contains("aborting before a commit"),
                    "{context}: the fault never fired: {err}"
                );
                before_commit += 1;
                std::thread::sleep(Duration::from_millis(rng.random_range(0..500)));
                reap(&mut children[1 - victim], Duration::ZERO);
            }
            None => {
                // from the first second on: the first kill comes at once
                let wait = if kill == 0 {
                    100
                } else {
                    rng.random_range(0..2000)
                };
                std::thread::sleep(Duration::from_millis(wait));
                if !has_manifest(&ck) {
                    before_first_checkpoint += 1;
                }
                let victim = rng.random_range(0..2);
                children[victim].kill().unwrap(); // SIGKILL
                children[victim].wait().unwrap();
                std::thread::sleep(Duration::from_millis(500));
                reap(&mut children[1 - victim], Duration::ZERO);
            }
        }
        for child in &mut children {
            assert!(
                !child.wait().unwrap().success(),
                "{context}: a process exited 0"
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();
    eprintln!(
        "chaos seed {seed}: {KILLS} kills, {before_first_checkpoint} before the first \
         checkpoint, {before_commit} right before a commit, {} bursts",
        bursts.load(Ordering::SeqCst)
    );
    assert!(before_first_checkpoint >= 1 && before_commit >= 7);

    let last = [&extra[..], &["--stop-when-idle", "3s"]].concat();
    succeed(
        start(root.path(), &brokers, &last, None),
        &format!("final run (seed {seed})"),
    );
    let malformed = check(root.path(), &brokers, seed);
    assert_eq!(
        malformed as u64,
        bursts.load(Ordering::SeqCst),
        "seed {seed}"
    );
}

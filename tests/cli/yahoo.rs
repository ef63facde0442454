//! What the Kafka tests of `weir stream yahoo` share: a broker with the job's
//! topics, the command, a two-process start, and the exactly-once check of
//! the committed output against the input.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use weir_streaming::jobs::yahoo::{
    Verdict, WindowCounts, dead_letters_once, expected_from_input, load_campaigns, verify,
};
use weir_streaming::jobs::yahoo_events::EventGenerator;
use weir_streaming::kafka::broker::Broker;
use weir_streaming::kafka::producer::{IdempotentProducer, Produce};

use crate::support::{hostfile, weir};

/// A broker with the topics `events` (`partitions`), `out` (2) and
/// `events.dead` (1), and the seed's campaigns file in `root`.
pub fn setup(root: &Path, seed: u64, partitions: usize) -> (Broker, EventGenerator) {
    let broker = Broker::start().unwrap();
    broker.create_topic("events", partitions).unwrap();
    broker.create_topic("out", 2).unwrap();
    broker.create_topic("events.dead", 1).unwrap();
    let generator = EventGenerator::new(seed);
    generator
        .write_campaigns(&root.join("campaigns.csv"))
        .unwrap();
    (broker, generator)
}

/// `weir stream yahoo` on `root`'s files (checkpoints in `root/ck`), always
/// with `--restore latest`: the command a supervisor repeats after a crash.
pub fn yahoo(root: &Path, brokers: &str, extra: &[&str]) -> std::process::Command {
    let mut command = weir();
    command
        .current_dir(root)
        .args(["stream", "yahoo", "--brokers", brokers])
        .args(["--input-topic", "events", "--output-topic", "out"])
        .args(["--campaigns", "campaigns.csv", "--checkpoint-dir", "ck"])
        .args(["--restore", "latest", "--broker-timeout", "5s"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Starts the job as two processes (one worker each); `fault` makes process
/// `.0` abort before its `.1`-th transaction commit.
pub fn start(
    root: &Path,
    brokers: &str,
    extra: &[&str],
    fault: Option<(usize, u64)>,
) -> [Child; 2] {
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

/// Waits for every process to exit 0; returns the first one's stderr.
pub fn succeed(children: impl IntoIterator<Item = Child>, what: &str) -> String {
    let mut first = String::new();
    for (p, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{what}, process {p}: {err}");
        if p == 0 {
            first = err;
        }
    }
    first
}

/// Waits for `child` to exit, killing it after `limit`; returns whether it exited by itself.
pub fn reap(child: &mut Child, limit: Duration) -> bool {
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

/// The verdict on the committed output against the counts computed from the
/// input, dead letters included; the expected counts beside it.
pub fn verdict(root: &Path, brokers: &str) -> (Verdict, WindowCounts) {
    let campaigns = load_campaigns(&root.join("campaigns.csv")).unwrap();
    let (expected, malformed) = expected_from_input(brokers, "events", &campaigns).unwrap();
    let mut verdict = verify(brokers, "out", &expected).unwrap();
    verdict.dead_letters = Some((
        malformed.len(),
        dead_letters_once(brokers, "events.dead", &malformed).unwrap(),
    ));
    (verdict, expected)
}

/// Checks that the committed output is exactly the input's counts, every
/// malformed record is a dead letter exactly once and no transaction is left
/// open; returns the number of malformed records.
pub fn check(root: &Path, brokers: &str, seed: u64) -> usize {
    let (verdict, expected) = verdict(root, brokers);
    assert!(verdict.ok(), "seed {seed}:\n{}", verdict.describe());
    assert_eq!(verdict.open, 0, "seed {seed}: {}", verdict.describe());
    assert!(!expected.is_empty(), "seed {seed}");
    verdict.dead_letters.map_or(0, |(malformed, _)| malformed)
}

/// Writes one malformed record to `events`.
pub fn send_malformed(brokers: &str) {
    let bad = IdempotentProducer::open(brokers).unwrap();
    bad.send(&Produce::value("events", "{not an event"))
        .unwrap();
    bad.flush().unwrap();
}

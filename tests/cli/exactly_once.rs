//! Regression tests of `weir stream yahoo`'s exactly-once promise, each named
//! after a defect a chaos run found at the start of a stream (a crash before
//! the first checkpoint, windows committed with half their count, lost, or
//! twice), on the project's real broker.

use std::process::Child;
use std::time::{Duration, Instant};

use weir_streaming::jobs::yahoo::{WINDOW_MS, WindowCount};
use weir_streaming::jobs::yahoo_events::{Amount, EventGenerator, now_ms, produce};
use weir_streaming::kafka::producer::{IdempotentProducer, Produce};
use weir_streaming::kafka::wire::read_committed;

use crate::support::has_manifest;
use crate::yahoo::{check, send_malformed, setup, start, succeed, verdict, yahoo};

/// A window start ten minutes ago.
fn window_ago() -> u64 {
    let start = now_ms() - 600_000;
    start - start % WINDOW_MS
}

/// Writes view events of `ads` to `partition`, one every `step_ms` of event
/// time from `from` (so event time grows within the partition).
fn views(brokers: &str, partition: i32, ads: &[&str], from: u64, step_ms: u64) {
    let producer = IdempotentProducer::open(brokers).unwrap();
    for (i, ad) in ads.iter().enumerate() {
        let time = from + i as u64 * step_ms;
        let value = format!(r#"{{"ad_id":"{ad}","event_type":"view","event_time":{time}}}"#);
        producer
            .send(&Produce {
                partition: Some(partition),
                timestamp: Some(time as i64),
                ..Produce::value("events", value)
            })
            .unwrap();
    }
    producer.flush().unwrap();
}

/// The committed counts of window `start`, one entry per committed record.
fn committed(brokers: &str, start: u64) -> Vec<WindowCount> {
    let log = read_committed(brokers, "out").unwrap();
    log.records
        .iter()
        .filter_map(|r| serde_json::from_slice::<WindowCount>(r.value.as_deref()?).ok())
        .filter(|w| w.window_start == start)
        .collect()
}

#[test]
fn regression_a_crash_before_the_first_checkpoint_could_never_be_restarted() {
    let root = tempfile::tempdir().unwrap();
    let (broker, mut generator) = setup(root.path(), 3, 4);
    let brokers = broker.brokers();
    produce(
        &brokers,
        "events",
        20_000,
        Amount::Count(3000),
        &mut generator,
        &|_| {},
    )
    .unwrap();
    send_malformed(&brokers);
    // no checkpoint can complete within the first 30 s
    let extra = ["--checkpoint-interval", "30s"];
    let mut children = start(root.path(), &brokers, &extra, None);
    std::thread::sleep(Duration::from_millis(1500));
    for child in &mut children {
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert!(!has_manifest(&root.path().join("ck")));
    // the same command again (a supervisor's restart), ending once idle
    let extra = ["--checkpoint-interval", "30s", "--stop-when-idle", "1500ms"];
    let err = succeed(start(root.path(), &brokers, &extra, None), "restart");
    assert!(
        err.lines().any(|l| l.starts_with(
            "weir: restore latest: ck/ holds no complete checkpoint (the run before stopped \
             before its first): starting from the beginning ("
        )),
        "{err}"
    );
    assert_eq!(check(root.path(), &brokers, 3), 1);
}

/// Runs the job on a topic of 2 partitions where partition 0 holds 30 s of
/// events at the start and partition 1 gets its events of the first window
/// only 2 s after the job started (before it could be idle): `ads0` and
/// `ads1` are the ads of each. `processes` 1 runs one process of one worker
/// (reading both), 2 runs two (one partition each).
fn late_partition(seed: u64, processes: usize, ads0: &[&str], ads1: &[&str]) {
    let root = tempfile::tempdir().unwrap();
    let (broker, _) = setup(root.path(), seed, 2);
    let brokers = broker.brokers();
    let start_ms = window_ago();
    let step = 3 * WINDOW_MS / ads0.len() as u64;
    views(&brokers, 0, ads0, start_ms, step);
    let extra = ["--checkpoint-interval", "300ms", "--stop-when-idle", "3s"];
    let children: Vec<Child> = if processes == 1 {
        vec![yahoo(root.path(), &brokers, &extra).spawn().unwrap()]
    } else {
        start(root.path(), &brokers, &extra, None).into()
    };
    std::thread::sleep(Duration::from_secs(2));
    views(
        &brokers,
        1,
        ads1,
        start_ms,
        WINDOW_MS / 2 / ads1.len() as u64,
    );
    succeed(children, "run");
    check(root.path(), &brokers, seed);
}

#[test]
fn regression_half_count_a_partition_not_read_yet_let_the_window_fire() {
    let generator = EventGenerator::new(5);
    let ads: Vec<&str> = generator.ads.iter().map(|(ad, _)| ad.as_str()).collect();
    // both partitions hold views of every campaign in the first window
    let ads0: Vec<&str> = ads.iter().cycle().take(3000).copied().collect();
    late_partition(5, 1, &ads0, &ads);
}

#[test]
fn regression_lost_window_a_worker_not_reading_yet_let_the_window_fire() {
    let generator = EventGenerator::new(6);
    let ads: Vec<&str> = generator.ads.iter().map(|(ad, _)| ad.as_str()).collect();
    // campaigns 0-49 only in partition 0 (worker 0), 50-99 only in partition
    // 1 (worker 1), which comes late
    let (first, second) = ads.split_at(ads.len() / 2);
    let ads0: Vec<&str> = first.iter().cycle().take(3000).copied().collect();
    late_partition(6, 2, &ads0, second);
}

#[test]
fn regression_window_twice_a_restore_forgot_the_event_time_frontier() {
    let root = tempfile::tempdir().unwrap();
    let (broker, generator) = setup(root.path(), 7, 2);
    let brokers = broker.brokers();
    let ads: Vec<&str> = generator.ads.iter().map(|(ad, _)| ad.as_str()).collect();
    let start_ms = window_ago();
    // partition 0: four windows of events; partition 1: empty, idle after 1 s
    views(&brokers, 0, &ads[..400], start_ms, 100);
    let extra = ["--checkpoint-interval", "300ms", "--idle-timeout", "1s"];
    let mut child = yahoo(root.path(), &brokers, &extra).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed(&brokers, start_ms).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first window never committed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL once the first window is committed
    child.wait().unwrap();
    let before = committed(&brokers, start_ms);
    // events of the fired window arrive in the idle partition: late
    views(&brokers, 1, &ads[..50], start_ms, 100);
    let extra = [&extra[..], &["--stop-when-idle", "2s"]].concat();
    let out = yahoo(root.path(), &brokers, &extra).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("50 late events dropped"), "{err}");
    let (verdict, _) = verdict(root.path(), &brokers);
    assert!(verdict.duplicated.is_empty(), "{}", verdict.describe());
    assert_eq!(
        committed(&brokers, start_ms),
        before,
        "{}",
        verdict.describe()
    );
    assert_eq!(verdict.open, 0);
    assert!(verdict.missing.is_empty(), "{}", verdict.describe());
    // only the late events' window differs from the input's counts
    assert!(
        verdict
            .wrong
            .iter()
            .all(|((_, start), _, _)| *start == start_ms),
        "{}",
        verdict.describe()
    );
}

#[test]
fn a_fresh_restore_is_refused_where_transactions_committed_but_the_checkpoints_are_gone() {
    let root = tempfile::tempdir().unwrap();
    let (broker, mut generator) = setup(root.path(), 8, 1);
    let brokers = broker.brokers();
    produce(
        &brokers,
        "events",
        20_000,
        Amount::Count(500),
        &mut generator,
        &|_| {},
    )
    .unwrap();
    let extra = ["--checkpoint-interval", "300ms", "--stop-when-idle", "1s"];
    let out = yahoo(root.path(), &brokers, &extra).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the checkpoints go, the record of committed transactions stays
    let mut removed = 0;
    for entry in std::fs::read_dir(root.path().join("ck")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0);
    let out = yahoo(root.path(), &brokers, &extra).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("weir: checkpoint: ck/: transactional id weir-yahoo-out-0-")
            && last.contains(" committed output through epoch ")
            && last.ends_with(
                ", but no complete checkpoint is left: the checkpoints were deleted, and starting \
                 over would write that output again (start in an empty checkpoint directory to do \
                 so on purpose)"
            ),
        "{err}"
    );
}

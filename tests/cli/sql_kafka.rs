//! `weir sql` over a Kafka table: the Yahoo streaming benchmark as one
//! query (a lookup join of the events with the campaigns table, then
//! counts per campaign per 10-second window) on the events `weir stream
//! yahoo`'s tests write, committed by two processes, equals the counts the
//! hand-written job's verifier computes from the same topic, and its
//! malformed records go to the dead-letter topic, each once; written with
//! `INSERT INTO` a Kafka table, and killed with kill -9 over and over
//! while events (and malformed records) arrive (and aborting right before
//! transaction commits), restarted with the same command each time, it
//! commits to its topics exactly what the hand-written job does.

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use weir_streaming::jobs::yahoo::{dead_letters_once, expected_from_input, load_campaigns};
use weir_streaming::jobs::yahoo_events::{Amount, EventGenerator, produce};
use weir_streaming::kafka::producer::{IdempotentProducer, Produce};

use crate::support::{hostfile, latest_checkpoint, path, stderr, weir};
use crate::yahoo::setup;

/// The Yahoo benchmark as SQL: the tables, then one query; with `insert`,
/// it writes its counts to the topic `out` as `weir stream yahoo` does.
/// Its watermark allows a second of disorder and partitions go idle after
/// 5 s, and records that do not parse go to `events.dead` (without
/// `dead_letters`, they fail the query), as `weir stream yahoo`'s defaults
/// do.
fn yahoo_sql(brokers: &str, insert: bool, dead_letters: bool) -> String {
    let dead = match dead_letters {
        true => ", 'dead_letter_topic' 'events.dead'",
        false => "",
    };
    let (into, table) = match insert {
        true => (
            "INSERT INTO counts ",
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE counts (campaign_id VARCHAR, \
                   window_start BIGINT, count BIGINT) \
                 STORED AS KAFKA LOCATION 'out' OPTIONS ('brokers' '{brokers}'); "
            ),
        ),
        false => ("", String::new()),
    };
    format!(
        "CREATE UNBOUNDED EXTERNAL TABLE events (user_id VARCHAR, page_id VARCHAR, \
           ad_id VARCHAR, ad_type VARCHAR, event_type VARCHAR, event_time TIMESTAMP(3), \
           ip_address VARCHAR) \
         STORED AS KAFKA LOCATION 'events' \
         OPTIONS ('brokers' '{brokers}', 'event_time' 'event_time', \
           'watermark_delay_ms' '1000'{dead}); \
         CREATE EXTERNAL TABLE campaigns (ad_id VARCHAR, campaign_id VARCHAR) \
         STORED AS CSV LOCATION 'campaigns.csv' OPTIONS ('has_header' 'true'); \
         {table}{into}SELECT campaign_id, CAST(window_start AS BIGINT), count(*) \
         FROM tumble((SELECT e.event_time, c.campaign_id FROM events e \
           JOIN campaigns c ON e.ad_id = c.ad_id WHERE e.event_type = 'view'), \
           event_time, INTERVAL '10' SECOND) \
         GROUP BY campaign_id, window_start, window_end"
    )
}

/// The committed lines of `dir`'s visible files, sorted.
fn committed(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            lines.extend(text.lines().map(String::from));
        }
    }
    lines.sort();
    lines
}

/// The counts the hand-written job's verifier computes from the topic, as
/// the query's CSV lines, sorted; every malformed record of the topic must
/// be in `events.dead` exactly once.
fn expected(root: &Path, brokers: &str) -> Vec<String> {
    let campaigns = load_campaigns(&root.join("campaigns.csv")).unwrap();
    let (expected, malformed) = expected_from_input(brokers, "events", &campaigns).unwrap();
    assert!(!malformed.is_empty());
    assert_eq!(
        dead_letters_once(brokers, "events.dead", &malformed).unwrap(),
        malformed.len(),
        "malformed records not dead letters exactly once"
    );
    assert!(expected.len() > 10, "{} windows", expected.len());
    let mut lines: Vec<String> = expected
        .iter()
        .map(|((campaign, start), n)| format!("{campaign},{start},{n}"))
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_yahoo_benchmark_as_one_sql_query_commits_the_counts_of_the_hand_written_job() {
    let root = tempfile::tempdir().unwrap();
    let (broker, mut generator) = setup(root.path(), 7, 4);
    let brokers = broker.brokers();
    // 12 s of event time at 2,500 events a second, sent as fast as may be,
    // with malformed records among them
    let mut sent = 0;
    for _ in 0..3 {
        sent += produce(
            &brokers,
            "events",
            2_500,
            Amount::Count(2_000),
            &mut generator,
            &|_| {},
        )
        .unwrap();
        crate::yahoo::send_malformed(&brokers);
    }
    assert_eq!(sent, 6_000);
    let sql = yahoo_sql(&brokers, false, true);
    let hosts = hostfile(root.path(), 2);
    let spawn = |p: &str| {
        weir()
            .current_dir(root.path())
            .args([
                "sql",
                "-e",
                &sql,
                "--checkpoint-dir",
                "ck",
                "--stop-when-idle",
                "2s",
            ])
            .args(["--checkpoint-interval", "200ms", "--output", "out"])
            .args(["-n", "2", "-p", p, "-h", path(&hosts)])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn("0");
    std::thread::sleep(std::time::Duration::from_millis(100));
    for child in [first, spawn("1")] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let expected = expected(root.path(), &brokers);
    assert_eq!(committed(&root.path().join("out")), expected);
}

#[test]
fn a_record_that_is_not_a_json_object_fails_the_query_naming_its_offset() {
    let root = tempfile::tempdir().unwrap();
    let (broker, mut generator) = setup(root.path(), 8, 1);
    let brokers = broker.brokers();
    produce(
        &brokers,
        "events",
        1_000,
        Amount::Count(20),
        &mut generator,
        &|_| {},
    )
    .unwrap();
    crate::yahoo::send_malformed(&brokers);
    let out = weir()
        .current_dir(root.path())
        .args([
            "sql",
            "-e",
            &yahoo_sql(&brokers, false, false),
            "--checkpoint-dir",
            "ck",
        ])
        .args(["--stop-when-idle", "2s"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // the 21st record of the topic's one partition
    assert!(stderr(&out).contains("events/0@20"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a JSON object"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_at_least_once_insert_killed_mid_stream_loses_no_window() {
    let root = tempfile::tempdir().unwrap();
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (broker, mut generator) = setup(root.path(), seed, 2);
    let brokers = broker.brokers();
    let sent = produce(
        &brokers,
        "events",
        2_500,
        Amount::Count(20_000),
        &mut generator,
        &|_| {},
    )
    .unwrap();
    assert_eq!(sent, 20_000);
    let sql = yahoo_sql(&brokers, true, true).replace(
        "LOCATION 'out' OPTIONS (",
        "LOCATION 'out' OPTIONS ('sink.delivery-guarantee' 'at-least-once', ",
    );
    assert!(sql.contains("at-least-once"));
    let start = || {
        weir()
            .current_dir(root.path())
            .args(["sql", "-e", &sql, "--checkpoint-dir", "ck"])
            .args(["--restore", "latest", "--checkpoint-interval", "50ms"])
            .args(["--stop-when-idle", "2s", "-w", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // killed once it has completed a checkpoint, at a random point after
    let checkpoints = root.path().join("ck");
    let mut first = start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while latest_checkpoint(&checkpoints).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
    assert!(first.try_wait().unwrap().is_none(), "seed {seed}: it ended");
    first.kill().unwrap();
    first.wait().unwrap();
    let last = start().wait_with_output().unwrap();
    assert!(last.status.success(), "seed {seed}: {}", stderr(&last));
    // every window, each with its count, perhaps more than once
    let (verdict, expected) = crate::yahoo::verdict(root.path(), &brokers);
    assert!(!expected.is_empty());
    assert!(
        verdict.missing.is_empty() && verdict.wrong.is_empty() && verdict.unreadable.is_empty(),
        "seed {seed}:\n{}",
        verdict.describe()
    );
    assert_eq!(
        verdict.open, 0,
        "seed {seed}: at least once needs no transaction"
    );
}

#[test]
fn a_kafka_table_gives_each_record_s_key_partition_offset_timestamp_and_headers() {
    let root = tempfile::tempdir().unwrap();
    let (broker, _) = setup(root.path(), 9, 2);
    let brokers = broker.brokers();
    let producer = IdempotentProducer::open(&brokers).unwrap();
    let records = 40;
    for i in 0..records {
        producer
            .send(&Produce {
                topic: "events".into(),
                key: (i % 4 != 0).then(|| format!("k{i}").into_bytes()),
                value: Some(format!("{{\"n\": {i}}}").into_bytes()),
                headers: vec![("h".into(), format!("v{i}").into_bytes())],
                timestamp: Some(1_001 + i),
                partition: Some((i % 2) as i32),
            })
            .unwrap();
    }
    producer.flush().unwrap();
    let sql = format!(
        "CREATE UNBOUNDED EXTERNAL TABLE t (n BIGINT, k VARCHAR, p INT, o BIGINT, \
           ts TIMESTAMP(3), h ARRAY<STRUCT<key VARCHAR, value VARCHAR>>) \
         STORED AS KAFKA LOCATION 'events' OPTIONS ('brokers' '{brokers}', \
           'metadata.key' 'k', 'metadata.partition' 'p', 'metadata.offset' 'o', \
           'metadata.timestamp' 'ts', 'metadata.headers' 'h'); \
         SELECT n, k, p, o, CAST(ts AS VARCHAR), h[1]['key'], h[1]['value'], \
           array_length(h) FROM t"
    );
    let out = weir()
        .current_dir(root.path())
        .args(["sql", "-e", &sql, "--checkpoint-dir", "ck"])
        .args(["--stop-when-idle", "2s", "--output", "out", "-w", "2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut expected: Vec<String> = (0..records)
        .map(|i| {
            let key = if i % 4 != 0 {
                format!("k{i}")
            } else {
                String::new()
            };
            format!(
                "{i},{key},{},{},1970-01-01T00:00:01.{:03},h,v{i},1",
                i % 2,
                i / 2,
                i + 1
            )
        })
        .collect();
    expected.sort();
    assert_eq!(committed(&root.path().join("out")), expected);
}

/// Writes bursts of events (5,000 a second for 0.2-1 s, then a malformed
/// record) and pauses (0-0.6 s) until `stop`.
fn feed(brokers: String, seed: u64, stop: Arc<AtomicBool>) {
    let mut generator = EventGenerator::new(seed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    while !stop.load(Ordering::SeqCst) {
        let burst = Amount::For(Duration::from_millis(rng.random_range(200..1000)));
        produce(&brokers, "events", 5_000, burst, &mut generator, &|_| {}).unwrap();
        crate::yahoo::send_malformed(&brokers);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..600)));
    }
}

#[test]
fn kill_9_of_the_yahoo_sql_insert_with_live_input_commits_every_window_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (broker, _) = setup(root.path(), seed, 4);
    let brokers = broker.brokers();
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (stop, brokers) = (Arc::clone(&stop), brokers.clone());
        std::thread::spawn(move || feed(brokers, seed, stop))
    };
    let sql = yahoo_sql(&brokers, true, true);
    // the same command every time (`fault`: it aborts itself right before
    // its `fault`-th transaction commit)
    let start = |fault: Option<u64>| -> Child {
        let mut command = weir();
        command
            .current_dir(root.path())
            .args(["sql", "-e", &sql, "--checkpoint-dir", "ck"])
            .args(["--restore", "latest", "--checkpoint-interval", "200ms"])
            .args(["--stop-when-idle", "3s", "-w", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(n) = fault {
            command.env("WEIR_FAULT_KILL_BEFORE_COMMIT", n.to_string());
        }
        command.spawn().unwrap()
    };
    let checkpoints = root.path().join("ck");
    let (mut restores, mut before_commit) = (0, 0);
    for kill in 0..9 {
        let before = latest_checkpoint(&checkpoints);
        restores += usize::from(before.is_some());
        if kill % 3 == 2 {
            let child = start(Some(rng.random_range(1..3)));
            let out = child.wait_with_output().unwrap();
            assert!(
                !out.status.success() && stderr(&out).contains("aborting before a commit"),
                "seed {seed}: run {kill}: the fault never fired: {}",
                stderr(&out)
            );
            before_commit += 1;
            continue;
        }
        let mut child = start(None);
        // the first kill before any checkpoint; then each once the run has
        // completed one of its own, at a random point after it
        let wait = match kill {
            0 => Duration::from_millis(rng.random_range(20..150)),
            _ => {
                let deadline = Instant::now() + Duration::from_secs(30);
                while latest_checkpoint(&checkpoints) == before && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Duration::from_millis(rng.random_range(0..600))
            }
        };
        std::thread::sleep(wait);
        assert!(
            child.try_wait().unwrap().is_none(),
            "seed {seed}: run {kill} ended by itself"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert_eq!(before_commit, 3);
    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();
    let last = start(None).wait_with_output().unwrap();
    assert!(last.status.success(), "seed {seed}: {}", stderr(&last));
    assert!(restores >= 5, "seed {seed}: {restores} runs restored");
    // the verifier of `weir stream yahoo`'s committed output (and dead
    // letters)
    let malformed = crate::yahoo::check(root.path(), &brokers, seed);
    assert!(malformed > 0, "seed {seed}: no malformed record was sent");
}

#[test]
fn an_unreachable_broker_fails_the_query_after_its_broker_timeout_naming_it() {
    let root = tempfile::tempdir().unwrap();
    // nothing listens on a port just freed
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let brokers = format!("127.0.0.1:{port}");
    std::fs::write(
        root.path().join("campaigns.csv"),
        "ad_id,campaign_id\na,b\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = weir()
        .current_dir(root.path())
        .args([
            "sql",
            "-e",
            &yahoo_sql(&brokers, true, false),
            "--checkpoint-dir",
            "ck",
        ])
        .args(["--broker-timeout", "2s"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&brokers), "{}", stderr(&out));
    // not the default 30 s
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
}

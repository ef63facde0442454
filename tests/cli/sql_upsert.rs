//! `INSERT INTO` a Kafka table with a `PRIMARY KEY` of a query whose rows
//! are updates: each update is an upsert under the row's key (a tombstone
//! for a row gone). Killed with kill -9 over and over from its first
//! moments and restarted with the same command each time, what the topic
//! holds, each key's last value, is the batch answer.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use weir_streaming::kafka::broker::Broker;
use weir_streaming::kafka::wire::read_committed;

use crate::sql_stream::{batch_lines, kill_ten_times, reap, script_of};
use crate::support::{latest_checkpoint, weir};

/// Auctions by their number of bids: updates of updates (an auction's old
/// count taken back as its new one comes), so that a number no auction
/// has any more is deleted.
const QUERY: &str = "SELECT n, count(*) AS auctions FROM \
     (SELECT auction, count(*) AS n FROM bid GROUP BY auction) GROUP BY n";

#[test]
fn updates_upserted_into_a_kafka_table_under_kill_9_leave_the_batch_answer_by_key() {
    let root = tempfile::tempdir().unwrap();
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let broker = Broker::start().unwrap();
    broker.create_topic("counts", 2).unwrap();
    let brokers = broker.brokers();
    let events = 100_000;
    let expected = batch_lines(root.path(), QUERY, events);
    assert!(expected.len() > 5, "{expected:?}");
    let sql = script_of(
        &format!(
            "CREATE UNBOUNDED EXTERNAL TABLE counts (n BIGINT, auctions BIGINT, \
               PRIMARY KEY (n)) \
             STORED AS KAFKA LOCATION 'counts' OPTIONS ('brokers' '{brokers}'); \
             SET table.exec.state.ttl = '1 h'; INSERT INTO counts {QUERY}"
        ),
        events,
        Some(25_000),
    );
    let start = || {
        weir()
            .current_dir(root.path())
            .args(["sql", "-e", &sql, "--checkpoint-dir", "ck"])
            .args(["--restore", "latest", "--checkpoint-interval", "40ms"])
            .args(["-w", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let checkpoints = root.path().join("ck");
    let (kills, mut restores, _) = kill_ten_times(start, &checkpoints, &mut rng, 400);
    restores += usize::from(latest_checkpoint(&checkpoints).is_some());
    let mut last = start();
    assert!(
        reap(&mut last, Duration::from_secs(120)),
        "seed {seed}: the last run failed"
    );
    assert!(kills >= 3, "seed {seed}: only {kills} kills");
    assert!(restores >= 2, "seed {seed}: {restores} runs restored");
    let log = read_committed(&brokers, "counts").unwrap();
    let mut table: BTreeMap<Vec<u8>, String> = BTreeMap::new();
    let mut tombstones = 0;
    for record in &log.records {
        let key = record
            .key
            .as_ref()
            .expect("every record has its key")
            .to_vec();
        match &record.value {
            Some(value) => {
                let row: serde_json::Value = serde_json::from_slice(value).unwrap();
                assert_eq!(
                    serde_json::from_slice::<serde_json::Value>(&key).unwrap()["n"],
                    row["n"],
                    "seed {seed}: a record's key is its row's key"
                );
                table.insert(key, format!("{},{}", row["n"], row["auctions"]));
            }
            None => {
                tombstones += 1;
                table.remove(&key);
            }
        }
    }
    // the topic holds updates, not only the results
    assert!(tombstones > 0, "seed {seed}: no row was deleted");
    assert!(
        log.records.len() > 2 * table.len(),
        "seed {seed}: few updates"
    );
    let mut got: Vec<String> = table.into_values().collect();
    got.sort();
    assert_eq!(got, expected, "seed {seed}, {kills} kills");
}

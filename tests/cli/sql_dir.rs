//! `weir sql` over a directory of arriving files: a windowed aggregation
//! inserted into a directory table, killed with kill -9 at random points
//! from its first moments while files keep arriving, and restarted with
//! the same command each time, writes every window exactly once: what a
//! batch query reads back from its files is the batch answer over all the
//! files that arrived.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::sql_stream::{committed, kill_ten_times, reap};
use crate::support::{path, stderr, weir};

const FILES: u64 = 40;
const PER_FILE: u64 = 1_000;
const COLUMNS: &str = "(ts TIMESTAMP(3), who VARCHAR, amount BIGINT)";
const QUERY: &str = "SELECT who, CAST(window_start AS VARCHAR) AS at, count(*) AS n, \
     sum(amount) AS total FROM tumble(events, ts, INTERVAL '100' MILLISECOND) \
     GROUP BY who, window_start, window_end";

/// Writes file `i` of the events (event times spread out of order over
/// one second of its own) under a hidden name, renamed when complete.
fn write_file(dir: &Path, i: u64) {
    let mut text = String::new();
    for j in 0..PER_FILE {
        let k = i * PER_FILE + j;
        let ts = 1_700_000_000_000 + 1000 * i + (j * 7919) % 1000;
        text.push_str(&format!(
            "{{\"ts\": {ts}, \"who\": \"u{}\", \"amount\": {}}}\n",
            k % 17,
            (k * 31) % 101
        ));
    }
    let hidden = dir.join(format!(".part-{i:03}.json"));
    std::fs::write(&hidden, text).unwrap();
    std::fs::rename(&hidden, dir.join(format!("part-{i:03}.json"))).unwrap();
}

/// The streaming script: the input and output tables, then the insert.
fn script(input: &Path, output: &Path) -> String {
    format!(
        "CREATE UNBOUNDED EXTERNAL TABLE events {COLUMNS} STORED AS JSON LOCATION '{}' \
         OPTIONS ('event_time' 'ts', 'watermark_delay_ms' '1100', 'idle_timeout_ms' '300');
         CREATE UNBOUNDED EXTERNAL TABLE counts (who VARCHAR, at VARCHAR, n BIGINT, \
         total BIGINT) STORED AS JSON LOCATION '{}';
         INSERT INTO counts {QUERY}",
        path(input),
        path(output)
    )
}

/// The sorted CSV lines of a batch `sql` script's result.
fn batch(dir: &Path, sql: &str) -> Vec<String> {
    let out = dir.join("batch");
    let _ = std::fs::remove_dir_all(&out);
    let result = weir()
        .args(["sql", "-e", sql, "--output", path(&out), "-w", "2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    let lines = committed(&out);
    // each part file has a header line
    lines
        .into_iter()
        .filter(|l| !l.starts_with("who,"))
        .collect()
}

fn spawn(dir: &Path, sql: &str) -> Child {
    weir()
        .current_dir(dir)
        .args(["sql", "-e", sql, "--checkpoint-dir", "ck"])
        .args(["--checkpoint-interval", "40ms", "--restore", "latest"])
        .args(["--stop-when-idle", "1s", "-w", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn kill_9_of_a_query_over_arriving_files_writes_every_window_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output): (PathBuf, PathBuf) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&output).unwrap();
    let sql = script(&input, &output);
    // files arrive while the query runs, is killed and restarts
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            for i in 0..FILES {
                write_file(&input, i);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let checkpoints = dir.path().join("ck");
    let start = || spawn(dir.path(), &sql);
    let (kills, restores, finished) = kill_ten_times(start, &checkpoints, &mut rng, 300);
    assert!(!finished, "seed {seed}: a run ended while files arrived");
    writer.join().unwrap();
    let mut last = spawn(dir.path(), &sql);
    assert!(
        reap(&mut last, Duration::from_secs(120)),
        "seed {seed}: the last run failed"
    );
    assert!(restores >= 2, "seed {seed}: {restores} runs restored");
    let read_back = format!(
        "CREATE EXTERNAL TABLE counts (who VARCHAR, at VARCHAR, n BIGINT, total BIGINT) \
         STORED AS JSON LOCATION '{}'; SELECT * FROM counts",
        path(&output)
    );
    let expected_sql = format!(
        "CREATE EXTERNAL TABLE events {COLUMNS} STORED AS JSON LOCATION '{}'; {QUERY}",
        path(&input)
    );
    let got = batch(dir.path(), &read_back);
    let expected = batch(dir.path(), &expected_sql);
    assert!(expected.len() > 1000, "{} windows", expected.len());
    assert_eq!(
        got.len(),
        expected.len(),
        "seed {seed}, {kills} kills: windows lost or repeated"
    );
    assert_eq!(got, expected, "seed {seed}, {kills} kills");
}

//! Unbounded tables of files arriving in a directory: what a streaming query
//! hands over once the files stop coming equals the batch answer to the
//! same query over the same files, on 1 and 2 workers, with files arriving
//! while it runs; `INSERT INTO` such a table writes files that the batch
//! engine reads back as that answer, exactly once across a restore.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use weir_progress::store::Restore;
use weir_sql::session::Session;
use weir_sql::stream::{self, Deliver, Epochs, Sink};
use weir_sql::{Outcome, run_script};
use weir_streaming::run::StreamOptions;

use crate::nexmark::sorted;
use crate::oracle::{Row, canonical};

/// Events a file holds: its event times are spread, out of order, over one
/// second of its own (file `i`: from `BASE + 1000 i`).
const PER_FILE: u64 = 400;
const BASE: u64 = 1_700_000_000_000;
/// More than a file's disorder, so that no row comes late.
const DELAY_MS: u64 = 1_100;
const COLUMNS: &str = "(ts TIMESTAMP(3), who VARCHAR, amount BIGINT)";

const QUERIES: [&str; 4] = [
    "SELECT who, CAST(ts AS VARCHAR), amount FROM events WHERE amount % 3 = 0",
    "SELECT who, CAST(window_start AS VARCHAR), count(*), sum(amount), max(amount) \
     FROM tumble(events, ts, INTERVAL '100' MILLISECOND) GROUP BY who, window_start, window_end",
    "SELECT who, CAST(window_end AS VARCHAR), count(*) \
     FROM session(events, ts, INTERVAL '30' MILLISECOND, who) \
     GROUP BY who, window_start, window_end",
    // event time alone: no JSON column is decoded
    "SELECT CAST(window_start AS VARCHAR), count(*) \
     FROM tumble(events, ts, INTERVAL '100' MILLISECOND) GROUP BY window_start",
];

/// Writes file `i` of the events into `dir` (under a hidden name, renamed
/// when complete, as writers of a watched directory do).
fn write_file(dir: &Path, i: u64) {
    let mut text = String::new();
    for j in 0..PER_FILE {
        let k = i * PER_FILE + j;
        let ts = BASE + 1000 * i + (j * 7919) % 1000;
        text.push_str(&format!(
            "{{\"ts\": {ts}, \"who\": \"u{}\", \"amount\": {}}}\n",
            k % 13,
            (k * 31) % 101
        ));
    }
    let hidden = dir.join(format!(".part-{i:03}.json"));
    std::fs::write(&hidden, text).unwrap();
    std::fs::rename(&hidden, dir.join(format!("part-{i:03}.json"))).unwrap();
}

fn stream_ddl(name: &str, dir: &Path) -> String {
    format!(
        "CREATE UNBOUNDED EXTERNAL TABLE {name} {COLUMNS} STORED AS JSON LOCATION '{}' \
         OPTIONS ('event_time' 'ts', 'watermark_delay_ms' '{DELAY_MS}', \
         'idle_timeout_ms' '100');\n",
        dir.display()
    )
}

/// The batch answer to `query` over the files in `dir`.
fn batch_answer(query: &str, dir: &Path) -> Vec<Row> {
    let script = format!(
        "CREATE EXTERNAL TABLE events {COLUMNS} STORED AS JSON LOCATION '{}';\n{query};",
        dir.display()
    );
    let outcomes = run_script(timely::Config::process(2), &script, None, None, None).unwrap();
    let Some(Outcome::Rows(output)) = outcomes.last() else {
        panic!("no rows: {query}")
    };
    sorted(canonical(&output.batches))
}

fn options(checkpoints: &Path, restore: Option<Restore>) -> StreamOptions {
    StreamOptions {
        checkpoint_dir: checkpoints.to_path_buf(),
        restore,
        retain: 3,
        progress: None,
    }
}

fn epochs() -> Epochs {
    Epochs {
        stop_when_idle: Some(Duration::from_millis(400)),
        ..Epochs::every(Duration::from_millis(10))
    }
}

/// Streams `script` (its last statement the query) on `workers` workers
/// while files `from..to` arrive, one every 30 ms; the rows handed over.
fn streamed(script: &str, workers: usize, input: &Path, files: (u64, u64)) -> Vec<Row> {
    let mut session = Session::default();
    let (ddl, query) = script.rsplit_once(";\n").unwrap();
    session.declare_all(&format!("{ddl};")).unwrap();
    let plan = Arc::new(session.plan_stream(query).unwrap());
    let got: Arc<Mutex<Vec<(u64, RecordBatch)>>> = Arc::default();
    let sink = Arc::clone(&got);
    let deliver: Deliver = Arc::new(move |_, epoch, batch: &RecordBatch| {
        sink.lock().unwrap().push((epoch, batch.clone()))
    });
    let checkpoints = tempfile::tempdir().unwrap();
    let writer = arriving(input.to_path_buf(), files);
    let summary = stream::run(
        timely::Config::process(workers),
        plan,
        &options(checkpoints.path(), None),
        epochs(),
        Sink::Deliver(deliver),
    )
    .unwrap();
    writer.join().unwrap();
    assert_eq!(summary.metrics.get("late rows").copied().unwrap_or(0), 0);
    assert!(summary.checkpoints > 1);
    let got = got.lock().unwrap();
    let epochs: std::collections::BTreeSet<u64> = got.iter().map(|(e, _)| *e).collect();
    assert!(epochs.len() > 3, "rows in {} epochs", epochs.len());
    let batches: Vec<RecordBatch> = got.iter().map(|(_, b)| b.clone()).collect();
    sorted(canonical(&batches))
}

/// Writes files `from..to` into `dir`, one every 30 ms.
fn arriving(dir: PathBuf, (from, to): (u64, u64)) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for i in from..to {
            write_file(&dir, i);
            std::thread::sleep(Duration::from_millis(30));
        }
    })
}

#[test]
fn files_arriving_in_a_directory_stream_the_batch_answer_on_1_and_2_workers() {
    for query in QUERIES {
        for workers in [1, 2] {
            let input = tempfile::tempdir().unwrap();
            // some files are there before the query starts, the rest arrive
            for i in 0..3 {
                write_file(input.path(), i);
            }
            let script = format!("{}{query}", stream_ddl("events", input.path()));
            let rows = streamed(&script, workers, input.path(), (3, 12));
            let expected = batch_answer(query, input.path());
            assert!(expected.len() > 20, "{query}");
            assert_eq!(rows.len(), expected.len(), "{workers} workers: {query}");
            assert_eq!(rows, expected, "{workers} workers: {query}");
        }
    }
}

/// Runs `INSERT INTO out SELECT ...` over the files of `input` on `workers`
/// workers while files `files` arrive.
fn insert(
    query: &str,
    (input, output): (&Path, &Path),
    checkpoints: &Path,
    run: (usize, u64, u64),
) {
    let (workers, from, to) = run;
    let mut session = Session::default();
    let ddl = format!(
        "{}CREATE UNBOUNDED EXTERNAL TABLE out (who VARCHAR, at VARCHAR, n BIGINT) \
         STORED AS JSON LOCATION '{}';",
        stream_ddl("events", input),
        output.display()
    );
    session.declare_all(&ddl).unwrap();
    let plan = session
        .plan_stream(&format!("INSERT INTO out {query}"))
        .unwrap();
    assert_eq!(
        plan.inserts_into(),
        Some(format!("directory {}", output.display()))
    );
    let restore = (from > 0).then_some(Restore::Latest);
    let writer = arriving(input.to_path_buf(), (from, to));
    let deliver: Deliver = Arc::new(|_, _, _: &RecordBatch| panic!("rows went to the sink"));
    stream::run(
        timely::Config::process(workers),
        Arc::new(plan),
        &options(checkpoints, restore),
        epochs(),
        Sink::Deliver(deliver),
    )
    .unwrap();
    writer.join().unwrap();
}

#[test]
fn insert_into_a_directory_table_writes_the_batch_answer_once_across_a_restore() {
    let query = "SELECT who, CAST(ts AS VARCHAR), amount FROM events WHERE amount > 50";
    let (input, output) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let checkpoints = tempfile::tempdir().unwrap();
    let dirs = (input.path(), output.path());
    insert(query, dirs, checkpoints.path(), (2, 0, 5));
    // restored at another worker count, with more files arriving
    insert(query, dirs, checkpoints.path(), (1, 5, 9));
    let names: Vec<String> = std::fs::read_dir(output.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".json")), "{names:?}");
    let read_back = format!(
        "CREATE EXTERNAL TABLE out (who VARCHAR, at VARCHAR, n BIGINT) STORED AS JSON \
         LOCATION '{}';\nSELECT * FROM out",
        output.path().display()
    );
    let outcomes = run_script(timely::Config::process(1), &read_back, None, None, None).unwrap();
    let Some(Outcome::Rows(written)) = outcomes.last() else {
        panic!("no rows")
    };
    let written = sorted(canonical(&written.batches));
    assert_eq!(written, batch_answer(query, input.path()));
}

#[test]
fn a_directory_table_declared_wrong_or_fed_a_bad_line_says_what_and_where() {
    let input = tempfile::tempdir().unwrap();
    let dir = input.path().display();
    let wrong = [
        (
            format!("CREATE UNBOUNDED EXTERNAL TABLE t STORED AS JSON LOCATION '{dir}'"),
            "declares its columns",
        ),
        (
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE t {COLUMNS} STORED AS PARQUET LOCATION '{dir}'"
            ),
            "STORED AS JSON or TEXT",
        ),
        (
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE t {COLUMNS} STORED AS JSON LOCATION '{dir}/none'"
            ),
            "not a directory",
        ),
        (
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE t {COLUMNS} STORED AS JSON LOCATION '{dir}' \
                 OPTIONS ('event_time' 'who')"
            ),
            "not TIMESTAMP(3)",
        ),
        (
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE t (line VARCHAR) STORED AS TEXT \
                 LOCATION '{dir}' OPTIONS ('event_time' 'line')"
            ),
            "not TIMESTAMP(3)",
        ),
    ];
    for (ddl, says) in wrong {
        let err = Session::default()
            .declare_all(&ddl)
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{ddl}: {err}");
    }
    // late rows go to a declared table that takes rows, and writes
    // elsewhere than the query (two tables of one directory would collide)
    let mut session = Session::default();
    session
        .declare_all(&stream_ddl("events", input.path()))
        .unwrap();
    session
        .declare_all(&stream_ddl("same_dir", input.path()))
        .unwrap();
    for (table, says) in [
        ("nope", "no such table"),
        ("events", "the table of late rows"),
        ("same_dir", "writes where same_dir"),
    ] {
        let script = format!(
            "SET 'weir.late-rows.table' = '{table}';\nINSERT INTO events SELECT * FROM events"
        );
        let Err(err) = session.plan_stream(&script) else {
            panic!("{table}: planned");
        };
        assert!(err.to_string().contains(says), "{table}: {err}");
    }
    // a line without its event time fails the query, naming file and byte;
    // a line of the wrong columns, naming file and byte and quoting the line
    for (bad, says) in [
        (
            "{\"who\": \"x\", \"amount\": 1}",
            &["part-000.json:byte 35"][..],
        ),
        (
            "{\"ts\": 5, \"who\": \"x\", \"amount\": \"many\"}",
            &["part-000.json:byte 35", "\"amount\": \"many\""],
        ),
    ] {
        let input = tempfile::tempdir().unwrap();
        let text = format!("{{\"ts\": 1, \"who\": \"y\", \"amount\": 2}}\n{bad}\n");
        std::fs::write(input.path().join("part-000.json"), text).unwrap();
        let mut session = Session::default();
        session
            .declare_all(&stream_ddl("events", input.path()))
            .unwrap();
        let plan = Arc::new(session.plan_stream(QUERIES[0]).unwrap());
        let checkpoints = tempfile::tempdir().unwrap();
        let err = stream::run(
            timely::Config::process(2),
            plan,
            &options(checkpoints.path(), None),
            epochs(),
            Sink::Deliver(Arc::new(|_, _, _: &RecordBatch| {})),
        )
        .unwrap_err()
        .to_string();
        for says in says {
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}

#[test]
fn late_rows_go_to_the_table_the_script_names() {
    // the same windowed aggregation twice (a window join of it with
    // itself) is built once: its late rows go out once (they went out
    // twice when each copy was built)
    let windows = "SELECT who, window_start AS s, window_end AS e, count(*) AS n, sum(amount) AS m \
         FROM tumble(events, ts, INTERVAL '100' MILLISECOND) GROUP BY who, window_start, window_end";
    let twice = format!(
        "SELECT a.who, CAST(a.s AS VARCHAR), a.n + b.n, a.m + b.m FROM ({windows}) a JOIN ({windows}) b \
         ON a.who = b.who AND a.s = b.s AND a.e = b.e"
    );
    for (query, operator) in [
        (QUERIES[1], "window aggregate"),
        (twice.as_str(), "window aggregate"),
        (
            "SELECT who, CAST(window_end AS VARCHAR), sum(amount) \
             FROM session(events, ts, INTERVAL '30' MILLISECOND, who) \
             GROUP BY who, window_start, window_end",
            "session window",
        ),
    ] {
        let (input, late) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // file 10 first; file 0, a second later, is ten seconds behind it
        write_file(input.path(), 10);
        let expected = batch_answer(query, input.path());
        let script = format!(
            "{}CREATE UNBOUNDED EXTERNAL TABLE late (who VARCHAR) STORED AS JSON \
             LOCATION '{}';\nSET 'weir.late-rows.table' = 'late';\n{query}",
            stream_ddl("events", input.path()),
            late.path().display()
        );
        let mut session = Session::default();
        let plan = Arc::new(session.plan_stream(&script).unwrap());
        assert!(plan.explain().contains("late rows of windows"));
        let got: Arc<Mutex<Vec<RecordBatch>>> = Arc::default();
        let sink = Arc::clone(&got);
        let deliver: Deliver =
            Arc::new(move |_, _, b: &RecordBatch| sink.lock().unwrap().push(b.clone()));
        let dir = input.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            write_file(&dir, 0);
        });
        let checkpoints = tempfile::tempdir().unwrap();
        let summary = stream::run(
            timely::Config::process(2),
            plan,
            &options(checkpoints.path(), None),
            Epochs {
                stop_when_idle: Some(Duration::from_millis(1500)),
                ..Epochs::every(Duration::from_millis(10))
            },
            Sink::Deliver(deliver),
        )
        .unwrap();
        writer.join().unwrap();
        // the windows of file 10 alone, and every row of file 0 late
        assert_eq!(sorted(canonical(&got.lock().unwrap())), expected, "{query}");
        assert_eq!(summary.metrics.get("late rows"), Some(&PER_FILE), "{query}");
        let lines: Vec<serde_json::Value> = std::fs::read_dir(late.path())
            .unwrap()
            .flat_map(|f| {
                let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
                text.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(lines.len() as u64, PER_FILE, "{query}");
        let amounts: u64 = lines
            .iter()
            .map(|l| l["amount"].as_u64().unwrap_or_else(|| panic!("{l}")))
            .sum();
        let file_0: u64 = (0..PER_FILE).map(|k| (k * 31) % 101).sum();
        assert_eq!(amounts, file_0, "{query}");
        for line in &lines {
            let late_in = line["late_in"].as_str().unwrap();
            assert!(late_in.starts_with(operator), "{late_in}");
        }
    }
}

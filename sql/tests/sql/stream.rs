//! Streaming queries over unbounded Nexmark tables: what they hand over once
//! their events end equals the batch answer to the same query over the same
//! events, on 1 and 2 workers; a run restored from a finished run's
//! checkpoint, with more events, hands over exactly the rows of the new
//! events, at another worker count.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use weir_progress::store::Restore;
use weir_sql::nexmark::TABLES;
use weir_sql::session::Session;
use weir_sql::stream::{self, Deliver, Sink};
use weir_sql::{Outcome, run_script};
use weir_streaming::run::StreamOptions;

use crate::nexmark::sorted;
use crate::oracle::{Row, canonical};

const QUERIES: [&str; 3] = [
    "SELECT auction, bidder, price, CAST(date_time AS VARCHAR) FROM bid WHERE auction % 3 = 0",
    "SELECT id, upper(name), city FROM person",
    "SELECT auction, CAST(window_start AS VARCHAR), CAST(window_end AS VARCHAR), price \
     FROM hop(bid, date_time, INTERVAL '20' MILLISECOND, INTERVAL '100' MILLISECOND) \
     WHERE price > 5000",
];

/// The tables of the first `events` events: unbounded ones generated at
/// 50,000 events a second (some 80 epochs of 5 ms for 20,000).
/// Windowed aggregations: each window's groups fire once event time has
/// passed its end.
const WINDOWED: [&str; 5] = [
    "SELECT auction, CAST(window_start AS VARCHAR), count(*) \
     FROM tumble(bid, date_time, INTERVAL '100' MILLISECOND) \
     GROUP BY auction, window_start, window_end",
    "SELECT CAST(window_end AS VARCHAR), max(price), min(price), avg(price), sum(price), \
     count(DISTINCT bidder) FROM hop(bid, date_time, INTERVAL '20' MILLISECOND, \
     INTERVAL '100' MILLISECOND) WHERE auction % 2 = 0 GROUP BY window_end",
    "SELECT CAST(window_start AS VARCHAR) AS s, count(*) * 2 AS n FROM \
     hop(bid, date_time, INTERVAL '50' MILLISECOND, INTERVAL '150' MILLISECOND) \
     GROUP BY window_start",
    "SELECT city, CAST(window_end AS VARCHAR), count(*), max(id) \
     FROM tumble(person, date_time, INTERVAL '200' MILLISECOND) GROUP BY city, window_end",
    // groups without aggregates (their states are empty)
    "SELECT seller, CAST(s AS VARCHAR) FROM (SELECT DISTINCT seller, window_start AS s \
     FROM tumble(auction, date_time, INTERVAL '100' MILLISECOND))",
];

/// Session windows: per bidder (Nexmark q11's shape), over all auctions,
/// and their rows without an aggregation.
const SESSIONS: [&str; 3] = [
    "SELECT bidder, CAST(window_start AS VARCHAR), CAST(window_end AS VARCHAR), count(*), \
     max(price) FROM session(bid, date_time, INTERVAL '10' MILLISECOND, bidder) \
     GROUP BY bidder, window_start, window_end",
    "SELECT CAST(window_end AS VARCHAR), count(*), min(id) \
     FROM session(auction, date_time, INTERVAL '1' MILLISECOND) GROUP BY window_end",
    "SELECT bidder, auction, CAST(window_start AS VARCHAR), CAST(window_end AS VARCHAR) \
     FROM session(bid, date_time, INTERVAL '20' MILLISECOND, bidder) WHERE auction % 5 = 0",
];

/// A join of two tables' streams whose held rows expire with event time
/// (an interval join; Nexmark's q5, q7 and q8 are window joins).
const JOINS: [&str; 1] = [
    "SELECT a.id, a.seller, b.bidder, b.price, CAST(b.date_time AS VARCHAR) \
     FROM auction a JOIN bid b ON a.id = b.auction \
     AND b.date_time >= a.date_time AND b.date_time < a.date_time + INTERVAL '30' MILLISECOND",
];

/// Outer and anti joins of two streams whose held rows expire with event
/// time: a row that met none goes out once no later row can meet it
/// (interval joins, and a window join of two windowed aggregations).
const OUTER_JOINS: [&str; 5] = [
    "SELECT a.id, a.seller, b.bidder, b.price FROM auction a LEFT JOIN bid b \
     ON a.id = b.auction AND b.date_time >= a.date_time \
     AND b.date_time < a.date_time + INTERVAL '30' MILLISECOND",
    "SELECT a.id, a.category, b.auction, b.bidder, b.price FROM auction a RIGHT JOIN bid b \
     ON a.id = b.auction AND b.date_time >= a.date_time \
     AND b.date_time < a.date_time + INTERVAL '30' MILLISECOND",
    "SELECT b.auction, b.bidder, p.id, p.name FROM bid b FULL JOIN person p \
     ON b.bidder = p.id AND b.date_time BETWEEN p.date_time \
     AND p.date_time + INTERVAL '40' MILLISECOND",
    "SELECT a.id, a.seller FROM auction a WHERE NOT EXISTS (SELECT 1 FROM bid b \
     WHERE b.auction = a.id AND b.date_time >= a.date_time \
     AND b.date_time < a.date_time + INTERVAL '30' MILLISECOND)",
    "SELECT CAST(coalesce(l.s, r.s) AS VARCHAR), coalesce(l.auction, r.auction), l.n, r.n \
     FROM (SELECT auction, window_start AS s, count(*) AS n \
       FROM tumble(bid, date_time, INTERVAL '100' MILLISECOND) WHERE bidder % 2 = 0 \
       GROUP BY auction, window_start, window_end) l \
     FULL JOIN (SELECT auction, window_start AS s, count(*) AS n \
       FROM tumble(bid, date_time, INTERVAL '100' MILLISECOND) WHERE bidder % 2 = 1 \
       GROUP BY auction, window_start, window_end) r \
     ON l.auction = r.auction AND l.s = r.s",
];

/// Lookup joins of a stream with a bounded table (`tiers`, a CSV file of
/// most people's tiers): inner, with a window over the joined rows (the
/// Yahoo benchmark's shape), stream-side outer, and semi.
const LOOKUPS: [&str; 4] = [
    "SELECT b.auction, b.price, t.tier FROM bid b JOIN tiers t ON b.bidder = t.id \
     WHERE t.tier <> 'c'",
    "SELECT tier, CAST(window_start AS VARCHAR), count(*), max(price) \
     FROM tumble((SELECT b.date_time, b.price, t.tier FROM bid b \
       JOIN tiers t ON b.bidder = t.id), date_time, INTERVAL '100' MILLISECOND) \
     GROUP BY tier, window_start, window_end",
    "SELECT b.auction, b.bidder, t.tier FROM bid b LEFT JOIN tiers t ON b.bidder = t.id",
    "SELECT auction, price FROM bid WHERE bidder IN (SELECT id FROM tiers WHERE tier = 'a')",
];

/// The DDL of `tiers`: ids from 1000 (the first person's) to 1499 but
/// every seventh, each with a tier.
fn tiers_ddl() -> String {
    static FILE: std::sync::OnceLock<tempfile::TempPath> = std::sync::OnceLock::new();
    let path = FILE.get_or_init(|| {
        let mut text = String::from("id,tier\n");
        for id in (1000..1500).filter(|id| id % 7 != 0) {
            text.push_str(&format!("{id},{}\n", ["a", "b", "c"][id % 3]));
        }
        let file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file.into_temp_path()
    });
    format!(
        "CREATE EXTERNAL TABLE tiers (id BIGINT, tier VARCHAR) STORED AS CSV \
         LOCATION '{}' OPTIONS ('has_header' 'true');\n",
        path.display()
    )
}

fn ddl(unbounded: bool, events: u64) -> String {
    let (kind, rate) = match unbounded {
        true => ("UNBOUNDED ", ", 'rate' '50000'"),
        false => ("", ""),
    };
    TABLES
        .iter()
        .map(|t| {
            format!(
                "CREATE {kind}EXTERNAL TABLE {t} STORED AS NEXMARK LOCATION '{t}' \
                 OPTIONS ('events' '{events}'{rate});\n"
            )
        })
        .chain([tiers_ddl()])
        .collect()
}

fn batch_answer(query: &str, events: u64) -> Vec<Row> {
    let script = format!("{}{query};", ddl(false, events));
    let outcomes = run_script(timely::Config::process(2), &script, None, None, None).unwrap();
    let Some(Outcome::Rows(output)) = outcomes.last() else {
        panic!("no rows: {query}")
    };
    sorted(canonical(&output.batches))
}

/// Streams `query` over `events` events: the rows handed over, and the
/// number of epochs that had rows (each worker's in epoch order).
fn streamed(
    query: &str,
    events: u64,
    workers: usize,
    checkpoints: &std::path::Path,
    restore: Option<Restore>,
) -> (Vec<Row>, usize) {
    let mut session = Session::default();
    session.declare_all(&ddl(true, events)).unwrap();
    let plan = Arc::new(session.plan_stream(query).unwrap());
    let got: Arc<Mutex<Vec<(usize, u64, RecordBatch)>>> = Arc::default();
    let sink = Arc::clone(&got);
    let deliver: Deliver = Arc::new(move |worker, epoch, batch: &RecordBatch| {
        sink.lock().unwrap().push((worker, epoch, batch.clone()))
    });
    let options = StreamOptions {
        checkpoint_dir: checkpoints.to_path_buf(),
        restore,
        retain: 3,
        progress: None,
    };
    let summary = stream::run(
        timely::Config::process(workers),
        plan,
        &options,
        stream::Epochs::every(Duration::from_millis(5)),
        Sink::Deliver(deliver),
    )
    .unwrap();
    assert_eq!(summary.metrics.get("late rows").copied().unwrap_or(0), 0);
    let got = got.lock().unwrap();
    for worker in 0..workers {
        let epochs: Vec<u64> = got
            .iter()
            .filter(|(w, _, _)| *w == worker)
            .map(|(_, e, _)| *e)
            .collect();
        assert!(
            epochs.is_sorted(),
            "worker {worker} hands over in epoch order"
        );
    }
    let batches: Vec<RecordBatch> = got.iter().map(|(_, _, b)| b.clone()).collect();
    let epochs: std::collections::BTreeSet<u64> = got.iter().map(|(_, e, _)| *e).collect();
    assert!(summary.checkpoints >= 1, "{query}: no checkpoint");
    (sorted(canonical(&batches)), epochs.len())
}

/// Whether `query`'s rows are updates.
fn updating(query: &str) -> bool {
    let mut session = Session::default();
    session.declare_all(&ddl(true, 1)).unwrap();
    session.plan_stream(query).unwrap().updating()
}

/// Each of `queries` streams, on 1 and 2 workers, its batch answer (of
/// more than `fewest` rows), its rows handed over in more than one epoch.
fn streams_the_batch_answer(queries: &[&str], fewest: usize) {
    for query in queries {
        let expected = batch_answer(query, 20_000);
        assert!(expected.len() > fewest, "{query}");
        for workers in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let (rows, epochs) = streamed(query, 20_000, workers, dir.path(), None);
            assert!(epochs > 1, "{query}: rows in {epochs} epochs");
            let rows = match updating(query) {
                true => apply_updates(&rows),
                false => rows,
            };
            assert_eq!(rows.len(), expected.len(), "{workers} workers: {query}");
            assert_eq!(rows, expected, "{workers} workers: {query}");
        }
    }
}

#[test]
fn a_streaming_query_hands_over_the_batch_answer_on_1_and_2_workers() {
    streams_the_batch_answer(&QUERIES, 0);
}

#[test]
fn a_windowed_aggregation_streams_the_batch_answer_on_1_and_2_workers() {
    // windows fire as event time passes them, not all at the end
    streams_the_batch_answer(&WINDOWED, 3);
}

#[test]
fn session_windows_stream_the_batch_answer_on_1_and_2_workers() {
    // sessions go out as event time passes their ends, not all at the end
    streams_the_batch_answer(&SESSIONS, 10);
}

#[test]
fn a_join_of_streams_hands_over_the_batch_answer_on_1_and_2_workers() {
    streams_the_batch_answer(&JOINS, 3);
}

#[test]
fn outer_and_anti_joins_of_streams_hand_over_the_batch_answer_on_1_and_2_workers() {
    streams_the_batch_answer(&OUTER_JOINS, 10);
}

/// Nexmark's queries as `bench/` runs them, their event time scaled down
/// a hundredfold (windows of 100 ms, not 10 s: some 20,000 events span
/// 2 s of it).
#[test]
fn the_nexmark_queries_stream_the_batch_answer_on_1_and_2_workers() {
    let scaled: Vec<String> = weir_sql::nexmark::QUERIES
        .iter()
        .map(|(_, q)| {
            q.replace("INTERVAL '10' SECOND", "INTERVAL '100' MILLISECOND")
                .replace("INTERVAL '2' SECOND", "INTERVAL '20' MILLISECOND")
        })
        .collect();
    assert!(scaled.iter().any(|q| q.contains("'20' MILLISECOND")));
    let queries: Vec<&str> = scaled.iter().map(String::as_str).collect();
    streams_the_batch_answer(&queries, 3);
}

/// A regular join (no time bound): rows held for the state's time to live.
const REGULAR: &str = "SELECT p.name, a.id, a.category FROM auction a JOIN person p \
     ON a.seller = p.id WHERE a.category < 12";

#[test]
fn a_regular_join_holds_its_rows_for_the_state_ttl() {
    // longer than the stream: the batch answer
    let long = format!("SET table.exec.state.ttl = '1 h'; {REGULAR}");
    streams_the_batch_answer(&[&long], 3);
    // two epochs of 5 ms: a person meets only the auctions that come soon
    // after; the rows are the batch answer's, fewer of them
    let expected = batch_answer(REGULAR, 20_000);
    let short = format!("SET table.exec.state.ttl = '10 ms'; {REGULAR}");
    for workers in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let (rows, _) = streamed(&short, 20_000, workers, dir.path(), None);
        assert!(
            !rows.is_empty() && rows.len() < expected.len() / 2,
            "{workers} workers: {} of {} rows",
            rows.len(),
            expected.len()
        );
        let mut left = expected.clone();
        for row in &rows {
            let at = left.iter().position(|r| r == row);
            assert!(at.is_some(), "{workers} workers: {row:?} is not an answer");
            left.swap_remove(at.unwrap_or_default());
        }
    }
}

/// Aggregations without a window: their results are updates (the last
/// four aggregate updates, taking rows back).
const UPDATING: [&str; 7] = [
    "SELECT auction, count(*), max(price), min(bidder) FROM bid GROUP BY auction",
    "SELECT count(*), sum(price), count(DISTINCT auction) FROM bid",
    "SELECT auction, n * 2 FROM (SELECT auction, count(*) AS n FROM bid GROUP BY auction) \
     WHERE n > 3",
    "SELECT n, count(*), sum(a), avg(a) FILTER (WHERE a % 2 = 0) \
     FROM (SELECT auction AS a, count(*) AS n FROM bid GROUP BY auction) GROUP BY n",
    "SELECT count(*), sum(top) FROM (SELECT bidder, max(price) AS top FROM bid GROUP BY bidder)",
    "SELECT n, min(a), max(a), max(c) FROM (SELECT auction AS a, count(*) AS n, \
     CAST(max(bidder) AS VARCHAR) AS c FROM bid GROUP BY auction) GROUP BY n",
    // DataFusion plans a DISTINCT as a group-by under the aggregate: groups
    // without aggregates, gone once their rows are all taken back
    "SELECT n, count(DISTINCT a % 7) FROM (SELECT auction AS a, count(*) AS n FROM bid \
     GROUP BY auction) GROUP BY n",
];

/// The results that `updates` (each row ending with its `op`) leave, in
/// any order: each `-U` or `-D` withdraws a row emitted before it.
fn apply_updates(updates: &[Row]) -> Vec<Row> {
    let mut counts: std::collections::BTreeMap<Row, i64> = Default::default();
    for update in updates {
        let (op, row) = update.split_last().unwrap();
        let sign = match op.as_deref() {
            Some("+I") | Some("+U") => 1,
            Some("-U") | Some("-D") => -1,
            other => panic!("not an update: {other:?}"),
        };
        *counts.entry(row.to_vec()).or_default() += sign;
    }
    let mut rows = Vec::new();
    for (row, n) in counts {
        assert!(n >= 0, "{row:?} withdrawn more often than emitted");
        rows.extend(std::iter::repeat_n(row, n as usize));
    }
    rows
}

#[test]
fn an_aggregation_without_a_window_streams_updates_that_end_at_the_batch_answer() {
    let mut gone = 0;
    for query in UPDATING {
        let expected = batch_answer(query, 20_000);
        let with_ttl = format!("SET table.exec.state.ttl = '1 h'; {query}");
        for workers in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let (updates, epochs) = streamed(&with_ttl, 20_000, workers, dir.path(), None);
            assert!(epochs > 1, "{query}: updates in {epochs} epochs");
            let withdrawn = updates
                .iter()
                .filter(|u| u.last() == Some(&Some("-U".into())));
            assert!(
                withdrawn.count() > 0,
                "{workers} workers: {query}: no update"
            );
            gone += updates
                .iter()
                .filter(|u| u.last() == Some(&Some("-D".into())))
                .count();
            assert_eq!(
                apply_updates(&updates),
                expected,
                "{workers} workers: {query}"
            );
        }
    }
    // groups of auctions by bid count empty as their auctions get more bids
    assert!(gone > 0, "no group was gone");
}

/// Joins of updating results (rows held for the state's time to live):
/// outer, anti and semi ones whose rows' partners come and go; inner ones,
/// one side updating, both, and an aggregation of such a join; and lookup
/// joins of updates with a table (inner, stream-side outer, aggregated).
const UPDATING_JOINS: [&str; 10] = [
    // people, each with its bidder's count while it is a multiple of 3: a
    // person's pair comes and goes, and its padded row with it
    "SELECT p.id, p.name, b.n FROM person p LEFT JOIN (SELECT bidder, count(*) AS n FROM bid \
     GROUP BY bidder) b ON p.id = b.bidder AND b.n % 3 = 0",
    "SELECT a.seller, a.n, b.n FROM (SELECT seller, count(*) AS n FROM auction GROUP BY seller) a \
     FULL JOIN (SELECT bidder, count(*) AS n FROM bid GROUP BY bidder) b \
     ON a.seller = b.bidder AND a.n % 2 = b.n % 2",
    "SELECT p.id, p.city FROM person p WHERE NOT EXISTS (SELECT 1 FROM (SELECT bidder, \
     count(*) AS n FROM bid GROUP BY bidder) b WHERE b.bidder = p.id AND b.n % 3 = 0)",
    "SELECT p.id, p.city FROM person p WHERE p.id IN (SELECT bidder FROM (SELECT bidder, \
     count(*) AS n FROM bid GROUP BY bidder) WHERE n % 3 = 0)",
    "SELECT t.tier, b.bidder, b.n FROM tiers t \
     JOIN (SELECT bidder, count(*) AS n FROM bid GROUP BY bidder) b ON b.bidder = t.id",
    "SELECT b.bidder, b.n, t.tier FROM (SELECT bidder, count(*) AS n FROM bid GROUP BY bidder) b \
     LEFT JOIN tiers t ON b.bidder = t.id",
    "SELECT t.tier, b.n % 5, count(*), sum(b.n) FROM tiers t \
     JOIN (SELECT bidder, count(*) AS n FROM bid GROUP BY bidder) b ON b.bidder = t.id \
     GROUP BY t.tier, b.n % 5",
    "SELECT p.id, p.name, b.n FROM person p \
     JOIN (SELECT bidder, count(*) AS n FROM bid GROUP BY bidder) b ON p.id = b.bidder",
    "SELECT a.seller, a.n, b.n FROM (SELECT seller, count(*) AS n FROM auction GROUP BY seller) a \
     JOIN (SELECT bidder, count(*) AS n FROM bid GROUP BY bidder) b ON a.seller = b.bidder",
    "SELECT b.n, count(*), sum(p.id) FROM person p \
     JOIN (SELECT bidder, count(*) AS n FROM bid GROUP BY bidder) b ON p.id = b.bidder \
     GROUP BY b.n",
];

/// Outer and anti joins without a time bound (rows held for the state's
/// time to live): a row that meets none goes out at once, and is taken back
/// when it first meets one, as in Flink's regular joins.
const REGULAR_OUTER_JOINS: [&str; 4] = [
    "SELECT p.id, p.name, a.id, a.category FROM person p LEFT JOIN auction a ON p.id = a.seller",
    "SELECT a.id, b.bidder, b.price FROM auction a FULL JOIN bid b \
     ON a.id = b.auction AND b.bidder % 2 = 0",
    "SELECT p.id, p.city FROM person p \
     WHERE NOT EXISTS (SELECT 1 FROM auction a WHERE a.seller = p.id)",
    "SELECT count(*), count(a.id), sum(p.id) FROM person p LEFT JOIN auction a ON p.id = a.seller",
];

#[test]
fn a_join_of_updating_results_streams_updates_that_end_at_the_batch_answer() {
    updates_end_at_the_batch_answer(&UPDATING_JOINS, 10);
}

#[test]
fn outer_and_anti_joins_without_a_time_bound_stream_updates_that_end_at_the_batch_answer() {
    updates_end_at_the_batch_answer(&REGULAR_OUTER_JOINS, 0);
}

/// Each of `queries` (its batch answer more than `fewest` rows), with rows
/// held for an hour, streams updates on 1 and 2 workers that end at its
/// batch answer, some of them rows taken back.
fn updates_end_at_the_batch_answer(queries: &[&str], fewest: usize) {
    for query in queries {
        let expected = batch_answer(query, 20_000);
        assert!(expected.len() > fewest, "{query}: {} rows", expected.len());
        let with_ttl = format!("SET table.exec.state.ttl = '1 h'; {query}");
        for workers in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let (updates, epochs) = streamed(&with_ttl, 20_000, workers, dir.path(), None);
            assert!(epochs > 1, "{query}: updates in {epochs} epochs");
            // rows taken back took their pairs back with them
            let withdrawn = updates
                .iter()
                .filter(|u| matches!(u.last(), Some(Some(op)) if op.starts_with('-')));
            assert!(withdrawn.count() > 0, "{workers} workers: {query}");
            assert_eq!(
                apply_updates(&updates),
                expected,
                "{workers} workers: {query}"
            );
        }
    }
}

#[test]
fn an_aggregation_without_a_window_starts_a_group_afresh_after_its_ttl() {
    let query = "SELECT auction, count(*) FROM bid GROUP BY auction";
    let expected: std::collections::BTreeMap<String, u64> = batch_answer(query, 20_000)
        .into_iter()
        .map(|row| {
            (
                row[0].clone().unwrap(),
                row[1].clone().unwrap().parse().unwrap(),
            )
        })
        .collect();
    // two epochs of 5 ms: an auction's group lives on only while bids come
    let short = format!("SET table.exec.state.ttl = '10 ms'; {query}");
    for workers in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let (updates, _) = streamed(&short, 20_000, workers, dir.path(), None);
        let results = apply_updates(&updates);
        // each life of a group counted other bids, and its last result stands
        let mut counted: std::collections::BTreeMap<String, u64> = Default::default();
        for row in &results {
            let n: u64 = row[1].clone().unwrap().parse().unwrap();
            *counted.entry(row[0].clone().unwrap()).or_default() += n;
        }
        assert_eq!(counted, expected, "{workers} workers");
        assert!(
            results.len() > expected.len(),
            "{workers} workers: no group expired ({} results)",
            results.len()
        );
    }
}

#[test]
fn a_lookup_join_of_a_stream_and_a_table_streams_the_batch_answer() {
    streams_the_batch_answer(&LOOKUPS, 3);
}

#[test]
fn regression_a_checkpoint_of_another_plan_was_restored_as_if_empty() {
    // the checkpoint holds the positions of a source of `bid`; a query of
    // `person` has no such source: it read person from the start, and a
    // query whose operators were numbered otherwise lost their state
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = streamed(QUERIES[0], 2_000, 2, dir.path(), None);
    assert!(!first.is_empty());
    let mut session = Session::default();
    session.declare_all(&ddl(true, 2_000)).unwrap();
    let plan = Arc::new(session.plan_stream(QUERIES[1]).unwrap());
    let got: Arc<Mutex<usize>> = Arc::default();
    let rows = Arc::clone(&got);
    let deliver: Deliver =
        Arc::new(move |_, _, batch: &RecordBatch| *rows.lock().unwrap() += batch.num_rows());
    let options = StreamOptions {
        checkpoint_dir: dir.path().to_path_buf(),
        restore: Some(Restore::Latest),
        retain: 3,
        progress: None,
    };
    let err = stream::run(
        timely::Config::process(2),
        plan,
        &options,
        stream::Epochs::every(Duration::from_millis(5)),
        Sink::Deliver(deliver),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("MANIFEST.json") && err.contains("that this job does not have"),
        "{err}"
    );
    assert_eq!(*got.lock().unwrap(), 0, "no rows before the error");
}

#[test]
fn a_restored_stream_resumes_every_split_where_it_was_at_another_worker_count() {
    let query = QUERIES[0];
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = streamed(query, 10_000, 2, dir.path(), None);
    let (second, _) = streamed(query, 25_000, 1, dir.path(), Some(Restore::Latest));
    assert!(!first.is_empty() && !second.is_empty());
    let mut both = [first, second].concat();
    both.sort();
    assert_eq!(both, batch_answer(query, 25_000));
}

#[test]
fn regression_a_fallback_restore_handed_over_replayed_epochs_again() {
    // a finished run; its last checkpoint then damaged
    let query = WINDOWED[0];
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = streamed(query, 10_000, 2, dir.path(), None);
    assert_eq!(first, batch_answer(query, 10_000));
    // the newest state file, which the newest checkpoint's chain holds
    let newest = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|f| f.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("aggregate"))
        })
        .max()
        .unwrap();
    std::fs::write(&newest, b"").unwrap();
    // the restore falls back to an older checkpoint and replays the epochs
    // since, whose rows were handed over already
    let (again, _) = streamed(query, 10_000, 2, dir.path(), Some(Restore::Latest));
    assert_eq!(again, Vec::<Row>::new());
}

#[test]
fn a_query_that_keeps_state_is_refused_before_it_streams() {
    let mut session = Session::default();
    session.declare_all(&ddl(true, 100)).unwrap();
    for (query, needle) in [
        (
            "SELECT auction, count(*) FROM bid GROUP BY auction",
            "or give groups a time to live: `SET table.exec.state.ttl = '1 h'`",
        ),
        (
            "SELECT * FROM bid JOIN person ON bid.bidder = person.id",
            "a join",
        ),
        ("SELECT * FROM bid ORDER BY price", "ORDER BY"),
        (
            "SELECT * FROM bid b LEFT JOIN person p ON b.bidder = p.id",
            "or give rows a time to live: `SET table.exec.state.ttl = '1 h'`",
        ),
        // a person's rows could meet bids however late
        (
            "SELECT * FROM bid b JOIN person p ON b.bidder = p.id AND b.date_time >= p.date_time",
            "or give rows a time to live: `SET table.exec.state.ttl = '1 h'`",
        ),
        // it would owe the tiers no bid met
        (
            "SELECT * FROM tiers t LEFT JOIN bid b ON b.bidder = t.id",
            "would owe the table's rows",
        ),
        (
            "SELECT * FROM bid b JOIN (SELECT tier, count(*) AS n FROM tiers GROUP BY tier) t \
             ON b.channel = t.tier",
            "not a table's scan",
        ),
        // auctions do not come in the order they expire
        (
            "SELECT count(*) FROM tumble(auction, expires, INTERVAL '1' SECOND) \
             GROUP BY window_end",
            "must be the event time",
        ),
    ] {
        let err = session.plan_stream(query).err().unwrap();
        assert!(err.to_string().contains(needle), "{query}: {err}");
    }
    // a streaming script: tables, then one query, last
    for (script, needle) in [
        (
            "SELECT 1 FROM bid; SELECT 2 FROM bid",
            "ends with its one query",
        ),
        (
            "CREATE UNBOUNDED EXTERNAL TABLE more STORED AS NEXMARK LOCATION 'bid'",
            "ends with a query",
        ),
        (
            "CREATE EXTERNAL TABLE few STORED AS NEXMARK LOCATION 'bid' \
             OPTIONS ('events' '10'); EXPLAIN SELECT * FROM few",
            "an EXPLAIN of a streaming query shows it and runs nothing",
        ),
    ] {
        let err = session.plan_stream(script).err().unwrap();
        assert!(err.to_string().contains(needle), "{script}: {err}");
    }
    // updating results go nowhere that cannot take them
    for (query, needle) in [
        (
            "SELECT n, median(auction) FROM (SELECT auction, count(*) AS n FROM bid \
             GROUP BY auction) GROUP BY n",
            "over updating results (COUNT, SUM, AVG, MIN and MAX without DISTINCT take rows back",
        ),
        (
            "SELECT count(*) FROM tumble((SELECT bidder, max(date_time) AS t FROM bid \
             GROUP BY bidder), t, INTERVAL '1' SECOND) GROUP BY window_end",
            "a streaming window's time column must be the event time of its stream",
        ),
    ] {
        let script = format!("SET table.exec.state.ttl = '1 h'; {query}");
        let err = session.plan_stream(&script).err().unwrap();
        assert!(err.to_string().contains(needle), "{query}: {err}");
    }
    // a bad setting is refused with the reason
    let err = session
        .plan_stream("SET table.exec.state.ttl = '1 month'; SELECT * FROM bid")
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("months have no fixed length"),
        "{err}"
    );
    let err = session.declare_all("SELECT * FROM bid").err().unwrap();
    assert!(
        err.to_string().contains("not a CREATE EXTERNAL TABLE"),
        "{err}"
    );
}

#[test]
fn explain_shows_a_streaming_query_as_it_streams() {
    let q = |name: &str| {
        weir_sql::nexmark::QUERIES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, q)| q.to_string())
            .unwrap()
    };
    for (query, operators) in [
        (
            q("q4").replace("SELECT Q.category", "EXPLAIN SELECT Q.category"),
            vec![
                "GroupAggregate of updates",
                "GroupAggregate [",
                "RegularJoin",
            ],
        ),
        (
            format!("EXPLAIN {}", q("q5")),
            // its two subqueries aggregate bids by window alike: built once
            vec![
                "IntervalJoin",
                "WindowAggregate",
                "Window Hop",
                "(the same as above, built once: WindowAggregate",
            ],
        ),
        (
            format!("EXPLAIN {}", q("q11")),
            vec!["WindowAggregate", "SessionWindow"],
        ),
        (
            format!("EXPLAIN {}", LOOKUPS[0]),
            vec!["LookupJoin", "Table tiers"],
        ),
        (
            format!("EXPLAIN {}", OUTER_JOINS[3]),
            vec![
                "IntervalJoin LeftAnti",
                "a row that met none goes out when it expires",
            ],
        ),
    ] {
        let mut session = Session::default();
        session.declare_all(&ddl(true, 100)).unwrap();
        let Ok(weir_sql::session::Streaming::Explain(Outcome::Explain { weir, .. })) =
            session.stream_script(&query)
        else {
            panic!("{query}: no plan");
        };
        assert!(weir.starts_with("Sink: stdout"), "{weir}");
        assert!(weir.contains("Nexmark source"), "{weir}");
        for operator in operators {
            assert!(weir.contains(operator), "{query}: {operator} in\n{weir}");
        }
        // EXPLAIN outside a streaming run shows the query as it would stream
        let script = format!("{}{query}", ddl(true, 100));
        let outcomes = run_script(timely::Config::thread(), &script, None, None, None).unwrap();
        let Some(Outcome::Explain { weir: shown, .. }) = outcomes.last() else {
            panic!("{query}: no plan");
        };
        assert_eq!(shown, &weir);
    }
}

#[test]
fn a_kafka_table_declared_wrong_is_refused_with_what_is_wrong() {
    let columns = "(id BIGINT, at TIMESTAMP(3), name VARCHAR)";
    for (ddl, needle) in [
        (
            format!(
                "CREATE EXTERNAL TABLE k {columns} STORED AS KAFKA LOCATION 't' \
                 OPTIONS ('brokers' 'localhost:9092')"
            ),
            "CREATE UNBOUNDED EXTERNAL TABLE",
        ),
        (
            "CREATE UNBOUNDED EXTERNAL TABLE k STORED AS KAFKA LOCATION 't' \
             OPTIONS ('brokers' 'localhost:9092')"
                .to_string(),
            "declares its columns",
        ),
        (
            format!("CREATE UNBOUNDED EXTERNAL TABLE k {columns} STORED AS KAFKA LOCATION 't'"),
            "'brokers'",
        ),
        (
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE k {columns} STORED AS KAFKA LOCATION 't' \
                 OPTIONS ('brokers' 'b:1', 'event_time' 'when')"
            ),
            "event_time 'when' is not one of its columns",
        ),
        (
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE k {columns} STORED AS KAFKA LOCATION 't' \
                 OPTIONS ('brokers' 'b:1', 'event_time' 'name')"
            ),
            "not TIMESTAMP(3)",
        ),
        (
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE k {columns} STORED AS KAFKA LOCATION 't' \
                 OPTIONS ('brokers' 'b:1', 'watermark_delay_ms' 'soon')"
            ),
            "'watermark_delay_ms' is 'soon'",
        ),
        (
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE k {columns} STORED AS KAFKA LOCATION 't' \
                 OPTIONS ('brokers' 'b:1', 'metadata.offset' 'name')"
            ),
            "which cannot hold a record's offset",
        ),
        (
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE k {columns} STORED AS KAFKA LOCATION 't' \
                 OPTIONS ('brokers' 'b:1', 'metadata.key' 'nope')"
            ),
            "metadata.key 'nope' is not one of its columns",
        ),
        (
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE k {columns} STORED AS KAFKA LOCATION 't' \
                 OPTIONS ('brokers' 'b:1', 'metadata.offset' 'id', 'metadata.partition' 'id')"
            ),
            "column 'id' holds two of a record's metadata",
        ),
    ] {
        let err = Session::default().declare_all(&ddl).err().unwrap();
        assert!(err.to_string().contains(needle), "{ddl}: {err}");
        assert!(err.to_string().contains("table k"), "{ddl}: {err}");
    }
}

#[test]
fn updates_go_only_into_a_kafka_table_whose_primary_key_is_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let query = "SET table.exec.state.ttl = '1 h'; \
         INSERT INTO counts SELECT count(*), auction FROM bid GROUP BY auction";
    let kafka = |key: &str| {
        format!(
            "CREATE UNBOUNDED EXTERNAL TABLE counts (n BIGINT, auction BIGINT{key}) \
             STORED AS KAFKA LOCATION 'counts' OPTIONS ('brokers' 'b:1'); {query}"
        )
    };
    for (script, needle) in [
        (kafka(""), "declare PRIMARY KEY (auction)"),
        (
            kafka(", PRIMARY KEY (n)"),
            "its primary key (n) must be the key of the query's rows (PRIMARY KEY (auction))",
        ),
        (
            format!(
                "CREATE UNBOUNDED EXTERNAL TABLE counts (n BIGINT, auction BIGINT) \
                 STORED AS JSON LOCATION '{}'; {query}",
                dir.path().display()
            ),
            "a directory of files cannot take rows back",
        ),
    ] {
        let mut session = Session::default();
        session.declare_all(&ddl(true, 100)).unwrap();
        let err = session.plan_stream(&script).err().unwrap();
        assert!(err.to_string().contains("INSERT INTO counts"), "{err}");
        assert!(err.to_string().contains(needle), "{script}: {err}");
    }
    let mut session = Session::default();
    session.declare_all(&ddl(true, 100)).unwrap();
    let plan = session
        .plan_stream(&kafka(", PRIMARY KEY (auction)"))
        .unwrap();
    assert!(plan.updating());
    assert!(
        plan.explain()
            .starts_with("Sink: Kafka topic counts, updates as upserts under its primary key"),
        "{}",
        plan.explain()
    );
}

//! `weir sql --checkpoint-dir`: a query over unbounded Nexmark tables runs as
//! a streaming job. What it prints (one process, two workers) and what it
//! commits to `--output` (two processes) are the batch answer to the same
//! query over the same events; killed with kill -9 at random points from
//! its first moments and restarted with the same command each time, it
//! commits every window exactly once.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::support::{hostfile, latest_checkpoint, path, stderr, weir};

/// Tumbling one-second windows of bids: counts and top prices per auction.
const QUERY: &str = "SELECT auction, CAST(window_start AS VARCHAR), count(*), max(price) \
     FROM tumble(bid, date_time, INTERVAL '1' SECOND) \
     GROUP BY auction, window_start, window_end";

/// Nexmark q8 (new users) in Flink's form over one-second windows: a
/// window join of people and the sellers of auctions.
const WINDOW_JOIN: &str = "SELECT P.id, P.name, CAST(P.starttime AS VARCHAR) \
     FROM (SELECT id, name, window_start AS starttime, window_end AS endtime \
       FROM tumble(person, date_time, INTERVAL '1' SECOND) \
       GROUP BY id, name, window_start, window_end) P \
     JOIN (SELECT seller, window_start AS starttime, window_end AS endtime \
       FROM tumble(auction, date_time, INTERVAL '1' SECOND) \
       GROUP BY seller, window_start, window_end) A \
     ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime";

/// Bids within half a second of their auction's creation: an interval
/// join, whose rows are held across many checkpoints.
const INTERVAL_JOIN: &str = "SELECT a.id, a.seller, b.bidder, b.price, \
     CAST(b.date_time AS VARCHAR) FROM auction a JOIN bid b ON a.id = b.auction \
     AND b.date_time BETWEEN a.date_time AND a.date_time + INTERVAL '500' MILLISECOND";

/// Auctions and the bids of their first half second, each side's rows
/// that met none padded with nulls: a full outer interval join, whose
/// unmatched rows go out when they expire.
const OUTER_JOIN: &str = "SELECT a.id, a.seller, b.auction, b.bidder, b.price \
     FROM auction a FULL JOIN bid b ON a.id = b.auction \
     AND b.date_time BETWEEN a.date_time AND a.date_time + INTERVAL '500' MILLISECOND";

/// Auctions with their sellers: a regular join (no time bound), whose
/// rows are held for the state's time to live (here longer than the run).
const REGULAR_JOIN: &str = "SET table.exec.state.ttl = '1 h'; \
     SELECT p.id, p.name, a.id, a.category FROM auction a JOIN person p ON a.seller = p.id";

/// Auctions by their number of bids (and id modulo 5), without a window:
/// updates of bids per auction, aggregated again (each auction's old count
/// taken back as its new one comes), held for the state's time to live
/// (longer than the run).
const UPDATING: &str = "SET table.exec.state.ttl = '1 h'; \
     SELECT n, auction % 5, count(*), sum(top) FROM (SELECT auction, count(*) AS n, \
     max(price) AS top FROM bid GROUP BY auction) GROUP BY n, auction % 5";

/// People by the number of bids they made (and id modulo 3): an aggregation of a
/// join of updates (each person's old count taken back, with its pair, as
/// the new one comes), held for the state's time to live.
const UPDATING_JOIN: &str = "SET table.exec.state.ttl = '1 h'; \
     SELECT b.n, p.id % 3, count(*), sum(p.id) FROM person p JOIN (SELECT bidder, \
     count(*) AS n FROM bid GROUP BY bidder) b ON p.id = b.bidder GROUP BY b.n, p.id % 3";

/// People and their auctions, those without one padded with nulls: a
/// regular left join, whose padded rows go out at once and are taken back
/// when the person's first auction comes.
const REGULAR_LEFT_JOIN: &str = "SET table.exec.state.ttl = '1 h'; \
     SELECT p.id, p.name, a.id, a.category FROM person p LEFT JOIN auction a ON p.id = a.seller";

/// People, each with its bidder's count while it is a multiple of 3: an
/// outer join of updates, whose padded rows come and go with the pairs.
const OUTER_JOIN_OF_UPDATES: &str = "SET table.exec.state.ttl = '1 h'; \
     SELECT p.id, p.name, b.n FROM person p LEFT JOIN (SELECT bidder, count(*) AS n FROM bid \
     GROUP BY bidder) b ON p.id = b.bidder AND b.n % 3 = 0";

/// The results that committed `updates` leave (each line ends with its
/// `op`: `+I`, `-U`, `+U` or `-D`), sorted.
fn apply_updates(updates: Vec<String>) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
    for line in updates {
        let (row, op) = line.rsplit_once(',').expect("a line without op");
        let sign = match op {
            "+I" | "+U" => 1,
            "-U" | "-D" => -1,
            other => panic!("not an update: {other}"),
        };
        *counts.entry(row.to_string()).or_default() += sign;
    }
    let mut rows = Vec::new();
    for (row, n) in counts {
        assert!(n >= 0, "{row} withdrawn more often than emitted");
        rows.extend(std::iter::repeat_n(row, n as usize));
    }
    rows
}

/// `query` over the first `events` events of the Nexmark tables (streamed
/// at `rate` a second).
pub(crate) fn script_of(query: &str, events: u64, rate: Option<u64>) -> String {
    let (kind, rate) = match rate {
        Some(r) => ("UNBOUNDED ", format!(", 'rate' '{r}'")),
        None => ("", String::new()),
    };
    let tables: String = ["person", "auction", "bid"]
        .iter()
        .map(|t| {
            format!(
                "CREATE {kind}EXTERNAL TABLE {t} STORED AS NEXMARK LOCATION '{t}' \
                 OPTIONS ('events' '{events}'{rate}); "
            )
        })
        .collect();
    format!("{tables}{query}")
}

/// [`QUERY`]'s script.
fn script(events: u64, rate: Option<u64>) -> String {
    script_of(QUERY, events, rate)
}

/// The batch answer to `query`, as sorted CSV lines (more than 100).
fn batch_answer(dir: &Path, query: &str, events: u64) -> Vec<String> {
    let lines = batch_lines(dir, query, events);
    assert!(lines.len() > 100, "{} rows", lines.len());
    lines
}

/// The batch answer to `query`, as sorted CSV lines.
pub(crate) fn batch_lines(dir: &Path, query: &str, events: u64) -> Vec<String> {
    let out = dir.join("batch");
    let _ = std::fs::remove_dir_all(&out);
    let sql = script_of(query, events, None);
    let result = weir()
        .args(["sql", "-e", &sql, "--output", path(&out)])
        .args(["-w", "2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    // each part file has a header line
    let mut lines: Vec<String> = files(&out)
        .iter()
        .flat_map(|f| read_lines(f).into_iter().skip(1))
        .collect();
    lines.sort();
    lines
}

pub(crate) fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|f| {
        !f.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    });
    files.sort();
    files
}

pub(crate) fn read_lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// The committed lines of the visible files in `dir`, sorted.
pub(crate) fn committed(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = files(dir).iter().flat_map(|f| read_lines(f)).collect();
    lines.sort();
    lines
}

fn stream_args<'a>(sql: &'a str, interval: &'a str) -> Vec<&'a str> {
    vec![
        "sql",
        "-e",
        sql,
        "--checkpoint-dir",
        "ck",
        "--checkpoint-interval",
        interval,
        "--restore",
        "latest",
    ]
}

#[test]
fn sql_streams_the_batch_answer_printed_on_two_workers_and_committed_by_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let expected = batch_answer(dir.path(), QUERY, 60_000);
    let sql = script(60_000, Some(200_000));
    let printed = weir()
        .current_dir(dir.path())
        .args(stream_args(&sql, "50ms"))
        .args(["-w", "2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(printed.status.success(), "{}", stderr(&printed));
    let mut lines: Vec<String> = String::from_utf8(printed.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(lines.len(), expected.len());
    assert_eq!(lines, expected);

    assert_eq!(two_processes(&sql, "50ms"), expected);
}

/// What `sql`, streamed by two processes of one worker each with
/// checkpoints every `interval`, commits to `--output`.
fn two_processes(sql: &str, interval: &str) -> Vec<String> {
    let two = tempfile::tempdir().unwrap();
    let hosts = hostfile(two.path(), 2);
    let spawn = |p: &str| {
        weir()
            .current_dir(two.path())
            .args(stream_args(sql, interval))
            .args(["--output", "out", "-n", "2", "-p", p, "-h", path(&hosts)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn("0");
    std::thread::sleep(Duration::from_millis(100));
    for child in [first, spawn("1")] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{sql}: {}", stderr(&out));
    }
    committed(&two.path().join("out"))
}

/// Nexmark's queries as `bench/` runs them, by name, their event time
/// scaled down a hundredfold (as in weir-sql's tests: windows of 100 ms).
fn nexmark_scaled() -> Vec<(&'static str, String)> {
    weir_sql::nexmark::QUERIES
        .iter()
        .map(|(name, query)| {
            let query = query
                .replace("INTERVAL '10' SECOND", "INTERVAL '100' MILLISECOND")
                .replace("INTERVAL '2' SECOND", "INTERVAL '20' MILLISECOND");
            (*name, query)
        })
        .collect()
}

/// The results `query` committed as `lines`: the lines themselves, or the
/// results its updates leave.
fn results_of(query: &str, lines: Vec<String>) -> Vec<String> {
    let mut session = weir_sql::session::Session::default();
    session.declare_all(&script_of("", 1, Some(1))).unwrap();
    match session.plan_stream(query).unwrap().updating() {
        true => apply_updates(lines),
        false => lines,
    }
}

/// `sql` streamed on two workers in `dir`, with checkpoints every
/// `interval` (restoring the latest), committing to `dir/out`.
fn spawn_to_output(dir: &Path, sql: &str, interval: &str) -> Child {
    weir()
        .current_dir(dir)
        .args(stream_args(sql, interval))
        .args(["--output", "out", "-w", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Each Nexmark query streamed by two processes commits its batch answer
/// (updating ones, updates that end at it).
#[test]
fn the_nexmark_queries_commit_the_batch_answer_across_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let events = 20_000;
    for (name, query) in nexmark_scaled() {
        let expected = batch_lines(dir.path(), &query, events);
        assert!(expected.len() > 3, "{name}: {} rows", expected.len());
        let sql = script_of(&query, events, Some(50_000));
        let got = results_of(&query, two_processes(&sql, "20ms"));
        assert_eq!(got.len(), expected.len(), "{name}: rows lost or repeated");
        assert_eq!(got, expected, "{name}");
    }
}

/// An outer join streamed by two processes commits its batch answer: the
/// rows that met none go out once, from the process that held them.
#[test]
fn an_outer_join_of_streams_commits_the_batch_answer_across_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let events = 20_000;
    let expected = batch_lines(dir.path(), OUTER_JOIN, events);
    assert!(
        expected.iter().any(|l| l.starts_with(",,")),
        "no bid met none"
    );
    let sql = script_of(OUTER_JOIN, events, Some(50_000));
    let got = two_processes(&sql, "20ms");
    assert_eq!(got.len(), expected.len(), "rows lost or repeated");
    assert_eq!(got, expected);
}

/// Each Nexmark query, killed with kill -9 at a random point after a
/// checkpoint of its own and restarted with the same command, commits its
/// batch answer, each row once.
#[test]
fn each_nexmark_query_killed_mid_stream_commits_its_batch_answer_once_restored() {
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let events = 20_000;
    for (name, query) in nexmark_scaled() {
        let dir = tempfile::tempdir().unwrap();
        let expected = batch_lines(dir.path(), &query, events);
        let sql = script_of(&query, events, Some(20_000));
        let start = || spawn_to_output(dir.path(), &sql, "20ms");
        let checkpoints = dir.path().join("ck");
        let mut first = start();
        let deadline = Instant::now() + Duration::from_secs(30);
        while latest_checkpoint(&checkpoints).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let killed = !reap(&mut first, Duration::from_millis(rng.random_range(0..300)));
        assert!(
            killed,
            "seed {seed}: {name} ended (or failed) before its kill"
        );
        let mut last = start();
        assert!(
            reap(&mut last, Duration::from_secs(120)),
            "seed {seed}: {name}: the restored run failed"
        );
        let got = results_of(&query, committed(&dir.path().join("out")));
        assert_eq!(
            got.len(),
            expected.len(),
            "seed {seed}: {name}: rows lost or repeated"
        );
        assert_eq!(got, expected, "seed {seed}: {name}");
    }
}

/// Waits for `child` to exit, killing it after `limit`; whether it exited by
/// itself with success.
pub(crate) fn reap(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    child.wait().unwrap();
    false
}

#[test]
fn kill_9_of_a_streaming_sql_query_at_random_points_commits_every_window_exactly_once() {
    kill_9_at_random_points(QUERY);
}

#[test]
fn kill_9_of_a_streaming_window_join_at_random_points_commits_every_row_exactly_once() {
    kill_9_at_random_points(WINDOW_JOIN);
}

#[test]
fn kill_9_of_a_streaming_interval_join_at_random_points_commits_every_row_exactly_once() {
    kill_9_at_random_points(INTERVAL_JOIN);
}

/// Streams `query` over 150,000 events (five seconds at 30,000 a second), killed with kill -9 about ten
/// times at random points (the first before any checkpoint can be
/// complete) and restarted with the same command each time; what it
/// commits must be the batch answer, each row once.
fn kill_9_at_random_points(query: &str) {
    kill_9_at_random_points_judged(query, |lines| lines);
}

/// [`kill_9_at_random_points`], with the committed lines made results by
/// `results` before they are compared with the batch answer.
fn kill_9_at_random_points_judged(query: &str, results: fn(Vec<String>) -> Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let events = 150_000;
    let batch = query.rsplit("; ").next().unwrap_or(query);
    let expected = batch_answer(dir.path(), batch, events);
    let sql = script_of(query, events, Some(30_000));
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let start = || spawn_to_output(dir.path(), &sql, "40ms");
    let checkpoints = dir.path().join("ck");
    let (kills, mut restores, _) = kill_ten_times(start, &checkpoints, &mut rng, 400);
    let before = latest_checkpoint(&checkpoints);
    let mut last = start();
    assert!(
        reap(&mut last, Duration::from_secs(120)),
        "seed {seed}: the last run failed"
    );
    restores += usize::from(before.is_some());
    let got = results(committed(&dir.path().join("out")));
    assert!(kills >= 3, "seed {seed}: only {kills} kills");
    // the kills must land after checkpoints too, not only before the first
    assert!(restores >= 2, "seed {seed}: {restores} runs restored");
    assert_eq!(
        got.len(),
        expected.len(),
        "seed {seed}, {kills} kills: rows lost or repeated"
    );
    assert_eq!(got, expected, "seed {seed}, {kills} kills");
}

/// Starts runs with `start` and kills each with kill -9, ten times: the
/// first two early (before the first checkpoint of a slow start), the
/// others at a random point (up to `spread` ms) after the run completed a
/// checkpoint of its own. Returns the kills, the runs that restored a
/// checkpoint, and whether a run ended by itself (which ends the kills).
pub(crate) fn kill_ten_times(
    start: impl Fn() -> Child,
    checkpoints: &Path,
    rng: &mut rand::rngs::StdRng,
    spread: u64,
) -> (usize, usize, bool) {
    let (mut kills, mut restores) = (0, 0);
    for i in 0..10 {
        let before = latest_checkpoint(checkpoints);
        let mut child = start();
        if i >= 2 {
            let deadline = Instant::now() + Duration::from_secs(30);
            while latest_checkpoint(checkpoints) == before
                && Instant::now() < deadline
                && child.try_wait().unwrap().is_none()
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let after = match i {
            0 => rng.random_range(5..40),
            1 => rng.random_range(20..120),
            _ => rng.random_range(0..spread),
        };
        let finished = reap(&mut child, Duration::from_millis(after));
        // a run that found a complete checkpoint went on from it
        restores += usize::from(before.is_some());
        if finished {
            return (kills, restores, true);
        }
        kills += 1;
    }
    (kills, restores, false)
}

#[test]
fn kill_9_of_a_streaming_outer_join_at_random_points_commits_every_row_exactly_once() {
    kill_9_at_random_points(OUTER_JOIN);
}

#[test]
fn kill_9_of_a_streaming_regular_join_at_random_points_commits_every_row_exactly_once() {
    kill_9_at_random_points(REGULAR_JOIN);
}

#[test]
fn kill_9_of_a_streaming_aggregation_without_a_window_commits_every_update_exactly_once() {
    kill_9_at_random_points_judged(UPDATING, apply_updates);
}

#[test]
fn kill_9_of_a_regular_outer_join_commits_every_update_exactly_once() {
    kill_9_at_random_points_judged(REGULAR_LEFT_JOIN, apply_updates);
}

#[test]
fn kill_9_of_an_outer_join_of_updates_commits_every_update_exactly_once() {
    kill_9_at_random_points_judged(OUTER_JOIN_OF_UPDATES, apply_updates);
}

#[test]
fn kill_9_of_a_join_of_updates_commits_every_update_exactly_once() {
    kill_9_at_random_points_judged(UPDATING_JOIN, apply_updates);
}

#[test]
fn a_streaming_sql_usage_error_is_named_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], sql: &str| {
        weir()
            .current_dir(dir.path())
            .args(stream_args(sql, "50ms"))
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let sql = script(1_000, Some(1_000));
    let out = run(&["--output", "out", "--format", "json"], &sql);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no --format"), "{}", stderr(&out));
    let nested = sql.replace(QUERY, "SELECT make_array(auction, price) FROM bid");
    let out = run(&[], &nested);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("which a CSV line cannot hold"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

//! `weir sql`: the same results on one worker and across two processes, and
//! bad input named with its position, one line, exit 1.

use std::path::Path;

use crate::support::{path, run, run_two_processes, stderr};

/// Seeded orders as two CSV files: id, customer, amount, status (amounts
/// are declared DECIMAL, so that sums are exact in any order).
pub fn write_orders(dir: &Path) {
    std::fs::create_dir(dir.join("orders")).unwrap();
    for part in 0..2 {
        let mut text = String::from("id,customer,amount,status\n");
        for i in (part * 3000)..((part + 1) * 3000) {
            let status = ["open", "paid", "shipped"][i % 3];
            text.push_str(&format!(
                "{i},c{},{}.{:02},{status}\n",
                i % 97,
                i % 500,
                i % 100
            ));
        }
        std::fs::write(dir.join(format!("orders/part-{part}.csv")), text).unwrap();
    }
}

pub fn script(dir: &Path) -> String {
    format!(
        "CREATE EXTERNAL TABLE orders (id BIGINT, customer VARCHAR, amount DECIMAL(10, 2), status VARCHAR)\n\
         STORED AS CSV LOCATION '{}/orders/' OPTIONS ('has_header' 'true');\n\
         SELECT status, count(*) AS n, sum(amount) AS total, max(customer) AS last FROM orders GROUP BY status ORDER BY status;\n\
         SELECT customer, sum(amount) AS spent FROM orders WHERE status <> 'open' GROUP BY customer ORDER BY spent DESC, customer LIMIT 5;\n\
         SELECT count(*) FROM orders WHERE amount > 250;\n",
        path(dir)
    )
}

/// The result tables of `weir sql`'s output (the timing lines, and timely's
/// "awaiting connections", left out).
pub fn tables(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('|') || l.starts_with('+'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn sql_gives_the_same_tables_on_one_worker_three_workers_and_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(dir.path());
    let file = dir.path().join("q.sql");
    std::fs::write(&file, script(dir.path())).unwrap();
    let one = run(&["sql", "-f", path(&file)]);
    assert!(one.status.success(), "{}", stderr(&one));
    let expected = tables(&one);
    assert!(expected.contains("| paid"), "{expected}");
    let borders = expected.lines().filter(|l| l.starts_with('+')).count();
    assert_eq!(borders, 9, "three tables:\n{expected}");
    let three = run(&["sql", "-f", path(&file), "-w", "3"]);
    assert!(three.status.success(), "{}", stderr(&three));
    assert_eq!(tables(&three), expected);
    let (zero, other) = run_two_processes(dir.path(), &["sql", "-f", path(&file)]);
    assert_eq!(tables(&zero), expected);
    assert_eq!(tables(&other), "", "only process 0 prints");
}

/// Runs `sql` in `dir`; it must fail with exit 1 and one line on stderr
/// that contains `needle`.
pub fn fails(dir: &Path, sql: &str, needle: &str) {
    fails_with(dir, &[], sql, needle);
}

/// [`fails`], with more flags.
fn fails_with(dir: &Path, flags: &[&str], sql: &str, needle: &str) {
    let out = crate::support::weir()
        .current_dir(dir)
        .arg("sql")
        .args(flags)
        .args(["-e", sql])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{sql}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{sql}: {err} lacks {needle}");
    assert!(out.stdout.is_empty(), "no output before the error: {sql}");
}

#[test]
fn sql_bad_input_is_named_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(dir.path());
    std::fs::write(
        dir.path().join("bad.csv"),
        "id,amount\n1,2.5\n2,3.5\n3,lots\n4,1.0\n",
    )
    .unwrap();
    let declare = "CREATE EXTERNAL TABLE orders STORED AS CSV LOCATION 'orders/' OPTIONS ('has_header' 'true');";
    fails(
        dir.path(),
        "SELECT 1;\nSELEC id FROM orders",
        "Line: 2, Column: 1",
    );
    fails(
        dir.path(),
        "SELECT * FROM nowhere",
        "table 'nowhere' not found",
    );
    fails(
        dir.path(),
        &format!("{declare} SELECT custmer FROM orders"),
        "Did you mean 'orders.customer'?",
    );
    fails(
        dir.path(),
        "CREATE EXTERNAL TABLE b (id INT, amount DOUBLE) STORED AS CSV LOCATION 'bad.csv' \
         OPTIONS ('has_header' 'true'); SELECT sum(amount) FROM b",
        "bad.csv:4: ",
    );
    fails(
        dir.path(),
        "CREATE EXTERNAL TABLE m STORED AS PARQUET LOCATION 'missing/'",
        "missing/",
    );
    // usage errors exit 2
    let out = run(&["sql", "--output", path(dir.path())]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--output"), "{}", stderr(&out));
}

/// TPC-H's 22 queries over `weir gen tpch` files: process 0 of a two-process
/// cluster prints the same tables as one worker.
#[test]
fn tpch_at_sf_0_01_gives_the_same_tables_on_one_worker_and_across_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tpch");
    let out = run(&[
        "gen",
        "tpch",
        "--scale",
        "0.01",
        "--parts",
        "3",
        "--output",
        path(&data),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lineitem: 60175 rows"),
        "{}",
        stderr(&out)
    );
    let script = weir_sql::tpch::ddl(&data)
        + &weir_sql::tpch::QUERIES
            .iter()
            .map(|q| format!("{};\n", q.trim()))
            .collect::<String>();
    let file = dir.path().join("tpch.sql");
    std::fs::write(&file, script).unwrap();
    let one = run(&["sql", "-f", path(&file), "--show", "1000"]);
    assert!(one.status.success(), "{}", stderr(&one));
    let counts = String::from_utf8_lossy(&one.stdout)
        .lines()
        .filter(|l| l.contains(" in ") && l.contains(" on 1 worker"))
        .count();
    assert_eq!(counts, 22, "a row count per query");
    let (zero, _) = run_two_processes(dir.path(), &["sql", "-f", path(&file), "--show", "1000"]);
    assert_eq!(tables(&zero), tables(&one));
}

/// Nexmark's events from `weir gen nexmark`: process 0 of a two-process
/// cluster prints the same tables as one worker.
#[test]
fn nexmark_events_give_the_same_tables_on_one_worker_and_across_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nexmark");
    let out = run(&[
        "gen",
        "nexmark",
        "--events",
        "5000",
        "--parts",
        "3",
        "--output",
        path(&data),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for counted in ["person: 100 rows", "auction: 300 rows", "bid: 4600 rows"] {
        assert!(stderr(&out).contains(counted), "{}", stderr(&out));
    }
    let mut script: String = weir_sql::nexmark::TABLES
        .iter()
        .map(|t| {
            format!(
                "CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{}/{t}';\n",
                data.display()
            )
        })
        .collect();
    script.push_str(
        "SELECT auction, count(*) AS bids, max(price) AS top FROM bid \
         GROUP BY auction ORDER BY bids DESC, auction LIMIT 20;\n\
         SELECT p.state, count(*) AS auctions FROM auction a JOIN person p ON a.seller = p.id \
         GROUP BY p.state ORDER BY p.state;\n",
    );
    let file = dir.path().join("nexmark.sql");
    std::fs::write(&file, script).unwrap();
    let one = run(&["sql", "-f", path(&file)]);
    assert!(one.status.success(), "{}", stderr(&one));
    assert!(tables(&one).lines().count() > 25, "{}", tables(&one));
    let (zero, _) = run_two_processes(dir.path(), &["sql", "-f", path(&file)]);
    assert_eq!(tables(&zero), tables(&one));
    // no --output, or TPC-H's flag: usage errors naming what is wrong
    let out = run(&["gen", "nexmark"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("gen nexmark: --output DIR is required"),
        "{}",
        stderr(&out)
    );
    let out = run(&["gen", "nexmark", "--scale", "1", "--output", path(&data)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("gen nexmark: --scale does not apply to nexmark"),
        "{}",
        stderr(&out)
    );
}

/// `--output DIR`: a part file per worker (one, in order, for an ordered
/// result) that `weir sql` reads back whole; a directory with results is
/// refused.
#[test]
fn sql_output_writes_a_part_per_worker_and_one_file_in_order() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(dir.path());
    let declare = format!(
        "CREATE EXTERNAL TABLE orders (id BIGINT, customer VARCHAR, amount DECIMAL(10, 2), status VARCHAR) \
         STORED AS CSV LOCATION '{}/orders/' OPTIONS ('has_header' 'true');",
        path(dir.path())
    );
    let grouped = dir.path().join("grouped");
    let out = run(&[
        "sql",
        "-w",
        "3",
        "--output",
        path(&grouped),
        "--format",
        "parquet",
        "-e",
        &format!("{declare} SELECT customer, sum(amount) AS spent FROM orders GROUP BY customer"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut parts: Vec<String> = std::fs::read_dir(&grouped)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        [
            "part-00000.parquet",
            "part-00001.parquet",
            "part-00002.parquet"
        ]
    );
    let back = run(&[
        "sql",
        "-e",
        &format!(
            "CREATE EXTERNAL TABLE g STORED AS PARQUET LOCATION '{}'; SELECT count(*) AS n, sum(spent) AS total FROM g",
            path(&grouped)
        ),
    ]);
    let table = tables(&back);
    assert!(table.contains("| 97 | 1499970.00 |"), "{table}");
    let ordered = dir.path().join("ordered");
    let out = run(&[
        "sql",
        "-w",
        "2",
        "--output",
        path(&ordered),
        "-e",
        &format!(
            "{declare} SELECT id, amount FROM orders WHERE amount > 498 ORDER BY amount DESC, id"
        ),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(ordered.join("part-00000.csv")).unwrap();
    let amounts: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(
        amounts.len() > 10 && amounts.windows(2).all(|w| w[0] >= w[1]),
        "{text}"
    );
    assert_eq!(std::fs::read_dir(&ordered).unwrap().count(), 1);
    let again = run(&["sql", "--output", path(&ordered), "-e", "SELECT 1"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already holds results"),
        "{}",
        stderr(&again)
    );
}

/// EXPLAIN shows DataFusion's plan and weir's, with where rows move.
#[test]
fn sql_explain_shows_both_plans_and_the_exchanges() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(dir.path());
    let out = run(&[
        "sql",
        "-e",
        &format!(
            "CREATE EXTERNAL TABLE orders STORED AS CSV LOCATION '{}/orders/' OPTIONS ('has_header' 'true');\n\
             EXPLAIN SELECT a.status, count(*) FROM orders a JOIN orders b ON a.id = b.id \
             WHERE a.amount > (SELECT avg(amount) FROM orders) GROUP BY a.status ORDER BY 1",
            path(dir.path())
        ),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "DataFusion's optimized logical plan:",
        "weir's plan:",
        "HashJoin Inner",
        "both sides exchanged by key hash",
        "exchange by group key hash",
        "gather at worker 0",
        "each worker reads its share",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

/// A join whose rows do not fit its share of `--memory-budget` spills and
/// still answers; one that cannot spill (no equality keys) fails with one
/// line naming the operator and the budget, exit 1: never an OOM kill.
#[test]
fn sql_over_the_memory_budget_spills_or_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(dir.path());
    let declare = "CREATE EXTERNAL TABLE orders STORED AS CSV LOCATION 'orders/' OPTIONS ('has_header' 'true');";
    fails_with(
        dir.path(),
        &["--memory-budget", "64k"],
        &format!("{declare} SELECT count(*) FROM orders a JOIN orders b ON a.id < b.id"),
        "a hash join without equality keys holds",
    );
    // a budget too small even for one partition of the spilled rows
    fails_with(
        dir.path(),
        &["--memory-budget", "4k"],
        &format!("{declare} SELECT count(*) FROM orders a JOIN orders b ON a.id = b.id"),
        "even spilled into 32 partitions by key",
    );
    // LIMIT holds no rows: it passes the first ones on as they come
    let out = succeeds(
        dir.path(),
        "64k",
        &format!(
            "{declare} SELECT count(*) AS n FROM (SELECT id FROM orders LIMIT 5000 OFFSET 990)"
        ),
    );
    assert!(tables(&out).contains("| 5000 |"), "{}", tables(&out));
    // a big result printed: its first --show rows, all of them counted
    let out = succeeds(
        dir.path(),
        "64k",
        &format!("{declare} SELECT a.id, b.status FROM orders a JOIN orders b ON a.id = b.id"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(tables(&out).lines().count(), 20 + 4, "{stdout}");
    assert!(
        stdout.contains("6000 rows (the first 20 shown)"),
        "{stdout}"
    );
    for budget in ["64k", "64M"] {
        let out = succeeds(
            dir.path(),
            budget,
            &format!("{declare} SELECT count(*) AS n FROM orders a JOIN orders b ON a.id = b.id"),
        );
        assert!(tables(&out).contains("| 6000 |"), "{}", tables(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.contains("spilled"), budget == "64k", "{stdout}");
    }
}

/// Runs `sql` in `dir` on two workers under `budget`; it must succeed.
fn succeeds(dir: &Path, budget: &str, sql: &str) -> std::process::Output {
    let out = crate::support::weir()
        .current_dir(dir)
        .args(["sql", "--memory-budget", budget, "-w", "2", "-e", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

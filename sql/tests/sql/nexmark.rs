//! Nexmark's events as tables: generated in parts, they are the one
//! sequence, in the generator's proportions; and queries over them (the
//! batch forms of Nexmark's, the answers streaming ones will be held to)
//! match DataFusion's on 1, 2 and 3 workers.

use std::path::Path;

use weir_sql::nexmark::{TABLES, generate};
use weir_sql::{Outcome, run_script};

use crate::oracle::{Row, canonical, datafusion};

pub(crate) fn ddl(dir: &Path) -> String {
    TABLES
        .iter()
        .map(|t| {
            format!(
                "CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{}/{t}';\n",
                dir.display()
            )
        })
        .collect()
}

pub(crate) fn rows(dir: &Path, queries: &[impl AsRef<str>], workers: usize) -> Vec<Vec<Row>> {
    let script = ddl(dir)
        + &queries
            .iter()
            .map(|q| format!("{};\n", q.as_ref()))
            .collect::<String>();
    outputs(&script, workers)
}

/// The rows of each query of `script`, run on `workers` workers.
fn outputs(script: &str, workers: usize) -> Vec<Vec<Row>> {
    run_script(timely::Config::process(workers), script, None, None, None)
        .unwrap()
        .iter()
        .filter_map(|o| match o {
            Outcome::Rows(output) => Some(canonical(&output.batches)),
            _ => None,
        })
        .collect()
}

const WHOLE: [&str; 3] = [
    "SELECT * FROM person ORDER BY id",
    "SELECT * FROM auction ORDER BY id",
    "SELECT * FROM bid ORDER BY date_time, auction, bidder, price",
];

#[test]
fn events_generated_in_parts_are_the_one_sequence_in_its_proportions() {
    let (one, three) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let counts = generate(one.path(), 10_000, 1).unwrap();
    // 1 person, 3 auctions and 46 bids in every 50 events
    assert_eq!(
        counts,
        vec![("person", 200), ("auction", 600), ("bid", 9200)]
    );
    assert_eq!(generate(three.path(), 10_000, 3).unwrap(), counts);
    let whole = rows(one.path(), &WHOLE, 1);
    assert_eq!(whole[0].len(), 200);
    assert_eq!(rows(three.path(), &WHOLE, 2), whole);
    // a part with no events of a table still declares its columns
    let few = tempfile::tempdir().unwrap();
    let counts = generate(few.path(), 3, 3).unwrap();
    assert_eq!(counts, vec![("person", 1), ("auction", 2), ("bid", 0)]);
    assert_eq!(
        rows(few.path(), &["SELECT count(*) FROM bid"], 1)[0].len(),
        1
    );
}

/// Nexmark's queries in their batch forms (windows as `date_bin`).
const QUERIES: &[&str] = &[
    // q0, q1: every bid, the price in euros
    "SELECT auction, bidder, price, CAST(date_time AS VARCHAR) FROM bid",
    "SELECT auction, bidder, 0.908 * price AS price, CAST(date_time AS VARCHAR) FROM bid",
    // q2: some auctions' bids
    "SELECT auction, price FROM bid WHERE auction % 123 = 0",
    // q3: local items of category 10
    "SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id \
     WHERE a.category = 10 AND p.state IN ('or', 'id', 'ca')",
    // q4: the average winning price per category
    "SELECT q.category, avg(q.final) FROM (SELECT a.id, a.category, max(b.price) AS final \
     FROM auction a JOIN bid b ON a.id = b.auction \
     WHERE b.date_time BETWEEN a.date_time AND a.expires GROUP BY a.id, a.category) q \
     GROUP BY q.category",
    // q5's counts: bids per auction per 10-second window
    "SELECT auction, CAST(date_bin(INTERVAL '10 seconds', date_time) AS VARCHAR) AS window_start, \
     count(*) AS n FROM bid GROUP BY 1, 2",
    // q7's maxima: the highest bid per 10-second window
    "SELECT CAST(date_bin(INTERVAL '10 seconds', date_time) AS VARCHAR) AS window_start, \
     max(price) AS top FROM bid GROUP BY 1",
    // q8: people who opened auctions in the window they joined
    "SELECT p.id, p.name, CAST(date_bin(INTERVAL '10 seconds', p.date_time) AS VARCHAR) AS window_start \
     FROM person p JOIN auction a ON p.id = a.seller \
     AND date_bin(INTERVAL '10 seconds', p.date_time) = date_bin(INTERVAL '10 seconds', a.date_time) \
     GROUP BY 1, 2, 3",
];

pub(crate) fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort();
    rows
}

#[test]
fn nexmark_queries_in_batch_form_match_datafusion_on_1_2_and_3_workers() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 20_000, 2).unwrap();
    let script = ddl(dir.path())
        + &QUERIES
            .iter()
            .map(|q| format!("{q};\n"))
            .collect::<String>();
    let expected: Vec<Vec<Row>> = datafusion(&script).into_iter().map(sorted).collect();
    assert_eq!(expected.len(), QUERIES.len());
    assert!(
        expected.iter().all(|rows| !rows.is_empty()),
        "every query has rows"
    );
    for workers in 1..=3 {
        let got = rows(dir.path(), QUERIES, workers);
        assert_same(workers, QUERIES, got, &expected);
    }
}

/// Each query's rows (in any order) are the expected ones.
pub(crate) fn assert_same(
    workers: usize,
    queries: &[impl AsRef<str>],
    got: Vec<Vec<Row>>,
    expected: &[Vec<Row>],
) {
    assert_eq!(got.len(), queries.len());
    for ((query, got), want) in queries.iter().zip(got).zip(expected) {
        let got = sorted(got);
        let differ = got.iter().zip(want).position(|(g, w)| g != w);
        assert!(
            got.len() == want.len() && differ.is_none(),
            "{workers} workers: {}: {} rows against {}, first differing at {differ:?}: {:?}",
            query.as_ref(),
            got.len(),
            want.len(),
            differ.map(|i| (&got[i], &want[i]))
        );
    }
}

#[test]
fn a_nexmark_table_holds_the_events_gen_nexmark_writes() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 7_000, 3).unwrap();
    let declared: String = TABLES
        .iter()
        .map(|t| {
            format!(
                "CREATE EXTERNAL TABLE {t} STORED AS NEXMARK LOCATION '{t}' \
                 OPTIONS ('events' '7000');\n"
            )
        })
        .collect();
    let queries = [WHOLE.as_slice(), &QUERIES[3..]].concat();
    let script = declared
        + &queries
            .iter()
            .map(|q| format!("{q};\n"))
            .collect::<String>();
    let from_files = rows(dir.path(), &queries, 2);
    for workers in [1, 3] {
        let generated = outputs(&script, workers);
        assert_same(
            workers,
            &queries,
            generated,
            &from_files
                .clone()
                .into_iter()
                .map(sorted)
                .collect::<Vec<_>>(),
        );
    }
    let bad = [
        (
            "LOCATION 'bids' OPTIONS ('events' '1')",
            "not a Nexmark table",
        ),
        ("LOCATION 'bid'", "needs OPTIONS ('events' 'N')"),
        (
            "LOCATION 'bid' OPTIONS ('events' 'many')",
            "not a positive whole number",
        ),
    ];
    for (rest, needle) in bad {
        let sql = format!("CREATE EXTERNAL TABLE b STORED AS NEXMARK {rest}");
        let err = run_script(timely::Config::thread(), &sql, None, None, None).unwrap_err();
        assert!(err.to_string().contains(needle), "{rest}: {err}");
    }
    let unbounded = "CREATE UNBOUNDED EXTERNAL TABLE b STORED AS NEXMARK LOCATION 'bid'; \
                     SELECT count(*) FROM b";
    let err = run_script(timely::Config::thread(), unbounded, None, None, None).unwrap_err();
    assert!(err.to_string().contains("is UNBOUNDED"), "{err}");
}

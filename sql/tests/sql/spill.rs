//! Joins, aggregations and sorts past their memory budget spill to disk (a
//! grace hash join; partial states sent on early, final states by
//! partitions; sorted runs merged) and still give DataFusion's answer: every
//! join type, null keys, a filter on the pairs, many groups with distinct
//! and list states, orders with nulls and limits, on 1, 2 and 3 workers.

use std::path::Path;

use weir_sql::{Outcome, run_script};

use crate::oracle::{Row, canonical, datafusion};

/// Seeded tables: `l` (80 000 rows, keys repeating, some null) and `r`
/// (50 000 rows, keys overlapping `l`'s in part).
fn write_tables(dir: &Path) {
    let mut l = String::from("k,v,tag\n");
    for i in 0..80_000u64 {
        let k = if i % 97 == 0 {
            String::new()
        } else {
            (i.wrapping_mul(2_654_435_761) % 30_000).to_string()
        };
        l.push_str(&format!("{k},{},t{}\n", i % 1000, i % 7));
    }
    std::fs::write(dir.join("l.csv"), l).unwrap();
    let mut r = String::from("k,w\n");
    for i in 0..50_000u64 {
        let k = if i % 89 == 0 {
            String::new()
        } else {
            ((i * 3) % 45_000).to_string()
        };
        r.push_str(&format!("{k},{}\n", i % 1300));
    }
    std::fs::write(dir.join("r.csv"), r).unwrap();
}

const QUERIES: &[&str] = &[
    "SELECT count(*), sum(v), sum(w) FROM l JOIN r ON l.k = r.k",
    "SELECT tag, count(*), count(w), sum(w) FROM l LEFT JOIN r ON l.k = r.k GROUP BY tag ORDER BY tag",
    "SELECT count(*), count(v), sum(w) FROM l RIGHT JOIN r ON l.k = r.k",
    "SELECT count(*), count(l.k), count(r.k) FROM l FULL JOIN r ON l.k = r.k",
    "SELECT count(*), sum(v) FROM l WHERE EXISTS (SELECT 1 FROM r WHERE r.k = l.k)",
    "SELECT count(*), sum(v) FROM l WHERE NOT EXISTS (SELECT 1 FROM r WHERE r.k = l.k)",
    "SELECT count(*), sum(w) FROM l JOIN r ON l.k = r.k AND l.v < r.w",
    "SELECT tag, count(*) FROM l WHERE EXISTS (SELECT 1 FROM r WHERE r.k = l.k AND r.w > l.v) \
     OR v < 10 GROUP BY tag ORDER BY tag",
    "SELECT count(*), sum(n), sum(s), sum(d), max(m) FROM \
     (SELECT k, count(*) AS n, sum(v) AS s, count(DISTINCT tag) AS d, min(tag) AS m \
      FROM l GROUP BY k)",
    "SELECT count(*), sum(n), max(f) FROM \
     (SELECT v, tag, count(*) AS n, array_length(array_agg(k)) AS f FROM l GROUP BY v, tag)",
];

/// A memory budget (per process) under which these joins, aggregations and
/// sorts spill.
const SPILLING: u64 = 1 << 20;

#[test]
fn joins_aggregations_and_sorts_past_their_budget_spill_and_match_datafusion() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(dir.path());
    let script = format!(
        "CREATE EXTERNAL TABLE l (k BIGINT, v BIGINT, tag VARCHAR) STORED AS CSV \
         LOCATION '{0}/l.csv' OPTIONS ('has_header' 'true');\n\
         CREATE EXTERNAL TABLE r (k BIGINT, w BIGINT) STORED AS CSV \
         LOCATION '{0}/r.csv' OPTIONS ('has_header' 'true');\n{1}",
        dir.path().display(),
        QUERIES
            .iter()
            .map(|q| format!("{q};\n"))
            .collect::<String>()
    );
    let expected = datafusion(&script);
    assert_eq!(expected.len(), QUERIES.len());
    for workers in 1..=3 {
        let outcomes = run_script(
            timely::Config::process(workers),
            &script,
            None,
            Some(SPILLING),
            None,
        )
        .unwrap();
        let results: Vec<(Vec<Row>, u64)> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Rows(output) => Some((canonical(&output.batches), output.spilled)),
                _ => None,
            })
            .collect();
        for ((query, (got, spilled)), want) in QUERIES.iter().zip(results).zip(&expected) {
            assert!(spilled > 0, "{workers} workers: {query} did not spill");
            assert_eq!(&got, want, "{workers} workers: {query}");
        }
    }
}

/// A join's probe side is read once its build side is complete: its rows
/// are probed as they come, never held in memory waiting (nor spilled), so
/// a budget far smaller than the probe side is enough.
#[test]
fn a_join_reads_its_probe_side_after_its_build_side_and_holds_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(dir.path());
    let small: String = (0..100).map(|i| format!("{},{}\n", i * 7, i % 3)).collect();
    std::fs::write(dir.path().join("s.csv"), format!("k,x\n{small}")).unwrap();
    let script = format!(
        "CREATE EXTERNAL TABLE l (k BIGINT, v BIGINT, tag VARCHAR) STORED AS CSV \
         LOCATION '{0}/l.csv' OPTIONS ('has_header' 'true');\n\
         CREATE EXTERNAL TABLE s (k BIGINT, x BIGINT) STORED AS CSV \
         LOCATION '{0}/s.csv' OPTIONS ('has_header' 'true');\n\
         SELECT x, count(*), sum(v) FROM l JOIN s ON l.k = s.k GROUP BY x ORDER BY x;\n",
        dir.path().display()
    );
    let expected = datafusion(&script);
    for workers in 1..=3 {
        let outcomes = run_script(
            timely::Config::process(workers),
            &script,
            None,
            Some(256 << 10),
            None,
        )
        .unwrap();
        let Some(Outcome::Rows(output)) = outcomes.last() else {
            panic!("no rows: {outcomes:?}");
        };
        assert_eq!(output.spilled, 0, "{workers} workers spilled");
        assert_eq!(canonical(&output.batches), expected[0], "{workers} workers");
    }
}

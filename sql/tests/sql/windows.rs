//! Window functions in `FROM` (`tumble`, `hop`): each query over Nexmark's
//! events matches DataFusion's answer to the same query with its windows
//! spelled out (`date_bin`, one shifted copy of the rows per hopping window)
//! on 1, 2 and 3 workers; bad calls are refused with what is wrong.

use weir_sql::nexmark::generate;
use weir_sql::run_script;

use crate::nexmark::{assert_same, ddl, rows, sorted};
use crate::oracle::{Row, datafusion};

/// A windowing of a table: windows of `size` seconds every `slide` seconds
/// (tumbling if the same), starting `offset` seconds past the epoch.
struct W {
    table: &'static str,
    time: &'static str,
    slide: u32,
    size: u32,
    offset: u32,
}

impl W {
    const fn tumble(table: &'static str, size: u32) -> W {
        W {
            table,
            time: "date_time",
            slide: size,
            size,
            offset: 0,
        }
    }

    /// The call of weir's window function.
    fn call(&self) -> String {
        let (table, time) = (self.table, self.time);
        let offset = match self.offset {
            0 => String::new(),
            o => format!(", INTERVAL '{o}' SECOND"),
        };
        match self.slide == self.size {
            true => format!(
                "tumble({table}, {time}, INTERVAL '{}' SECOND{offset})",
                self.size
            ),
            false => format!(
                "hop({table}, {time}, INTERVAL '{}' SECOND, INTERVAL '{}' SECOND{offset})",
                self.slide, self.size
            ),
        }
    }

    /// The same rows in DataFusion's SQL: a copy of the table per window a
    /// row may fall in, its start from `date_bin`, kept if it holds the row.
    fn spelled_out(&self) -> String {
        let (table, time, slide, size) = (self.table, self.time, self.slide, self.size);
        let copies: Vec<String> = (0..size.div_ceil(slide))
            .map(|k| {
                format!(
                    "SELECT *, date_bin(INTERVAL '{slide} seconds', {time}, \
                     TIMESTAMP '1970-01-01T00:00:00' + INTERVAL '{} seconds') \
                     - INTERVAL '{} seconds' AS window_start FROM {table}",
                    self.offset,
                    k * slide
                )
            })
            .collect();
        format!(
            "(SELECT *, window_start + INTERVAL '{size} seconds' AS window_end FROM ({}) \
             WHERE window_start + INTERVAL '{size} seconds' > {time})",
            copies.join(" UNION ALL ")
        )
    }
}

/// Queries with `{0}`, `{1}` where their windowed tables go.
fn queries() -> Vec<(&'static str, Vec<W>)> {
    let counts = "SELECT auction, CAST(window_start AS VARCHAR) AS ws, \
                  CAST(window_end AS VARCHAR) AS we, count(*) AS n FROM {0} AS w \
                  GROUP BY auction, window_start, window_end";
    vec![
        (counts, vec![W::tumble("bid", 10)]),
        (
            counts,
            vec![W {
                slide: 2,
                ..W::tumble("bid", 10)
            }],
        ),
        // uneven slides, an offset, a filter that runs before the windows
        (
            "SELECT w.auction, CAST(w.window_start AS VARCHAR), sum(w.price) FROM {0} AS w \
             WHERE w.price > 1000 GROUP BY 1, 2",
            vec![W {
                slide: 3,
                size: 7,
                offset: 1,
                ..W::tumble("bid", 0)
            }],
        ),
        (
            "SELECT CAST(window_end AS VARCHAR), max(price) FROM {0} GROUP BY window_end",
            vec![W {
                offset: 3,
                ..W::tumble("bid", 10)
            }],
        ),
        // Nexmark q5: the auctions with the most bids in each hopping window
        (
            "SELECT b.auction, b.num, CAST(b.starttime AS VARCHAR) FROM \
             (SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime \
              FROM {0} GROUP BY auction, window_start, window_end) AS b \
             JOIN (SELECT max(c.num) AS maxn, c.starttime, c.endtime FROM \
              (SELECT count(*) AS num, window_start AS starttime, window_end AS endtime \
               FROM {1} GROUP BY auction, window_start, window_end) AS c \
              GROUP BY c.starttime, c.endtime) AS m \
             ON b.starttime = m.starttime AND b.endtime = m.endtime AND b.num >= m.maxn",
            vec![
                W {
                    slide: 2,
                    ..W::tumble("bid", 10)
                },
                W {
                    slide: 2,
                    ..W::tumble("bid", 10)
                },
            ],
        ),
        // Nexmark q7: the highest bids of each window
        (
            "SELECT b.auction, b.price, b.bidder, CAST(b.date_time AS VARCHAR) FROM bid b \
             JOIN (SELECT max(price) AS maxprice, window_end FROM {0} \
              GROUP BY window_start, window_end) m ON b.price = m.maxprice \
             WHERE b.date_time >= m.window_end - INTERVAL '10' SECOND \
             AND b.date_time < m.window_end",
            vec![W::tumble("bid", 10)],
        ),
        // Nexmark q8: people who opened an auction in the window they joined
        (
            "SELECT p.id, p.name, CAST(p.starttime AS VARCHAR) FROM \
             (SELECT id, name, window_start AS starttime, window_end AS endtime FROM {0} \
              GROUP BY id, name, window_start, window_end) p \
             JOIN (SELECT seller, window_start AS starttime, window_end AS endtime FROM {1} \
              GROUP BY seller, window_start, window_end) a \
             ON p.id = a.seller AND p.starttime = a.starttime AND p.endtime = a.endtime",
            vec![W::tumble("person", 10), W::tumble("auction", 10)],
        ),
        // a query and a WITH query as the windowed table
        (
            "SELECT CAST(window_start AS VARCHAR), count(*), min(auction) FROM {0} GROUP BY 1",
            vec![W::tumble(
                "(SELECT auction, date_time FROM bid WHERE auction % 7 = 0)",
                5,
            )],
        ),
        (
            "WITH big AS (SELECT auction, price, date_time FROM bid WHERE price > 10000) \
             SELECT CAST(window_start AS VARCHAR), count(*) FROM {0} GROUP BY 1",
            vec![W {
                slide: 5,
                ..W::tumble("big", 20)
            }],
        ),
    ]
}

fn fill(template: &str, tables: &[String]) -> String {
    tables
        .iter()
        .enumerate()
        .fold(template.to_string(), |q, (i, t)| {
            q.replace(&format!("{{{i}}}"), t)
        })
}

#[test]
fn window_functions_match_their_windows_spelled_out_on_1_2_and_3_workers() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 20_000, 2).unwrap();
    let queries = queries();
    let ours: Vec<String> = queries
        .iter()
        .map(|(q, w)| fill(q, &w.iter().map(W::call).collect::<Vec<_>>()))
        .collect();
    let theirs: String = queries
        .iter()
        .map(|(q, w)| {
            let tables: Vec<String> = w.iter().map(W::spelled_out).collect();
            format!("{};\n", fill(q, &tables))
        })
        .collect();
    let expected: Vec<Vec<Row>> = datafusion(&(ddl(dir.path()) + &theirs))
        .into_iter()
        .map(sorted)
        .collect();
    assert!(
        expected.iter().all(|rows| !rows.is_empty()),
        "every query has rows"
    );
    for workers in 1..=3 {
        assert_same(workers, &ours, rows(dir.path(), &ours, workers), &expected);
    }
}

#[test]
fn a_bad_window_call_is_refused_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 100, 1).unwrap();
    let cases = [
        ("tumble(bid, price, INTERVAL '1' SECOND)", "the time column"),
        (
            "tumble(bid, date_time)",
            "tumble(table, time, size [, offset]): called with 2",
        ),
        ("tumble(bid, date_time, INTERVAL '1' MONTH)", "argument 3"),
        (
            "tumble(bid, date_time, 10)",
            "not an interval of days or less",
        ),
        (
            "tumble(nowhere, date_time, INTERVAL '1' SECOND)",
            "table 'nowhere' not found",
        ),
        ("tumble(bid, nothing, INTERVAL '1' SECOND)", "nothing"),
        (
            "hop(bid, date_time, INTERVAL '0' SECOND, INTERVAL '1' SECOND)",
            "argument 3 is not positive",
        ),
        (
            "hop(bid, date_time, INTERVAL '1' SECOND, INTERVAL '1.5' MILLISECOND)",
            "argument 4 is not a whole number",
        ),
        (
            "tumble(1 + 1, date_time, INTERVAL '1' SECOND)",
            "is not a table or a query",
        ),
        (
            "tumble((SELECT date_time AS window_end FROM bid), window_end, INTERVAL '1' SECOND)",
            "has a column window_end already",
        ),
    ];
    for (call, needle) in cases {
        let script = format!("{}SELECT count(*) FROM {call};", ddl(dir.path()));
        let err = run_script(timely::Config::thread(), &script, None, None, None)
            .err()
            .unwrap_or_else(|| panic!("{call} ran"));
        let message = err.to_string();
        assert!(message.contains(needle), "{call}: {message} lacks {needle}");
    }
}

#[test]
fn the_table_api_windows_give_the_rows_of_the_sql_windows() {
    use std::time::Duration;
    use weir_sql::table::{Context, prelude::*};

    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 5_000, 1).unwrap();
    let mut ctx = Context::default();
    let bid = ctx.parquet("bid", dir.path().join("bid")).unwrap();
    let counts = |t: weir_sql::table::Table| {
        let output = t
            .aggregate(
                vec![col("auction"), col("window_start"), col("window_end")],
                vec![count(lit(1))],
            )
            .unwrap()
            .collect(timely::Config::process(2))
            .unwrap();
        sorted(crate::oracle::canonical(&output.batches))
    };
    let secs = Duration::from_secs;
    let tumbled = counts(bid.clone().tumble("date_time", secs(10)).unwrap());
    let hopped = counts(bid.clone().hop("date_time", secs(2), secs(10)).unwrap());
    let sql = [
        "SELECT auction, window_start, window_end, count(*) FROM \
         tumble(bid, date_time, INTERVAL '10' SECOND) GROUP BY 1, 2, 3",
        "SELECT auction, window_start, window_end, count(*) FROM \
         hop(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) GROUP BY 1, 2, 3",
    ];
    let expected = rows(dir.path(), &sql, 1);
    assert!(!tumbled.is_empty() && hopped.len() > tumbled.len());
    assert_eq!(tumbled, sorted(expected[0].clone()));
    assert_eq!(hopped, sorted(expected[1].clone()));
    let err = bid
        .tumble("date_time", Duration::from_micros(1_500))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("not a positive whole number"),
        "{err}"
    );
}

//! Window functions in `FROM` (`tumble`, `hop`): each query over Nexmark's
//! events matches DataFusion's answer to the same query with its windows
//! spelled out (`date_bin`, one shifted copy of the rows per hopping window)
//! on 1, 2 and 3 workers; bad calls are refused with what is wrong.

use weir_sql::nexmark::generate;
use weir_sql::run_script;

use crate::nexmark::{assert_same, ddl, rows, sorted};
use crate::oracle::{Row, datafusion};

/// A windowing of a table: windows of `size` milliseconds every `slide`
/// (tumbling if the same), starting `offset` past the epoch; or
/// with `session` keys, session windows of gap `size`.
struct W {
    table: &'static str,
    time: &'static str,
    slide: u32,
    size: u32,
    offset: u32,
    session: Option<&'static str>,
}

impl W {
    const fn tumble(table: &'static str, size: u32) -> W {
        W {
            table,
            time: "date_time",
            slide: size,
            size,
            offset: 0,
            session: None,
        }
    }

    const fn session(table: &'static str, gap: u32, keys: &'static str) -> W {
        W {
            session: Some(keys),
            ..W::tumble(table, gap)
        }
    }

    /// The call of weir's window function.
    fn call(&self) -> String {
        let (table, time) = (self.table, self.time);
        if let Some(keys) = self.session {
            let keys = match keys {
                "" => String::new(),
                keys => format!(", {keys}"),
            };
            return format!(
                "session({table}, {time}, INTERVAL '{}' MILLISECOND{keys})",
                self.size
            );
        }
        let offset = match self.offset {
            0 => String::new(),
            o => format!(", INTERVAL '{o} milliseconds'"),
        };
        match self.slide == self.size {
            true => format!(
                "tumble({table}, {time}, INTERVAL '{}' MILLISECOND{offset})",
                self.size
            ),
            false => format!(
                "hop({table}, {time}, INTERVAL '{}' MILLISECOND, INTERVAL '{}' MILLISECOND{offset})",
                self.slide, self.size
            ),
        }
    }

    /// The same rows in DataFusion's SQL: a copy of the table per window a
    /// row may fall in, its start from `date_bin`, kept if it holds the row.
    fn spelled_out(&self) -> String {
        let (table, time, slide, size) = (self.table, self.time, self.slide, self.size);
        if let Some(keys) = self.session {
            return session_spelled_out(table, time, size, keys);
        }
        let copies: Vec<String> = (0..size.div_ceil(slide))
            .map(|k| {
                format!(
                    "SELECT *, date_bin(INTERVAL '{slide} milliseconds', {time}, \
                     TIMESTAMP '1970-01-01T00:00:00' + INTERVAL '{} milliseconds') \
                     - INTERVAL '{} milliseconds' AS window_start FROM {table}",
                    self.offset,
                    k * slide
                )
            })
            .collect();
        format!(
            "(SELECT *, window_start + INTERVAL '{size} milliseconds' AS window_end FROM ({}) \
             WHERE window_start + INTERVAL '{size} milliseconds' > {time})",
            copies.join(" UNION ALL ")
        )
    }
}

/// Session windows in DataFusion's SQL: a session starts at a row more
/// than the gap after its key's previous one.
fn session_spelled_out(table: &str, time: &str, gap: u32, keys: &str) -> String {
    let by = |more: &str| match (keys, more) {
        ("", "") => String::new(),
        ("", more) => format!("PARTITION BY {more}"),
        (keys, "") => format!("PARTITION BY {keys}"),
        (keys, more) => format!("PARTITION BY {keys}, {more}"),
    };
    let (keyed, sessions) = (by(""), by("sid"));
    format!(
        "(SELECT *, min({time}) OVER ({sessions}) AS window_start, \
          max({time}) OVER ({sessions}) + INTERVAL '{gap} milliseconds' AS window_end FROM \
          (SELECT *, sum(CASE WHEN prev IS NULL \
             OR CAST({time} AS BIGINT) - CAST(prev AS BIGINT) > {gap} THEN 1 ELSE 0 END) \
             OVER ({keyed} ORDER BY {time} ROWS UNBOUNDED PRECEDING) AS sid FROM \
           (SELECT *, lag({time}) OVER ({keyed} ORDER BY {time}) AS prev FROM {table} \
            WHERE {time} IS NOT NULL)))"
    )
}

/// Queries with `{0}`, `{1}` where their windowed tables go.
fn queries() -> Vec<(&'static str, Vec<W>)> {
    let counts = "SELECT auction, CAST(window_start AS VARCHAR) AS ws, \
                  CAST(window_end AS VARCHAR) AS we, count(*) AS n FROM {0} AS w \
                  GROUP BY auction, window_start, window_end";
    vec![
        (counts, vec![W::tumble("bid", 100)]),
        (
            counts,
            vec![W {
                slide: 20,
                ..W::tumble("bid", 100)
            }],
        ),
        // uneven slides, an offset, a filter that runs before the windows
        (
            "SELECT w.auction, CAST(w.window_start AS VARCHAR), sum(w.price) FROM {0} AS w \
             WHERE w.price > 1000 GROUP BY 1, 2",
            vec![W {
                slide: 30,
                size: 70,
                offset: 10,
                ..W::tumble("bid", 0)
            }],
        ),
        (
            "SELECT CAST(window_end AS VARCHAR), max(price) FROM {0} GROUP BY window_end",
            vec![W {
                offset: 30,
                ..W::tumble("bid", 100)
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
                    slide: 20,
                    ..W::tumble("bid", 100)
                },
                W {
                    slide: 20,
                    ..W::tumble("bid", 100)
                },
            ],
        ),
        // Nexmark q7: the highest bids of each window
        (
            "SELECT b.auction, b.price, b.bidder, CAST(b.date_time AS VARCHAR) FROM bid b \
             JOIN (SELECT max(price) AS maxprice, window_end FROM {0} \
              GROUP BY window_start, window_end) m ON b.price = m.maxprice \
             WHERE b.date_time >= m.window_end - INTERVAL '100' MILLISECOND \
             AND b.date_time < m.window_end",
            vec![W::tumble("bid", 100)],
        ),
        // Nexmark q8: people who opened an auction in the window they joined
        (
            "SELECT p.id, p.name, CAST(p.starttime AS VARCHAR) FROM \
             (SELECT id, name, window_start AS starttime, window_end AS endtime FROM {0} \
              GROUP BY id, name, window_start, window_end) p \
             JOIN (SELECT seller, window_start AS starttime, window_end AS endtime FROM {1} \
              GROUP BY seller, window_start, window_end) a \
             ON p.id = a.seller AND p.starttime = a.starttime AND p.endtime = a.endtime",
            vec![W::tumble("person", 100), W::tumble("auction", 100)],
        ),
        // a query and a WITH query as the windowed table
        (
            "SELECT CAST(window_start AS VARCHAR), count(*), min(auction) FROM {0} GROUP BY 1",
            vec![W::tumble(
                "(SELECT auction, date_time FROM bid WHERE auction % 7 = 0)",
                50,
            )],
        ),
        // session windows: by key, by two keys, over all rows
        (counts, vec![W::session("bid", 20, "auction")]),
        (
            "SELECT bidder, CAST(window_start AS VARCHAR), CAST(window_end AS VARCHAR), \
             count(*), max(price) FROM {0} GROUP BY bidder, window_start, window_end",
            vec![W::session("bid", 50, "bidder, auction % 3")],
        ),
        (
            "SELECT CAST(window_start AS VARCHAR), CAST(window_end AS VARCHAR), count(*) \
             FROM {0} GROUP BY 1, 2",
            vec![W::session(
                "(SELECT date_time FROM bid WHERE price % 10 < 2)",
                2,
                "",
            )],
        ),
        (
            "WITH big AS (SELECT auction, price, date_time FROM bid WHERE price > 10000) \
             SELECT CAST(window_start AS VARCHAR), count(*) FROM {0} GROUP BY 1",
            vec![W {
                slide: 50,
                ..W::tumble("big", 200)
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
        (
            "session(bid, date_time, INTERVAL '1' SECOND, nothing)",
            "nothing",
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
    // session windows hold their rows, within the budget
    let script = format!(
        "{}SELECT count(*) FROM session(bid, date_time, INTERVAL '1' SECOND, bidder);",
        ddl(dir.path())
    );
    let err = run_script(timely::Config::thread(), &script, None, Some(1_000), None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("session windows holds"), "{err}");
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
    let millis = Duration::from_millis;
    let tumbled = counts(bid.clone().tumble("date_time", millis(100)).unwrap());
    let hopped = counts(
        bid.clone()
            .hop("date_time", millis(20), millis(100))
            .unwrap(),
    );
    let sessions = counts(
        bid.clone()
            .session("date_time", millis(20), vec![col("auction")])
            .unwrap(),
    );
    let sql = [
        "SELECT auction, window_start, window_end, count(*) FROM \
         tumble(bid, date_time, INTERVAL '100' MILLISECOND) GROUP BY 1, 2, 3",
        "SELECT auction, window_start, window_end, count(*) FROM \
         hop(bid, date_time, INTERVAL '20' MILLISECOND, INTERVAL '100' MILLISECOND) GROUP BY 1, 2, 3",
        "SELECT auction, window_start, window_end, count(*) FROM \
         session(bid, date_time, INTERVAL '20' MILLISECOND, auction) GROUP BY 1, 2, 3",
    ];
    let expected = rows(dir.path(), &sql, 1);
    assert!(!tumbled.is_empty() && hopped.len() > tumbled.len());
    assert_eq!(tumbled, sorted(expected[0].clone()));
    assert_eq!(hopped, sorted(expected[1].clone()));
    assert_eq!(sessions, sorted(expected[2].clone()));
    let err = bid
        .tumble("date_time", Duration::from_micros(1_500))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("not a positive whole number"),
        "{err}"
    );
}

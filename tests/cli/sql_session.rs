//! `weir sql` without `-e` or `-f`: statements piped in, the session going
//! on after an error; and TEXT tables, whose lines `unnest` splits.

use std::collections::BTreeMap;
use std::path::Path;

use crate::sql::{fails, script, tables, write_orders};
use crate::support::{path, run, run_with_input, stderr, two_processes};

/// A piped session prints the tables `-f` prints, names a bad statement
/// and goes on past it, and exits 1 at the end because one failed.
#[test]
fn sql_session_reads_piped_statements_and_goes_on_after_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(dir.path());
    let file = dir.path().join("q.sql");
    let script = script(dir.path());
    std::fs::write(&file, &script).unwrap();
    let batch = run(&["sql", "-f", path(&file)]);
    assert!(batch.status.success(), "{}", stderr(&batch));
    let expected = tables(&batch);

    // the error between the second and third statements
    let mut statements: Vec<&str> = script.split_inclusive(";\n").collect();
    statements.insert(2, "SELECT nope\n  FROM orders;\n");
    let input = statements.concat();
    let one = run_with_input(&["sql"], &input);
    assert_eq!(one.status.code(), Some(1), "{}", stderr(&one));
    assert_eq!(tables(&one), expected);
    let err = stderr(&one);
    assert!(err.contains("nope"), "{err}");
    assert!(err.contains("1 statement(s) failed"), "{err}");

    let (zero, other) = two_processes(dir.path(), &["sql"], Some(&input));
    assert_eq!(zero.status.code(), Some(1), "{}", stderr(&zero));
    assert!(other.status.success(), "{}", stderr(&other));
    assert_eq!(tables(&zero), expected);
    assert_eq!(tables(&other), "", "only process 0 prints");

    // `\q` ends a session: what follows it is not run
    let quit = run_with_input(&["sql"], &format!("{}\\q\nSELECT nope;\n", script));
    assert!(quit.status.success(), "{}", stderr(&quit));
    assert_eq!(tables(&quit), expected);
    let empty = run_with_input(&["sql", "-w", "2"], "");
    assert!(empty.status.success(), "{}", stderr(&empty));
    assert!(empty.stdout.is_empty());
}

/// Seeded lines of words over two files; returns each word's count.
fn write_lines(dir: &Path) -> BTreeMap<String, usize> {
    let words = ["weir", "timely", "frontier", "batch", "stream", "arrow"];
    let mut counts = BTreeMap::new();
    std::fs::create_dir(dir.join("text")).unwrap();
    for part in 0..2 {
        let mut text = String::new();
        for line in 0..700 {
            let n = (line * 7 + part) % 5;
            let line: Vec<&str> = (0..n)
                .map(|w| words[(line + w * 3) % words.len()])
                .collect();
            for word in &line {
                *counts.entry(word.to_string()).or_insert(0) += 1;
            }
            text.push_str(&line.join(" "));
            text.push('\n');
        }
        std::fs::write(dir.join(format!("text/part-{part}.txt")), text).unwrap();
    }
    counts
}

/// A word count over a TEXT table equals one counted in the test, on one
/// worker, three workers and two processes.
#[test]
fn sql_counts_the_words_of_a_text_table() {
    let dir = tempfile::tempdir().unwrap();
    let counts = write_lines(dir.path());
    let sql = format!(
        "CREATE EXTERNAL TABLE docs STORED AS TEXT LOCATION '{}/text/';\n\
         SELECT word, count(*) AS n FROM \
         (SELECT unnest(string_to_array(line, ' ')) AS word FROM docs) \
         WHERE word <> '' GROUP BY word ORDER BY word;",
        path(dir.path())
    );
    let one = run(&["sql", "-e", &sql]);
    assert!(one.status.success(), "{}", stderr(&one));
    let rows: BTreeMap<String, usize> = tables(&one)
        .lines()
        .skip(3)
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_string(), cells[2].parse().unwrap())
        })
        .collect();
    assert_eq!(rows, counts, "{}", tables(&one));
    let three = run(&["sql", "-e", &sql, "-w", "3"]);
    assert_eq!(tables(&three), tables(&one), "{}", stderr(&three));
    let (zero, _) = two_processes(dir.path(), &["sql", "-e", &sql], None);
    assert_eq!(tables(&zero), tables(&one), "{}", stderr(&zero));
}

#[test]
fn sql_text_table_with_two_columns_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_lines(dir.path());
    fails(
        dir.path(),
        "CREATE EXTERNAL TABLE docs (a VARCHAR, b VARCHAR) STORED AS TEXT LOCATION 'text/'",
        "table docs: a TEXT table has one column",
    );
}

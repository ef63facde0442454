//! The Table API's `weir join` and `weir wordcount` (sql/examples/) give the
//! rows of the hand-written jobs, on 1 and 3 workers.

use weir_dataflows::jobs::join::{self, JoinSpec, Side};
use weir_runtime::exec::JobOptions;
use weir_runtime::generate::{Generator, TableSpec};
use weir_runtime::input::LineInput;

#[path = "../../examples/join.rs"]
mod example;
#[path = "../../examples/wordcount.rs"]
mod wordcount_example;

fn table(dir: &std::path::Path, name: &str, rows: u64, seed: u64) -> std::path::PathBuf {
    let generator = Generator::Table(TableSpec {
        rows,
        keys: 3_000,
        columns: 4,
        delimiter: b'\t',
        seed,
    });
    let maker = generator.maker();
    let mut text = String::new();
    let mut line = String::new();
    for i in 0..generator.lines() {
        maker.line(i, &mut line);
        text.push_str(&line);
        text.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_table_api_join_example_gives_the_join_jobs_rows() {
    let dir = tempfile::tempdir().unwrap();
    let left = table(dir.path(), "left.tsv", 4_000, 1);
    let right = table(dir.path(), "right.tsv", 6_000, 2);
    let side = |path: &std::path::Path| Side {
        input: LineInput::Files(vec![path.to_path_buf()]),
        key: 0,
        delimiter: b'\t',
    };
    let spec = JoinSpec {
        left: side(&left),
        right: side(&right),
        ship: None,
        local: None,
        memory_budget: 1 << 30,
        spill_dir: None,
    };
    let options = JobOptions {
        show: 1_000_000,
        ..Default::default()
    };
    let (summary, _) = join::run(timely::Config::process(2), spec, &options).unwrap();
    let mut expected = summary.records.unwrap();
    expected.sort();
    assert!(
        expected.len() > 1000,
        "a join with rows: {}",
        expected.len()
    );
    for workers in [1, 3] {
        let mut got =
            example::join(&left, &right, (0, 0), 4, timely::Config::process(workers)).unwrap();
        got.sort();
        assert_eq!(got.len(), expected.len(), "{workers} workers");
        assert!(got == expected, "{workers} workers: the rows differ");
    }
}

#[test]
fn the_table_api_wordcount_example_gives_the_wordcount_jobs_rows() {
    use weir_dataflows::jobs::wordcount;
    let dir = tempfile::tempdir().unwrap();
    let generator = Generator::Text(weir_runtime::generate::TextSpec {
        lines: 3_000,
        max_words: 12,
        vocabulary: 500,
        seed: 7,
    });
    let maker = generator.maker();
    let mut text = String::from("Straße, ÉCOLE; \"quoted\"\tTabbed x2\n\n  \n");
    let mut line = String::new();
    for i in 0..generator.lines() {
        maker.line(i, &mut line);
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(dir.path().join("a.txt"), &text).unwrap();
    std::fs::write(
        dir.path().join("b"),
        "straße Straße, école\nlast line without newline",
    )
    .unwrap();
    let input = LineInput::Files(vec![dir.path().join("a.txt"), dir.path().join("b")]);
    let options = JobOptions {
        show: 1_000_000,
        ..Default::default()
    };
    let summary = wordcount::run(timely::Config::process(2), input, &options).unwrap();
    let mut expected = summary.records.unwrap();
    expected.sort();
    assert!(expected.len() > 400, "words: {}", expected.len());
    assert!(expected.contains(&"straße\t3".to_string()), "{expected:?}");
    for workers in [1, 3] {
        let mut got =
            wordcount_example::word_count(dir.path(), timely::Config::process(workers)).unwrap();
        got.sort();
        assert!(got == expected, "{workers} workers: the counts differ");
    }
}

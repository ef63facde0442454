//! The Table API's `weir join` (sql/examples/join.rs) gives the rows of the
//! hand-written join job, on 1 and 3 workers.

use weir_dataflows::jobs::join::{self, JoinSpec, Side};
use weir_runtime::exec::JobOptions;
use weir_runtime::generate::{Generator, TableSpec};
use weir_runtime::input::LineInput;

#[path = "../../examples/join.rs"]
mod example;

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

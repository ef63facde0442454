use std::io::Write;
use std::path::{Path, PathBuf};

use weir_dataflows::jobs::join::{self, JoinSpec, Local, Ship, Side};
use weir_runtime::input::LineInput;

use crate::common::{all_records, on_every_layout};

/// A CSV file with quoted fields and a TSV file, sharing some keys; duplicate keys
/// on both sides, keys present on one side only, and an empty line.
fn write_inputs(dir: &Path, left_rows: usize, right_rows: usize) -> (PathBuf, PathBuf) {
    let left = dir.join("left.csv");
    let right = dir.join("right.tsv");
    let mut l = std::fs::File::create(&left).unwrap();
    for i in 0..left_rows {
        let key = (i * 13) % 97;
        writeln!(l, "{i},\"name, {i}\",k{key}").unwrap();
        if i == left_rows / 2 {
            writeln!(l).unwrap();
        }
    }
    let mut r = std::fs::File::create(&right).unwrap();
    for i in 0..right_rows {
        let key = (i * 7) % 131; // keys 97..130 never match
        writeln!(r, "k{key}\tright {i}").unwrap();
    }
    (left, right)
}

fn spec(left: &Path, right: &Path, ship: Ship, local: Local, budget: u64) -> JoinSpec {
    JoinSpec {
        left: Side {
            input: LineInput::Files(vec![left.to_path_buf()]),
            key: 2,
            delimiter: join::delimiter_for(left),
        },
        right: Side {
            input: LineInput::Files(vec![right.to_path_buf()]),
            key: 0,
            delimiter: join::delimiter_for(right),
        },
        ship: Some(ship),
        local: Some(local),
        memory_budget: budget,
        spill_dir: None,
    }
}

#[test]
fn every_strategy_matches_reference_on_every_layout_with_and_without_spilling() {
    let dir = tempfile::tempdir().unwrap();
    let (left, right) = write_inputs(dir.path(), 1_500, 700);
    let spill = tempfile::tempdir().unwrap();
    for ship in [Ship::Broadcast, Ship::Repartition] {
        for local in [Local::Hash, Local::SortMerge] {
            for budget in [1u64 << 30, 6_000] {
                let mut spec = spec(&left, &right, ship, local, budget);
                spec.spill_dir = Some(spill.path().to_path_buf());
                let want = join::reference(&spec).unwrap();
                assert!(want.len() > 1_000, "enough matches to mean something");
                let results = on_every_layout(move |config| {
                    join::run(config, spec.clone(), &all_records()).map(|(summary, _)| summary)
                });
                for (layout, result) in results {
                    let what = format!("{ship}+{local}, budget {budget}, {layout}");
                    let summary = result.unwrap();
                    assert_eq!(summary.records.as_ref(), Some(&want), "{what}");
                    if budget < 10_000 {
                        assert!(summary.spilled_bytes > 0, "{what} must spill");
                    } else {
                        assert_eq!(summary.spilled_bytes, 0, "{what} must not spill");
                    }
                }
                assert_eq!(
                    std::fs::read_dir(spill.path()).unwrap().count(),
                    0,
                    "spill files removed"
                );
            }
        }
    }
}

#[test]
fn empty_side_gives_empty_output() {
    let dir = tempfile::tempdir().unwrap();
    let (left, _) = write_inputs(dir.path(), 100, 0);
    let empty = dir.path().join("empty.tsv");
    std::fs::write(&empty, "").unwrap();
    for (l, r) in [(&left, &empty), (&empty, &left)] {
        let mut spec = spec(l, r, Ship::Repartition, Local::Hash, 1 << 30);
        spec.ship = None;
        spec.local = None;
        spec.left.key = 0;
        spec.right.key = 0;
        let results = on_every_layout(move |config| {
            join::run(config, spec.clone(), &all_records()).map(|(summary, _)| summary)
        });
        for (layout, result) in results {
            assert_eq!(result.unwrap().records, Some(vec![]), "{layout}");
        }
    }
}

#[test]
fn missing_key_column_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (left, right) = write_inputs(dir.path(), 50, 50);
    let short = dir.path().join("short.tsv");
    std::fs::write(&short, "k1\tx\nk2\nk3\tz\n").unwrap();
    let mut spec = spec(&left, &short, Ship::Repartition, Local::Hash, 1 << 30);
    spec.right.key = 1;
    let results = on_every_layout(move |config| {
        join::run(config, spec.clone(), &all_records()).map(|(summary, _)| summary)
    });
    let want = format!(
        "{}:2: the row has 1 field, but the key is column 1 (0-based)",
        short.display()
    );
    for (layout, result) in results {
        assert_eq!(result.unwrap_err().to_string(), want, "{layout}");
    }
    let _ = right;
}

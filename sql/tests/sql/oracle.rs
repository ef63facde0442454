//! The oracle: DataFusion's single-process answer (its Python package, from
//! `scripts/sql-oracle.sh`), and weir's answer in the same canonical form.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// A row: every value as text (floats with 7 significant digits), `None`
/// for null.
pub type Row = Vec<Option<String>>;

fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv-sql/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/sql-oracle.sh install (scripts/test.sh does)",
        python.display()
    );
    python
}

/// DataFusion's rows for each query of `sql` (statements separated by
/// ";\n"), in its order.
pub fn datafusion(sql: &str) -> Vec<Vec<Row>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn float(x: f64) -> String {
    let text = format!("{x:.6e}");
    match text.split_once('e') {
        Some((m, e)) => format!("{m}e{}", e.parse::<i32>().unwrap()),
        None => text,
    }
}

/// weir's rows in the oracle's canonical form.
pub fn canonical(batches: &[RecordBatch]) -> Vec<Row> {
    let mut rows = Vec::new();
    let options = FormatOptions::default();
    for batch in batches {
        let columns: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .map(|c| {
                (0..c.len())
                    .map(|i| {
                        if c.is_null(i) {
                            return None;
                        }
                        Some(match c.data_type() {
                            DataType::Float64 => float(c.as_primitive::<Float64Type>().value(i)),
                            DataType::Float32 => {
                                float(f64::from(c.as_primitive::<Float32Type>().value(i)))
                            }
                            _ => ArrayFormatter::try_new(c.as_ref(), &options)
                                .unwrap()
                                .value(i)
                                .to_string(),
                        })
                    })
                    .collect()
            })
            .collect();
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    rows
}

//! `weir join` written with the Table API: the inner equi-join of two
//! delimited files on a key column each, every joined row as the left row
//! then the right row, tab-separated.
//!
//! `cargo run -p weir-sql --example join -- LEFT RIGHT LEFT_KEY RIGHT_KEY COLUMNS`

use std::path::Path;

use weir_sql::table::Context;
use weir_sql::table::prelude::*;

/// The joined rows of `left` and `right` (tab-separated, `columns` each).
pub fn join(
    left: &Path,
    right: &Path,
    keys: (usize, usize),
    columns: usize,
    config: timely::Config,
) -> Result<Vec<String>, weir_sql::SqlError> {
    let names =
        |side: &str| -> Vec<String> { (0..columns).map(|c| format!("{side}{c}")).collect() };
    let (left_names, right_names) = (names("l"), names("r"));
    let mut ctx = Context::default();
    let l: Vec<&str> = left_names.iter().map(String::as_str).collect();
    let r: Vec<&str> = right_names.iter().map(String::as_str).collect();
    let left_table = ctx.text("left", left, b'\t', &l)?;
    let right_table = ctx.text("right", right, b'\t', &r)?;
    let output = left_table
        .join(right_table, JoinType::Inner, &[l[keys.0]], &[r[keys.1]])?
        .collect(config)?;
    let mut lines = Vec::new();
    for batch in &output.batches {
        for i in 0..batch.num_rows() {
            let fields: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| arrow::util::display::array_value_to_string(c, i).unwrap_or_default())
                .collect();
            lines.push(fields.join("\t"));
        }
    }
    Ok(lines)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [left, right, lk, rk, columns] = args.as_slice() else {
        return Err("usage: join LEFT RIGHT LEFT_KEY RIGHT_KEY COLUMNS".into());
    };
    let lines = join(
        Path::new(left),
        Path::new(right),
        (lk.parse()?, rk.parse()?),
        columns.parse()?,
        timely::Config::process(2),
    )?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

//! TPC-H: its eight tables generated as Parquet by the `tpchgen` crates, the
//! DDL that declares them, and the 22 queries (`sql/tpch/qN.sql`, with the
//! specification's validation parameters).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

use crate::error::{Result, SqlError};

/// The tables, in the order the specification lists them.
pub const TABLES: [&str; 8] = [
    "part", "supplier", "partsupp", "customer", "orders", "lineitem", "nation", "region",
];

/// The 22 queries, `QUERIES[n - 1]` being query `n`.
pub const QUERIES: [&str; 22] = [
    include_str!("../tpch/q1.sql"),
    include_str!("../tpch/q2.sql"),
    include_str!("../tpch/q3.sql"),
    include_str!("../tpch/q4.sql"),
    include_str!("../tpch/q5.sql"),
    include_str!("../tpch/q6.sql"),
    include_str!("../tpch/q7.sql"),
    include_str!("../tpch/q8.sql"),
    include_str!("../tpch/q9.sql"),
    include_str!("../tpch/q10.sql"),
    include_str!("../tpch/q11.sql"),
    include_str!("../tpch/q12.sql"),
    include_str!("../tpch/q13.sql"),
    include_str!("../tpch/q14.sql"),
    include_str!("../tpch/q15.sql"),
    include_str!("../tpch/q16.sql"),
    include_str!("../tpch/q17.sql"),
    include_str!("../tpch/q18.sql"),
    include_str!("../tpch/q19.sql"),
    include_str!("../tpch/q20.sql"),
    include_str!("../tpch/q21.sql"),
    include_str!("../tpch/q22.sql"),
];

/// Rows per generated batch.
const BATCH: usize = 8192;

pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> SqlError {
    SqlError::Input {
        location: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes `batches` as the Parquet file `path` (row groups of 256Ki rows).
pub(crate) fn write_parquet(
    path: &Path,
    batches: impl Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>>,
) -> Result<u64> {
    let mut batches = batches.peekable();
    let schema = match batches.peek() {
        None => return Ok(0),
        Some(Ok(first)) => first.schema(),
        Some(Err(e)) => return Err(io(path, e)),
    };
    let file = File::create(path).map_err(|e| io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1 << 18))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| io(path, e))?;
    let mut rows = 0;
    for batch in batches {
        let batch = batch.map_err(|e| io(path, e))?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(|e| io(path, e))?;
    }
    writer.close().map_err(|e| io(path, e))?;
    Ok(rows)
}

/// Generates the tables at scale factor `scale` into `dir/<table>/`, each
/// table in `parts` Parquet files (`part-N.parquet`); returns each table's
/// rows.
pub fn generate(dir: &Path, scale: f64, parts: usize) -> Result<Vec<(&'static str, u64)>> {
    if !(scale > 0.0 && scale.is_finite()) {
        return Err(SqlError::Plan(format!(
            "the scale factor must be a positive number, not {scale}"
        )));
    }
    let parts = parts.max(1);
    let mut counts = Vec::new();
    for table in TABLES {
        let table_dir = dir.join(table);
        std::fs::create_dir_all(&table_dir).map_err(|e| io(&table_dir, e))?;
        // nation and region are fixed: one file
        let n = if matches!(table, "nation" | "region") {
            1
        } else {
            parts
        };
        let mut rows = 0;
        for p in 0..n {
            let path: PathBuf = table_dir.join(format!("part-{p}.parquet"));
            let (part, count) = (p as i32 + 1, n as i32);
            rows += match table {
                "part" => write_parquet(
                    &path,
                    PartArrow::new(PartGenerator::new(scale, part, count)).with_batch_size(BATCH),
                )?,
                "supplier" => write_parquet(
                    &path,
                    SupplierArrow::new(SupplierGenerator::new(scale, part, count))
                        .with_batch_size(BATCH),
                )?,
                "partsupp" => write_parquet(
                    &path,
                    PartSuppArrow::new(PartSuppGenerator::new(scale, part, count))
                        .with_batch_size(BATCH),
                )?,
                "customer" => write_parquet(
                    &path,
                    CustomerArrow::new(CustomerGenerator::new(scale, part, count))
                        .with_batch_size(BATCH),
                )?,
                "orders" => write_parquet(
                    &path,
                    OrderArrow::new(OrderGenerator::new(scale, part, count)).with_batch_size(BATCH),
                )?,
                "lineitem" => write_parquet(
                    &path,
                    LineItemArrow::new(LineItemGenerator::new(scale, part, count))
                        .with_batch_size(BATCH),
                )?,
                "nation" => write_parquet(
                    &path,
                    NationArrow::new(NationGenerator::new(scale, part, count))
                        .with_batch_size(BATCH),
                )?,
                _ => write_parquet(
                    &path,
                    RegionArrow::new(RegionGenerator::new(scale, part, count))
                        .with_batch_size(BATCH),
                )?,
            };
        }
        counts.push((table, rows));
    }
    Ok(counts)
}

/// The statements that declare the tables generated into `dir`.
pub fn ddl(dir: &Path) -> String {
    TABLES
        .iter()
        .map(|t| {
            format!(
                "CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{}';\n",
                dir.join(t).display()
            )
        })
        .collect()
}

//! Which side of a hash join is built: the smaller one, as DataFusion's
//! physical optimizer (`JoinSelection`) chooses from statistics. DataFusion's
//! logical plan keeps the order the query wrote (TPC-H q21 builds 38M
//! `lineitem` rows against one `nation` row at SF 10), so a join whose left
//! side is estimated the larger is swapped: its sides, its keys and its join
//! type, with the columns put back in order after it.
//!
//! The estimate is of rows, since a built row costs its index entry
//! whatever its width: a Parquet scan's rows from its files' footers (other
//! formats' from their bytes), a fifth of them past a filter (DataFusion's
//! default selectivity), half past a grouped aggregation. A join of
//! foreign keys keeps the rows of its larger side that the other side's
//! filters let through. It only has to rank two sides.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use datafusion_common::JoinType;
use datafusion_expr::LogicalPlan;
use datafusion_expr::logical_plan::Join;
use datafusion_physical_expr::expressions::Column;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::Node;
use crate::catalog::{Catalog, Format, Table};
use crate::error::Result;

/// What a filter keeps.
const SELECTIVITY: f64 = 0.2;
/// A build side goes to every worker if the probe side has this many times
/// its rows: broadcasting moves fewer rows than routing both sides on up
/// to this many workers plus one.
const BROADCAST_RATIO: f64 = 4.0;
/// ... and if it has at most this many rows (every worker holds them all).
const BROADCAST_ROWS: f64 = 1_000_000.0;
/// Bytes of a text row, per column, for tables without footers.
const TEXT_COLUMN_BYTES: f64 = 16.0;

/// Estimated rows a plan produces, and the fraction of its base tables'
/// rows that its filters keep.
#[derive(Clone, Copy)]
struct Estimate {
    rows: f64,
    kept: f64,
}

impl Estimate {
    fn filtered(self) -> Estimate {
        Estimate {
            rows: self.rows * SELECTIVITY,
            kept: self.kept * SELECTIVITY,
        }
    }

    fn derived(rows: f64) -> Estimate {
        Estimate { rows, kept: 1.0 }
    }
}

/// The rows of `table`'s files.
fn table_rows(table: &Table) -> f64 {
    let footer_rows = |f: &std::path::PathBuf| -> Option<f64> {
        let reader = SerializedFileReader::new(File::open(f).ok()?).ok()?;
        Some(reader.metadata().file_metadata().num_rows() as f64)
    };
    let text_rows = |f: &std::path::PathBuf| -> Option<f64> {
        let bytes = std::fs::metadata(f).ok()?.len() as f64;
        Some(bytes / (TEXT_COLUMN_BYTES * table.schema.fields().len().max(1) as f64))
    };
    // a stream has no end: a bounded side of a join with it is the built one
    if table.unbounded {
        return f64::MAX;
    }
    if let Format::Nexmark(nexmark) = table.format {
        // 1 person, 3 auctions and 46 bids in every 50 events
        let share = [1.0, 3.0, 46.0][nexmark.table.min(2)] / 50.0;
        return nexmark.events.map_or(f64::MAX, |e| e as f64 * share);
    }
    table
        .files
        .iter()
        .filter_map(|f| match table.format {
            Format::Parquet => footer_rows(f),
            _ => text_rows(f),
        })
        .sum()
}

/// The estimates of one plan's translation: each table's rows read once
/// (from its footers), however many joins sit above its scans.
pub(super) struct Sizes<'a> {
    catalog: &'a Catalog,
    rows: RefCell<HashMap<String, f64>>,
}

impl<'a> Sizes<'a> {
    pub(super) fn new(catalog: &'a Catalog) -> Sizes<'a> {
        Sizes {
            catalog,
            rows: RefCell::default(),
        }
    }

    fn table_rows(&self, name: &str) -> f64 {
        if let Some(rows) = self.rows.borrow().get(name) {
            return *rows;
        }
        let rows = self.catalog.get(name).map_or(0.0, table_rows);
        self.rows.borrow_mut().insert(name.to_string(), rows);
        rows
    }

    fn estimate(&self, plan: &LogicalPlan) -> Estimate {
        let input = |p: &LogicalPlan| self.estimate(p);
        let inputs = || {
            Estimate::derived(
                plan.inputs()
                    .into_iter()
                    .map(|p| input(p).rows)
                    .sum::<f64>(),
            )
        };
        match plan {
            LogicalPlan::TableScan(scan) => {
                let all = Estimate::derived(self.table_rows(scan.table_name.table()));
                match scan.filters.is_empty() {
                    true => all,
                    false => all.filtered(),
                }
            }
            LogicalPlan::Filter(f) => input(&f.input).filtered(),
            LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => Estimate::derived(1.0),
            LogicalPlan::Aggregate(a) => Estimate::derived(input(&a.input).rows / 2.0),
            LogicalPlan::Distinct(_) => Estimate::derived(inputs().rows / 2.0),
            LogicalPlan::Join(j) => {
                let (l, r) = (input(&j.left), input(&j.right));
                match j.join_type {
                    JoinType::Inner => Estimate {
                        rows: (l.rows * r.kept).max(r.rows * l.kept),
                        kept: l.kept * r.kept,
                    },
                    JoinType::Full => Estimate::derived(l.rows + r.rows),
                    JoinType::LeftSemi => Estimate {
                        rows: l.rows * r.kept,
                        kept: l.kept * r.kept,
                    },
                    JoinType::RightSemi => Estimate {
                        rows: r.rows * l.kept,
                        kept: l.kept * r.kept,
                    },
                    JoinType::Left | JoinType::LeftAnti | JoinType::LeftMark => l,
                    JoinType::Right | JoinType::RightAnti | JoinType::RightMark => r,
                }
            }
            LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => Estimate::derived(1.0),
            LogicalPlan::Projection(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::SubqueryAlias(_) => {
                plan.inputs().first().map_or_else(inputs, |p| input(p))
            }
            _ => inputs(),
        }
    }

    /// Which side of `join` to build, and whether to send it to every
    /// worker: the right side if it is estimated the smaller (NOT IN needs
    /// its right keys all at once; a right mark join does not run); to every
    /// worker, leaving the probe side where it is read, only if the join
    /// owes nothing for build rows that no probe row matched, has keys, and
    /// the build side is small beside the probe side.
    pub(super) fn sides(&self, join: &Join) -> Sides {
        let (left, right) = (
            self.estimate(&join.left).rows,
            self.estimate(&join.right).rows,
        );
        let swap = !join.null_aware
            && !matches!(join.join_type, JoinType::LeftMark | JoinType::RightMark)
            && left > right;
        let (build, probe, join_type) = match swap {
            false => (left, right, join.join_type),
            true => (right, left, join.join_type.swap()),
        };
        let owes_nothing = matches!(
            join_type,
            JoinType::Inner | JoinType::Right | JoinType::RightSemi | JoinType::RightAnti
        );
        let broadcast = owes_nothing
            && !join.null_aware
            && !join.on.is_empty()
            && build <= BROADCAST_ROWS
            && build * BROADCAST_RATIO <= probe;
        Sides { swap, broadcast }
    }
}

/// How a join uses its sides.
pub(super) struct Sides {
    /// Its right side is built, not its left.
    pub(super) swap: bool,
    /// Its build side goes to every worker.
    pub(super) broadcast: bool,
}

/// The positions, in a join's output as written (`left` columns of its
/// left side first, `width` in all), of its output's columns with the sides
/// swapped: the right side's first, where both sides' columns come out.
fn swapped_order(join_type: JoinType, width: usize, left: usize) -> Vec<usize> {
    match join_type {
        JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
            (left..width).chain(0..left).collect()
        }
        _ => (0..width).collect(),
    }
}

/// The output schema of a join written as `out` (`left` columns from its
/// left side), with its sides swapped.
pub(super) fn swapped_schema(
    out: &SchemaRef,
    join_type: JoinType,
    left: usize,
) -> Result<SchemaRef> {
    let order = swapped_order(join_type, out.fields().len(), left);
    Ok(Arc::new(out.project(&order)?))
}

/// `node`, a join of the swapped sides, with its columns put back in the
/// order `out` of the join as written (`left` columns of its left side).
pub(super) fn reorder(node: Node, out: SchemaRef, join_type: JoinType, left: usize) -> Node {
    let width = out.fields().len();
    // where the swapped join put each column of the join as written
    let order = swapped_order(join_type, width, width - left);
    if order.iter().enumerate().all(|(i, &at)| i == at) {
        return node;
    }
    let exprs = order
        .iter()
        .zip(out.fields())
        .map(|(&at, f)| Arc::new(Column::new(f.name(), at)) as _)
        .collect();
    Node::Project {
        input: Box::new(node),
        exprs,
        schema: out,
    }
}

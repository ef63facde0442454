//! Which side of a hash join is built: the smaller one, as DataFusion's
//! physical optimizer (`JoinSelection`) chooses from statistics. DataFusion's
//! logical plan keeps the order the query wrote (TPC-H q21 builds 38M
//! `lineitem` rows against one `nation` row at SF 10), so a join whose left
//! side is estimated the larger is swapped: its sides, its keys and its join
//! type, with the columns put back in order after it.
//!
//! The estimate is of bytes: a scan's file bytes scaled to the columns it
//! reads, a fifth of them past a filter (DataFusion's default selectivity),
//! half past a grouped aggregation. It only has to rank two sides.

use std::sync::Arc;

use datafusion_common::JoinType;
use datafusion_expr::LogicalPlan;
use datafusion_expr::logical_plan::Join;
use datafusion_physical_expr::expressions::Column;

use super::Node;
use crate::catalog::Catalog;
use crate::error::Result;

/// What a filter keeps.
const SELECTIVITY: f64 = 0.2;

/// Estimated bytes that `plan` produces.
pub(super) fn estimate(plan: &LogicalPlan, catalog: &Catalog) -> f64 {
    let input = |p: &LogicalPlan| estimate(p, catalog);
    let inputs = || plan.inputs().into_iter().map(input).sum::<f64>();
    match plan {
        LogicalPlan::TableScan(scan) => {
            let Some(table) = catalog.get(scan.table_name.table()) else {
                return 0.0;
            };
            let bytes: u64 = table
                .files
                .iter()
                .filter_map(|f| std::fs::metadata(f).ok())
                .map(|m| m.len())
                .sum();
            let all = table.schema.fields().len().max(1);
            let read = scan.projection.as_ref().map_or(all, Vec::len);
            let mut bytes = bytes as f64 * read as f64 / all as f64;
            if !scan.filters.is_empty() {
                bytes *= SELECTIVITY;
            }
            bytes
        }
        LogicalPlan::Filter(f) => input(&f.input) * SELECTIVITY,
        LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => 0.0,
        LogicalPlan::Aggregate(a) => input(&a.input) / 2.0,
        LogicalPlan::Distinct(_) => inputs() / 2.0,
        LogicalPlan::Join(j) => {
            let (l, r) = (input(&j.left), input(&j.right));
            match j.join_type {
                JoinType::Inner => l.max(r),
                JoinType::Full => l + r,
                JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => l,
                JoinType::Right
                | JoinType::RightSemi
                | JoinType::RightAnti
                | JoinType::RightMark => r,
            }
        }
        LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => 0.0,
        _ => inputs(),
    }
}

/// Whether `join` should build its right side instead of its left.
pub(super) fn swap(join: &Join, catalog: &Catalog) -> bool {
    // NOT IN needs its right keys all at once; a right mark join does not run
    !join.null_aware
        && !matches!(join.join_type, JoinType::LeftMark | JoinType::RightMark)
        && estimate(&join.left, catalog) > estimate(&join.right, catalog)
}

/// `node`, a join of the swapped sides, with its columns put back in the
/// order of the join as written (`left` columns of the left side first),
/// for the join types whose output has both sides' columns.
pub(super) fn reorder(node: Node, join_type: JoinType, left: usize) -> Result<Node> {
    let Node::Join { schema, .. } = &node else {
        return Ok(node);
    };
    if !matches!(
        join_type,
        JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full
    ) {
        return Ok(node);
    }
    let swapped = Arc::clone(schema);
    let right = swapped.fields().len() - left;
    let order: Vec<usize> = (right..right + left).chain(0..right).collect();
    let exprs = order
        .iter()
        .map(|&i| Arc::new(Column::new(swapped.field(i).name(), i)) as _)
        .collect();
    let schema = Arc::new(swapped.project(&order)?);
    Ok(Node::Project {
        input: Box::new(node),
        exprs,
        schema,
    })
}

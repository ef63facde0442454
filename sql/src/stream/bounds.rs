//! Event-time bounds of a streaming plan: how far back a column's values
//! can still go once the watermark of the sources below it has passed a
//! time, and from those, when a join's held rows can no longer meet a row
//! of the other side (Flink derives the same from a window join's window
//! bounds and from an interval join's time predicate).
//!
//! All times are in milliseconds, as the sources' watermarks are.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion_common::ScalarValue;
use datafusion_expr::Operator;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_physical_expr::expressions::{BinaryExpr, Column, Literal};

use super::lookup;
use super::plan::{stream_column, trace};
use crate::plan::{JoinKeys, Node};

/// `Some(d)` when, once the watermark of the sources under `node` is `w`,
/// every later row of `node` has column `c` at `w + d` or after.
pub(crate) fn lower(node: &Node, c: usize) -> Option<i64> {
    match node {
        Node::Scan { table, projection } => {
            let time = table.event_time()?;
            let field = table.schema.field(*projection.get(c)?);
            let millis = matches!(
                field.data_type(),
                DataType::Timestamp(TimeUnit::Millisecond, _)
            );
            (millis && field.name() == time).then_some(0)
        }
        Node::Filter { input, .. } => lower(input, c),
        Node::Project { input, exprs, .. } => {
            lower(input, exprs.get(c)?.downcast_ref::<Column>()?.index())
        }
        Node::Window { input, spec } if !spec.keys_route() => {
            let inputs = spec.schema.fields().len() - 2;
            if c < inputs {
                return lower(input, c);
            }
            let d = lower(input, spec.time)?;
            // a row at `t` lies in windows that start after `t - size` and
            // end after `t`
            match c - inputs {
                0 => Some(d - spec.windows.size()? + 1),
                _ => Some(d + 1),
            }
        }
        Node::Join {
            left,
            right,
            join_type,
            ..
        } if lookup::bounded(left) => lower(right, stream_column(left, *join_type, c)?),
        Node::Aggregate { input, group, .. } => {
            // groups fire once the watermark reaches their window's end:
            // what fires later ends after the watermark
            let column = group.get(c)?.downcast_ref::<Column>()?;
            let past = trace(input, column.index()).ok()??;
            Some(1 - past)
        }
        _ => None,
    }
}

/// When a join's held rows expire: a row of one side can meet no later row
/// of the other once the other side's watermark reaches the smallest of
/// its `column + offset` (over the pairs listed for its side).
#[derive(Debug, Default)]
pub(crate) struct Expiry {
    /// For left rows, against the right side's watermark.
    pub(crate) left: Vec<(usize, i64)>,
    /// For right rows, against the left side's watermark.
    pub(crate) right: Vec<(usize, i64)>,
}

/// `left[a] - right[b]` lies within `[lo, hi]` (either end may be open).
#[derive(Debug, PartialEq)]
struct Gap {
    a: usize,
    b: usize,
    lo: Option<i64>,
    hi: Option<i64>,
}

/// When the rows of a join of `left` and `right` on `on` and `filter`
/// expire; `None` when a side's rows could meet rows of the other side
/// however late (its state would grow without bound).
pub(crate) fn expiry(
    left: &Node,
    right: &Node,
    on: &JoinKeys,
    filter: Option<&Arc<dyn PhysicalExpr>>,
) -> Option<Expiry> {
    let mut gaps = Vec::new();
    for (l, r) in on.left.iter().zip(&on.right) {
        if let (Some(a), Some(b)) = (l.downcast_ref::<Column>(), r.downcast_ref::<Column>()) {
            gaps.push(Gap {
                a: a.index(),
                b: b.index(),
                lo: Some(0),
                hi: Some(0),
            });
        }
    }
    if let Some(filter) = filter {
        let n = schema(left)?.fields().len();
        gaps.extend(conjuncts(filter).filter_map(|e| gap(e, n)));
    }
    let mut expiry = Expiry::default();
    for g in gaps {
        let (Some(da), Some(db)) = (lower(left, g.a), lower(right, g.b)) else {
            continue;
        };
        // a left row at `a` meets right rows with `b <= a - lo`: none once
        // the right watermark `w` has `w + db > a - lo`
        if let Some(lo) = g.lo {
            expiry.left.push((g.a, 1 - lo - db));
        }
        // a right row at `b` meets left rows with `a <= b + hi`
        if let Some(hi) = g.hi {
            expiry.right.push((g.b, hi + 1 - da));
        }
    }
    (!expiry.left.is_empty() && !expiry.right.is_empty()).then_some(expiry)
}

/// The conjuncts of `expr`.
fn conjuncts(
    expr: &Arc<dyn PhysicalExpr>,
) -> Box<dyn Iterator<Item = &Arc<dyn PhysicalExpr>> + '_> {
    match expr.downcast_ref::<BinaryExpr>() {
        Some(b) if *b.op() == Operator::And => {
            Box::new(conjuncts(b.left()).chain(conjuncts(b.right())))
        }
        _ => Box::new(std::iter::once(expr)),
    }
}

/// `expr` as a gap between a left column (of the first `n`) and a right
/// one, if it compares two columns shifted by constant intervals.
fn gap(expr: &Arc<dyn PhysicalExpr>, n: usize) -> Option<Gap> {
    let compare = expr.downcast_ref::<BinaryExpr>()?;
    let (x, p) = shifted(compare.left())?;
    let (y, q) = shifted(compare.right())?;
    // x + p op y + q, so x - y op q - p
    let (a, b, k, op) = match (x < n, y < n) {
        (true, false) => (x, y - n, q - p, *compare.op()),
        (false, true) => (y, x - n, p - q, compare.op().swap()?),
        _ => return None,
    };
    let (lo, hi) = match op {
        Operator::Eq => (Some(k), Some(k)),
        Operator::LtEq => (None, Some(k)),
        Operator::Lt => (None, Some(k - 1)),
        Operator::GtEq => (Some(k), None),
        Operator::Gt => (Some(k + 1), None),
        _ => return None,
    };
    Some(Gap { a, b, lo, hi })
}

/// `expr` as a column plus a constant interval, in milliseconds.
fn shifted(expr: &Arc<dyn PhysicalExpr>) -> Option<(usize, i64)> {
    if let Some(column) = expr.downcast_ref::<Column>() {
        return Some((column.index(), 0));
    }
    let arithmetic = expr.downcast_ref::<BinaryExpr>()?;
    let (column, by) = (arithmetic.left(), arithmetic.right());
    let millis = millis(by.downcast_ref::<Literal>()?.value())?;
    let (c, offset) = shifted(column)?;
    match arithmetic.op() {
        Operator::Plus => Some((c, offset.checked_add(millis)?)),
        Operator::Minus => Some((c, offset.checked_sub(millis)?)),
        _ => None,
    }
}

/// A day-time interval in whole milliseconds.
fn millis(value: &ScalarValue) -> Option<i64> {
    const DAY: i64 = 86_400_000;
    match value {
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(i64::from(v.days) * DAY + i64::from(v.milliseconds))
        }
        ScalarValue::IntervalMonthDayNano(Some(v))
            if v.months == 0 && v.nanoseconds % 1_000_000 == 0 =>
        {
            Some(i64::from(v.days) * DAY + v.nanoseconds / 1_000_000)
        }
        _ => None,
    }
}

/// The columns `node` produces.
pub(crate) fn schema(node: &Node) -> Option<SchemaRef> {
    Some(match node {
        Node::Scan { table, projection } => Arc::new(table.schema.project(projection).ok()?),
        Node::Filter { input, .. } | Node::Sort { input, .. } | Node::Limit { input, .. } => {
            schema(input)?
        }
        Node::Project { schema, .. }
        | Node::Aggregate { schema, .. }
        | Node::Join { schema, .. }
        | Node::Union { schema, .. } => Arc::clone(schema),
        Node::Unnest { spec, .. } => Arc::clone(&spec.schema),
        Node::Window { spec, .. } => Arc::clone(&spec.schema),
        Node::Empty { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Session;

    /// The expiry of each side's row whose time columns are all at `t`,
    /// for the first join of `query`, by the name of each side's first
    /// column.
    fn expiries(query: &str, t: i64) -> Vec<(String, i64)> {
        let mut session = Session::default();
        for table in crate::nexmark::TABLES {
            let ddl = format!(
                "CREATE UNBOUNDED EXTERNAL TABLE {table} STORED AS NEXMARK \
                 LOCATION '{table}' OPTIONS ('events' '100')"
            );
            session.declare_all(&ddl).unwrap();
        }
        let plan = session.plan_stream(query).unwrap();
        let mut node = &plan.plan().root;
        let (left, right, on, filter) = loop {
            node = match node {
                Node::Join {
                    left,
                    right,
                    on,
                    filter,
                    ..
                } => break (left, right, on, filter),
                Node::Project { input, .. } | Node::Filter { input, .. } => input,
                other => panic!("no join: {other:?}"),
            };
        };
        let expiry = super::expiry(left, right, on, filter.as_ref()).unwrap();
        let first = |n: &Node| schema(n).unwrap().field(0).name().clone();
        let least = |rules: &[(usize, i64)]| rules.iter().map(|(_, off)| t + off).min().unwrap();
        vec![
            (first(left), least(&expiry.left)),
            (first(right), least(&expiry.right)),
        ]
    }

    #[test]
    fn an_interval_join_holds_a_row_until_no_later_row_can_meet_it() {
        let mut got = expiries(
            "SELECT * FROM auction a JOIN bid b ON a.id = b.auction \
             AND b.date_time >= a.date_time \
             AND b.date_time < a.date_time + INTERVAL '30' MILLISECOND",
            1000,
        );
        got.sort();
        // an auction at 1000 meets bids of 1000 to 1029, which may come
        // until the bids' watermark reaches 1030; a bid at 1000 meets
        // auctions of 971 to 1000, until the auctions' reaches 1001
        assert_eq!(got, [("auction".into(), 1001), ("id".into(), 1030)]);
    }

    #[test]
    fn a_window_join_holds_a_row_until_the_other_side_fires_its_window() {
        let got = expiries(
            "SELECT * FROM \
             (SELECT id, window_start AS s, window_end AS e \
              FROM tumble(person, date_time, INTERVAL '100' MILLISECOND) \
              GROUP BY id, window_start, window_end) p \
             JOIN (SELECT seller, window_start AS s, window_end AS e \
              FROM tumble(auction, date_time, INTERVAL '100' MILLISECOND) \
              GROUP BY seller, window_start, window_end) a \
             ON p.id = a.seller AND p.s = a.s AND p.e = a.e",
            1000,
        );
        // a row of a window ending at 1000 meets rows of the other side
        // until that side's watermark reaches 1000 and fires its window
        // (its start, also put at 1000 here, would hold it until 1100)
        for (side, expiry) in got {
            assert_eq!(expiry, 1000, "{side}");
        }
    }
}

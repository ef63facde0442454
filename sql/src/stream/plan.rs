//! What streams: a query's plan is checked node by node before it runs,
//! and the windows of aggregations are traced to their sources' event
//! time.

use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use datafusion_common::JoinType;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_physical_expr::expressions::Column;

use std::time::Duration;

use super::insert::Insert;
use super::join::Owes;
use super::kafka::DeadLetters;
use super::{aggregate, bounds, lookup, updating};
use crate::catalog::{Format, Table};
use crate::error::{Result, SqlError};
use crate::plan::{JoinKeys, Node, Plan};
use crate::settings::{STATE_TTL, Settings};

/// A streaming query, checked to stream.
pub struct StreamPlan {
    pub(super) plan: Plan,
    /// How long a join without a time bound holds a row (`SET
    /// table.exec.state.ttl`).
    pub(super) state_ttl: Option<Duration>,
    /// The table it inserts its rows into, if it does.
    pub(super) into: Option<Insert>,
    /// The table late rows go to, if any.
    pub(super) late: Option<Insert>,
    /// The sinks of the dead letters of the Kafka tables it reads.
    pub(super) dead: Vec<DeadLetters>,
}

impl StreamPlan {
    /// `plan` if every node of it streams under `settings` (and `into`, the
    /// table it inserts into if any, takes its rows; and `late`, the table
    /// of late rows if any, takes those); otherwise what does not.
    pub fn new(
        plan: Plan,
        (into, late): (Option<Table>, Option<Table>),
        settings: &Settings,
    ) -> Result<StreamPlan> {
        let state_ttl = settings.state_ttl;
        check(&plan.root, state_ttl.is_some())?;
        let into_table = into.as_ref().map(|t| t.name.clone());
        let mut into = into
            .map(|table| Insert::new(&table, Some(plan.schema.fields().len())))
            .transpose()?;
        if let Some(into) = &mut into
            && updating(&plan.root)
        {
            into.take_updates(unique_key(&plan.root))?;
        }
        let late = late
            .map(|table| Ok::<_, SqlError>((Insert::new(&table, None)?, table.name)))
            .transpose()?;
        if let (Some(into), Some(into_table), Some((late, late_table))) = (&into, into_table, &late)
            && late.same_target(into)
        {
            return Err(SqlError::Plan(format!(
                "{}: the query inserts its rows into {into_table}, which writes where {late_table}, \
                 the table of late rows, does ({})",
                crate::settings::LATE_ROWS,
                late.target()
            )));
        }
        let late = late.map(|(late, _)| late);
        let dead = dead_letters(&plan.root)?;
        Ok(StreamPlan {
            plan,
            state_ttl,
            into,
            late,
            dead,
        })
    }

    /// Its plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether its rows are updates: its results change as rows come, and
    /// each row ends with an `op` column (`+I`, `-U`, `+U`, `-D`).
    pub fn updating(&self) -> bool {
        updating(&self.plan.root)
    }

    /// Where it inserts its rows (a Kafka topic, a directory), if it does.
    pub fn inserts_into(&self) -> Option<String> {
        self.into.as_ref().map(Insert::target)
    }
}

/// The sinks of the dead letters of the Kafka tables that `node` reads
/// (each named after its table: one that names a dead-letter topic may be
/// read once).
fn dead_letters(node: &Node) -> Result<Vec<DeadLetters>> {
    let mut scans = Vec::new();
    let mut nodes = vec![node];
    while let Some(n) = nodes.pop() {
        if let Node::Scan { table, .. } = n
            && let Format::Kafka(kafka) = &table.format
        {
            scans.extend(DeadLetters::of(table, kafka));
        }
        nodes.extend(n.inputs());
    }
    let mut names = std::collections::BTreeSet::new();
    for dead in &scans {
        if !names.insert(dead.name.clone()) {
            return Err(SqlError::Unsupported(format!(
                "a query that reads a table with a dead-letter topic twice ({})",
                dead.name
            )));
        }
    }
    Ok(scans)
}

/// Whether `node` streams (joins without a time bound do when rows have a
/// time to live, `ttl`).
fn check(node: &Node, ttl: bool) -> Result<()> {
    let refuse = |what: &str| {
        Err(SqlError::Unsupported(format!(
            "{what} in a streaming query (filters, projections, unnest, \
             tumble, hop and session windows, aggregations grouped by them, and \
             window, interval, lookup and regular joins stream so far)"
        )))
    };
    match node {
        Node::Scan { table, .. } => match table.format {
            Format::Nexmark(_) | Format::Kafka(_) if table.unbounded => Ok(()),
            _ if table.stream.is_some() => Ok(()),
            _ => refuse(&format!("the bounded table {}", table.name)),
        },
        Node::Filter { input, .. } | Node::Project { input, .. } => check(input, ttl),
        Node::Unnest { input, .. } | Node::Window { input, .. } if updating(input) => {
            refuse("unnest or a window over updating results")
        }
        Node::Unnest { input, .. } => check(input, ttl),
        Node::Window { input, spec } => {
            if spec.keys_route() && bounds::lower(input, spec.time).is_none() {
                return Err(not_event_time(spec));
            }
            check(input, ttl)
        }
        Node::Union { .. } => refuse("UNION"),
        Node::Aggregate {
            input, aggregates, ..
        } if updating(input) => match aggregates.iter().find(|a| !updating::retractable(a)) {
            Some(a) => refuse(&format!(
                "{} over updating results (COUNT, SUM, AVG, MIN and MAX without \
                 DISTINCT take rows back)",
                a.function.name()
            )),
            None => check(input, ttl),
        },
        Node::Aggregate { input, group, .. } => match window_of(input, group)? {
            Some(_) => check(input, ttl),
            None if ttl => check(input, ttl),
            None => refuse(&format!(
                "an aggregation not grouped by a window's start or end, whose groups \
                 would be held forever (group by a window, or give groups a time to \
                 live: `SET {STATE_TTL} = '1 h'`)"
            )),
        },
        Node::Join {
            left,
            right,
            on,
            filter,
            join_type,
            null_aware,
            ..
        } => {
            if lookup::bounded(left) && !lookup::bounded(right) {
                lookup::check(left, *join_type)?;
                return check(right, ttl);
            }
            if lookup::bounded(right) {
                return refuse("a join with a bounded table on the side a stream should take");
            }
            Owes::of(*join_type)?;
            if *null_aware {
                return refuse(
                    "NOT IN over a stream (its answer turns on a null key however late)",
                );
            }
            if updating(left) || updating(right) {
                if !ttl {
                    return refuse(&format!(
                        "a join of updating results without a time to live for the rows it \
                         holds (`SET {STATE_TTL} = '1 h'`)"
                    ));
                }
                check(left, ttl)?;
                return check(right, ttl);
            }
            let bounded = bounds::expiry(left, right, on, filter.as_ref()).is_some();
            if !ttl && !bounded {
                return refuse(&format!(
                    "a join whose rows could meet rows of the other side however late \
                     (join windowed sides on their windows' bounds, bound the two \
                     sides' event times, as in `a.date_time BETWEEN b.date_time - \
                     INTERVAL '10' SECOND AND b.date_time`, or give rows a time to \
                     live: `SET {STATE_TTL} = '1 h'`)"
                ));
            }
            check(left, ttl)?;
            check(right, ttl)
        }
        Node::Sort { .. } | Node::Limit { .. } => refuse("ORDER BY or LIMIT"),
        Node::Empty { .. } => refuse("a query without a table"),
    }
}

/// The columns of `node`'s rows that, when they are updates, say which
/// earlier row an update replaces: the group key of the aggregation whose
/// results they are, if every column of it is kept (sorted).
fn unique_key(node: &Node) -> Option<Vec<usize>> {
    match node {
        Node::Aggregate { group, .. } => Some((0..group.len()).collect()),
        Node::Filter { input, .. } => unique_key(input),
        Node::Project { input, exprs, .. } => {
            let below = unique_key(input)?;
            let mut key = Vec::with_capacity(below.len());
            for column in below {
                key.push(exprs.iter().position(|e| {
                    e.downcast_ref::<Column>()
                        .is_some_and(|c| c.index() == column)
                })?);
            }
            key.sort_unstable();
            Some(key)
        }
        _ => None,
    }
}

/// Whether `node`'s results change as rows come (an aggregation without a
/// window, a join of such results, an outer or anti join without a time
/// bound, and what filters and projects them): its rows are updates.
pub(super) fn updating(node: &Node) -> bool {
    match node {
        Node::Aggregate { input, group, .. } if !lookup::bounded(input) => {
            matches!(window_of(input, group), Ok(None)) || updating(input)
        }
        Node::Filter { input, .. } | Node::Project { input, .. } => updating(input),
        Node::Join { left, right, .. } if lookup::bounded(left) => updating(right),
        Node::Join {
            left,
            right,
            on,
            filter,
            join_type,
            ..
        } => join_updates((left, right), (on, filter.as_ref()), *join_type),
        _ => false,
    }
}

/// Whether a join of two streams, `left` and `right` on `on` and `filter`,
/// gives updates: when a side is updates, or when it owes rows that meet
/// none without a time bound (they go out at once, and are taken back).
pub(super) fn join_updates(
    (left, right): (&Node, &Node),
    (on, filter): (&JoinKeys, Option<&Arc<dyn PhysicalExpr>>),
    join_type: JoinType,
) -> bool {
    updating(left)
        || updating(right)
        || (Owes::of(join_type).is_ok_and(|o| o.iter().any(|o| o.owed_unmet()))
            && bounds::expiry(left, right, on, filter).is_none())
}

/// The refusal of a window over `spec.time`, which is not event time.
fn not_event_time(spec: &crate::exec::WindowSpec) -> SqlError {
    SqlError::Unsupported(format!(
        "{}: a streaming window's time column must be the event time of its stream \
         (the `{}` of a Nexmark table)",
        spec.schema.field(spec.time).name(),
        crate::nexmark::EVENT_TIME
    ))
}

/// The group key that holds the end (or the start) of an event-time
/// window of `input`, and what to add to it for the end.
pub(super) fn window_of(
    input: &Node,
    group: &[Arc<dyn PhysicalExpr>],
) -> Result<Option<(usize, i64)>> {
    let mut found = None;
    for (i, expr) in group.iter().enumerate() {
        let Some(column) = expr.downcast_ref::<Column>() else {
            continue;
        };
        match (trace(input, column.index())?, found) {
            // an end beats a start
            (Some(0), _) => return Ok(Some((i, 0))),
            (Some(past), None) => found = Some((i, past)),
            _ => {}
        }
    }
    Ok(found)
}

/// If column `c` of `node` is a window's bound, what to add to it for the
/// time its window is complete: 0 for a window's end (1 for a session's),
/// its size for its start.
pub(super) fn trace(node: &Node, c: usize) -> Result<Option<i64>> {
    match node {
        Node::Window { input, spec } => {
            let inputs = spec.schema.fields().len() - 2;
            if c < inputs {
                return trace(input, c);
            }
            let field = spec.schema.field(c);
            if bounds::lower(input, spec.time).is_none() {
                return Err(not_event_time(spec));
            }
            if !matches!(
                field.data_type(),
                DataType::Timestamp(TimeUnit::Millisecond, _)
            ) {
                return Err(aggregate::not_millis(field.name()));
            }
            Ok(match (c - inputs, spec.windows.size()) {
                // a session is complete once event time is past its end
                (1, _) if spec.keys_route() => Some(1),
                (1, _) => Some(0),
                (_, Some(size)) => Some(size),
                (_, None) => None,
            })
        }
        Node::Project { input, exprs, .. } => {
            match exprs.get(c).and_then(|e| e.downcast_ref::<Column>()) {
                Some(column) => trace(input, column.index()),
                None => Ok(None),
            }
        }
        Node::Filter { input, .. } => trace(input, c),
        Node::Join {
            left,
            right,
            join_type,
            ..
        } if lookup::bounded(left) => match stream_column(left, *join_type, c) {
            Some(c) => trace(right, c),
            None => Ok(None),
        },
        // groups of windows fire whole: a window's bound stays one
        Node::Aggregate { input, group, .. } => {
            match group.get(c).and_then(|e| e.downcast_ref::<Column>()) {
                Some(column) => trace(input, column.index()),
                None => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

/// The column of a lookup join's stream (its right side) that its column
/// `c` is, if it is one (the table, `left`, comes first in an inner or
/// outer join's output; a semi or anti join outputs the stream's alone).
pub(super) fn stream_column(left: &Node, join_type: JoinType, c: usize) -> Option<usize> {
    match join_type {
        JoinType::RightSemi | JoinType::RightAnti => Some(c),
        _ => c.checked_sub(bounds::schema(left)?.fields().len()),
    }
}

//! A streaming query as it runs, one operator per line: where rows move
//! between workers, what state each operator keeps, and what makes its
//! rows go out (event time, the state's time to live, checkpoints).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::plan::{StreamPlan, updating, window_of};
use datafusion_common::JoinType;

use super::{bounds, lookup};
use crate::catalog::Format;
use crate::plan::Node;

impl StreamPlan {
    /// The query as it streams, one operator per line, its sink first.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let guarantee = "rows of an epoch handed over once a checkpoint covers it";
        let _ = match (&self.into, self.updating()) {
            (Some(into), true) => writeln!(
                out,
                "Sink: {}, updates as upserts under its primary key ({guarantee})",
                into.target()
            ),
            (Some(into), false) => writeln!(out, "Sink: {} ({guarantee})", into.target()),
            (None, true) => writeln!(
                out,
                "Sink: stdout or --output, updates ending with op +I/-U/+U/-D ({guarantee})"
            ),
            (None, false) => writeln!(out, "Sink: stdout or --output ({guarantee})"),
        };
        if let Some(late) = &self.late {
            let _ = writeln!(
                out,
                "Sink: {} (late rows of windows, as JSON with late_in; {guarantee})",
                late.target()
            );
        }
        for dead in &self.dead {
            let _ = writeln!(
                out,
                "Sink: Kafka topic {} (the {}, exactly once)",
                dead.topic, dead.name
            );
        }
        self.node(&self.plan.root, &mut out, 1, &mut BTreeSet::new());
        out
    }

    /// `node`'s lines; a subtree in `seen` (which the runner builds once)
    /// is named once and not repeated.
    fn node(&self, node: &Node, out: &mut String, depth: usize, seen: &mut BTreeSet<String>) {
        let pad = "  ".repeat(depth);
        if !seen.insert(super::subtree(node)) {
            let first = self.line(node);
            let _ = writeln!(out, "{pad}(the same as above, built once: {first})");
            return;
        }
        let _ = writeln!(out, "{pad}{}", self.line(node));
        for input in node.inputs() {
            self.node(input, out, depth + 1, seen);
        }
    }

    /// What `node` does, on one line.
    fn line(&self, node: &Node) -> String {
        let ttl = match self.state_ttl {
            Some(ttl) => format!("{} ms", ttl.as_millis()),
            None => "-".into(),
        };
        match node {
            Node::Scan { table, .. } => match &table.format {
                Format::Kafka(kafka) => format!(
                    "Kafka source {} (topic {} at {}): offsets in checkpoints, a watermark \
                     per partition {} ms behind its event time, idle after {} ms",
                    table.name,
                    kafka.topic,
                    kafka.brokers,
                    kafka.watermark_delay_ms,
                    kafka.idle_timeout_ms
                ),
                Format::Nexmark(_) => format!(
                    "Nexmark source {}: each worker generates its share; watermark: its \
                     event time",
                    table.name
                ),
                _ => match &table.stream {
                    Some(dir) => format!(
                        "Directory source {} ({}): each worker reads its share of the files; \
                         watermark {} ms behind its event time, a file idle after {} ms",
                        table.name,
                        dir.dir.display(),
                        dir.watermark_delay_ms,
                        dir.idle_timeout_ms
                    ),
                    None => format!("Table {}: every worker reads all of it", table.name),
                },
            },
            Node::Aggregate { input, group, .. } => {
                let keys = group
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                match window_of(input, group) {
                    Ok(Some(_)) => format!(
                        "WindowAggregate [{keys}]: keyed state; a window's groups fire once \
                         event time passes its end <- exchange by group key hash"
                    ),
                    _ if updating(input) => format!(
                        "GroupAggregate of updates [{keys}]: keyed state of retractable \
                         accumulators; groups live {ttl} after their last row <- exchange \
                         by group key hash"
                    ),
                    _ => format!(
                        "GroupAggregate [{keys}]: keyed state; emits updates; groups live \
                         {ttl} after their last row <- exchange by group key hash"
                    ),
                }
            }
            Node::Join {
                left,
                right,
                on,
                filter,
                join_type,
                ..
            } => {
                let pairs = on
                    .left
                    .iter()
                    .zip(&on.right)
                    .map(|(l, r)| format!("{l} = {r}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                if lookup::bounded(left) {
                    format!("LookupJoin [{pairs}]: the table on every worker, the stream probes it")
                } else if updating(left) || updating(right) {
                    let kind = match join_type {
                        JoinType::Inner => String::new(),
                        other => format!(" {other}"),
                    };
                    format!(
                        "RegularJoin{kind} of updates [{pairs}]: both sides in keyed state for \
                         {ttl}, a row taken back taking back what it gave (-D) <- exchange by \
                         key hash"
                    )
                } else if bounds::expiry(left, right, on, filter.as_ref()).is_some() {
                    let (kind, owed) =
                        kind_and_owed(*join_type, "; a row that met none goes out when it expires");
                    format!(
                        "IntervalJoin{kind} [{pairs}]: both sides in keyed state until the \
                         other side's watermark passes them{owed} <- exchange by key hash"
                    )
                } else {
                    let (kind, owed) = kind_and_owed(
                        *join_type,
                        "; a row that meets none goes out at once and is taken back (-D) when \
                         it first meets one",
                    );
                    format!(
                        "RegularJoin{kind} [{pairs}]: both sides in keyed state for {ttl}{owed} \
                         <- exchange by key hash"
                    )
                }
            }
            Node::Window { spec, .. } if spec.keys_route() => format!(
                "SessionWindow {:?}: keyed state; a session's rows go out once event time \
                 passes its end <- exchange by session key hash",
                spec.windows
            ),
            other => other
                .explain()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// A join's kind (nothing for an inner join) and what its rows owe beyond
/// pairs: a semi join's, or, as `unmet` says, a row's that meets none.
fn kind_and_owed(join_type: JoinType, unmet: &'static str) -> (String, &'static str) {
    match join_type {
        JoinType::Inner => (String::new(), ""),
        JoinType::LeftSemi | JoinType::RightSemi => (
            format!(" {join_type}"),
            "; a row goes out when it first meets one",
        ),
        _ => (format!(" {join_type}"), unmet),
    }
}

//! A plan as weir runs it, one operator per line, with where rows move
//! between workers.

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion_physical_expr::PhysicalExpr;

use super::Node;

impl Node {
    /// The plan as weir runs it, one operator per line, with where rows
    /// move between workers.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        self.explain_into(&mut out, 0);
        out
    }

    fn explain_into(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        let list = |exprs: &[Arc<dyn PhysicalExpr>]| {
            exprs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = match self {
            Node::Scan { table, projection } => writeln!(
                out,
                "{pad}Scan {} ({} files, {:?}), columns {:?}: each worker reads its share",
                table.name,
                table.files.len(),
                table.format,
                projection
            ),
            Node::Filter { predicate, .. } => writeln!(out, "{pad}Filter {predicate}"),
            Node::Project { exprs, .. } => writeln!(out, "{pad}Project {}", list(exprs)),
            Node::Aggregate {
                group, aggregates, ..
            } => {
                let names: Vec<&str> = aggregates.iter().map(|a| a.function.name()).collect();
                writeln!(
                    out,
                    "{pad}Aggregate final [{}]: {} <- exchange by group key hash\n{pad}Aggregate partial, on every worker",
                    list(group),
                    names.join(", ")
                )
            }
            Node::Sort { order, fetch, .. } => {
                let order: Vec<String> = order.iter().map(|o| o.to_string()).collect();
                writeln!(
                    out,
                    "{pad}Sort [{}]{} <- gather at worker 0\n{pad}Sort, on every worker",
                    order.join(", "),
                    fetch.map(|f| format!(" fetch {f}")).unwrap_or_default()
                )
            }
            Node::Limit { skip, fetch, .. } => writeln!(
                out,
                "{pad}Limit skip {skip} fetch {fetch:?} <- gather at worker 0"
            ),
            Node::Join {
                on,
                join_type,
                filter,
                null_aware,
                broadcast,
                ..
            } => {
                let exchange = if *broadcast {
                    "left side to every worker, right side stays"
                } else if on.left.is_empty() || *null_aware {
                    "both sides gathered at worker 0"
                } else {
                    "both sides exchanged by key hash"
                };
                let pairs: Vec<String> = on
                    .left
                    .iter()
                    .zip(&on.right)
                    .map(|(l, r)| format!("{l} = {r}"))
                    .collect();
                writeln!(
                    out,
                    "{pad}HashJoin {join_type} on [{}]{} <- {exchange}; left built, right probed",
                    pairs.join(", "),
                    filter
                        .as_ref()
                        .map(|f| format!(" filter {f}"))
                        .unwrap_or_default()
                )
            }
            Node::Unnest { spec, .. } => writeln!(out, "{pad}Unnest columns {:?}", spec.lists),
            Node::Window { spec, .. } => {
                writeln!(
                    out,
                    "{pad}Window {:?} on column {}",
                    spec.windows, spec.time
                )
            }
            Node::Union { .. } => writeln!(out, "{pad}Union"),
            Node::Empty { one_row } => writeln!(out, "{pad}Empty (one row: {one_row})"),
        };
        match self {
            Node::Scan { .. } | Node::Empty { .. } => {}
            Node::Filter { input, .. }
            | Node::Project { input, .. }
            | Node::Aggregate { input, .. }
            | Node::Sort { input, .. }
            | Node::Limit { input, .. }
            | Node::Unnest { input, .. }
            | Node::Window { input, .. } => input.explain_into(out, depth + 1),
            Node::Join { left, right, .. } => {
                left.explain_into(out, depth + 1);
                right.explain_into(out, depth + 1);
            }
            Node::Union { inputs, .. } => {
                for input in inputs {
                    input.explain_into(out, depth + 1);
                }
            }
        }
    }
}

//! weir's plan of a query: DataFusion's optimized logical plan translated into
//! the operators weir runs, with DataFusion's physical expressions and
//! aggregate functions inside them. Each node produces batches whose columns
//! are those of its logical schema, in order. [`Node::explain`] (in
//! `explain`) shows a plan with its exchanges.

mod build_side;
mod explain;

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::{DFSchema, JoinType, NullEquality};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::logical_plan::{FetchType, SkipType};
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{Expr, LogicalPlan};
use datafusion_physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
use datafusion_physical_expr::{PhysicalExpr, PhysicalSortExpr, create_physical_expr};

use crate::catalog::{Catalog, Table};
use crate::error::{Result, SqlError};
use crate::exec::{UnnestSpec, WindowSpec};
use crate::window::Windowed;

/// An aggregate of an [`Node::Aggregate`]: the function, and its FILTER.
#[derive(Clone, Debug)]
pub struct Aggregate {
    /// The function, its arguments and output name.
    pub function: Arc<AggregateFunctionExpr>,
    /// Only rows where this holds are aggregated.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

/// A node of weir's plan.
#[derive(Debug)]
pub enum Node {
    /// Every worker reads its share of a table's files.
    Scan {
        /// The table.
        table: Table,
        /// The table's columns to read, in output order.
        projection: Vec<usize>,
    },
    /// Keeps the rows for which `predicate` holds.
    Filter {
        /// Its rows.
        input: Box<Node>,
        /// What a kept row satisfies.
        predicate: Arc<dyn PhysicalExpr>,
    },
    /// Computes `exprs`, one column each.
    Project {
        /// Its rows.
        input: Box<Node>,
        /// One per output column.
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        /// The output columns.
        schema: SchemaRef,
    },
    /// Groups by `group` and aggregates: partially on every worker, then
    /// finally at the worker that owns each group (by its key's hash).
    Aggregate {
        /// Its rows.
        input: Box<Node>,
        /// The group key's columns.
        group: Vec<Arc<dyn PhysicalExpr>>,
        /// The aggregates, one output column each after the keys.
        aggregates: Arc<Vec<Aggregate>>,
        /// The output columns: keys, then aggregates.
        schema: SchemaRef,
    },
    /// Sorts every row at worker 0 (each worker sorts and cuts its own
    /// first); `fetch` keeps the first rows only.
    Sort {
        /// Its rows.
        input: Box<Node>,
        /// The sort keys, most significant first.
        order: Vec<PhysicalSortExpr>,
        /// Rows kept from the start, if not all.
        fetch: Option<usize>,
    },
    /// Skips and keeps rows, at worker 0.
    Limit {
        /// Its rows.
        input: Box<Node>,
        /// Rows skipped.
        skip: usize,
        /// Rows kept after those, if not all.
        fetch: Option<usize>,
    },
    /// A hash join: both sides routed by the hash of their keys (or all to
    /// worker 0 without keys, or for NOT IN; or the left side to every
    /// worker, the right staying), the left side built once it is complete,
    /// the right side probed.
    Join {
        /// The build side.
        left: Box<Node>,
        /// The probe side.
        right: Box<Node>,
        /// The equi-join keys.
        on: Arc<JoinKeys>,
        /// What a joined pair must also satisfy, over left then right columns.
        filter: Option<Arc<dyn PhysicalExpr>>,
        /// Inner, outer, semi, anti or mark.
        join_type: JoinType,
        /// Whether null keys equal each other.
        nulls_equal: bool,
        /// NOT IN: no row if the right side has a null key.
        null_aware: bool,
        /// The build side goes whole to every worker and the probe side
        /// stays where it is read (a small build side, a join that owes
        /// nothing for unmatched build rows).
        broadcast: bool,
        /// The output columns.
        schema: SchemaRef,
    },
    /// One row per element of list columns, on every worker.
    Unnest {
        /// Its rows.
        input: Box<Node>,
        /// What is unnested.
        spec: Arc<UnnestSpec>,
    },
    /// Each row with the event-time windows it falls in.
    Window {
        /// Its rows.
        input: Box<Node>,
        /// The windows.
        spec: Arc<WindowSpec>,
    },
    /// Every input's rows.
    Union {
        /// The inputs, of the same column types.
        inputs: Vec<Node>,
        /// The output columns.
        schema: SchemaRef,
    },
    /// No rows, or one row of no columns (a SELECT without FROM).
    Empty {
        /// Whether there is one row.
        one_row: bool,
    },
}

impl Node {
    /// The nodes whose rows it takes, in order.
    pub fn inputs(&self) -> Vec<&Node> {
        match self {
            Node::Scan { .. } | Node::Empty { .. } => Vec::new(),
            Node::Join { left, right, .. } => vec![left, right],
            Node::Union { inputs, .. } => inputs.iter().collect(),
            Node::Filter { input, .. }
            | Node::Project { input, .. }
            | Node::Unnest { input, .. }
            | Node::Window { input, .. }
            | Node::Aggregate { input, .. }
            | Node::Sort { input, .. }
            | Node::Limit { input, .. } => vec![input],
        }
    }
}

/// The keys of a join: expressions over each side's columns, pairwise equal.
#[derive(Debug)]
pub struct JoinKeys {
    /// Over the left side.
    pub left: Vec<Arc<dyn PhysicalExpr>>,
    /// Over the right side.
    pub right: Vec<Arc<dyn PhysicalExpr>>,
}

/// A plan: its root, and the schema of what it produces.
#[derive(Debug)]
pub struct Plan {
    /// The node that produces the result.
    pub root: Node,
    /// The result's columns.
    pub schema: SchemaRef,
}

/// The output schema of `plan`, its fields nullable (evaluated columns may
/// hold nulls that DataFusion's planner did not foresee).
fn output_schema(plan: &LogicalPlan) -> SchemaRef {
    let fields: Vec<Field> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// Translates DataFusion's optimized logical plan of a batch query (over
/// bounded tables).
pub fn translate(plan: &LogicalPlan, catalog: &Catalog) -> Result<Plan> {
    translate_as(plan, catalog, false)
}

/// Translates a plan; a `streaming` one may read unbounded tables.
pub(crate) fn translate_as(plan: &LogicalPlan, catalog: &Catalog, streaming: bool) -> Result<Plan> {
    let props = ExecutionProps::new();
    let translator = Translator {
        streaming,
        catalog,
        sizes: build_side::Sizes::new(catalog),
        props: &props,
        ctx: PhysicalPlanningContext::default(),
    };
    Ok(Plan {
        root: translator.node(plan)?,
        schema: output_schema(plan),
    })
}

struct Translator<'a> {
    streaming: bool,
    catalog: &'a Catalog,
    sizes: build_side::Sizes<'a>,
    props: &'a ExecutionProps,
    ctx: PhysicalPlanningContext,
}

impl Translator<'_> {
    fn expr(&self, e: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(create_physical_expr(e, schema, self.props, &self.ctx)?)
    }

    fn node(&self, plan: &LogicalPlan) -> Result<Node> {
        Ok(match plan {
            LogicalPlan::TableScan(scan) => {
                let name = scan.table_name.table();
                let table = self
                    .catalog
                    .get(name)
                    .ok_or_else(|| SqlError::Plan(format!("table '{name}' is not declared")))?;
                if table.unbounded && !self.streaming {
                    return Err(SqlError::Plan(format!(
                        "table {name} is UNBOUNDED: a query over it streams, \
                         with checkpoints (weir sql --checkpoint-dir DIR)"
                    )));
                }
                let projection = match &scan.projection {
                    Some(p) => p.clone(),
                    None => (0..table.schema.fields().len()).collect(),
                };
                let mut node = Node::Scan {
                    table: table.clone(),
                    projection,
                };
                if let Some(predicate) = scan.filters.iter().cloned().reduce(Expr::and) {
                    let predicate = self.expr(&predicate, &scan.projected_schema)?;
                    node = Node::Filter {
                        input: Box::new(node),
                        predicate,
                    };
                }
                match scan.fetch {
                    Some(fetch) => Node::Limit {
                        input: Box::new(node),
                        skip: 0,
                        fetch: Some(fetch),
                    },
                    None => node,
                }
            }
            LogicalPlan::Filter(filter) => Node::Filter {
                predicate: self.expr(&filter.predicate, filter.input.schema())?,
                input: Box::new(self.node(&filter.input)?),
            },
            LogicalPlan::Projection(projection) => Node::Project {
                schema: output_schema(plan),
                exprs: projection
                    .expr
                    .iter()
                    .map(|e| self.expr(e, projection.input.schema()))
                    .collect::<Result<_>>()?,
                input: Box::new(self.node(&projection.input)?),
            },
            LogicalPlan::Aggregate(aggregate) => {
                let schema = aggregate.input.schema();
                let group = aggregate
                    .group_expr
                    .iter()
                    .map(|e| match e {
                        Expr::GroupingSet(_) => Err(SqlError::Unsupported(
                            "GROUPING SETS, CUBE and ROLLUP".into(),
                        )),
                        e => self.expr(e, schema),
                    })
                    .collect::<Result<_>>()?;
                let aggregates = aggregate
                    .aggr_expr
                    .iter()
                    .map(|e| self.aggregate(e, schema))
                    .collect::<Result<_>>()?;
                Node::Aggregate {
                    input: Box::new(self.node(&aggregate.input)?),
                    group,
                    aggregates: Arc::new(aggregates),
                    schema: output_schema(plan),
                }
            }
            LogicalPlan::Sort(sort) => Node::Sort {
                order: sort
                    .expr
                    .iter()
                    .map(|s| {
                        Ok(datafusion_physical_expr::create_physical_sort_expr(
                            s,
                            sort.input.schema(),
                            self.props,
                            &self.ctx,
                        )?)
                    })
                    .collect::<Result<_>>()?,
                fetch: sort.fetch,
                input: Box::new(self.node(&sort.input)?),
            },
            LogicalPlan::Limit(limit) => {
                let skip = match limit.get_skip_type()? {
                    SkipType::Literal(skip) => skip,
                    SkipType::UnsupportedExpr => {
                        return Err(SqlError::Unsupported(
                            "an OFFSET that is not a constant".into(),
                        ));
                    }
                };
                let fetch = match limit.get_fetch_type()? {
                    FetchType::Literal(fetch) => fetch,
                    FetchType::UnsupportedExpr => {
                        return Err(SqlError::Unsupported(
                            "a LIMIT that is not a constant".into(),
                        ));
                    }
                };
                Node::Limit {
                    input: Box::new(self.node(&limit.input)?),
                    skip,
                    fetch,
                }
            }
            LogicalPlan::Join(join) => {
                if matches!(join.join_type, JoinType::RightMark) {
                    return Err(SqlError::Unsupported("a right mark join".into()));
                }
                let build_side::Sides { swap, broadcast } = self.sizes.sides(join);
                let (left, right) = match swap {
                    false => (&join.left, &join.right),
                    true => (&join.right, &join.left),
                };
                let (left_schema, right_schema) = (left.schema(), right.schema());
                let mut keys = JoinKeys {
                    left: Vec::new(),
                    right: Vec::new(),
                };
                for (l, r) in &join.on {
                    let (l, r) = if swap { (r, l) } else { (l, r) };
                    keys.left.push(self.expr(l, left_schema)?);
                    keys.right.push(self.expr(r, right_schema)?);
                }
                let both = left_schema.join(right_schema)?;
                let filter = join
                    .filter
                    .as_ref()
                    .map(|f| self.expr(f, &both))
                    .transpose()?;
                let out = output_schema(plan);
                let written_left = join.left.schema().fields().len();
                let (join_type, schema) = match swap {
                    false => (join.join_type, Arc::clone(&out)),
                    true => (
                        join.join_type.swap(),
                        build_side::swapped_schema(&out, join.join_type, written_left)?,
                    ),
                };
                let node = Node::Join {
                    broadcast,
                    left: Box::new(self.node(left)?),
                    right: Box::new(self.node(right)?),
                    on: Arc::new(keys),
                    filter,
                    join_type,
                    nulls_equal: join.null_equality == NullEquality::NullEqualsNull,
                    null_aware: join.null_aware,
                    schema,
                };
                match swap {
                    false => node,
                    true => build_side::reorder(node, out, join.join_type, written_left),
                }
            }
            LogicalPlan::SubqueryAlias(alias) => self.node(&alias.input)?,
            LogicalPlan::Union(union) => Node::Union {
                schema: output_schema(plan),
                inputs: union
                    .inputs
                    .iter()
                    .map(|i| self.node(i))
                    .collect::<Result<_>>()?,
            },
            LogicalPlan::Unnest(unnest) => Node::Unnest {
                spec: Arc::new(unnest_spec(unnest, output_schema(plan))?),
                input: Box::new(self.node(&unnest.input)?),
            },
            LogicalPlan::Extension(extension) => {
                let Some(windowed) = extension.node.as_any().downcast_ref::<Windowed>() else {
                    return Err(SqlError::Unsupported(format!(
                        "the plan node {}",
                        extension.node.name()
                    )));
                };
                self.windowed(windowed, output_schema(plan))?
            }
            LogicalPlan::EmptyRelation(empty) => Node::Empty {
                one_row: empty.produce_one_row,
            },
            other => {
                return Err(SqlError::Unsupported(format!(
                    "the plan node {} (yet)",
                    other.display()
                )));
            }
        })
    }

    /// A window function's node.
    fn windowed(&self, windowed: &Windowed, schema: SchemaRef) -> Result<Node> {
        let input_schema = windowed.input.schema();
        Ok(Node::Window {
            spec: Arc::new(WindowSpec {
                time: input_schema.index_of_column(&windowed.time)?,
                windows: windowed.windows,
                keys: windowed
                    .keys
                    .iter()
                    .map(|k| self.expr(k, input_schema))
                    .collect::<Result<_>>()?,
                schema,
            }),
            input: Box::new(self.node(&windowed.input)?),
        })
    }

    /// An aggregate function with its (physical) arguments and filter.
    fn aggregate(&self, e: &Expr, schema: &DFSchema) -> Result<Aggregate> {
        let (e, name) = match e {
            Expr::Alias(alias) => (alias.expr.as_ref(), alias.name.clone()),
            e => (e, e.schema_name().to_string()),
        };
        let Expr::AggregateFunction(f) = e else {
            return Err(SqlError::Plan(format!("{e} is not an aggregate")));
        };
        let params = &f.params;
        if !params.order_by.is_empty() {
            return Err(SqlError::Unsupported(format!(
                "ORDER BY inside an aggregate ({name})"
            )));
        }
        let args = params
            .args
            .iter()
            .map(|a| self.expr(a, schema))
            .collect::<Result<Vec<_>>>()?;
        let function = AggregateExprBuilder::new(Arc::clone(&f.func), args)
            .schema(Arc::new(schema.as_arrow().clone()))
            .alias(name)
            .with_distinct(params.distinct)
            .build()?;
        let filter = params
            .filter
            .as_deref()
            .map(|f| self.expr(f, schema))
            .transpose()?;
        Ok(Aggregate {
            function: Arc::new(function),
            filter,
        })
    }
}

/// What a DataFusion unnest does: list columns unnested one level deep (not
/// structs, not deeper levels).
fn unnest_spec(unnest: &datafusion_expr::Unnest, schema: SchemaRef) -> Result<UnnestSpec> {
    if !unnest.struct_type_columns.is_empty() {
        return Err(SqlError::Unsupported("unnesting a struct column".into()));
    }
    if let Some((_, deeper)) = unnest.list_type_columns.iter().find(|(_, l)| l.depth != 1) {
        return Err(SqlError::Unsupported(format!(
            "unnesting a list {} levels deep",
            deeper.depth
        )));
    }
    Ok(UnnestSpec {
        lists: unnest.list_type_columns.iter().map(|(c, _)| *c).collect(),
        sources: unnest.dependency_indices.clone(),
        nulls: unnest.options.null_handling,
        schema,
    })
}

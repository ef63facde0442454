//! The window functions in `FROM`: DataFusion's SQL planner hands weir each
//! table factor first, and a call of `tumble`, `hop` or `session` becomes a
//! [`Windowed`] node over its table.

use datafusion_common::{DFSchema, Result, ScalarValue, plan_datafusion_err, plan_err};
use datafusion_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion_expr::{Expr, LogicalPlan};
use datafusion_sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, ObjectName, TableFactor,
};

use super::{Windowed, Windows, ticks, time_unit};

/// Plans the window functions of a `FROM` clause.
#[derive(Debug, Default)]
pub struct WindowRelations;

impl RelationPlanner for WindowRelations {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let function = match name.0.as_slice() {
            [part] => match part.as_ident() {
                Some(ident) => context.normalize_ident(ident.clone()),
                None => return Ok(RelationPlanning::Original(Box::new(relation))),
            },
            _ => return Ok(RelationPlanning::Original(Box::new(relation))),
        };
        if !matches!(function.as_str(), "tumble" | "hop" | "session") {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        }
        let args = args
            .args
            .iter()
            .enumerate()
            .map(|(i, arg)| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e.clone()),
                other => plan_err!("{function}: argument {} ({other}) is not a value", i + 1),
            })
            .collect::<Result<Vec<_>>>()?;
        let call = Call {
            function: &function,
            args: &args,
        };
        let plan = call.plan(context)?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

/// A window function's call: its name and arguments.
struct Call<'a> {
    function: &'a str,
    args: &'a [SqlExpr],
}

impl Call<'_> {
    fn usage(&self) -> &'static str {
        match self.function {
            "tumble" => "tumble(table, time, size [, offset])",
            "hop" => "hop(table, time, slide, size [, offset])",
            _ => "session(table, time, gap [, key, ...])",
        }
    }

    fn plan(&self, context: &mut dyn RelationPlannerContext) -> Result<LogicalPlan> {
        let (fixed, most) = match self.function {
            "tumble" => (3, Some(4)),
            "hop" => (4, Some(5)),
            _ => (3, None),
        };
        if self.args.len() < fixed || most.is_some_and(|m| self.args.len() > m) {
            return plan_err!(
                "{}: called with {} arguments",
                self.usage(),
                self.args.len()
            );
        }
        let input = self.table(context)?;
        let time = match context.sql_to_expr(self.args[1].clone(), input.schema())? {
            Expr::Column(column) => column,
            other => {
                return plan_err!(
                    "{}: argument 2 ({other}) is not a column of the table",
                    self.usage()
                );
            }
        };
        let unit = time_unit(input.schema(), &time, self.usage())?;
        let mut interval = |i: usize| -> Result<i64> {
            let nanos = self.interval(context, i)?;
            ticks(nanos, unit).ok_or_else(|| {
                plan_datafusion_err!(
                    "{}: argument {} is not a whole number of {unit:?}s, the unit of {time}",
                    self.usage(),
                    i + 1
                )
            })
        };
        let positive = |value: i64, i: usize| -> Result<i64> {
            match value > 0 {
                true => Ok(value),
                false => plan_err!("{}: argument {} is not positive", self.usage(), i + 1),
            }
        };
        let optional =
            |interval: &mut dyn FnMut(usize) -> Result<i64>, i: usize| match self.args.len() > i {
                true => interval(i),
                false => Ok(0),
            };
        let (windows, keys) = match self.function {
            "tumble" => (
                Windows::Tumble {
                    size: positive(interval(2)?, 2)?,
                    offset: optional(&mut interval, 3)?,
                },
                Vec::new(),
            ),
            "hop" => (
                Windows::Hop {
                    slide: positive(interval(2)?, 2)?,
                    size: positive(interval(3)?, 3)?,
                    offset: optional(&mut interval, 4)?,
                },
                Vec::new(),
            ),
            _ => {
                let gap = positive(interval(2)?, 2)?;
                let keys = self.args[3..]
                    .iter()
                    .map(|k| context.sql_to_expr(k.clone(), input.schema()))
                    .collect::<Result<Vec<_>>>()?;
                (Windows::Session { gap }, keys)
            }
        };
        let node = Windowed::try_new(input, time, windows, keys)?;
        Ok(LogicalPlan::Extension(datafusion_expr::Extension {
            node: std::sync::Arc::new(node),
        }))
    }

    /// The first argument: a table's name, or a query in parentheses.
    fn table(&self, context: &mut dyn RelationPlannerContext) -> Result<LogicalPlan> {
        let factor = match &self.args[0] {
            SqlExpr::Identifier(ident) => table(ObjectName::from(ident.clone())),
            SqlExpr::CompoundIdentifier(idents) => table(ObjectName::from(idents.clone())),
            SqlExpr::Subquery(query) => TableFactor::Derived {
                lateral: false,
                subquery: query.clone(),
                alias: None,
                sample: None,
            },
            other => {
                return plan_err!(
                    "{}: argument 1 ({other}) is not a table or a query",
                    self.usage()
                );
            }
        };
        context.plan(factor)
    }

    /// Argument `i`, an interval of days and less, in nanoseconds.
    fn interval(&self, context: &mut dyn RelationPlannerContext, i: usize) -> Result<i128> {
        let value = context.sql_to_expr(self.args[i].clone(), &DFSchema::empty())?;
        let nanos = match &value {
            Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
                i128::from(v.days) * 86_400_000_000_000 + i128::from(v.nanoseconds)
            }
            Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
                (i128::from(v.days) * 86_400_000 + i128::from(v.milliseconds)) * 1_000_000
            }
            _ => {
                return plan_err!(
                    "{}: argument {} ({value}) is not an interval of days or less \
                     (e.g. INTERVAL '10' SECOND)",
                    self.usage(),
                    i + 1
                );
            }
        };
        Ok(nanos)
    }
}

/// A table factor that names a table.
fn table(name: ObjectName) -> TableFactor {
    TableFactor::Table {
        name,
        alias: None,
        args: None,
        with_hints: Vec::new(),
        version: None,
        with_ordinality: false,
        partitions: Vec::new(),
        json_path: None,
        sample: None,
        index_hints: Vec::new(),
    }
}

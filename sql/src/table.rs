//! The Table API: relational programs in Rust, as Flink's Table API writes
//! them. A [`Table`] is a DataFusion logical plan built with DataFusion's
//! own builder and expressions (`col`, `lit`, `sum`, ...: see [`prelude`]);
//! [`Table::collect`] optimizes it with DataFusion and runs it on a timely
//! configuration, exactly as `weir sql` runs a query.
//!
//! ```
//! use weir_sql::table::{Context, prelude::*};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("orders.csv");
//! std::fs::write(&path, "customer,amount\na,5\nb,7\na,3\nc,1\n").unwrap();
//! let mut ctx = Context::default();
//! let orders = ctx.csv("orders", &path, true).unwrap();
//! let output = orders
//!     .filter(col("amount").gt(lit(2))).unwrap()
//!     .aggregate(vec![col("customer")], vec![sum(col("amount")).alias("spent")]).unwrap()
//!     .sort(vec![col("spent").sort(false, true)]).unwrap()
//!     .collect(timely::Config::process(2)).unwrap();
//! let batch = arrow::compute::concat_batches(&output.schema, &output.batches).unwrap();
//! let text = arrow::util::pretty::pretty_format_batches(&[batch]).unwrap().to_string();
//! assert!(text.contains("| a        | 8     |"), "{text}");
//! assert!(text.contains("| b        | 7     |"), "{text}");
//! assert_eq!(output.rows(), 2);
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion_common::{Column, JoinType, NullHandling, UnnestOptions};
use datafusion_expr::{Expr, Extension, LogicalPlan, LogicalPlanBuilder, ScalarUDF, SortExpr};
use datafusion_sql::planner::SqlToRel;
use weir_runtime::exec::execute;

use crate::catalog::{Format, Table as Declared};
use crate::context::Source;
use crate::error::{Result, SqlError};
use crate::exec::Output;
use crate::session::Session;
use crate::window::{Windowed, Windows, ticks, time_unit};

/// What programs with the Table API use: DataFusion's expression builders
/// and aggregate functions.
pub mod prelude {
    pub use datafusion_common::{JoinType, NullHandling, UnnestOptions};
    pub use datafusion_expr::{Expr, col, lit};
    pub use datafusion_functions_aggregate::expr_fn::{avg, count, max, min, sum};
}

/// The tables a program declared.
#[derive(Default)]
pub struct Context {
    session: Session,
}

impl Context {
    /// Declares a table of CSV files (a file, or a directory of `.csv` files).
    pub fn csv(&mut self, name: &str, path: impl AsRef<Path>, has_header: bool) -> Result<Table> {
        let format = Format::Csv {
            has_header,
            delimiter: b',',
        };
        self.declare(Declared::open(name, format, &[path], None)?)
    }

    /// Declares a table of delimited text files without a header whose
    /// columns, named `columns`, are all text (as `weir join` reads them).
    pub fn text(
        &mut self,
        name: &str,
        path: impl AsRef<Path>,
        delimiter: u8,
        columns: &[&str],
    ) -> Result<Table> {
        let format = Format::Csv {
            has_header: false,
            delimiter,
        };
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        self.declare(Declared::open(name, format, &[path], Some(schema))?)
    }

    /// Declares a table of text files, one row per line in a column `line`
    /// (a file, or a directory whose every visible file is read).
    pub fn lines(&mut self, name: &str, path: impl AsRef<Path>) -> Result<Table> {
        self.declare(Declared::open(name, Format::Text, &[path], None)?)
    }

    /// Registers a scalar function of the program's own, for expressions
    /// (`udf.call(args)`) and for SQL by its name.
    pub fn register_udf(&mut self, udf: ScalarUDF) {
        self.session.register_udf(udf);
    }

    /// Declares a table of Parquet files.
    pub fn parquet(&mut self, name: &str, path: impl AsRef<Path>) -> Result<Table> {
        self.declare(Declared::open(name, Format::Parquet, &[path], None)?)
    }

    fn declare(&mut self, table: Declared) -> Result<Table> {
        let name = table.name.clone();
        self.session.declare(table)?;
        self.table(&name)
    }

    /// A declared table.
    pub fn table(&self, name: &str) -> Result<Table> {
        let declared = self
            .session
            .catalog()
            .get(name)
            .ok_or_else(|| SqlError::Plan(format!("table '{name}' is not declared")))?;
        let source = Arc::new(Source(Arc::clone(&declared.schema)));
        Ok(Table {
            plan: LogicalPlanBuilder::scan(name, source, None)?.build()?,
            session: self.snapshot(),
        })
    }

    /// A query written in SQL over the declared tables, as a table.
    pub fn sql(&self, query: &str) -> Result<Table> {
        let mut statements = Session::parse(query)?;
        if statements.len() != 1 {
            return Err(SqlError::Plan(format!(
                "one query, not {} statements",
                statements.len()
            )));
        }
        let provider = self.session.provider();
        let plan = SqlToRel::new(&provider).statement_to_plan(statements.remove(0))?;
        Ok(Table {
            plan,
            session: self.snapshot(),
        })
    }

    fn snapshot(&self) -> Arc<Session> {
        merged(&[&self.session])
    }
}

fn merged(sessions: &[&Session]) -> Arc<Session> {
    Arc::new(Session::merged(sessions))
}

/// A relational program: DataFusion's logical plan, and the tables it reads.
#[derive(Clone)]
pub struct Table {
    plan: LogicalPlan,
    session: Arc<Session>,
}

impl Table {
    fn then(
        self,
        f: impl FnOnce(LogicalPlanBuilder) -> datafusion_common::Result<LogicalPlanBuilder>,
    ) -> Result<Table> {
        let plan = f(LogicalPlanBuilder::from(self.plan))?.build()?;
        Ok(Table {
            plan,
            session: self.session,
        })
    }

    /// The rows for which `predicate` holds.
    pub fn filter(self, predicate: Expr) -> Result<Table> {
        self.then(|b| b.filter(predicate))
    }

    /// One column per expression.
    pub fn select(self, exprs: Vec<Expr>) -> Result<Table> {
        self.then(|b| b.project(exprs))
    }

    /// Groups by `group` and computes `aggregates` per group.
    pub fn aggregate(self, group: Vec<Expr>, aggregates: Vec<Expr>) -> Result<Table> {
        self.then(|b| b.aggregate(group, aggregates))
    }

    /// Joins `right` where the columns `left_keys` equal `right_keys`.
    pub fn join(
        self,
        right: Table,
        join_type: JoinType,
        left_keys: &[&str],
        right_keys: &[&str],
    ) -> Result<Table> {
        let keys = (left_keys.to_vec(), right_keys.to_vec());
        let session = merged(&[&self.session, &right.session]);
        let mut joined = self.then(|b| b.join(right.plan, join_type, keys, None))?;
        joined.session = session;
        Ok(joined)
    }

    /// Sorted by `order` (e.g. `col("x").sort(true, false)`).
    pub fn sort(self, order: Vec<SortExpr>) -> Result<Table> {
        self.then(|b| b.sort(order))
    }

    /// `fetch` rows after the first `skip`.
    pub fn limit(self, skip: usize, fetch: Option<usize>) -> Result<Table> {
        self.then(|b| b.limit(skip, fetch))
    }

    /// One row per element of the list column `column` (the other columns
    /// repeated; a null or empty list gives no row), as SQL's `unnest`.
    pub fn unnest(self, column: &str) -> Result<Table> {
        let options = UnnestOptions::new().with_null_handling(NullHandling::Drop);
        self.then(|b| b.unnest_column_with_options(column, options))
    }

    /// Each row with the tumbling window of `size` that its `time` falls
    /// in, as columns `window_start` and `window_end` (SQL's `tumble`).
    pub fn tumble(self, time: &str, size: Duration) -> Result<Table> {
        self.windowed(time, &[size], Vec::new(), |t| Windows::Tumble {
            size: t[0],
            offset: 0,
        })
    }

    /// Each row once per hopping window of `size` every `slide` that holds
    /// its `time`, with `window_start` and `window_end` (SQL's `hop`).
    pub fn hop(self, time: &str, slide: Duration, size: Duration) -> Result<Table> {
        self.windowed(time, &[slide, size], Vec::new(), |t| Windows::Hop {
            slide: t[0],
            size: t[1],
            offset: 0,
        })
    }

    /// Each row with its session window: rows of the same `keys` at most
    /// `gap` apart (SQL's `session`).
    pub fn session(self, time: &str, gap: Duration, keys: Vec<Expr>) -> Result<Table> {
        self.windowed(time, &[gap], keys, |t| Windows::Session { gap: t[0] })
    }

    /// A window function over this table, its lengths in `time`'s unit.
    fn windowed(
        self,
        time: &str,
        lengths: &[Duration],
        keys: Vec<Expr>,
        windows: impl FnOnce(&[i64]) -> Windows,
    ) -> Result<Table> {
        let (qualifier, _) = self
            .plan
            .schema()
            .qualified_field_with_unqualified_name(time)?;
        let column = Column::new(qualifier.cloned(), time);
        let unit = time_unit(self.plan.schema(), &column, "window")?;
        let ticks = lengths
            .iter()
            .map(|d| {
                i128::try_from(d.as_nanos())
                    .ok()
                    .and_then(|n| ticks(n, unit))
                    .filter(|&t| t > 0)
                    .ok_or_else(|| {
                        SqlError::Plan(format!(
                            "a window of {d:?} is not a positive whole number of {unit:?}s, \
                             the unit of {time}"
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let node = Windowed::try_new(self.plan, column, windows(&ticks), keys)?;
        Ok(Table {
            plan: LogicalPlan::Extension(Extension {
                node: Arc::new(node),
            }),
            session: self.session,
        })
    }

    /// Each distinct row once.
    pub fn distinct(self) -> Result<Table> {
        self.then(|b| b.distinct())
    }

    /// The rows of both tables (of the same columns).
    pub fn union(self, other: Table) -> Result<Table> {
        let session = merged(&[&self.session, &other.session]);
        let mut united = self.then(|b| b.union(other.plan))?;
        united.session = session;
        Ok(united)
    }

    /// DataFusion's logical plan.
    pub fn plan(&self) -> &LogicalPlan {
        &self.plan
    }

    /// Runs the program on `config`: the result, in the process that hosts
    /// worker 0.
    pub fn collect(self, config: timely::Config) -> Result<Output> {
        let Table { plan, session } = self;
        Ok(execute(config, move |worker| {
            session
                .run_plan(worker, plan.clone())
                .map_err(weir_runtime::JobError::from)
        })?)
    }
}

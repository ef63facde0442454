//! A session: statements run one after the other on one timely execution
//! (one cluster for a whole script). `CREATE EXTERNAL TABLE` declares a
//! table; a query is planned by DataFusion, translated into weir's plan and
//! run on every worker; `EXPLAIN` shows both plans.

use std::sync::Arc;

use datafusion_common::config::ConfigOptions;
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{DataFusionError, ScalarValue};
use datafusion_expr::Expr;
use datafusion_expr::{DdlStatement, LogicalPlan, WriteOp};
use datafusion_optimizer::{Analyzer, Optimizer, OptimizerContext};
use datafusion_sql::parser::{DFParser, Statement};
use datafusion_sql::planner::SqlToRel;
use datafusion_sql::sqlparser::ast;
use timely::worker::Worker;
use weir_progress::agree::all_gather;
use weir_runtime::JobError;
use weir_runtime::exec::execute;

use crate::batch::Batch;
use crate::catalog::{Catalog, Table};
use crate::context::{Functions, Provider};
use crate::error::{Result, SqlError};
use crate::exec::{Budget, Output, run_on};
use crate::plan::translate;
use crate::settings::Settings;

/// What a statement did.
#[derive(Debug)]
pub enum Outcome {
    /// A table was declared.
    Declared {
        /// Its name.
        table: String,
        /// Its columns, as `name TYPE`.
        columns: Vec<String>,
    },
    /// A query's result.
    Rows(Output),
    /// `SET variable = value`.
    Set {
        /// The setting.
        variable: String,
        /// Its value.
        value: String,
    },
    /// `EXPLAIN`: DataFusion's optimized logical plan, and weir's.
    Explain {
        /// DataFusion's plan.
        logical: String,
        /// weir's plan, with its exchanges.
        weir: String,
    },
}

/// Tables declared so far, and what planning needs.
#[derive(Default)]
pub struct Session {
    /// Bytes of rows one worker may hold (`None`: its share of the default
    /// budget, a quarter of the machine's available memory).
    pub worker_budget: Option<u64>,
    /// Where query results are written, if not printed.
    pub destination: Option<crate::exec::Destination>,
    /// Rows of a printed result that worker 0 keeps (`None`: all); the rest
    /// are counted, not held.
    pub keep: Option<usize>,
    catalog: Catalog,
    functions: Functions,
    options: ConfigOptions,
    settings: Settings,
}

/// What a statement asks for, planned.
/// What a streaming script asks for.
pub enum Streaming {
    /// Its query, to stream.
    Run(Box<crate::stream::StreamPlan>),
    /// The plan of its query as it streams (an `Outcome::Explain`).
    Explain(Outcome),
}

/// A script's last statement: a query (and the table it inserts into), or
/// the plan of one.
enum Last {
    Query(LogicalPlan, Option<String>),
    Explain(Outcome),
}

enum Planned {
    Declare(Table, bool),
    Query(LogicalPlan),
    Set {
        variable: String,
        value: String,
    },
    Explain {
        logical: String,
        weir: String,
    },
    /// `INSERT INTO table query` (streaming into a Kafka table only).
    Insert {
        table: String,
        query: LogicalPlan,
    },
}

impl Session {
    /// The statements of `sql`, parsed (a syntax error names line and column).
    pub fn parse(sql: &str) -> Result<Vec<Statement>> {
        Ok(DFParser::parse_sql(sql)?.into_iter().collect())
    }

    fn optimize(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        let plan = Analyzer::new().execute_and_check(plan, &self.options, |_, _| {})?;
        Ok(Optimizer::new().optimize(plan, &OptimizerContext::new(), |_, _| {})?)
    }

    fn plan(&self, statement: Statement) -> Result<Planned> {
        let provider = self.provider();
        let plan = SqlToRel::new(&provider).statement_to_plan(statement)?;
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateExternalTable(cmd)) => {
                Ok(Planned::Declare(Table::declare(&cmd)?, cmd.or_replace))
            }
            LogicalPlan::Ddl(other) => Err(SqlError::Unsupported(other.name().to_string())),
            LogicalPlan::Statement(datafusion_expr::Statement::SetVariable(set)) => {
                // checked here, so that every worker refuses a bad value
                Settings::default().set(&set.variable, &set.value)?;
                Ok(Planned::Set {
                    variable: set.variable,
                    value: set.value,
                })
            }
            LogicalPlan::Explain(explain) => {
                let (query, into) = match explain.plan.as_ref() {
                    LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)) => (
                        dml.input.as_ref().clone(),
                        Some(dml.table_name.table().to_string()),
                    ),
                    plan => (plan.clone(), None),
                };
                let optimized = self.optimize(query)?;
                let logical = optimized.display_indent().to_string();
                // a query over unbounded tables: its plan as it streams
                let streaming = crate::plan::translate_as(&optimized, &self.catalog, true);
                if let Ok(streaming) = streaming
                    && !crate::stream::bounded(&streaming.root)
                {
                    let tables = (
                        into.map(|name| self.table(&name)).transpose()?,
                        self.late_rows()?,
                    );
                    let plan = crate::stream::StreamPlan::new(streaming, tables, &self.settings)?;
                    let weir = plan.explain();
                    return Ok(Planned::Explain { logical, weir });
                }
                if into.is_some() {
                    return Err(unsupported_writes());
                }
                // scalar subqueries run first, as plans of their own: here a
                // null stands for each value
                let shown = with_scalar_subqueries(optimized, |sub| {
                    let t = sub.schema().field(0).data_type().clone();
                    Ok(ScalarValue::try_from(&t)?)
                })?;
                let weir = translate(&shown, &self.catalog)?;
                Ok(Planned::Explain {
                    logical,
                    weir: weir.root.explain(),
                })
            }
            LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)) => Ok(Planned::Insert {
                table: dml.table_name.table().to_string(),
                query: self.optimize(dml.input.as_ref().clone())?,
            }),
            LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => Err(unsupported_writes()),
            plan => Ok(Planned::Query(self.optimize(plan)?)),
        }
    }

    /// Runs `statement` on this worker (every worker runs it alongside).
    /// The workers agree that it planned everywhere before any runs it, so
    /// that a table whose files one process cannot read fails the statement
    /// on every worker rather than leaving the others waiting.
    pub fn run(&mut self, worker: &mut Worker, statement: Statement) -> Result<Outcome> {
        let planned = self.plan(statement);
        let failed = planned.as_ref().err().map(|e| match e {
            SqlError::Job(job) => job.clone(),
            other => JobError::Compute(other.to_string()),
        });
        let elsewhere = all_gather(worker, failed).into_iter().flatten().next();
        let planned = match (planned, elsewhere) {
            (Err(e), _) => return Err(e),
            (Ok(_), Some(e)) => return Err(SqlError::Job(e)),
            (Ok(planned), None) => planned,
        };
        Ok(match planned {
            Planned::Declare(table, replace) => {
                let outcome = Outcome::Declared {
                    table: table.name.clone(),
                    columns: table
                        .schema
                        .fields()
                        .iter()
                        .map(|f| format!("{} {}", f.name(), f.data_type()))
                        .collect(),
                };
                self.catalog.add(table, replace)?;
                outcome
            }
            Planned::Query(plan) => Outcome::Rows(self.run_optimized(worker, plan)?),
            Planned::Set { variable, value } => {
                self.settings.set(&variable, &value)?;
                Outcome::Set { variable, value }
            }
            Planned::Explain { logical, weir } => Outcome::Explain { logical, weir },
            Planned::Insert { .. } => return Err(unsupported_writes()),
        })
    }
}

/// The error of a statement that writes to a table where weir does not.
fn unsupported_writes() -> SqlError {
    SqlError::Unsupported(
        "INSERT and COPY (write results with --output; a streaming query \
         inserts into a Kafka table)"
            .into(),
    )
}

impl Session {
    fn budget(&self) -> Budget {
        Budget(
            self.worker_budget
                .unwrap_or_else(weir_runtime::units::default_memory_budget),
        )
    }

    /// The tables declared so far.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Registers a scalar function of the program's own (replacing one of
    /// the same name).
    pub fn register_udf(&mut self, f: datafusion_expr::ScalarUDF) {
        self.functions.add_scalar(Arc::new(f));
    }

    /// A session with the tables and functions of `sessions` (a later
    /// one's win).
    pub fn merged(sessions: &[&Session]) -> Session {
        let mut merged = Session::default();
        for session in sessions {
            for table in session.catalog.tables() {
                // replacing cannot fail
                let _ = merged.catalog.add(table.clone(), true);
            }
            merged.functions.extend(&session.functions);
        }
        merged
    }

    /// Declares the tables of `script` in order, and plans its query (at
    /// most one, the last statement), and the table it inserts into.
    fn declare_then_query(&mut self, script: &str) -> Result<Option<Last>> {
        let mut query = None;
        for statement in Session::parse(script)? {
            if query.is_some() {
                return Err(SqlError::Plan(
                    "a streaming script ends with its one query".into(),
                ));
            }
            match self.plan(statement)? {
                Planned::Declare(table, replace) => self.catalog.add(table, replace)?,
                Planned::Query(plan) => query = Some(Last::Query(plan, None)),
                Planned::Set { variable, value } => self.settings.set(&variable, &value)?,
                Planned::Insert { table, query: plan } => {
                    query = Some(Last::Query(plan, Some(table)))
                }
                Planned::Explain { logical, weir } => {
                    query = Some(Last::Explain(Outcome::Explain { logical, weir }))
                }
            }
        }
        Ok(query)
    }

    /// Declares the tables of `ddl` (`CREATE EXTERNAL TABLE` statements only).
    pub fn declare_all(&mut self, ddl: &str) -> Result<()> {
        match self.declare_then_query(ddl)? {
            None => Ok(()),
            Some(_) => Err(SqlError::Plan("not a CREATE EXTERNAL TABLE".into())),
        }
    }

    /// Declares the tables of `script` and plans its one query, the last
    /// statement, over unbounded tables, checked to stream (an `INSERT
    /// INTO` a Kafka or directory table writes its rows there).
    pub fn plan_stream(&mut self, script: &str) -> Result<crate::stream::StreamPlan> {
        match self.stream_script(script)? {
            Streaming::Run(plan) => Ok(*plan),
            Streaming::Explain(_) => Err(SqlError::Plan(
                "an EXPLAIN of a streaming query shows it and runs nothing".into(),
            )),
        }
    }

    /// Declares the tables of `script` and plans its one query, the last
    /// statement, to stream (as [`Session::plan_stream`]); or, if it is an
    /// `EXPLAIN`, shows the query's plan as it streams.
    pub fn stream_script(&mut self, script: &str) -> Result<Streaming> {
        let (plan, target) = match self.declare_then_query(script)? {
            None => {
                return Err(SqlError::Plan(
                    "a streaming script ends with a query".into(),
                ));
            }
            Some(Last::Explain(outcome)) => return Ok(Streaming::Explain(outcome)),
            Some(Last::Query(plan, target)) => (plan, target),
        };
        let tables = (
            target.map(|name| self.table(&name)).transpose()?,
            self.late_rows()?,
        );
        let plan = crate::plan::translate_as(&plan, &self.catalog, true)?;
        Ok(Streaming::Run(Box::new(crate::stream::StreamPlan::new(
            plan,
            tables,
            &self.settings,
        )?)))
    }

    /// The table that late rows go to, if the script set one.
    fn late_rows(&self) -> Result<Option<Table>> {
        let Some(name) = &self.settings.late_rows else {
            return Ok(None);
        };
        let table = self.catalog.get(name).cloned().ok_or_else(|| {
            SqlError::Plan(format!(
                "SET {} = '{name}': no such table",
                crate::settings::LATE_ROWS
            ))
        })?;
        Ok(Some(table))
    }

    /// The declared table `name`, that a query inserts into.
    fn table(&self, name: &str) -> Result<Table> {
        self.catalog
            .get(name)
            .cloned()
            .ok_or_else(|| SqlError::Plan(format!("INSERT INTO {name}: no such table")))
    }

    /// Declares `table` (replacing one of the same name).
    pub fn declare(&mut self, table: Table) -> Result<()> {
        self.catalog.add(table, true)
    }

    /// DataFusion's view of this session, for planning.
    pub fn provider(&self) -> Provider<'_> {
        Provider {
            catalog: &self.catalog,
            functions: &self.functions,
            options: &self.options,
        }
    }

    /// Optimizes and runs a logical plan on this worker.
    pub fn run_plan(&self, worker: &mut Worker, plan: LogicalPlan) -> Result<Output> {
        let plan = self.optimize(plan)?;
        self.run_optimized(worker, plan)
    }

    fn run_optimized(&self, worker: &mut Worker, plan: LogicalPlan) -> Result<Output> {
        let start = std::time::Instant::now();
        let plan = self.resolve_subqueries(worker, plan)?;
        let plan = translate(&plan, &self.catalog)?;
        let mut output = run_on(
            worker,
            &plan,
            self.destination.as_ref(),
            self.budget(),
            self.keep,
        )?;
        // the time of the whole query, its scalar subqueries included
        output.elapsed = start.elapsed();
        Ok(output)
    }

    /// Runs every uncorrelated scalar subquery of `plan` (innermost first)
    /// and puts its value in its place, as DataFusion's executor does: the
    /// subquery is a dataflow of its own on every worker, and worker 0 shares
    /// the value with the others.
    fn resolve_subqueries(&self, worker: &mut Worker, plan: LogicalPlan) -> Result<LogicalPlan> {
        with_scalar_subqueries(plan, |sub| self.scalar(worker, sub.clone()))
    }

    /// The value of a scalar subquery, on every worker.
    fn scalar(&self, worker: &mut Worker, plan: LogicalPlan) -> Result<ScalarValue> {
        let plan = self.resolve_subqueries(worker, plan)?;
        let data_type = plan.schema().field(0).data_type().clone();
        let output = run_on(
            worker,
            &translate(&plan, &self.catalog)?,
            None,
            self.budget(),
            // one row, and whether there is a second
            Some(2),
        )?;
        let rows = output.rows();
        let first = output.batches.iter().find(|b| b.num_rows() > 0).cloned();
        let shared = all_gather(
            worker,
            (worker.index() == 0).then(|| (rows, first.map(Batch))),
        );
        let Some((rows, first)) = shared.into_iter().flatten().next() else {
            return Err(SqlError::Execution(
                "a scalar subquery's value did not reach every worker".into(),
            ));
        };
        if rows > 1 {
            return Err(SqlError::Execution(format!(
                "a scalar subquery returned {rows} rows, not at most one"
            )));
        }
        Ok(match first {
            Some(Batch(batch)) => ScalarValue::try_from_array(batch.column(0), 0)?,
            None => ScalarValue::try_from(&data_type)?,
        })
    }
}

/// `plan` with every uncorrelated scalar subquery (innermost first) replaced
/// by the literal `value` gives for the subquery's plan.
fn with_scalar_subqueries(
    plan: LogicalPlan,
    mut value: impl FnMut(&LogicalPlan) -> Result<ScalarValue>,
) -> Result<LogicalPlan> {
    let replaced = plan.transform_up(|node| {
        node.map_expressions(|e| {
            e.transform_up(|e| match e {
                Expr::ScalarSubquery(sub) if sub.outer_ref_columns.is_empty() => {
                    let v =
                        value(&sub.subquery).map_err(|e| DataFusionError::External(Box::new(e)))?;
                    Ok(Transformed::yes(Expr::Literal(v, None)))
                }
                e => Ok(Transformed::no(e)),
            })
        })
    });
    match replaced {
        Ok(t) => Ok(t.data),
        Err(DataFusionError::External(e)) => match e.downcast::<SqlError>() {
            Ok(e) => Err(*e),
            Err(e) => Err(SqlError::Execution(e.to_string())),
        },
        Err(e) => Err(e.into()),
    }
}

/// Runs the statements of `sql` on `config`; the outcomes as the process of
/// worker 0 saw them (other processes get theirs, without rows). With a
/// `destination`, the script's one query writes its result there.
/// `budget` is the memory budget of each process (default: a quarter of the
/// machine's available memory), shared by its workers. A result keeps its
/// first `keep` rows (`None`: all of them) and counts the rest.
pub fn run_script(
    config: timely::Config,
    sql: &str,
    destination: Option<crate::exec::Destination>,
    budget: Option<u64>,
    keep: Option<usize>,
) -> Result<Vec<Outcome>> {
    let (_, local) = weir_runtime::exec::workers(&config);
    let worker_budget =
        budget.unwrap_or_else(weir_runtime::units::default_memory_budget) / local.max(1) as u64;
    let statements = Arc::new(Session::parse(sql)?);
    if let Some(destination) = &destination {
        let queries = statements
            .iter()
            .filter(|s| match s {
                Statement::CreateExternalTable(_) => false,
                Statement::Statement(s) => !matches!(**s, ast::Statement::Set(_)),
                _ => true,
            })
            .count();
        if queries != 1 {
            return Err(SqlError::Plan(format!(
                "results written to {} come from one query, not {queries}",
                destination.dir.display()
            )));
        }
        crate::exec::Destination::prepare(&destination.dir)?;
    }
    let outcomes = execute(config, move |worker| {
        let mut session = Session {
            destination: destination.clone(),
            worker_budget: Some(worker_budget),
            keep,
            ..Session::default()
        };
        let mut outcomes = Vec::new();
        for statement in statements.iter() {
            outcomes.push(
                session
                    .run(worker, statement.clone())
                    .map_err(JobError::from)?,
            );
        }
        Ok(outcomes)
    })?;
    Ok(outcomes)
}

/// Runs statements as they come, as an interactive session does: worker 0
/// calls `open` once and then the reader it returns for each piece of text
/// (one or more statements; `None` ends the session), shares the text with
/// every worker, and gives `report` what each statement did or the error
/// that stopped it. An error ends the statement, not the session. Results
/// keep their first `keep` rows, as [`run_script`]'s do.
pub fn run_interactive<O, N, R>(
    config: timely::Config,
    budget: Option<u64>,
    keep: Option<usize>,
    open: O,
    report: R,
) -> Result<()>
where
    O: FnOnce() -> N + Send + 'static,
    N: FnMut() -> Option<String>,
    R: FnMut(Result<Outcome>) + Send + 'static,
{
    let (_, local) = weir_runtime::exec::workers(&config);
    let worker_budget =
        budget.unwrap_or_else(weir_runtime::units::default_memory_budget) / local.max(1) as u64;
    let leader = std::sync::Mutex::new(Some((open, report)));
    execute(config, move |worker| {
        let mut session = Session {
            worker_budget: Some(worker_budget),
            keep,
            ..Session::default()
        };
        let mut own = if worker.index() == 0 {
            leader
                .lock()
                .map_err(|_| JobError::Runtime("the session's reader was lost".into()))?
                .take()
                .map(|(open, report)| (open(), report))
        } else {
            None
        };
        loop {
            let text = own.as_mut().map(|(next, _)| next());
            let Some(text) = all_gather(worker, text)
                .into_iter()
                .flatten()
                .next()
                .flatten()
            else {
                return Ok(());
            };
            let statements = match Session::parse(&text) {
                Ok(statements) => statements,
                Err(e) => {
                    if let Some((_, report)) = own.as_mut() {
                        report(Err(e));
                    }
                    continue;
                }
            };
            for statement in statements {
                let outcome = session.run(worker, statement);
                let failed = outcome.is_err();
                if let Some((_, report)) = own.as_mut() {
                    report(outcome);
                }
                if failed {
                    break;
                }
            }
        }
    })?;
    Ok(())
}

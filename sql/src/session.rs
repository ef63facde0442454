//! A session: statements run one after the other on one timely execution
//! (one cluster for a whole script). `CREATE EXTERNAL TABLE` declares a
//! table; a query is planned by DataFusion, translated into weir's plan and
//! run on every worker; `EXPLAIN` shows both plans.

use std::sync::Arc;

use datafusion_common::config::ConfigOptions;
use datafusion_expr::{DdlStatement, LogicalPlan};
use datafusion_optimizer::{Analyzer, Optimizer, OptimizerContext};
use datafusion_sql::parser::{DFParser, Statement};
use datafusion_sql::planner::SqlToRel;
use timely::worker::Worker;
use weir_runtime::JobError;
use weir_runtime::exec::execute;

use crate::catalog::{Catalog, Table};
use crate::context::{Functions, Provider};
use crate::error::{Result, SqlError};
use crate::exec::{Output, run_on};
use crate::plan::{Plan, translate};

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
    catalog: Catalog,
    functions: Functions,
    options: ConfigOptions,
}

/// What a statement asks for, planned.
enum Planned {
    Declare(Table, bool),
    Query(Plan),
    Explain { logical: String, weir: String },
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
        let provider = Provider {
            catalog: &self.catalog,
            functions: &self.functions,
            options: &self.options,
        };
        let plan = SqlToRel::new(&provider).statement_to_plan(statement)?;
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateExternalTable(cmd)) => {
                Ok(Planned::Declare(Table::declare(&cmd)?, cmd.or_replace))
            }
            LogicalPlan::Ddl(other) => Err(SqlError::Unsupported(other.name().to_string())),
            LogicalPlan::Explain(explain) => {
                let optimized = self.optimize(explain.plan.as_ref().clone())?;
                let weir = translate(&optimized, &self.catalog)?;
                Ok(Planned::Explain {
                    logical: optimized.display_indent().to_string(),
                    weir: weir.root.explain(),
                })
            }
            LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => Err(SqlError::Unsupported(
                "INSERT and COPY (write results with --output)".into(),
            )),
            plan => Ok(Planned::Query(translate(
                &self.optimize(plan)?,
                &self.catalog,
            )?)),
        }
    }

    /// Runs `statement` on this worker (every worker runs it alongside).
    pub fn run(&mut self, worker: &mut Worker, statement: Statement) -> Result<Outcome> {
        Ok(match self.plan(statement)? {
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
            Planned::Query(plan) => Outcome::Rows(run_on(worker, &plan)?),
            Planned::Explain { logical, weir } => Outcome::Explain { logical, weir },
        })
    }
}

/// Runs the statements of `sql` on `config`; the outcomes as the process of
/// worker 0 saw them (other processes get theirs, without rows).
pub fn run_script(config: timely::Config, sql: &str) -> Result<Vec<Outcome>> {
    let statements = Arc::new(Session::parse(sql)?);
    let outcomes = execute(config, move |worker| {
        let mut session = Session::default();
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

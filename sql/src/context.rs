//! What DataFusion's SQL planner asks of weir: the declared tables, the
//! scalar and aggregate functions DataFusion brings, and weir's window
//! functions in `FROM`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{Result, TableReference, plan_err};
use datafusion_expr::TableProviderFilterPushDown;
use datafusion_expr::planner::{ContextProvider, ExprPlanner, RelationPlanner};
use datafusion_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, TableSource, WindowUDF};

use crate::catalog::Catalog;
use crate::window::WindowRelations;

/// DataFusion's functions, and the program's own, by every name they answer
/// to.
#[derive(Clone)]
pub struct Functions {
    scalar: HashMap<String, Arc<ScalarUDF>>,
    aggregate: HashMap<String, Arc<AggregateUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
    relations: Vec<Arc<dyn RelationPlanner>>,
}

impl Default for Functions {
    fn default() -> Self {
        let mut functions = Functions {
            scalar: HashMap::new(),
            aggregate: HashMap::new(),
            planners: Vec::new(),
            relations: vec![Arc::new(WindowRelations)],
        };
        for f in datafusion_functions::all_default_functions()
            .into_iter()
            .chain(datafusion_functions_nested::all_default_nested_functions())
        {
            functions.add_scalar(f);
        }
        for f in datafusion_functions_aggregate::all_default_aggregate_functions() {
            for alias in f.aliases() {
                functions.aggregate.insert(alias.clone(), Arc::clone(&f));
            }
            functions.aggregate.insert(f.name().to_string(), f);
        }
        // SQL syntax that plans into functions: EXTRACT, SUBSTRING ... FROM,
        // POSITION, OVERLAY, struct, array and map literals, field access
        functions.planners = vec![
            Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
            Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
            Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
            Arc::new(datafusion_functions_nested::planner::NestedFunctionPlanner),
            Arc::new(datafusion_functions_nested::planner::FieldAccessPlanner),
            // count(*) as count(1)
            Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
        ];
        functions
    }
}

impl Functions {
    /// Adds a scalar function under its name and aliases (replacing any of
    /// those names).
    pub fn add_scalar(&mut self, f: Arc<ScalarUDF>) {
        for alias in f.aliases() {
            self.scalar.insert(alias.clone(), Arc::clone(&f));
        }
        self.scalar.insert(f.name().to_string(), f);
    }

    /// Adds `other`'s scalar functions (replacing those of the same names).
    pub fn extend(&mut self, other: &Functions) {
        for (name, f) in &other.scalar {
            self.scalar.insert(name.clone(), Arc::clone(f));
        }
    }
}

/// The planner's view of a session: its tables and the functions.
pub struct Provider<'a> {
    /// The declared tables.
    pub catalog: &'a Catalog,
    /// DataFusion's functions.
    pub functions: &'a Functions,
    /// DataFusion's configuration.
    pub options: &'a ConfigOptions,
}

impl ContextProvider for Provider<'_> {
    fn get_table_source(&self, name: TableReference) -> Result<Arc<dyn TableSource>> {
        match self.catalog.get(name.table()) {
            Some(table) => Ok(Arc::new(Source(Arc::clone(&table.schema)))),
            None => {
                let known: Vec<&str> = self.catalog.tables().map(|t| t.name.as_str()).collect();
                let known = if known.is_empty() {
                    "no table is declared: CREATE EXTERNAL TABLE first".to_string()
                } else {
                    format!("tables: {}", known.join(", "))
                };
                plan_err!("table '{}' not found ({known})", name.table())
            }
        }
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.functions.scalar.get(name).cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.functions.aggregate.get(name).cloned()
    }

    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        self.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.functions.scalar.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.functions.aggregate.keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.functions.planners
    }

    fn get_relation_planners(&self) -> &[Arc<dyn RelationPlanner>] {
        &self.functions.relations
    }
}

/// A table as the planner sees it: its schema. Filters stay in the plan's
/// Filter nodes (weir's scans read the columns they need and filter after).
pub struct Source(pub SchemaRef);

impl TableSource for Source {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.0)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion_expr::Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }
}

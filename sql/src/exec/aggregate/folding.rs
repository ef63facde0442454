//! An aggregation's steps one at a time, for operators that keep states
//! between them (a streaming aggregation keeps each group's state across
//! epochs): fold rows into states, merge states, evaluate states.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;

use super::finish::Final;
use super::{emit_states, state_schema, update};
use crate::error::Result;
use crate::plan::Aggregate;

/// What an aggregation computes: its group keys, aggregates and schemas.
pub(crate) struct Folding {
    group: Vec<Arc<dyn PhysicalExpr>>,
    last: Final,
}

impl Folding {
    /// The aggregation of `aggregates` grouped by `group` (keys named and
    /// typed by `key_fields`), its result of schema `output`.
    pub(crate) fn new(
        group: Vec<Arc<dyn PhysicalExpr>>,
        aggregates: Arc<Vec<Aggregate>>,
        key_fields: Vec<Field>,
        output: SchemaRef,
    ) -> Result<Folding> {
        let states = state_schema(&key_fields, &aggregates)?;
        Ok(Folding {
            group,
            last: Final {
                aggregates,
                key_fields,
                states,
                schema: output,
            },
        })
    }

    /// The group key expressions.
    pub(crate) fn group(&self) -> &[Arc<dyn PhysicalExpr>] {
        &self.group
    }

    /// The aggregates.
    pub(crate) fn aggregates(&self) -> &[Aggregate] {
        &self.last.aggregates
    }

    /// The group key columns (the first of a state batch).
    pub(crate) fn keys(&self) -> usize {
        self.last.key_fields.len()
    }

    /// The schema of results: group keys, then every aggregate's value.
    pub(crate) fn output(&self) -> &SchemaRef {
        &self.last.schema
    }

    /// The schema of states: group keys, then every aggregate's state.
    pub(crate) fn states(&self) -> &SchemaRef {
        &self.last.states
    }

    /// The states of `batches`' rows, a row per group (`None`: no rows).
    pub(crate) fn fold(&self, batches: &[RecordBatch]) -> Result<Option<RecordBatch>> {
        let mut groups = self.last.groups()?;
        for batch in batches {
            update(&mut groups, &self.group, &self.last.aggregates, batch)?;
        }
        emit_states(&mut groups, !self.group.is_empty(), &self.last.states)
    }

    /// `states` merged, a row per group.
    pub(crate) fn merge(&self, states: &[RecordBatch]) -> Result<Option<RecordBatch>> {
        let mut groups = self.last.groups()?;
        for batch in states {
            self.last.merge(&mut groups, batch)?;
        }
        emit_states(&mut groups, !self.group.is_empty(), &self.last.states)
    }

    /// The final values of `states`, a row per group.
    pub(crate) fn evaluate(&self, states: &[RecordBatch]) -> Result<Option<RecordBatch>> {
        let mut groups = self.last.groups()?;
        for batch in states {
            self.last.merge(&mut groups, batch)?;
        }
        self.last.evaluate(&mut groups)
    }
}

//! Groups by key, each with its aggregates' accumulators.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use arrow::row::{OwnedRow, RowConverter};
use datafusion_expr::GroupsAccumulator;
use datafusion_physical_expr::GroupsAccumulatorAdapter;
use weir_runtime::exec::Failure;

use crate::error::Result;
use crate::exec::{fail, row_converter};
use crate::plan::Aggregate;

/// Groups and their accumulators.
pub(super) struct Groups {
    converter: RowConverter,
    index: HashMap<OwnedRow, usize>,
    /// The key of each group (none without GROUP BY).
    keys: Vec<OwnedRow>,
    /// How many groups there are.
    pub(super) count: usize,
    pub(super) accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

impl Groups {
    pub(super) fn new(key_fields: &[Field], aggregates: &[Aggregate]) -> Result<Self> {
        let converter = row_converter(key_fields.iter().map(|f| f.data_type()))?;
        let accumulators = aggregates
            .iter()
            .map(|a| {
                let f = Arc::clone(&a.function);
                if f.groups_accumulator_supported() {
                    Ok(f.create_groups_accumulator()?)
                } else {
                    Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
                        f.create_accumulator()
                    })) as Box<dyn GroupsAccumulator>)
                }
            })
            .collect::<Result<_>>()?;
        Ok(Groups {
            converter,
            index: HashMap::new(),
            keys: Vec::new(),
            count: 0,
            accumulators,
        })
    }

    /// New groups, or `None` with the worker's job failed.
    pub(super) fn or_fail(
        key_fields: &[Field],
        aggregates: &[Aggregate],
        failure: &Failure,
    ) -> Option<Self> {
        Groups::new(key_fields, aggregates)
            .map_err(|e| fail(failure, e))
            .ok()
    }

    /// The group of each row of `keys` (new groups are added).
    pub(super) fn assign(&mut self, keys: &[ArrayRef], rows: usize) -> Result<Vec<usize>> {
        if keys.is_empty() {
            // without GROUP BY: one group, once a row came
            if rows > 0 {
                self.count = 1;
            }
            return Ok(vec![0; rows]);
        }
        let converted = self.converter.convert_columns(keys)?;
        let mut groups = Vec::with_capacity(rows);
        for row in converted.iter() {
            let next = self.keys.len();
            let group = *self.index.entry(row.owned()).or_insert(next);
            if group == next {
                self.keys.push(row.owned());
                self.count += 1;
            }
            groups.push(group);
        }
        Ok(groups)
    }

    /// Bytes the groups hold: their keys and accumulators.
    pub(super) fn bytes(&self) -> usize {
        let keys: usize = self.keys.iter().map(|k| k.row().as_ref().len() + 48).sum();
        keys + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    /// The group key columns, in group order.
    pub(super) fn key_columns(&self, grouped: bool) -> Result<Vec<ArrayRef>> {
        if !grouped {
            return Ok(Vec::new());
        }
        Ok(self
            .converter
            .convert_rows(self.keys.iter().map(|k| k.row()))?)
    }
}

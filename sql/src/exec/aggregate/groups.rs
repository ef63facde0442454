//! Groups by key, each with its aggregates' accumulators.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use datafusion_expr::GroupsAccumulator;
use datafusion_physical_expr::GroupsAccumulatorAdapter;
use weir_runtime::exec::Failure;

use super::keys::GroupKeys;
use crate::error::Result;
use crate::exec::fail;
use crate::plan::Aggregate;

/// Groups and their accumulators.
pub(super) struct Groups {
    /// The key of each group (none without GROUP BY).
    keys: GroupKeys,
    /// How many groups there are.
    pub(super) count: usize,
    pub(super) accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

impl Groups {
    pub(super) fn new(key_fields: &[Field], aggregates: &[Aggregate]) -> Result<Self> {
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
            keys: GroupKeys::new(key_fields)?,
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
        let groups = self.keys.assign(keys)?;
        self.count = self.keys.len();
        Ok(groups)
    }

    /// Bytes the groups hold: their keys and accumulators.
    pub(super) fn bytes(&self) -> usize {
        self.keys.bytes() + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    /// The group key columns, in group order.
    pub(super) fn key_columns(&self, grouped: bool) -> Result<Vec<ArrayRef>> {
        if !grouped {
            return Ok(Vec::new());
        }
        self.keys.columns()
    }
}

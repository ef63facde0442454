//! Groups by key, each with its aggregates' accumulators.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use arrow::row::{RowConverter, Rows};
use datafusion_expr::GroupsAccumulator;
use datafusion_physical_expr::GroupsAccumulatorAdapter;
use weir_runtime::exec::Failure;

use crate::error::Result;
use crate::exec::{RowMap, fail, row_converter};
use crate::plan::Aggregate;

/// Groups and their accumulators.
pub(super) struct Groups {
    converter: RowConverter,
    index: RowMap<usize>,
    /// The key of each group (none without GROUP BY).
    keys: Rows,
    /// Bytes the keys take, in the index and in `keys`.
    key_bytes: usize,
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
            keys: converter.empty_rows(0, 0),
            converter,
            index: RowMap::default(),
            key_bytes: 0,
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
            let group = match self.index.get(row.as_ref()) {
                Some(&group) => group,
                None => {
                    let group = self.keys.num_rows();
                    self.index.insert(row.as_ref().into(), group);
                    self.keys.push(row);
                    // the bytes twice, a map slot and a row offset
                    self.key_bytes += 2 * row.as_ref().len() + 48;
                    self.count += 1;
                    group
                }
            };
            groups.push(group);
        }
        Ok(groups)
    }

    /// Bytes the groups hold: their keys and accumulators.
    pub(super) fn bytes(&self) -> usize {
        self.key_bytes + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    /// The group key columns, in group order.
    pub(super) fn key_columns(&self, grouped: bool) -> Result<Vec<ArrayRef>> {
        if !grouped {
            return Ok(Vec::new());
        }
        Ok(self.converter.convert_rows(self.keys.iter())?)
    }
}

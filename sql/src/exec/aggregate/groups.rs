//! Groups by key, each with its aggregates' accumulators.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use arrow::row::{RowConverter, Rows};
use datafusion_expr::GroupsAccumulator;
use datafusion_physical_expr::GroupsAccumulatorAdapter;
use weir_runtime::exec::Failure;

use hashbrown::HashTable;

use crate::error::{Result, SqlError};
use crate::exec::{fail, row_converter};
use crate::plan::Aggregate;

/// Groups and their accumulators.
pub(super) struct Groups {
    converter: RowConverter,
    /// Group numbers by the XXH3-64 of their keys in Arrow's row format.
    index: HashTable<u32>,
    /// Each group's hash (the index moves its entries by them as it grows).
    hashes: Vec<u64>,
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
            index: HashTable::new(),
            hashes: Vec::new(),
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
        let Groups {
            index,
            hashes,
            keys,
            ..
        } = self;
        for row in converted.iter() {
            let bytes = row.as_ref();
            let hash = twox_hash::XxHash3_64::oneshot(bytes);
            let group = match index.find(hash, |&g| keys.row(g as usize).as_ref() == bytes) {
                Some(&group) => group as usize,
                None => {
                    let group = keys.num_rows();
                    let id = u32::try_from(group).map_err(|_| {
                        SqlError::Execution("over 2^32 groups on one worker".into())
                    })?;
                    index.insert_unique(hash, id, |&g| hashes[g as usize]);
                    hashes.push(hash);
                    keys.push(row);
                    // the bytes, an offset, a hash and an index slot
                    self.key_bytes += bytes.len() + 8 + 8 + 8;
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

//! The group keys of an aggregation and each key's group number: one
//! integer key column by value in the hash table itself, other keys in
//! Arrow's row format, compared by their bytes.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::datatypes::{DataType, Field};
use arrow::row::{RowConverter, Rows};
use hashbrown::HashTable;

use crate::error::{Result, SqlError};
use crate::exec::{int_hash, int_values, integer_key, row_converter};

/// Group keys, in group order, and their index.
pub(super) enum GroupKeys {
    /// One integer key column.
    Ints {
        /// (key, group) by the key's hash.
        index: HashTable<(i64, u32)>,
        /// Each group's key (`None`: the null group).
        keys: Vec<Option<i64>>,
        /// The null key's group, once it came.
        null: Option<u32>,
        /// The column's type.
        data_type: DataType,
    },
    /// Other keys (or none).
    Rows {
        converter: RowConverter,
        /// Group numbers by the XXH3-64 of their keys' rows.
        index: HashTable<u32>,
        /// Each group's hash (the index moves its entries by them as it grows).
        hashes: Vec<u64>,
        keys: Rows,
        /// Bytes the keys take.
        bytes: usize,
    },
}

fn group_id(group: usize) -> Result<u32> {
    u32::try_from(group).map_err(|_| SqlError::Execution("over 2^32 groups on one worker".into()))
}

impl GroupKeys {
    /// No groups yet, of keys `fields`.
    pub(super) fn new(fields: &[Field]) -> Result<GroupKeys> {
        Ok(match fields {
            [f] if integer_key(f.data_type()) => GroupKeys::Ints {
                index: HashTable::new(),
                keys: Vec::new(),
                null: None,
                data_type: f.data_type().clone(),
            },
            _ => {
                let converter = row_converter(fields.iter().map(|f| f.data_type()))?;
                GroupKeys::Rows {
                    keys: converter.empty_rows(0, 0),
                    converter,
                    index: HashTable::new(),
                    hashes: Vec::new(),
                    bytes: 0,
                }
            }
        })
    }

    /// The group of each row of `columns` (new groups are added).
    pub(super) fn assign(&mut self, columns: &[ArrayRef]) -> Result<Vec<usize>> {
        let rows = columns.first().map_or(0, |c| c.len());
        let mut groups = Vec::with_capacity(rows);
        match self {
            GroupKeys::Ints {
                index, keys, null, ..
            } => {
                let column = &columns[0];
                for (i, &key) in int_values(column)?.iter().enumerate() {
                    if column.is_null(i) {
                        let group = match *null {
                            Some(group) => group,
                            None => {
                                let group = group_id(keys.len())?;
                                keys.push(None);
                                *null = Some(group);
                                group
                            }
                        };
                        groups.push(group as usize);
                        continue;
                    }
                    let hash = int_hash(key);
                    let group = match index.find(hash, |&(k, _)| k == key) {
                        Some(&(_, group)) => group,
                        None => {
                            let group = group_id(keys.len())?;
                            index.insert_unique(hash, (key, group), |&(k, _)| int_hash(k));
                            keys.push(Some(key));
                            group
                        }
                    };
                    groups.push(group as usize);
                }
            }
            GroupKeys::Rows {
                converter,
                index,
                hashes,
                keys,
                bytes,
            } => {
                let converted = converter.convert_columns(columns)?;
                for row in converted.iter() {
                    let row_bytes = row.as_ref();
                    let hash = twox_hash::XxHash3_64::oneshot(row_bytes);
                    let found = index.find(hash, |&g| keys.row(g as usize).as_ref() == row_bytes);
                    let group = match found {
                        Some(&group) => group,
                        None => {
                            let group = group_id(keys.num_rows())?;
                            index.insert_unique(hash, group, |&g| hashes[g as usize]);
                            hashes.push(hash);
                            keys.push(row);
                            // the bytes, an offset, a hash and an index slot
                            *bytes += row_bytes.len() + 8 + 8 + 8;
                            group
                        }
                    };
                    groups.push(group as usize);
                }
            }
        }
        Ok(groups)
    }

    /// How many groups there are.
    pub(super) fn len(&self) -> usize {
        match self {
            GroupKeys::Ints { keys, .. } => keys.len(),
            GroupKeys::Rows { keys, .. } => keys.num_rows(),
        }
    }

    /// Bytes the keys and their index hold.
    pub(super) fn bytes(&self) -> usize {
        match self {
            // a key and an index slot of two
            GroupKeys::Ints { keys, .. } => keys.len() * (16 + 2 * 16),
            GroupKeys::Rows { bytes, .. } => *bytes,
        }
    }

    /// The key columns, in group order.
    pub(super) fn columns(&self) -> Result<Vec<ArrayRef>> {
        Ok(match self {
            GroupKeys::Ints {
                keys, data_type, ..
            } => {
                let column: ArrayRef = Arc::new(Int64Array::from(keys.clone()));
                vec![arrow::compute::cast(&column, data_type)?]
            }
            GroupKeys::Rows {
                converter, keys, ..
            } => converter.convert_rows(keys.iter())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, StringArray};

    use super::*;

    #[test]
    fn integer_keys_group_as_row_keys_do_with_a_null_group() {
        let batches = [
            vec![Some(3), None, Some(3), Some(-2)],
            vec![Some(-2), Some(9), None],
        ];
        let want = [vec![0, 1, 0, 2], vec![2, 3, 1]];
        let short = |v: &Vec<Option<i64>>| -> ArrayRef {
            Arc::new(Int32Array::from_iter(v.iter().map(|k| k.map(|k| k as i32))))
        };
        let text = |v: &Vec<Option<i64>>| -> ArrayRef {
            Arc::new(StringArray::from_iter(
                v.iter().map(|k| k.map(|k| k.to_string())),
            ))
        };
        for (column, data_type) in [
            (short as fn(&_) -> _, DataType::Int32),
            (text, DataType::Utf8),
        ] {
            let mut keys = GroupKeys::new(&[Field::new("k", data_type.clone(), true)]).unwrap();
            for (batch, want) in batches.iter().zip(&want) {
                assert_eq!(&keys.assign(&[column(batch)]).unwrap(), want);
            }
            let out = keys.columns().unwrap();
            assert_eq!(out[0].data_type(), &data_type);
            let all: Vec<Option<i64>> = vec![Some(3), None, Some(-2), Some(9)];
            assert_eq!(&out[0], &column(&all));
        }
    }
}

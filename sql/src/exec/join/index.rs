//! The index of a worker's left rows by key, as DataFusion's join hash map
//! keeps them: each key's latest row, and each row's previous row of the
//! same key (or hash). A single integer key is held in the table itself, so
//! that a probe reads one entry and, for a unique key, nothing else; other
//! keys are compared in Arrow's row format.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::num::NonZeroU32;

use arrow::array::{Array, ArrayRef};
use arrow::buffer::ScalarBuffer;
use arrow::row::{RowConverter, Rows};
use hashbrown::HashTable;

use crate::error::{Result, SqlError};
use crate::exec::{int_hash, int_values, integer_key, row_converter};

/// A row's index, plus one (so that `Option<RowId>` takes four bytes).
type RowId = NonZeroU32;

/// Bytes a left row costs in a [`KeyIndex`] beyond its key bytes (a chain
/// link, a share of the table).
pub(super) const INDEX_BYTES_PER_ROW: usize = 4 + 32;

/// Left rows by key (rows with a null key are left out unless nulls equal).
pub(super) struct KeyIndex {
    heads: Heads,
    /// Each row's previous row of the same key (or hash, for row keys).
    previous: Vec<Option<RowId>>,
}

enum Heads {
    /// One integer key column: each key's latest row, beside the key.
    Ints(HashTable<IntHead>),
    /// Other keys: each hash's latest row; the keys compared on a match.
    Rows {
        converter: RowConverter,
        keys: Rows,
        heads: HashMap<u64, RowId, BuildHasherDefault<Prehashed>>,
    },
}

/// An integer key's latest row, and whether earlier rows share the key.
struct IntHead {
    key: i64,
    latest: RowId,
    more: bool,
}

/// Keys to probe an index with, converted as the index compares them.
pub(super) enum Keys {
    Ints(ScalarBuffer<i64>),
    Rows(Rows),
}

/// The hasher of hashes already computed: the value itself.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn row_hash(row: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(row)
}

/// Whether row `i` of `keys` has a null key.
pub(super) fn null_key(keys: &[ArrayRef], i: usize) -> bool {
    keys.iter().any(|k| k.is_null(i))
}

fn row_id(i: usize) -> Result<RowId> {
    u32::try_from(i + 1)
        .ok()
        .and_then(RowId::new)
        .ok_or_else(|| SqlError::Execution("a join side over 2^32 rows".into()))
}

impl KeyIndex {
    /// Indexes the rows of `keys`.
    pub(super) fn new(keys: &[ArrayRef], nulls_equal: bool) -> Result<KeyIndex> {
        let rows = keys.first().map_or(0, |k| k.len());
        let mut previous = Vec::with_capacity(rows);
        let skip = |i: usize| !nulls_equal && null_key(keys, i);
        let heads = match keys {
            // a null's value is arbitrary: where nulls match, rows compare them
            [key] if !nulls_equal && integer_key(key.data_type()) => {
                let values = int_values(key)?;
                let mut table: HashTable<IntHead> = HashTable::with_capacity(rows);
                for (i, &key) in values.iter().enumerate() {
                    if skip(i) {
                        previous.push(None);
                        continue;
                    }
                    let id = row_id(i)?;
                    let entry = table.entry(int_hash(key), |h| h.key == key, |h| int_hash(h.key));
                    match entry {
                        hashbrown::hash_table::Entry::Occupied(mut head) => {
                            let head = head.get_mut();
                            previous.push(Some(head.latest));
                            head.latest = id;
                            head.more = true;
                        }
                        hashbrown::hash_table::Entry::Vacant(slot) => {
                            previous.push(None);
                            slot.insert(IntHead {
                                key,
                                latest: id,
                                more: false,
                            });
                        }
                    }
                }
                Heads::Ints(table)
            }
            _ => {
                let converter = row_converter(keys.iter().map(|k| k.data_type()))?;
                let converted = converter.convert_columns(keys)?;
                let mut heads: HashMap<u64, RowId, BuildHasherDefault<Prehashed>> =
                    HashMap::default();
                for (i, row) in converted.iter().enumerate() {
                    if skip(i) {
                        previous.push(None);
                        continue;
                    }
                    previous.push(heads.insert(row_hash(row.as_ref()), row_id(i)?));
                }
                Heads::Rows {
                    converter,
                    keys: converted,
                    heads,
                }
            }
        };
        Ok(KeyIndex { heads, previous })
    }

    /// Other rows' keys, converted to probe this index with.
    pub(super) fn convert(&self, keys: &[ArrayRef]) -> Result<Keys> {
        Ok(match (&self.heads, keys) {
            (Heads::Ints(_), [key]) => Keys::Ints(int_values(key)?),
            (Heads::Ints(_), _) => {
                return Err(SqlError::Execution(
                    "a join of one integer key probed with several".into(),
                ));
            }
            (Heads::Rows { converter, .. }, keys) => Keys::Rows(converter.convert_columns(keys)?),
        })
    }

    /// Pushes the left rows whose key is row `j` of `keys`.
    pub(super) fn matches(&self, keys: &Keys, j: usize, mut each: impl FnMut(u32)) {
        match (&self.heads, keys) {
            (Heads::Ints(table), Keys::Ints(values)) => {
                let key = values[j];
                let Some(head) = table.find(int_hash(key), |h| h.key == key) else {
                    return;
                };
                each(head.latest.get() - 1);
                if !head.more {
                    return;
                }
                // every row of the chain has this key
                let mut at = self.previous[head.latest.get() as usize - 1];
                while let Some(id) = at {
                    each(id.get() - 1);
                    at = self.previous[id.get() as usize - 1];
                }
            }
            (
                Heads::Rows {
                    keys: left, heads, ..
                },
                Keys::Rows(right),
            ) => {
                let row = right.row(j);
                let mut at = heads.get(&row_hash(row.as_ref())).copied();
                while let Some(id) = at {
                    let i = id.get() - 1;
                    if left.row(i as usize) == row {
                        each(i);
                    }
                    at = self.previous[i as usize];
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, Int64Array, StringArray};

    use super::*;

    /// The left rows each probe key matches, sorted.
    fn matches(index: &KeyIndex, probe: &[ArrayRef]) -> Vec<Vec<u32>> {
        let keys = index.convert(probe).unwrap();
        (0..probe[0].len())
            .map(|j| {
                let mut found = Vec::new();
                if !null_key(probe, j) {
                    index.matches(&keys, j, |i| found.push(i));
                }
                found.sort_unstable();
                found
            })
            .collect()
    }

    #[test]
    fn integer_keys_held_in_the_table_match_as_row_keys_do() {
        let left = [Some(5), None, Some(7), Some(5), Some(-1), Some(5), Some(7)];
        let probe = [Some(5), Some(7), Some(8), None, Some(-1)];
        let want = vec![vec![0, 3, 5], vec![2, 6], vec![], vec![], vec![4]];
        let text = |v: &[Option<i64>]| -> ArrayRef {
            Arc::new(StringArray::from_iter(
                v.iter().map(|k| k.map(|k| k.to_string())),
            ))
        };
        let long = |v: &[Option<i64>]| -> ArrayRef { Arc::new(Int64Array::from(v.to_vec())) };
        let short = |v: &[Option<i64>]| -> ArrayRef {
            Arc::new(Int32Array::from_iter(v.iter().map(|k| k.map(|k| k as i32))))
        };
        for column in [text, long, short] {
            let index = KeyIndex::new(&[column(&left)], false).unwrap();
            assert_eq!(matches(&index, &[column(&probe)]), want);
        }
        assert!(matches!(
            KeyIndex::new(&[long(&left)], false).unwrap().heads,
            Heads::Ints(_)
        ));
        // where nulls match each other, keys are compared as rows
        let index = KeyIndex::new(&[long(&left)], true).unwrap();
        assert!(matches!(index.heads, Heads::Rows { .. }));
    }
}

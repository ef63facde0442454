//! The rows a worker of a streaming join holds, by key, and the changes
//! made to them in place.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use arrow::row::Rows;
use serde::{Deserialize, Serialize};
use weir_progress::byte_string::ByteString;

use crate::error::Result;
use crate::stream::keyed::Keyed;

/// The rows of one key held by a worker, left then right.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Held(pub(super) [Vec<HeldRow>; 2]);

/// A held row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct HeldRow {
    /// When it expires (see [`super::Expire`]).
    pub(super) expiry: i64,
    /// Arrow's row format of its columns and keys.
    pub(super) row: ByteString,
    /// How many rows of the other side it meets (counted for a side that
    /// owes more than pairs; at most 1 where rows only come).
    pub(super) matches: u32,
}

/// Drops the held rows at `places` (key, index) of side `s`.
pub(super) fn remove(state: &mut Keyed<Held>, s: usize, places: &[&(ByteString, usize)]) {
    let mut by_key: BTreeMap<&ByteString, BTreeSet<usize>> = BTreeMap::new();
    for (key, i) in places {
        by_key.entry(key).or_default().insert(*i);
    }
    for (key, gone) in by_key {
        state.change(key, |Held(sides)| {
            let mut i = 0;
            sides[s].retain(|_| {
                i += 1;
                !gone.contains(&(i - 1))
            });
            !sides.iter().all(Vec::is_empty)
        });
    }
}

/// Sets the count of rows met of the held rows at `places` (key, index)
/// of side `s`.
pub(super) fn set_matches(
    state: &mut Keyed<Held>,
    s: usize,
    places: &[(&(ByteString, usize), u32)],
) {
    for ((key, i), matches) in places {
        state.change(key, |Held(sides)| {
            if let Some(held) = sides[s].get_mut(*i) {
                held.matches = *matches;
            }
            true
        });
    }
}

/// Takes back, for each of `rows` (of side `s`, under its key in `keys`),
/// one held row equal to it (an updating side's `-U` and `-D` rows).
/// Returns the count of rows met of each row taken back (`None` for one
/// not held: its time ran out).
pub(super) fn take_back(
    state: &mut Keyed<Held>,
    s: usize,
    rows: &Rows,
    keys: &[ByteString],
) -> Vec<Option<u32>> {
    let mut taken = Vec::with_capacity(keys.len());
    for (row, key) in rows.iter().zip(keys) {
        let mut matches = None;
        state.change(key, |Held(sides)| {
            if let Some(i) = sides[s].iter().position(|h| *h.row == *row.as_ref()) {
                matches = Some(sides[s].remove(i).matches);
            }
            !sides.iter().all(Vec::is_empty)
        });
        taken.push(matches);
    }
    taken
}

/// Each row's expiry: the smallest of its `column + offset` over `rules`
/// (`None` for a row with a null time, which meets no row).
pub(super) fn expiries(batch: &RecordBatch, rules: &[(usize, i64)]) -> Result<Vec<Option<i64>>> {
    let mut least: Vec<Option<i64>> = vec![Some(i64::MAX); batch.num_rows()];
    for (column, offset) in rules {
        let ticks: ArrayRef = cast(batch.column(*column), &DataType::Int64)?;
        let ticks = ticks.as_primitive::<Int64Type>();
        for (i, at) in least.iter_mut().enumerate() {
            *at = match (*at, ticks.is_valid(i)) {
                (Some(a), true) => Some(a.min(ticks.value(i).saturating_add(*offset))),
                _ => None,
            };
        }
    }
    Ok(least)
}

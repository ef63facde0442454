//! A worker's left rows in a hash table, probed by its right rows.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array,
};
use arrow::compute::{concat, take};
use arrow::datatypes::Schema;
use datafusion_common::JoinType;

use super::JoinSpec;
use super::index::{INDEX_BYTES_PER_ROW, KeyIndex, null_key};
use crate::error::Result;
use crate::exec::evaluate;

/// The left rows of one worker, hashed by key.
pub(super) struct Built {
    /// Every left row, with its key columns last.
    rows: Option<RecordBatch>,
    /// Rows by key (rows with a null key are left out unless nulls equal).
    index: Option<KeyIndex>,
    /// Which left rows have matched a right row.
    matched: Vec<bool>,
    /// Whether a right row had a null key (for NOT IN).
    right_null: bool,
    k: usize,
    nulls_equal: bool,
}

impl Built {
    /// Bytes a table of `rows` left rows taking `bytes` (with `k` key
    /// columns, the widest taking `widest`) will hold once built, for
    /// budgeting before the build: the rows, an index of their keys (about
    /// 8 bytes a key column), and while it is built one column twice.
    pub(super) fn estimate(bytes: usize, widest: usize, rows: usize, k: usize) -> usize {
        bytes + widest + rows * (INDEX_BYTES_PER_ROW + 8 * k)
    }

    pub(super) fn new(batches: Vec<RecordBatch>, k: usize, nulls_equal: bool) -> Result<Built> {
        let rows = concat_by_column(batches)?;
        let index = match &rows {
            Some(rows) if k > 0 => Some(KeyIndex::new(&tail(rows, k), nulls_equal)?),
            _ => None,
        };
        Ok(Built {
            matched: vec![false; rows.as_ref().map_or(0, |r| r.num_rows())],
            rows,
            index,
            right_null: false,
            k,
            nulls_equal,
        })
    }

    /// The (left, right) pairs of `batch`'s rows with equal keys.
    fn pairs(&mut self, batch: &RecordBatch) -> Result<(Vec<u32>, Vec<u32>)> {
        let (mut l, mut r) = (Vec::new(), Vec::new());
        let Some(rows) = &self.rows else {
            if self.k > 0 {
                let keys = tail(batch, self.k);
                self.right_null |= (0..batch.num_rows()).any(|i| null_key(&keys, i));
            }
            return Ok((l, r));
        };
        let keys = tail(batch, self.k);
        if self.k == 0 {
            for j in 0..batch.num_rows() as u32 {
                for i in 0..rows.num_rows() as u32 {
                    l.push(i);
                    r.push(j);
                }
            }
            return Ok((l, r));
        }
        let Some(index) = &self.index else {
            return Ok((l, r));
        };
        let converted = index.convert(&keys)?;
        for j in 0..batch.num_rows() {
            if null_key(&keys, j) {
                self.right_null = true;
                if !self.nulls_equal {
                    continue;
                }
            }
            index.matches(&converted, j, |i| {
                l.push(i);
                r.push(j as u32);
            });
        }
        Ok((l, r))
    }

    /// The (left, right) pairs of `batch`'s rows that meet: equal keys,
    /// and the filter holds.
    pub(super) fn matched(
        &mut self,
        batch: &RecordBatch,
        spec: &JoinSpec,
    ) -> Result<(Vec<u32>, Vec<u32>)> {
        let (l, r) = self.pairs(batch)?;
        let (Some(filter), Some(rows)) = (&spec.filter, &self.rows) else {
            return Ok((l, r));
        };
        let both = combine(rows, batch, &l, &r, self.k)?;
        let keep = evaluate(filter, &both)?;
        let keep = keep.as_boolean();
        let kept: Vec<usize> = (0..keep.len())
            .filter(|&i| keep.is_valid(i) && keep.value(i))
            .collect();
        Ok((
            kept.iter().map(|&i| l[i]).collect(),
            kept.iter().map(|&i| r[i]).collect(),
        ))
    }

    /// Joins a right batch: what its rows produce now.
    pub(super) fn probe(
        &mut self,
        batch: &RecordBatch,
        spec: &JoinSpec,
    ) -> Result<Option<RecordBatch>> {
        let (l, r) = self.matched(batch, spec)?;
        if matches!(
            spec.join_type,
            JoinType::Left
                | JoinType::Full
                | JoinType::LeftSemi
                | JoinType::LeftAnti
                | JoinType::LeftMark
        ) {
            for &i in &l {
                self.matched[i as usize] = true;
            }
        }
        let right_rows = |want: bool| -> Vec<u32> {
            let mut right_matched = vec![false; batch.num_rows()];
            for &j in &r {
                right_matched[j as usize] = true;
            }
            (0..batch.num_rows() as u32)
                .filter(|&j| right_matched[j as usize] == want)
                .collect()
        };
        match spec.join_type {
            JoinType::Inner | JoinType::Left => {
                self.output(batch, UInt32Array::from(l), UInt32Array::from(r), spec)
            }
            JoinType::Right | JoinType::Full => {
                let unmatched = right_rows(false);
                let mut lo: Vec<Option<u32>> = l.iter().map(|&i| Some(i)).collect();
                let mut ro: Vec<Option<u32>> = r.iter().map(|&j| Some(j)).collect();
                lo.extend(unmatched.iter().map(|_| None));
                ro.extend(unmatched.iter().map(|&j| Some(j)));
                self.output(batch, UInt32Array::from(lo), UInt32Array::from(ro), spec)
            }
            JoinType::RightSemi => side(batch, &right_rows(true), self.k, spec),
            JoinType::RightAnti => side(batch, &right_rows(false), self.k, spec),
            // the left side's rows come at the end
            JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark | JoinType::RightMark => {
                Ok(None)
            }
        }
    }

    /// Left and right columns of the rows at the indices (null: nulls).
    fn output(
        &self,
        batch: &RecordBatch,
        left_indices: UInt32Array,
        right_indices: UInt32Array,
        spec: &JoinSpec,
    ) -> Result<Option<RecordBatch>> {
        if left_indices.is_empty() {
            return Ok(None);
        }
        let mut columns = Vec::new();
        let left_fields = spec.schema.fields().len() - (batch.num_columns() - self.k);
        match &self.rows {
            Some(rows) => {
                for c in &rows.columns()[..rows.num_columns() - self.k] {
                    columns.push(take(c, &left_indices, None)?);
                }
            }
            None => {
                for f in &spec.schema.fields()[..left_fields] {
                    columns.push(arrow::array::new_null_array(
                        f.data_type(),
                        left_indices.len(),
                    ));
                }
            }
        }
        for c in &batch.columns()[..batch.num_columns() - self.k] {
            columns.push(take(c, &right_indices, None)?);
        }
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&spec.schema),
            columns,
        )?))
    }

    /// What the left side owes once every right row has probed.
    pub(super) fn finish(&mut self, spec: &JoinSpec) -> Result<Option<RecordBatch>> {
        let Some(rows) = &self.rows else {
            return Ok(None);
        };
        let left_columns = &rows.columns()[..rows.num_columns() - self.k];
        let chosen = |want: bool| -> UInt32Array {
            UInt32Array::from(
                (0..rows.num_rows() as u32)
                    .filter(|&i| self.matched[i as usize] == want)
                    .collect::<Vec<_>>(),
            )
        };
        let take_all = |indices: &UInt32Array| -> Result<Vec<ArrayRef>> {
            left_columns
                .iter()
                .map(|c| Ok(take(c, indices, None)?))
                .collect()
        };
        let columns = match spec.join_type {
            JoinType::Left | JoinType::Full => {
                let indices = chosen(false);
                let mut columns = take_all(&indices)?;
                for f in &spec.schema.fields()[left_columns.len()..] {
                    columns.push(arrow::array::new_null_array(f.data_type(), indices.len()));
                }
                columns
            }
            JoinType::LeftSemi => take_all(&chosen(true))?,
            JoinType::LeftAnti => {
                if spec.null_aware && self.right_null {
                    return Ok(None);
                }
                let keys = tail(rows, self.k);
                let indices: Vec<u32> = (0..rows.num_rows() as u32)
                    .filter(|&i| !self.matched[i as usize])
                    .filter(|&i| !(spec.null_aware && null_key(&keys, i as usize)))
                    .collect();
                take_all(&UInt32Array::from(indices))?
            }
            JoinType::LeftMark => {
                let mut columns = left_columns.to_vec();
                columns.push(Arc::new(BooleanArray::from(self.matched.clone())));
                columns
            }
            _ => return Ok(None),
        };
        let rows_out = columns.first().map_or(0, |c| c.len());
        let options = RecordBatchOptions::new().with_row_count(Some(rows_out));
        Ok(Some(RecordBatch::try_new_with_options(
            Arc::clone(&spec.schema),
            columns,
            &options,
        )?))
    }
}

/// `batches` as one batch, concatenated a column at a time so that each
/// column's parts are let go once it is whole: what this holds at most is
/// the batches and one column more, not them twice.
fn concat_by_column(batches: Vec<RecordBatch>) -> Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    if batches.len() == 1 {
        return Ok(batches.into_iter().next());
    }
    let schema = first.schema();
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let mut parts: Vec<Vec<ArrayRef>> =
        vec![Vec::with_capacity(batches.len()); schema.fields().len()];
    for batch in batches {
        for (part, column) in parts.iter_mut().zip(batch.columns()) {
            part.push(Arc::clone(column));
        }
    }
    let mut columns = Vec::with_capacity(parts.len());
    for part in &mut parts {
        let arrays: Vec<&dyn Array> = part.iter().map(|a| a.as_ref()).collect();
        columns.push(concat(&arrays)?);
        drop(arrays);
        part.clear();
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(Some(RecordBatch::try_new_with_options(
        schema, columns, &options,
    )?))
}

/// The right side's columns of `rows` (semi and anti joins).
fn side(
    batch: &RecordBatch,
    rows: &[u32],
    k: usize,
    spec: &JoinSpec,
) -> Result<Option<RecordBatch>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let indices = UInt32Array::from(rows.to_vec());
    let columns = batch.columns()[..batch.num_columns() - k]
        .iter()
        .map(|c| Ok(take(c, &indices, None)?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(RecordBatch::try_new(
        Arc::clone(&spec.schema),
        columns,
    )?))
}

/// The last `k` columns.
fn tail(batch: &RecordBatch, k: usize) -> Vec<ArrayRef> {
    batch.columns()[batch.num_columns() - k..].to_vec()
}

/// Left then right columns (keys left out) of the pairs, for the filter.
fn combine(
    left: &RecordBatch,
    right: &RecordBatch,
    l: &[u32],
    r: &[u32],
    k: usize,
) -> Result<RecordBatch> {
    let li = UInt32Array::from(l.to_vec());
    let ri = UInt32Array::from(r.to_vec());
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (batch, indices) in [(left, &li), (right, &ri)] {
        let width = batch.num_columns() - k;
        for (f, c) in batch.schema().fields()[..width]
            .iter()
            .zip(&batch.columns()[..width])
        {
            fields.push(f.as_ref().clone().with_nullable(true));
            columns.push(take(c, indices, None)?);
        }
    }
    let options = RecordBatchOptions::new().with_row_count(Some(l.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn a_table_concatenated_by_column_equals_one_concatenated_whole() {
        let batch = |from: i64| {
            RecordBatch::try_from_iter(vec![
                (
                    "k",
                    Arc::new(Int64Array::from(vec![from, from + 1])) as ArrayRef,
                ),
                (
                    "v",
                    Arc::new(StringArray::from(vec![Some("a"), None])) as ArrayRef,
                ),
            ])
            .unwrap()
        };
        let batches = vec![batch(0), batch(2), batch(4)];
        let whole = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(concat_by_column(batches).unwrap(), Some(whole));
        assert_eq!(concat_by_column(Vec::new()).unwrap(), None);
    }
}

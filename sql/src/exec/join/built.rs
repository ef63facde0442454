//! A worker's left rows in a hash table, probed by its right rows.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array,
};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::Schema;
use arrow::row::RowConverter;
use datafusion_common::JoinType;

use super::JoinSpec;
use crate::error::Result;
use crate::exec::{RowMap, evaluate, row_converter};

/// The left rows of one worker, hashed by key.
pub(super) struct Built {
    /// Every left row, with its key columns last.
    rows: Option<RecordBatch>,
    /// Rows by key (rows with a null key are left out unless nulls equal).
    index: RowMap<Vec<u32>>,
    /// Which left rows have matched a right row.
    matched: Vec<bool>,
    /// Whether a right row had a null key (for NOT IN).
    right_null: bool,
    converter: Option<RowConverter>,
    k: usize,
    nulls_equal: bool,
}

/// Whether row `i` of `keys` has a null key.
fn null_key(keys: &[ArrayRef], i: usize) -> bool {
    keys.iter().any(|k| k.is_null(i))
}

impl Built {
    pub(super) fn new(batches: Vec<RecordBatch>, k: usize, nulls_equal: bool) -> Result<Built> {
        let rows = match batches.first() {
            Some(first) => Some(concat_batches(&first.schema(), &batches)?),
            None => None,
        };
        let mut built = Built {
            matched: vec![false; rows.as_ref().map_or(0, |r| r.num_rows())],
            rows,
            index: RowMap::default(),
            right_null: false,
            converter: None,
            k,
            nulls_equal,
        };
        if let Some(rows) = &built.rows {
            let keys = tail(rows, k);
            if k > 0 {
                let converter = row_converter(keys.iter().map(|k| k.data_type()))?;
                let converted = converter.convert_columns(&keys)?;
                for (i, row) in converted.iter().enumerate() {
                    if !nulls_equal && null_key(&keys, i) {
                        continue;
                    }
                    built
                        .index
                        .entry(row.as_ref().into())
                        .or_default()
                        .push(i as u32);
                }
                built.converter = Some(converter);
            }
        }
        Ok(built)
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
        let converter = match &self.converter {
            Some(c) => c,
            None => return Ok((l, r)),
        };
        let converted = converter.convert_columns(&keys)?;
        for (j, row) in converted.iter().enumerate() {
            if null_key(&keys, j) {
                self.right_null = true;
                if !self.nulls_equal {
                    continue;
                }
            }
            if let Some(matches) = self.index.get(row.as_ref()) {
                for &i in matches {
                    l.push(i);
                    r.push(j as u32);
                }
            }
        }
        Ok((l, r))
    }

    /// Joins a right batch: what its rows produce now.
    pub(super) fn probe(
        &mut self,
        batch: &RecordBatch,
        spec: &JoinSpec,
    ) -> Result<Option<RecordBatch>> {
        let (mut l, mut r) = self.pairs(batch)?;
        if let (Some(filter), Some(rows)) = (&spec.filter, &self.rows) {
            let both = combine(rows, batch, &l, &r, self.k)?;
            let keep = evaluate(filter, &both)?;
            let keep = keep.as_boolean();
            let kept: Vec<usize> = (0..keep.len())
                .filter(|&i| keep.is_valid(i) && keep.value(i))
                .collect();
            l = kept.iter().map(|&i| l[i]).collect();
            r = kept.iter().map(|&i| r[i]).collect();
        }
        for &i in &l {
            self.matched[i as usize] = true;
        }
        let mut right_matched = vec![false; batch.num_rows()];
        for &j in &r {
            right_matched[j as usize] = true;
        }
        let right_rows = |want: bool| -> Vec<u32> {
            (0..batch.num_rows() as u32)
                .filter(|&j| right_matched[j as usize] == want)
                .collect()
        };
        match spec.join_type {
            JoinType::Inner | JoinType::Left => self.output(batch, &l, &r, spec),
            JoinType::Right | JoinType::Full => {
                let unmatched = right_rows(false);
                let mut lo: Vec<Option<u32>> = l.iter().map(|&i| Some(i)).collect();
                let mut ro: Vec<Option<u32>> = r.iter().map(|&j| Some(j)).collect();
                lo.extend(unmatched.iter().map(|_| None));
                ro.extend(unmatched.iter().map(|&j| Some(j)));
                self.output_optional(batch, &lo, &ro, spec)
            }
            JoinType::RightSemi => side(batch, &right_rows(true), self.k, spec),
            JoinType::RightAnti => side(batch, &right_rows(false), self.k, spec),
            // the left side's rows come at the end
            JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark | JoinType::RightMark => {
                Ok(None)
            }
        }
    }

    fn output(
        &self,
        batch: &RecordBatch,
        l: &[u32],
        r: &[u32],
        spec: &JoinSpec,
    ) -> Result<Option<RecordBatch>> {
        let lo: Vec<Option<u32>> = l.iter().map(|&i| Some(i)).collect();
        let ro: Vec<Option<u32>> = r.iter().map(|&j| Some(j)).collect();
        self.output_optional(batch, &lo, &ro, spec)
    }

    /// Left and right columns of the given rows (`None`: nulls).
    fn output_optional(
        &self,
        batch: &RecordBatch,
        l: &[Option<u32>],
        r: &[Option<u32>],
        spec: &JoinSpec,
    ) -> Result<Option<RecordBatch>> {
        if l.is_empty() {
            return Ok(None);
        }
        let mut columns = Vec::new();
        let left_indices = UInt32Array::from(l.to_vec());
        let left_fields = spec.schema.fields().len() - (batch.num_columns() - self.k);
        match &self.rows {
            Some(rows) => {
                for c in &rows.columns()[..rows.num_columns() - self.k] {
                    columns.push(take(c, &left_indices, None)?);
                }
            }
            None => {
                for f in &spec.schema.fields()[..left_fields] {
                    columns.push(arrow::array::new_null_array(f.data_type(), l.len()));
                }
            }
        }
        let right_indices = UInt32Array::from(r.to_vec());
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

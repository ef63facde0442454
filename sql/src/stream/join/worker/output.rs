//! What a worker of a streaming join gives out: pairs, a semi or anti
//! join's rows, an outer join's rows padded with nulls, and, when its rows
//! are updates, each with its `op`.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array, new_null_array};
use arrow::compute::take;

use super::super::{Owes, Side};
use super::Worker;
use crate::batch::Batch;
use crate::error::Result;
use crate::stream::updating;

impl Worker {
    /// `batch` of the join's rows, as updates of kind `op` if its rows are
    /// updates.
    pub(super) fn signed(&self, batch: RecordBatch, op: &str) -> Result<Batch> {
        Ok(Batch(match &self.updates {
            Some(schema) => updating::signed(&batch, schema, op)?,
            None => batch,
        }))
    }

    /// The output of the pairs at `li` of `l` and `ri` of `r`.
    pub(super) fn pairs(
        &self,
        l: &RecordBatch,
        li: &[u32],
        r: &RecordBatch,
        ri: &[u32],
    ) -> Result<RecordBatch> {
        let mut columns = columns_of(l, li, self.k())?;
        columns.extend(columns_of(r, ri, self.k())?);
        Ok(RecordBatch::try_new(
            Arc::clone(&self.join.spec.schema),
            columns,
        )?)
    }

    /// The output of the rows at `rows` of `batch` (a semi or anti
    /// join's).
    pub(super) fn rows_of(&self, batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.join.spec.schema),
            columns_of(batch, rows, self.k())?,
            &options,
        )?)
    }

    /// What the rows at `rows` of `batch` (of `side`) owe: a semi or anti
    /// join's rows, or an outer join's padded with nulls.
    pub(super) fn owed(
        &self,
        side: Side,
        batch: &RecordBatch,
        rows: &[u32],
    ) -> Result<Option<RecordBatch>> {
        if rows.is_empty() {
            return Ok(None);
        }
        if self.owes[side.index()] != Owes::Padded {
            return Ok(Some(self.rows_of(batch, rows)?));
        }
        let schema = &self.join.spec.schema;
        let own = columns_of(batch, rows, self.k())?;
        let (n, mine) = (schema.fields().len(), own.len());
        let padding = |fields: std::ops::Range<usize>| {
            schema.fields()[fields]
                .iter()
                .map(|f| new_null_array(f.data_type(), rows.len()))
                .collect::<Vec<ArrayRef>>()
        };
        let columns = match side {
            Side::Left => own.into_iter().chain(padding(mine..n)).collect(),
            Side::Right => padding(0..n - mine).into_iter().chain(own).collect(),
        };
        Ok(Some(RecordBatch::try_new(Arc::clone(schema), columns)?))
    }
}

/// The columns of `batch` but its last `k` (its keys), at `rows`.
fn columns_of(batch: &RecordBatch, rows: &[u32], k: usize) -> Result<Vec<ArrayRef>> {
    let indices = UInt32Array::from(rows.to_vec());
    batch.columns()[..batch.num_columns() - k]
        .iter()
        .map(|c| Ok(take(c, &indices, None)?))
        .collect()
}

//! An external sort's runs: sorted batches spilled when the rows held pass
//! the budget, and their k-way merge back into order (Arrow's row format
//! compares sort keys as bytes, with each key's direction and nulls).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion_physical_expr::PhysicalSortExpr;
use weir_runtime::spill::SpillDir;

use crate::error::Result;
use crate::exec::evaluate;
use crate::exec::spill::{SpillWriter, Spilled};

/// Rows per batch of a run and of the merged output.
const CHUNK: usize = 8192;

/// Writes sorted `batch` as a run in `dir`.
pub(super) fn write_run(dir: &mut SpillDir, batch: &RecordBatch) -> Result<Spilled> {
    let mut writer = SpillWriter::new(dir, &batch.schema())?;
    let mut at = 0;
    while at < batch.num_rows() {
        let len = CHUNK.min(batch.num_rows() - at);
        writer.write(&batch.slice(at, len))?;
        at += len;
    }
    writer.finish(dir)
}

type Batches = Box<dyn Iterator<Item = Result<RecordBatch>>>;

/// Where one run is read.
struct Cursor {
    batches: Batches,
    /// The index of its current batch in the output's sources.
    source: usize,
    keys: Rows,
    at: usize,
}

/// The merge of sorted runs, a batch at a time.
pub(super) struct Merge {
    order: Vec<PhysicalSortExpr>,
    converter: RowConverter,
    cursors: Vec<Option<Cursor>>,
    /// Each cursor's next row, smallest first (ties: the earlier run).
    heap: BinaryHeap<Reverse<(OwnedRow, usize)>>,
    /// Rows still wanted (LIMIT).
    left: usize,
    /// The batches the next output takes rows from.
    sources: Vec<RecordBatch>,
}

impl Merge {
    /// Merges `runs` by `order`, keeping the first `fetch` rows.
    pub(super) fn new(
        runs: &[Spilled],
        order: &[PhysicalSortExpr],
        fetch: Option<usize>,
    ) -> Result<Merge> {
        let Some(schema) = runs.first().map(Spilled::schema) else {
            return Err(crate::error::SqlError::Execution(
                "a merge of no runs".into(),
            ));
        };
        let fields = order
            .iter()
            .map(|o| {
                Ok(SortField::new_with_options(
                    o.expr.data_type(schema)?,
                    o.options,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut merge = Merge {
            order: order.to_vec(),
            converter: RowConverter::new(fields)?,
            cursors: Vec::new(),
            heap: BinaryHeap::new(),
            left: fetch.unwrap_or(usize::MAX),
            sources: Vec::new(),
        };
        for run in runs {
            let batches: Batches = Box::new(run.reader()?);
            let cursor = merge.open(batches)?;
            let i = merge.cursors.len();
            merge.cursors.push(cursor);
            merge.push_next(i);
        }
        Ok(merge)
    }

    /// A cursor at the first row of the next non-empty batch of `batches`.
    fn open(&mut self, mut batches: Batches) -> Result<Option<Cursor>> {
        for batch in batches.by_ref() {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let columns = self
                .order
                .iter()
                .map(|o| evaluate(&o.expr, &batch))
                .collect::<Result<Vec<_>>>()?;
            let keys = self.converter.convert_columns(&columns)?;
            self.sources.push(batch);
            return Ok(Some(Cursor {
                batches,
                source: self.sources.len() - 1,
                keys,
                at: 0,
            }));
        }
        Ok(None)
    }

    fn push_next(&mut self, i: usize) {
        if let Some(cursor) = &self.cursors[i] {
            self.heap
                .push(Reverse((cursor.keys.row(cursor.at).owned(), i)));
        }
    }

    /// The next batch of merged rows, or `None` when every run is done.
    pub(super) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut picks = Vec::new();
        while picks.len() < CHUNK && self.left > 0 {
            let Some(Reverse((_, i))) = self.heap.pop() else {
                break;
            };
            let Some(cursor) = self.cursors[i].as_mut() else {
                continue;
            };
            picks.push((cursor.source, cursor.at));
            self.left -= 1;
            cursor.at += 1;
            if cursor.at == cursor.keys.num_rows() {
                let batches = std::mem::replace(&mut cursor.batches, Box::new(std::iter::empty()));
                self.cursors[i] = self.open(batches)?;
            }
            self.push_next(i);
        }
        if picks.is_empty() {
            return Ok(None);
        }
        let sources: Vec<&RecordBatch> = self.sources.iter().collect();
        let out = interleave_record_batch(&sources, &picks)?;
        // keep only the batches the cursors still read
        let old = std::mem::take(&mut self.sources);
        for cursor in self.cursors.iter_mut().flatten() {
            self.sources.push(old[cursor.source].clone());
            cursor.source = self.sources.len() - 1;
        }
        Ok(Some(out))
    }
}

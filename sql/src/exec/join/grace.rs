//! The spilled hash join (a grace hash join): both sides' rows written to
//! partitions by the hash of their keys, then, once both inputs are
//! complete, one partition at a time: its left rows built into a table and
//! probed with its right rows. A key's rows of both sides share a partition,
//! so each partition is a join of its own, outer and anti rows included.

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use weir_runtime::spill::SpillDir;

use super::JoinSpec;
use super::built::Built;
use crate::error::Result;
use crate::exec::Reservation;
use crate::exec::spill::{Partitioned, Spilled};

/// Right batches read back, one at a time.
type Reader = Box<dyn Iterator<Item = Result<RecordBatch>>>;

/// One worker's spilled join.
pub(super) struct Grace {
    dir: SpillDir,
    /// The key columns: the last `k` of each side's batches.
    k: usize,
    left: Option<Partitioned>,
    right: Option<Partitioned>,
    /// The closed partitions of each side, still to join (from the back).
    todo: Option<Vec<(Option<Spilled>, Option<Spilled>)>>,
    /// The partition being joined: its table, and its right rows to probe.
    current: Option<(Built, Option<Reader>)>,
}

impl Grace {
    pub(super) fn new(dir: SpillDir, k: usize) -> Grace {
        Grace {
            dir,
            k,
            left: None,
            right: None,
            todo: None,
            current: None,
        }
    }

    /// Spills a left batch.
    pub(super) fn left(&mut self, batch: &RecordBatch) -> Result<()> {
        write(&mut self.left, &mut self.dir, batch, self.k)
    }

    /// Spills a right batch.
    pub(super) fn right(&mut self, batch: &RecordBatch) -> Result<()> {
        write(&mut self.right, &mut self.dir, batch, self.k)
    }

    /// Goes on joining (both inputs being complete), probing about `bytes`
    /// of right rows: their output, or `None` once every partition is done.
    /// `memory` holds the table of the partition being joined.
    pub(super) fn next(
        &mut self,
        spec: &JoinSpec,
        memory: &mut Reservation,
        bytes: usize,
    ) -> Result<Option<Vec<RecordBatch>>> {
        let (built, right) = match &mut self.current {
            Some(current) => current,
            None => match self.open(spec, memory)? {
                Some(current) => self.current.insert(current),
                None => return Ok(None),
            },
        };
        let mut out = Vec::new();
        let mut probed = 0;
        while probed < bytes {
            match right.as_mut().and_then(Iterator::next) {
                Some(batch) => {
                    let batch = batch?;
                    probed += batch.get_array_memory_size();
                    out.extend(built.probe(&batch, spec)?);
                }
                None => {
                    out.extend(built.finish(spec)?);
                    self.current = None;
                    memory.release();
                    break;
                }
            }
        }
        out.retain(|b| b.num_rows() > 0);
        Ok(Some(out))
    }

    /// The next partition's table, held in `memory`, and its right rows
    /// (`None` once every partition is done).
    fn open(
        &mut self,
        spec: &JoinSpec,
        memory: &mut Reservation,
    ) -> Result<Option<(Built, Option<Reader>)>> {
        let todo = match &mut self.todo {
            Some(todo) => todo,
            None => {
                let left = close(self.left.take(), &self.dir)?;
                let right = close(self.right.take(), &self.dir)?;
                self.todo.insert(left.into_iter().zip(right).collect())
            }
        };
        let Some((left, right)) = todo.pop() else {
            return Ok(None);
        };
        // one batch, so that what it holds is its rows, not the overhead of
        // the many small batches it was spilled as
        let left = match &left {
            Some(file) => {
                let batches = file.read()?;
                match batches.first() {
                    Some(first) => vec![concat_batches(&first.schema(), &batches)?],
                    None => Vec::new(),
                }
            }
            None => Vec::new(),
        };
        let bytes = left.iter().map(RecordBatch::get_array_memory_size).sum();
        let rows = left.iter().map(RecordBatch::num_rows).sum();
        memory.hold_partition("a hash join", Built::estimate(bytes, 0, rows, self.k))?;
        let built = Built::new(left, self.k, spec.nulls_equal)?;
        let right: Option<Reader> = match &right {
            Some(file) => Some(Box::new(file.reader()?)),
            None => None,
        };
        Ok(Some((built, right)))
    }
}

fn write(
    side: &mut Option<Partitioned>,
    dir: &mut SpillDir,
    batch: &RecordBatch,
    k: usize,
) -> Result<()> {
    let width = batch.num_columns();
    let keys: Vec<usize> = (width - k..width).collect();
    side.get_or_insert_with(|| Partitioned::new(batch.schema()))
        .write(dir, batch, &keys)
}

/// A side's partitions (all `None` if it had no rows).
fn close(side: Option<Partitioned>, dir: &SpillDir) -> Result<Vec<Option<Spilled>>> {
    match side {
        Some(side) => side.finish(dir),
        None => Ok((0..crate::exec::spill::PARTITIONS).map(|_| None).collect()),
    }
}

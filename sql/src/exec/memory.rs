//! What operators hold in memory, and the budget it must stay under.

use crate::error::SqlError;
use arrow::array::RecordBatch;

/// Bytes of rows one worker may hold: its share of its process's memory
/// budget. Past it, hash joins, grouped aggregations and sorts spill to
/// disk; what cannot split (a join without equality keys, NOT IN, an
/// aggregate without GROUP BY) fails the job,
/// naming itself.
#[derive(Clone, Copy, Debug)]
pub struct Budget(pub u64);

impl Budget {
    /// Whether `held` bytes are over the budget.
    pub(crate) fn over(&self, held: usize) -> bool {
        held as u64 > self.0
    }

    /// The error of `what`, holding `held` bytes over the budget.
    pub(crate) fn error(&self, what: &str, held: usize) -> SqlError {
        SqlError::Memory(format!(
            "{what} holds {} on one worker, over its share ({}) of the memory budget",
            weir_runtime::units::bytes(held as u64),
            weir_runtime::units::bytes(self.0)
        ))
    }

    /// The error of `what`, holding `held` bytes over the budget in one of
    /// the partitions it spilled into.
    pub(crate) fn partition_error(&self, what: &str, held: usize) -> SqlError {
        SqlError::Memory(format!(
            "{}, even spilled into {} partitions by key",
            self.error(what, held),
            super::spill::PARTITIONS
        ))
    }
}

/// Batches an operator holds, with the bytes they take (kept as a running
/// total, not summed again at every activation).
#[derive(Default)]
pub(crate) struct Held {
    batches: Vec<RecordBatch>,
    bytes: usize,
    rows: usize,
}

impl Held {
    /// Holds `batches` too.
    pub(crate) fn extend(&mut self, batches: impl IntoIterator<Item = RecordBatch>) {
        for batch in batches {
            self.bytes += batch.get_array_memory_size();
            self.rows += batch.num_rows();
            self.batches.push(batch);
        }
    }

    /// The bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The rows held.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The first batches held, about `bytes` of them (at least one), now
    /// let go.
    pub(crate) fn take_up_to(&mut self, bytes: usize) -> Vec<RecordBatch> {
        let mut taken = 0;
        let mut n = 0;
        for batch in &self.batches {
            if n > 0 && taken >= bytes {
                break;
            }
            taken += batch.get_array_memory_size();
            n += 1;
        }
        let rest = self.batches.split_off(n);
        let batches = std::mem::replace(&mut self.batches, rest);
        self.bytes -= taken;
        self.rows -= batches.iter().map(RecordBatch::num_rows).sum::<usize>();
        batches
    }

    /// Everything held, now let go.
    pub(crate) fn take(&mut self) -> Vec<RecordBatch> {
        self.bytes = 0;
        self.rows = 0;
        std::mem::take(&mut self.batches)
    }
}

//! What operators hold in memory, and the budget it must stay under.

use std::cell::Cell;
use std::rc::Rc;

use arrow::array::RecordBatch;

use crate::error::SqlError;

/// Bytes of rows one worker may hold: its share of its process's memory
/// budget, shared by all the operators of the plan it runs.
/// Past it, hash joins, grouped aggregations and sorts spill to disk; what
/// cannot split (a join without equality keys, NOT IN, an aggregate without
/// GROUP BY, session windows) fails the job, naming itself.
#[derive(Clone, Copy, Debug)]
pub struct Budget(pub u64);

impl Budget {
    /// The error of `what`, holding `held` bytes over the budget.
    fn error(&self, what: &str, held: usize) -> SqlError {
        SqlError::Memory(format!(
            "{what} holds {} on one worker, over its share ({}) of the memory budget",
            weir_runtime::units::bytes(held as u64),
            weir_runtime::units::bytes(self.0)
        ))
    }
}

/// The share of the budget every operator may hold, whatever the others
/// hold: 1/`FLOOR`th.
pub(crate) const FLOOR: u64 = 32;

/// One worker's budget, shared by the operators of its plan as Flink's
/// managed memory is shared by the operators of a slot: each holds a
/// [`Reservation`], and the reservations together stay under the budget.
/// An operator that can spill does so when its next bytes do not fit
/// beside what the others hold, though never below a floor of
/// [`FLOOR`]th of the budget (so that a full pool does not make a sort
/// spill a run per batch); one that cannot spill (or a spilled partition,
/// which cannot split further) is refused only past the whole budget.
#[derive(Clone)]
pub(crate) struct Pool {
    budget: Budget,
    used: Rc<Cell<u64>>,
}

impl Pool {
    pub(crate) fn new(budget: Budget) -> Pool {
        Pool {
            budget,
            used: Rc::default(),
        }
    }

    /// A reservation of no bytes yet.
    pub(crate) fn reserve(&self) -> Reservation {
        Reservation {
            pool: self.clone(),
            held: 0,
        }
    }
}

/// What one operator holds of its worker's [`Pool`]; let go when dropped.
pub(crate) struct Reservation {
    pool: Pool,
    held: u64,
}

impl Reservation {
    fn set(&mut self, bytes: u64) {
        let used = &self.pool.used;
        used.set(used.get() - self.held + bytes);
        self.held = bytes;
    }

    /// Holds `bytes` in all if they fit beside what the worker's other
    /// operators hold (or within the floor), and says whether they did. If
    /// not, what was held stays held: the caller spills, then releases.
    pub(crate) fn try_hold(&mut self, bytes: usize) -> bool {
        let others = self.pool.used.get() - self.held;
        let budget = self.pool.budget.0;
        if others + bytes as u64 > budget && bytes as u64 > budget / FLOOR {
            return false;
        }
        self.set(bytes as u64);
        true
    }

    /// Holds `bytes` in all, for what cannot spill: refused (`what` named)
    /// only when they alone pass the budget.
    pub(crate) fn hold(&mut self, what: &str, bytes: usize) -> Result<(), SqlError> {
        if bytes as u64 > self.pool.budget.0 {
            return Err(self.pool.budget.error(what, bytes));
        }
        self.set(bytes as u64);
        Ok(())
    }

    /// Holds `bytes` of a partition spilled by key, which cannot split
    /// further: refused (`what` named) only when they alone pass the budget.
    pub(crate) fn hold_partition(&mut self, what: &str, bytes: usize) -> Result<(), SqlError> {
        self.hold(what, bytes).map_err(|e| {
            SqlError::Memory(format!(
                "{e}, even spilled into {} partitions by key",
                super::spill::PARTITIONS
            ))
        })
    }

    /// Holds nothing any more.
    pub(crate) fn release(&mut self) {
        self.set(0);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

/// Batches an operator holds, with the bytes they take (kept as a running
/// total, not summed again at every activation).
#[derive(Default)]
pub(crate) struct Held {
    batches: Vec<RecordBatch>,
    bytes: usize,
    rows: usize,
    /// The bytes of each column.
    columns: Vec<usize>,
}

impl Held {
    /// Holds `batches` too.
    pub(crate) fn extend(&mut self, batches: impl IntoIterator<Item = RecordBatch>) {
        for batch in batches {
            self.bytes += batch.get_array_memory_size();
            self.rows += batch.num_rows();
            self.columns.resize(batch.num_columns(), 0);
            for (total, column) in self.columns.iter_mut().zip(batch.columns()) {
                *total += column.get_array_memory_size();
            }
            self.batches.push(batch);
        }
    }

    /// The bytes of the column that takes the most.
    pub(crate) fn widest(&self) -> usize {
        self.columns.iter().copied().max().unwrap_or(0)
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
        for batch in &batches {
            for (total, column) in self.columns.iter_mut().zip(batch.columns()) {
                *total -= column.get_array_memory_size();
            }
        }
        batches
    }

    /// Everything held, now let go.
    pub(crate) fn take(&mut self) -> Vec<RecordBatch> {
        self.bytes = 0;
        self.rows = 0;
        self.columns.clear();
        std::mem::take(&mut self.batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_above_their_floor() {
        let pool = Pool::new(Budget(3200));
        let mut a = pool.reserve();
        let mut b = pool.reserve();
        assert!(a.try_hold(3150));
        // b fits within its floor whatever a holds, not past it
        assert!(b.try_hold(100));
        assert!(!b.try_hold(300));
        assert!(a.try_hold(3100), "a may regrow within what b leaves");
        assert!(!a.try_hold(3101));
        a.release();
        assert!(b.try_hold(3200));
        drop(b);
        assert!(a.try_hold(3200));
    }

    #[test]
    fn held_batches_count_their_widest_column() {
        use std::sync::Arc;

        use arrow::array::{ArrayRef, Int32Array, Int64Array};

        let batch = |rows: i32| {
            RecordBatch::try_from_iter(vec![
                (
                    "a",
                    Arc::new(Int32Array::from_iter_values(0..rows)) as ArrayRef,
                ),
                (
                    "b",
                    Arc::new(Int64Array::from_iter_values(0..rows as i64)) as ArrayRef,
                ),
            ])
            .unwrap()
        };
        let mut held = Held::default();
        held.extend([batch(1000), batch(3000)]);
        let wide = |b: &RecordBatch| b.column(1).get_array_memory_size();
        assert_eq!(held.widest(), wide(&batch(1000)) + wide(&batch(3000)));
        assert_eq!(held.take_up_to(1).len(), 1);
        assert_eq!(held.widest(), wide(&batch(3000)));
        held.take();
        assert_eq!(held.widest(), 0);
    }

    #[test]
    fn what_cannot_spill_is_refused_only_past_the_whole_budget() {
        let pool = Pool::new(Budget(1000));
        let mut a = pool.reserve();
        let mut b = pool.reserve();
        assert!(a.try_hold(900));
        assert!(b.hold("a join", 1000).is_ok());
        let error = b.hold("a join", 1001).unwrap_err().to_string();
        assert!(error.starts_with("a join holds"), "{error}");
        let error = b.hold_partition("a join", 2000).unwrap_err().to_string();
        assert!(error.ends_with("partitions by key"), "{error}");
        // the spillable one now finds no room past its floor
        assert!(!a.try_hold(901));
    }
}

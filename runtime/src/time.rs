//! The time of a batch dataflow: chunks of input, in phases, and then the end.
//!
//! A batch job reads its input in chunks, one timestamp each, so that progress
//! tracking bounds the data in flight (see [`crate::operators::ReadLines`]).
//! A join reads its build side in one phase and its probe side in the next, so
//! the probe side starts only once the build side is in. Results that depend on
//! the whole input are emitted at [`BatchTime::End`], after every chunk of every
//! phase; an operator holding a capability there holds nothing else back.

use serde::{Deserialize, Serialize};
use timely::order::{PartialOrder, TotalOrder};
use timely::progress::timestamp::{PathSummary, Refines, Timestamp};

/// The time inside a batch job's loop: (the batch time, the iteration).
pub type Iteration = weir_progress::convergence::Iteration<BatchTime>;

/// A point in a batch dataflow's time, totally ordered: the chunks of phase 0,
/// then those of phase 1, ..., then the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BatchTime {
    /// The `chunk`-th chunk of input of phase `phase`.
    Chunk {
        /// The phase (a join's build side is 0, its probe side 1).
        phase: u32,
        /// The chunk within the phase.
        chunk: u64,
    },
    /// After every chunk: when results of the whole input are emitted.
    End,
}

impl BatchTime {
    /// The first chunk of `phase`.
    pub const fn phase(phase: u32) -> Self {
        BatchTime::Chunk { phase, chunk: 0 }
    }

    /// Chunk `chunk` of `phase`.
    pub const fn chunk(phase: u32, chunk: u64) -> Self {
        BatchTime::Chunk { phase, chunk }
    }
}

impl Default for BatchTime {
    fn default() -> Self {
        BatchTime::phase(0)
    }
}

impl PartialOrder for BatchTime {
    fn less_equal(&self, other: &Self) -> bool {
        self <= other
    }
}

impl TotalOrder for BatchTime {}

/// A path in a batch dataflow leaves the time as it is: batch dataflows have
/// no loops of their own (iterations run in nested scopes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Unchanged;

impl PartialOrder for Unchanged {
    fn less_equal(&self, _: &Self) -> bool {
        true
    }
}

impl PathSummary<BatchTime> for Unchanged {
    fn results_in(&self, src: &BatchTime) -> Option<BatchTime> {
        Some(*src)
    }

    fn followed_by(&self, _: &Self) -> Option<Self> {
        Some(Unchanged)
    }
}

impl Timestamp for BatchTime {
    type Summary = Unchanged;

    fn minimum() -> Self {
        BatchTime::phase(0)
    }
}

impl Refines<()> for BatchTime {
    fn to_inner(_: ()) -> Self {
        BatchTime::minimum()
    }

    fn to_outer(self) {}

    fn summarize(_: Unchanged) {}
}

#[cfg(test)]
mod tests {
    use super::BatchTime;

    #[test]
    fn phases_come_in_order_and_the_end_after_all() {
        let times = [
            BatchTime::chunk(0, 0),
            BatchTime::chunk(0, u64::MAX),
            BatchTime::chunk(1, 0),
            BatchTime::chunk(u32::MAX, u64::MAX),
            BatchTime::End,
        ];
        assert!(times.windows(2).all(|w| w[0] < w[1]));
    }
}

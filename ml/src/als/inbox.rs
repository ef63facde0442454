//! What a half-iteration receives: the other side's factors, in a table per
//! iteration, and this worker's item block passed along.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::Capability;
use weir_runtime::time::Iteration;

use super::ItemBlock;
use super::layout::Side;

/// What a worker sends to a worker within an iteration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Flow {
    /// The receiver's own item block, passed along to the items' half.
    State(ItemBlock),
    /// Factors of the sender's entities that the receiver needs.
    Factors { ids: Vec<u64>, values: Vec<f64> },
}

/// The other side's factors a worker has received for an iteration.
pub(super) struct Table {
    pub(super) rank: usize,
    values: Vec<f64>,
    /// Whether the slot of each remote entity has been filled.
    pub(super) filled: Vec<bool>,
}

impl Table {
    fn new(side: &Side, rank: usize) -> Table {
        Table {
            rank,
            values: vec![0.0; side.remote.len() * rank],
            filled: vec![false; side.remote.len()],
        }
    }

    fn fill(&mut self, side: &Side, ids: &[u64], values: &[f64]) {
        for (j, &id) in ids.iter().enumerate() {
            if let Some(slot) = side.slot(id) {
                let k = self.rank;
                self.values[slot * k..(slot + 1) * k].copy_from_slice(&values[j * k..(j + 1) * k]);
                self.filled[slot] = true;
            }
        }
    }

    #[inline]
    pub(super) fn get(&self, slot: usize) -> &[f64] {
        &self.values[slot * self.rank..(slot + 1) * self.rank]
    }

    fn reset(&mut self) {
        self.filled.iter_mut().for_each(|f| *f = false);
    }
}

/// What a half-iteration has received for each iteration, until the
/// frontier passes it: this worker's item block and a table of the other
/// side's factors (one table is reused from iteration to iteration).
pub(super) struct Inbox {
    pending: BTreeMap<Iteration, (Capability<Iteration>, Option<ItemBlock>, Table)>,
    spare: Option<Table>,
    rank: usize,
}

impl Inbox {
    pub(super) fn new(rank: usize) -> Inbox {
        Inbox {
            pending: BTreeMap::new(),
            spare: None,
            rank,
        }
    }

    /// Takes in `flows` of iteration `time`; `cap` makes its capability.
    pub(super) fn take(
        &mut self,
        time: Iteration,
        cap: impl FnOnce() -> Capability<Iteration>,
        side: &Side,
        flows: impl Iterator<Item = Flow>,
    ) {
        let (spare, rank) = (&mut self.spare, self.rank);
        let entry = self.pending.entry(time).or_insert_with(|| {
            let table = spare.take().unwrap_or_else(|| Table::new(side, rank));
            (cap(), None, table)
        });
        for flow in flows {
            match flow {
                Flow::State(block) => entry.1 = Some(block),
                Flow::Factors { ids, values } => entry.2.fill(side, &ids, &values),
            }
        }
    }

    /// The iterations that are `complete`, with their block and table (give
    /// the table back with [`Inbox::recycle`]).
    pub(super) fn ready(
        &mut self,
        complete: impl Fn(&Iteration) -> bool,
    ) -> Vec<(Capability<Iteration>, ItemBlock, Table)> {
        let times: Vec<Iteration> = self
            .pending
            .keys()
            .filter(|t| complete(t))
            .copied()
            .collect();
        times
            .into_iter()
            .filter_map(|t| self.pending.remove(&t))
            .map(|(cap, block, table)| (cap, block.unwrap_or_default(), table))
            .collect()
    }

    pub(super) fn recycle(&mut self, mut table: Table) {
        table.reset();
        self.spare = Some(table);
    }
}

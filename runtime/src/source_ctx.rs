//! What the sources and sinks of one worker share: its error slot, its input
//! counter, the abort flag and the epoch clock.

use std::cell::Cell;
use std::rc::Rc;

use weir_progress::checkpoint::Committed;

use crate::clock::EpochClock;
use crate::exec::{Failure, RecordCounter};

/// What the sources of a worker share with the rest of its dataflow.
#[derive(Clone, Default)]
pub struct SourceCtx {
    /// This worker's error slot.
    pub failure: Failure,
    /// Lines read by this worker.
    pub records_in: RecordCounter,
    /// Set when the job is aborting (another worker failed): stop reading.
    pub aborted: Rc<Cell<bool>>,
    /// When live epochs end (the same on every worker).
    pub clock: EpochClock,
}

impl SourceCtx {
    /// The newest checkpoint epoch among `committed` (what a sink's commit
    /// step reads); a [`Committed::Abort`] among them tells the worker's
    /// sources to stop.
    pub fn newest_committed<'a>(
        &self,
        committed: impl Iterator<Item = &'a Committed>,
    ) -> Option<u64> {
        let mut newest = None;
        for c in committed {
            match *c {
                Committed::Checkpoint(epoch) => newest = newest.max(Some(epoch)),
                Committed::Abort => self.aborted.set(true),
            }
        }
        newest
    }
}

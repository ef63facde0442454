//! When a join's probe side may be read: each hash join owns a gate, a
//! source without data that holds its capability until the join's table is
//! built (or its rows go to disk, or the join ends). The scans under the
//! probe side start once the gate's frontier, and every enclosing join's,
//! is empty: timely's progress tracking tells every worker when all workers
//! have built their tables, and probe rows are probed as they come instead
//! of waiting in memory, as a pulled plan (DataFusion's) would not start
//! them either.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::operators::Concatenate;
use timely::dataflow::operators::generic::operator::source;
use timely::scheduling::Activator;
use weir_runtime::time::BatchTime;

/// A stream without data whose frontier says when the scans under a node
/// may start: it is empty once the hash joins that probe the node's rows
/// have built their tables, on every worker.
pub(crate) type Gate<'s> = StreamVec<'s, BatchTime, ()>;

/// What a hash join opens once its table is built: a source without data
/// holding its capability until then, so that timely's progress tracking
/// tells every worker when all of them have built theirs.
#[derive(Clone, Default)]
pub(crate) struct Opener {
    open: Rc<Cell<bool>>,
    activator: Rc<RefCell<Option<Activator>>>,
}

impl Opener {
    /// Opens the gate (again: nothing).
    pub(crate) fn open(&self) {
        if !self.open.replace(true)
            && let Some(activator) = self.activator.borrow().as_ref()
        {
            activator.activate();
        }
    }

    /// `gate`, also closed until this is opened.
    pub(crate) fn gate<'s>(&self, gate: Gate<'s>) -> Gate<'s> {
        let scope = gate.scope();
        let (open, slot) = (Rc::clone(&self.open), Rc::clone(&self.activator));
        let built = source::<_, CapacityContainerBuilder<Vec<()>>, _, _>(
            scope,
            "TableBuilt",
            move |cap, info| {
                *slot.borrow_mut() = Some(scope.activator_for(info.address));
                let mut cap = Some(cap);
                move |_output| {
                    if open.get() {
                        cap.take();
                    }
                }
            },
        );
        scope.concatenate([gate, built])
    }
}

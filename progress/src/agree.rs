//! Agreement among all workers of all processes, through timely itself.

use std::cell::RefCell;
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use timely::worker::Worker;

/// Every worker contributes one value and receives all of them, in worker order.
///
/// Must be called by every worker of the computation, in the same order relative
/// to other dataflows (it builds a small dataflow of its own).
pub fn all_gather<T>(worker: &mut Worker, value: T) -> Vec<T>
where
    T: timely::ExchangeData + Clone,
{
    let index = worker.index();
    let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<(usize, T)>>>::new();
    let probe = ProbeHandle::new();
    let gathered = Rc::new(RefCell::new(Vec::new()));
    worker.dataflow::<u64, _, _>(|scope| {
        let gathered = Rc::clone(&gathered);
        scope
            .input_from(&mut input)
            .broadcast()
            .inspect(move |x: &(usize, T)| gathered.borrow_mut().push(x.clone()))
            .probe_with(&probe);
    });
    input.send((index, value));
    drop(input);
    worker.step_or_park_while(None, || !probe.done());
    let mut all = gathered.take();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, v)| v).collect()
}

/// Runs `decide` on worker 0 only and returns its result on every worker: a
/// decision (which checkpoint to restore, say) that must be taken once and
/// before any worker goes on.
pub fn decide_once<T>(worker: &mut Worker, decide: impl FnOnce() -> T) -> T
where
    T: timely::ExchangeData + Clone,
{
    let mine = (worker.index() == 0).then(decide);
    all_gather(worker, mine)
        .into_iter()
        .flatten()
        .next()
        .expect("worker 0 always decides")
}

//! Emits what a dataflow kept aside, once a stream is complete (the end of a
//! loop: its final state, kept by the loop's last iteration).

use std::cell::RefCell;
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::progress::Timestamp;

/// Emits records made from kept state once a stream's frontier is empty.
pub trait WhenDone<'s, T: Timestamp> {
    /// Once this stream is complete (its records are dropped), takes the
    /// value out of `kept` (leaving its default) and emits `emit(value)` at
    /// the operator's first time. The loops of weir keep their final state
    /// this way and write it out after the loop's frontier has passed.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use timely::dataflow::operators::{Inspect, ToStream};
    /// use weir_runtime::exec::{run_job, JobOptions};
    /// use weir_runtime::operators::WhenDone;
    ///
    /// let options = JobOptions { show: 10, ..Default::default() };
    /// let summary = run_job(timely::Config::process(1), &options, |scope, _ctx| {
    ///     let sum: Rc<RefCell<u64>> = Rc::default();
    ///     let add = Rc::clone(&sum);
    ///     (1..=4u64)
    ///         .to_stream(scope)
    ///         .inspect(move |x| *add.borrow_mut() += x)
    ///         .when_done("Total", sum, |total| [format!("sum {total}")])
    /// })
    /// .unwrap();
    /// assert_eq!(summary.records, Some(vec!["sum 10".to_string()]));
    /// ```
    fn when_done<K, D, I, F>(
        self,
        name: &str,
        kept: Rc<RefCell<K>>,
        emit: F,
    ) -> StreamVec<'s, T, D>
    where
        K: Default + 'static,
        D: Clone + 'static,
        I: IntoIterator<Item = D>,
        F: FnOnce(K) -> I + 'static;
}

impl<'s, T: Timestamp, R: Clone + 'static> WhenDone<'s, T> for StreamVec<'s, T, R> {
    fn when_done<K, D, I, F>(self, name: &str, kept: Rc<RefCell<K>>, emit: F) -> StreamVec<'s, T, D>
    where
        K: Default + 'static,
        D: Clone + 'static,
        I: IntoIterator<Item = D>,
        F: FnOnce(K) -> I + 'static,
    {
        self.unary_frontier::<CapacityContainerBuilder<Vec<D>>, _, _, _>(
            Pipeline,
            name,
            move |cap, _| {
                let mut ready = Some((cap, emit));
                move |(input, frontier), output| {
                    input.for_each(|_, _| {});
                    if frontier.is_empty()
                        && let Some((cap, emit)) = ready.take()
                    {
                        let value = std::mem::take(&mut *kept.borrow_mut());
                        let mut session = output.session(&cap);
                        for record in emit(value) {
                            session.give(record);
                        }
                    }
                }
            },
        )
    }
}

//! Convergence of iterative computations, decided by frontiers.
//!
//! Inside a timely `iterative` scope (times `Product<epoch, iteration>`), each
//! worker contributes values (changes, residuals, losses) at each iteration. They
//! are summed at worker 0 once the frontier has passed that iteration, so the sum
//! includes every worker's contribution, and the total goes back to every worker.
//! A gate on the loop's feedback edge holds the records of iteration `i` until the
//! total of `i` is known, then lets them into iteration `i + 1`, or drops them
//! when the stop predicate holds or the maximum number of iterations is reached,
//! which ends the loop. No driver loop, no barrier: the same iteration stops at
//! every worker count.

use std::collections::BTreeMap;
use std::ops::AddAssign;

use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::order::Product;
use timely::progress::Timestamp;

/// A time inside an iterative scope: (the outer time, the iteration).
pub type Iteration<T = u64> = Product<T, u64>;

/// A per-iteration value that workers contribute and the gate sums: a plain
/// `f64` (a change, a residual), or a struct of several sums (errors and
/// counts) whose `+=` adds them field by field.
pub trait Total: timely::ExchangeData + Copy + Default + AddAssign {}

impl<T: timely::ExchangeData + Copy + Default + AddAssign> Total for T {}

/// A callback with every iteration's total (progress bars, summaries).
pub type Report<V = f64> = std::sync::Arc<dyn Fn(Round<V>) + Send + Sync>;

/// One iteration's aggregated value, as reported to the user.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Round<V = f64> {
    /// The iteration, from 0.
    pub iteration: u64,
    /// The sum of all workers' values at this iteration.
    pub value: V,
    /// Whether the loop stops after this iteration.
    pub last: bool,
}

/// When a loop stops.
pub struct Convergence<F> {
    /// The number of the loop's first iteration: 0, or where a loop resumed
    /// from a checkpoint goes on (see [`crate::loop_state`]).
    pub first: u64,
    /// Iterations at most (the loop runs iterations `first .. max_iterations`).
    pub max_iterations: u64,
    /// Stops after iteration `i` (counted from 0 over all resumes) when
    /// `stop(i, total)` holds.
    pub stop: F,
}

/// Gates a loop's feedback on the aggregated per-iteration value.
pub trait Converge<'s, T: Timestamp, D> {
    /// Passes this stream (the records about to re-enter the loop) only while the
    /// loop has not converged. `values` are the workers' contributions at each
    /// iteration; `report` is called on every worker with each iteration's total
    /// (use worker 0's for progress bars and plots).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use timely::dataflow::operators::{Concat, ConnectLoop, Enter, LoopVariable, ToStream};
    /// use timely::dataflow::operators::vec::{Filter, Map};
    /// use weir_progress::convergence::{Converge, Convergence};
    ///
    /// let rounds = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&rounds);
    /// timely::example(move |scope| {
    ///     let start = vec![100u64, 37].to_stream(scope);
    ///     scope.iterative::<u64, _, _>(|inner| {
    ///         let (handle, cycle) = inner.loop_variable(1);
    ///         let halved = start.enter(inner).concat(cycle).map(|x| x / 2).filter(|x| *x > 0);
    ///         let values = halved.clone().map(|x| x as f64);
    ///         let stop = Convergence { first: 0, max_iterations: 10, stop: |_, total: f64| total < 10.0 };
    ///         let seen = Arc::clone(&seen);
    ///         halved
    ///             .converge(values, stop, move |r| seen.lock().unwrap().push((r.iteration, r.value)))
    ///             .connect_loop(handle);
    ///     });
    /// });
    /// assert_eq!(*rounds.lock().unwrap(), vec![(0, 68.0), (1, 34.0), (2, 16.0), (3, 8.0)]);
    /// ```
    fn converge<V, F, R>(
        self,
        values: StreamVec<'s, Iteration<T>, V>,
        convergence: Convergence<F>,
        report: R,
    ) -> StreamVec<'s, Iteration<T>, D>
    where
        V: Total,
        F: Fn(u64, V) -> bool + 'static,
        R: FnMut(Round<V>) + 'static;
}

impl<'s, T: Timestamp + Copy, D: Clone + 'static> Converge<'s, T, D>
    for StreamVec<'s, Iteration<T>, D>
{
    fn converge<V, F, R>(
        self,
        values: StreamVec<'s, Iteration<T>, V>,
        convergence: Convergence<F>,
        mut report: R,
    ) -> StreamVec<'s, Iteration<T>, D>
    where
        V: Total,
        F: Fn(u64, V) -> bool + 'static,
        R: FnMut(Round<V>) + 'static,
    {
        let totals = values
            .unary_frontier(Exchange::new(|_: &V| 0), "IterationSum", |_, _| {
                let mut sums: BTreeMap<Iteration<T>, (CapabilitySet<Iteration<T>>, V)> =
                    BTreeMap::new();
                move |(input, frontier), output| {
                    let port = output.output_index();
                    input.for_each_stamp(|cap, data| {
                        for time in cap.stamp().iter() {
                            let entry = sums.entry(*time).or_insert_with(|| {
                                (
                                    std::iter::once(cap.delayed(time, port)).collect(),
                                    V::default(),
                                )
                            });
                            for batch in data.as_slice() {
                                for value in batch {
                                    entry.1 += *value;
                                }
                            }
                        }
                    });
                    sums.retain(|time, (caps, sum)| {
                        if frontier.less_equal(time) {
                            return true;
                        }
                        output.session(&*caps).give((*time, *sum));
                        false
                    });
                }
            })
            .broadcast();
        self.binary_frontier(totals, Pipeline, Pipeline, "ConvergeGate", move |_, _| {
            type Held<T, D> = BTreeMap<Iteration<T>, (CapabilitySet<Iteration<T>>, Vec<D>)>;
            let mut held: Held<T, D> = BTreeMap::new();
            let mut known: BTreeMap<Iteration<T>, bool> = BTreeMap::new();
            move |(data, data_frontier), (sums, sums_frontier), output| {
                let port = output.output_index();
                data.for_each_stamp(|cap, batches| {
                    let mut batches: Vec<&mut Vec<D>> = batches.collect();
                    let times = cap.stamp().len();
                    for (k, time) in cap.stamp().iter().enumerate() {
                        let entry = held.entry(*time).or_insert_with(|| {
                            (
                                std::iter::once(cap.delayed(time, port)).collect(),
                                Vec::new(),
                            )
                        });
                        // records travelling under several times are copied to
                        // all but the last, which takes them (no copy per round)
                        for batch in batches.iter_mut() {
                            if k + 1 == times {
                                entry.1.append(batch);
                            } else {
                                entry.1.extend(batch.iter().cloned());
                            }
                        }
                    }
                });
                sums.for_each_stamp(|_, batches| {
                    for batch in batches {
                        for (time, value) in batch.drain(..) {
                            let iteration = convergence.first + time.inner;
                            let last = iteration + 1 >= convergence.max_iterations
                                || (convergence.stop)(iteration, value);
                            report(Round {
                                iteration,
                                value,
                                last,
                            });
                            known.insert(time, !last);
                        }
                    }
                });
                held.retain(|time, (caps, records)| {
                    if sums_frontier.less_equal(time) {
                        return true;
                    }
                    // no total at all: nobody contributed, so nothing changed
                    let go_on = known.get(time).copied().unwrap_or(false);
                    if go_on {
                        output.session(&*caps).give_iterator(records.drain(..));
                    }
                    false
                });
                known.retain(|time, _| {
                    data_frontier.less_equal(time) || sums_frontier.less_equal(time)
                });
            }
        })
    }
}

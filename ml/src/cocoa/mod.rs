//! CoCoA and CoCoA+ for the hinge-loss linear SVM (no bias term), as a
//! timely loop.
//!
//! Each worker owns one partition of the examples (by a hash of each
//! example's key) and its dual variables; the weight vector is replicated.
//! One record per worker goes around the loop ([`CocoaState`]). A round:
//! every worker runs H SDCA steps on its partition ([`sdca::local_sdca`]),
//! sends its change of `w` to every worker, and once the frontier has passed
//! the round, each applies the changes in worker order (so the replicas stay
//! equal) and measures its part of the duality gap ([`sdca::Duality`]). The
//! convergence gate of `weir-progress` stops the loop when the gap falls
//! below the tolerance, or after R rounds. [`reference`](mod@reference) runs the same
//! partitions sequentially; [`sgd`] is the mini-batch SGD baseline.

pub mod reference;
pub mod sdca;
pub mod sgd;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::ToStream;
use timely::dataflow::operators::{Capability, Concat, Enter, Leave, LoopVariable};
use weir_progress::convergence::Convergence;
use weir_progress::loop_state::{LoopCheckpoints, close_loop};
use weir_runtime::operators::WhenDone;

use self::sdca::{CocoaParams, Duality, duality, half_lambda_norm2, local_sdca, partition_of};
use crate::libsvm::Example;
use weir_runtime::time::{BatchTime, Iteration};

/// A worker's loop record: its duals (by example key) and its replica of `w`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoaState {
    /// The worker that holds it.
    pub origin: usize,
    /// The keys of the partition's examples, ascending.
    pub keys: Vec<u64>,
    /// Their dual variables.
    pub a: Vec<f64>,
    /// The weight vector.
    pub w: Vec<f64>,
}

/// A callback with every round's sums.
pub type Report = weir_progress::convergence::Report<Duality>;

/// How the loop runs.
pub struct CocoaLoop {
    /// The first round (after a resume: the checkpoint's next).
    pub first: u64,
    /// Rounds at most.
    pub max_rounds: u64,
    /// Stop once the duality gap is below this.
    pub tolerance: Option<f64>,
    /// Called on worker 0 with every round's sums.
    pub report: Option<Report>,
    /// Loop checkpoints, if any.
    pub checkpoints: Option<LoopCheckpoints>,
}

/// A worker's partition, built once.
#[derive(Default)]
struct Part {
    examples: Vec<Example>,
    norms: Vec<f64>,
    /// Examples and features in all.
    n: u64,
    dimension: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Setup {
    Count { n: u64, dimension: usize },
    Dual(u64, f64),
    Weights(Vec<f64>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Flow {
    State(CocoaState),
    Delta { from: usize, dw: Vec<f64> },
}

/// Trains the SVM on `examples` and returns the final weights as lines
/// `index<TAB>weight` (1-based indices) from worker 0, once the loop is over.
/// `resumed` holds a loop checkpoint's states for this worker.
pub fn cocoa<'s>(
    examples: StreamVec<'s, BatchTime, Example>,
    params: CocoaParams,
    options: CocoaLoop,
    resumed: Option<Vec<CocoaState>>,
    index: usize,
    peers: usize,
) -> StreamVec<'s, BatchTime, String> {
    let scope = examples.scope();
    let part: Rc<RefCell<Part>> = Rc::default();
    let kept: Rc<RefCell<Option<CocoaState>>> = Rc::default();

    // 1. each partition at its worker, sorted by key; counts to everyone
    let built = Rc::clone(&part);
    let counts = examples.unary_frontier::<CapacityContainerBuilder<Vec<(u64, Setup)>>, _, _, _>(
        Exchange::new(move |e: &Example| partition_of(e.key, peers) as u64),
        "BuildPartition",
        move |cap, _| {
            let mut cap = Some(cap);
            let mut examples = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|_, data| examples.append(data));
                if frontier.is_empty()
                    && let Some(cap) = cap.take()
                {
                    let mut examples = std::mem::take(&mut examples);
                    examples.sort_by_key(|e: &Example| e.key);
                    let mut part = built.borrow_mut();
                    part.norms = examples.iter().map(Example::norm2).collect();
                    let n = examples.len() as u64;
                    let dimension = examples.iter().map(Example::dimension).max().unwrap_or(0);
                    part.examples = examples;
                    let mut session = output.session(&cap);
                    for to in 0..peers as u64 {
                        session.give((to, Setup::Count { n, dimension }));
                    }
                }
            }
        },
    );
    let resuming = resumed.is_some();
    let resumed = resumed
        .unwrap_or_default()
        .into_iter()
        .flat_map(move |state| {
            let weights: Vec<(u64, Setup)> = if state.origin == 0 {
                (0..peers as u64)
                    .map(|to| (to, Setup::Weights(state.w.clone())))
                    .collect()
            } else {
                Vec::new()
            };
            let duals: Vec<(u64, Setup)> = state
                .keys
                .iter()
                .zip(&state.a)
                .map(|(&key, &a)| (partition_of(key, peers) as u64, Setup::Dual(key, a)))
                .collect();
            weights.into_iter().chain(duals)
        })
        .to_stream(scope);
    let started = Rc::clone(&part);
    let start = counts
        .concat(resumed)
        .unary_frontier::<CapacityContainerBuilder<Vec<CocoaState>>, _, _, _>(
            Exchange::new(|(to, _): &(u64, Setup)| *to),
            "StartLoop",
            move |cap, _| {
                let mut cap = Some(cap);
                let (mut n, mut dimension) = (0u64, 0usize);
                let mut duals: HashMap<u64, f64> = HashMap::new();
                let mut weights: Option<Vec<f64>> = None;
                move |(input, frontier), output| {
                    input.for_each(|_, data| {
                        for (_, setup) in data.drain(..) {
                            match setup {
                                Setup::Count { n: m, dimension: d } => {
                                    n += m;
                                    dimension = dimension.max(d);
                                }
                                Setup::Dual(key, a) => {
                                    duals.insert(key, a);
                                }
                                Setup::Weights(w) => weights = Some(w),
                            }
                        }
                    });
                    if frontier.is_empty()
                        && let Some(cap) = cap.take()
                    {
                        let mut part = started.borrow_mut();
                        part.n = n;
                        part.dimension = dimension;
                        let keys: Vec<u64> = part.examples.iter().map(|e| e.key).collect();
                        let a = keys
                            .iter()
                            .map(|k| duals.get(k).copied().unwrap_or(0.0))
                            .collect();
                        let mut w = weights.take().filter(|_| resuming).unwrap_or_default();
                        w.resize(dimension, 0.0);
                        output.session(&cap).give(CocoaState {
                            origin: index,
                            keys,
                            a,
                            w,
                        });
                    }
                }
            },
        );

    let CocoaLoop {
        first,
        max_rounds,
        tolerance,
        report,
        checkpoints,
    } = options;
    let done = scope.iterative::<u64, _, _>(|inner| {
        let (handle, cycle) = inner.loop_variable::<Vec<CocoaState>>(1);
        let states = start.enter(inner).concat(cycle);

        // 2. local SDCA, its change of w to every worker
        let local_part = Rc::clone(&part);
        let deltas = states.unary::<CapacityContainerBuilder<Vec<(u64, Flow)>>, _, _, _>(
            Pipeline,
            "LocalSdca",
            move |_, _| {
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let Some(&time) = cap.stamp().iter().next() else {
                            return;
                        };
                        let part = local_part.borrow();
                        let gamma = params.aggregation.gamma(peers);
                        let mut session = output.session(&cap);
                        for batch in data {
                            for mut state in batch.drain(..) {
                                let (da, dw) = local_sdca(
                                    &part.examples,
                                    &part.norms,
                                    &state.a,
                                    &state.w,
                                    &params,
                                    part.n,
                                    peers,
                                    first + time.inner,
                                    index,
                                );
                                for (a, d) in state.a.iter_mut().zip(&da) {
                                    *a += gamma * d;
                                }
                                for to in 0..peers as u64 {
                                    session.give((
                                        to,
                                        Flow::Delta {
                                            from: index,
                                            dw: dw.clone(),
                                        },
                                    ));
                                }
                                session.give((index as u64, Flow::State(state)));
                            }
                        }
                    });
                }
            },
        );

        // 3. combine the changes in worker order; measure the gap
        let combine_part = Rc::clone(&part);
        let combine_kept = Rc::clone(&kept);
        let combined = deltas
            .unary_frontier::<CapacityContainerBuilder<Vec<Result<CocoaState, Duality>>>, _, _, _>(
                Exchange::new(|(to, _): &(u64, Flow)| *to),
                "Combine",
                move |_, _| {
                    type Pending = (
                        Capability<Iteration>,
                        Option<CocoaState>,
                        Vec<(usize, Vec<f64>)>,
                    );
                    let mut pending: BTreeMap<Iteration, Pending> = BTreeMap::new();
                    move |(input, frontier), output| {
                        input.for_each_stamp(|cap, data| {
                            let Some(&time) = cap.stamp().iter().next() else {
                                return;
                            };
                            let entry = pending
                                .entry(time)
                                .or_insert_with(|| (cap.delayed(&time, 0), None, Vec::new()));
                            for batch in data {
                                for (_, flow) in batch.drain(..) {
                                    match flow {
                                        Flow::State(s) => entry.1 = Some(s),
                                        Flow::Delta { from, dw } => entry.2.push((from, dw)),
                                    }
                                }
                            }
                        });
                        let ready: Vec<Iteration> = pending
                            .keys()
                            .filter(|t| !frontier.less_equal(t))
                            .copied()
                            .collect();
                        for time in ready {
                            let Some((cap, state, mut deltas)) = pending.remove(&time) else {
                                continue;
                            };
                            let part = combine_part.borrow();
                            let mut state = state.unwrap_or_default();
                            let gamma = params.aggregation.gamma(peers);
                            deltas.sort_by_key(|d| d.0);
                            for (_, dw) in &deltas {
                                for (w, d) in state.w.iter_mut().zip(dw) {
                                    *w += gamma * d;
                                }
                            }
                            let mut sums = duality(&part.examples, &state.a, &state.w);
                            if index == 0 {
                                sums.half_lambda_norm2 = half_lambda_norm2(&state.w, params.lambda);
                            }
                            if index == 0 {
                                *combine_kept.borrow_mut() = Some(state.clone());
                            }
                            let mut session = output.session(&cap);
                            session.give(Ok(state));
                            session.give(Err(sums));
                        }
                    }
                },
            );
        let convergence = Convergence {
            first,
            max_iterations: max_rounds,
            stop: move |_, d: Duality| tolerance.is_some_and(|t| d.gap() < t),
        };
        close_loop(
            combined,
            handle,
            convergence,
            report,
            index == 0,
            checkpoints.as_ref(),
        )
        .leave(scope)
    });

    // 4. worker 0's weights, once the loop is over
    done.when_done("EmitWeights", kept, |state: Option<CocoaState>| {
        state
            .into_iter()
            .flat_map(|state| state.w.into_iter().enumerate())
            .map(|(j, w)| format!("{}\t{w}", j + 1))
    })
}

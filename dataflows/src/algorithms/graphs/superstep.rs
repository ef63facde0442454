//! The superstep loop shared by the graph algorithms.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::ExchangeData;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, Concat, Enter, Leave, LoopVariable};
use weir_progress::convergence::Convergence;
use weir_progress::loop_state::{LoopCheckpoints, close_loop};
use weir_runtime::exec::Failure;

use crate::graph::layout::{Block, Graph, SharedGraph};
use crate::graph::{Node, NodeId, owner};
use weir_runtime::operators::WhenDone;
use weir_runtime::time::{BatchTime, Iteration};

pub use weir_progress::convergence::Report;

/// A worker's block kept aside: the start, or the last iteration's.
pub type Kept<S, N = Node> = Rc<RefCell<Option<Block<S, N>>>>;

/// Sums (or minima, ...) of a step's messages per destination node on one
/// worker, before they are exchanged: one message per destination and
/// iteration.
pub struct Combiner<St: Step<N> + ?Sized, N: NodeId = Node> {
    dense: Vec<St::Message>,
    touched: Vec<N>,
    sparse: HashMap<N, St::Message>,
}

impl<N: NodeId, St: Step<N> + ?Sized> Combiner<St, N> {
    fn new(graph: &Graph<N>) -> Self {
        let bound = graph.id_bound();
        // a dense array when ids are not much sparser than the graph's nodes
        let dense = if (bound as u64) <= 4 * graph.total_nodes + (1 << 20) {
            vec![St::ZERO; bound]
        } else {
            Vec::new()
        };
        Combiner {
            dense,
            touched: Vec::new(),
            sparse: HashMap::new(),
        }
    }

    /// Adds message `m` for `node`.
    #[inline]
    pub fn add(&mut self, node: N, m: St::Message) {
        match self.dense.get_mut(node.index()) {
            Some(slot) => {
                if *slot == St::ZERO {
                    self.touched.push(node);
                }
                St::combine(slot, m);
            }
            None => St::combine(self.sparse.entry(node).or_insert(St::ZERO), m),
        }
    }

    /// The combined messages, per owner.
    fn drain(&mut self, peers: usize) -> Vec<Vec<(N, St::Message)>> {
        let mut out = vec![Vec::new(); peers];
        if self.touched.len() > self.dense.len() / 16 {
            // most nodes got messages: one sequential pass (in id order, which
            // the receivers' lookups like too) beats random reads
            self.touched.clear();
            for (node, slot) in self.dense.iter_mut().enumerate() {
                if *slot != St::ZERO {
                    let node = N::from_u64(node as u64).unwrap_or(N::NONE);
                    out[owner(node, peers)].push((node, *slot));
                    *slot = St::ZERO;
                }
            }
        }
        for node in self.touched.drain(..) {
            let slot = &mut self.dense[node.index()];
            if *slot != St::ZERO {
                out[owner(node, peers)].push((node, *slot));
                *slot = St::ZERO;
            }
        }
        for (node, m) in self.sparse.drain() {
            out[owner(node, peers)].push((node, m));
        }
        out
    }
}

/// What a worker sends to a worker in a superstep.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
enum Flow<S, M, N> {
    /// The worker's own block (to itself).
    Block(Block<S, N>),
    /// Combined messages for the receiver's nodes.
    Messages(Vec<(N, M)>),
    /// The sender's share of a global sum (to every worker).
    Share(f64),
}

/// What a superstep does at each worker, over node ids `N`.
pub trait Step<N: NodeId>: 'static {
    /// The per-node value carried around the loop.
    type Value: ExchangeData + Clone + Serialize + DeserializeOwned;
    /// A message to a node.
    type Message: ExchangeData + Copy + PartialEq;
    /// The message no message combines with (0 for sums, the maximum for minima).
    const ZERO: Self::Message;
    /// Combines two messages to the same node.
    fn combine(into: &mut Self::Message, m: Self::Message);
    /// Sends messages along the edges of this worker's nodes; returns this
    /// worker's share of a sum that every worker learns (e.g. dangling rank).
    fn scatter(
        &self,
        graph: &Graph<N>,
        block: &Block<Self::Value, N>,
        out: &mut Combiner<Self, N>,
    ) -> f64;
    /// The next block from the current one, the messages received per local
    /// node, and the sum of the shares; and this worker's part of the
    /// iteration's convergence value (e.g. L1 change, nodes changed).
    fn gather(
        &self,
        graph: &Graph<N>,
        block: Block<Self::Value, N>,
        received: &[Self::Message],
        shared: f64,
    ) -> (Block<Self::Value, N>, f64);
}

/// How a loop runs: its length, stop rule, progress reports and checkpoints.
pub struct LoopOptions {
    /// The iteration the loop starts at (after a resume: the checkpoint's next).
    pub first: u64,
    /// Iterations at most (counted from 0 over all resumes).
    pub max_iterations: u64,
    /// Stops after iteration `i` when `stop(i, total)` holds.
    pub stop: Arc<dyn Fn(u64, f64) -> bool + Send + Sync>,
    /// Called on worker 0 with every iteration's total.
    pub report: Option<Report>,
    /// Loop checkpoints, if any.
    pub checkpoints: Option<LoopCheckpoints>,
    /// This worker's error slot: a malformed input recorded in it (on any
    /// worker) keeps the loop from starting.
    pub failure: Failure,
}

/// Runs `step` in a loop from the `start` blocks until `options` stop it, and
/// returns the final block of this worker, available once the returned
/// stream's frontier is empty, i.e. the loop is over. (The loop runs at least
/// one iteration: the convergence gate decides after each.)
pub fn iterate<'s, N: NodeId, St: Step<N>>(
    start: StreamVec<'s, BatchTime, Block<St::Value, N>>,
    graph: SharedGraph<N>,
    step: St,
    options: LoopOptions,
    index: usize,
    peers: usize,
) -> (Kept<St::Value, N>, StreamVec<'s, BatchTime, f64>) {
    let last: Kept<St::Value, N> = Rc::default();
    let scope = start.scope();
    let step = Rc::new(step);
    let LoopOptions {
        first,
        max_iterations,
        stop,
        report,
        checkpoints,
        failure: _,
    } = options;
    let done = scope.iterative::<u64, _, _>(|inner| {
        let (handle, cycle) = inner.loop_variable::<Vec<Block<St::Value, N>>>(1);
        let blocks = start.enter(inner).concat(cycle);
        let scatter_graph = Rc::clone(&graph);
        let scatter_step = Rc::clone(&step);
        let flows = blocks.unary::<CapacityContainerBuilder<Vec<(u64, Flow<St::Value, St::Message, N>)>>, _, _, _>(
            Pipeline,
            "Scatter",
            move |_, _| {
                let mut combiner: Option<Combiner<St, N>> = None;
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let graph = scatter_graph.borrow();
                        let combiner = combiner
                            .get_or_insert_with(|| Combiner::new(&graph));
                        let mut session = output.session(&cap);
                        for batch in data {
                            for block in batch.drain(..) {
                                let share = scatter_step.scatter(&graph, &block, combiner);
                                for (to, messages) in combiner.drain(peers).into_iter().enumerate() {
                                    session.give((to as u64, Flow::Messages(messages)));
                                }
                                for to in 0..peers as u64 {
                                    session.give((to, Flow::Share(share)));
                                }
                                session.give((index as u64, Flow::Block(block)));
                            }
                        }
                    });
                }
            },
        );
        let gather_graph = Rc::clone(&graph);
        let gather_last = Rc::clone(&last);
        let gathered = flows.unary_frontier::<CapacityContainerBuilder<Vec<Result<Block<St::Value, N>, f64>>>, _, _, _>(
            Exchange::new(|(to, _): &(u64, Flow<St::Value, St::Message, N>)| *to),
            "Gather",
            move |_, _| {
                type Pending<S, M, N> = (Capability<Iteration>, Option<Block<S, N>>, Vec<M>, f64);
                let mut pending: BTreeMap<Iteration, Pending<St::Value, St::Message, N>> =
                    BTreeMap::new();
                move |(input, frontier), output| {
                    let graph = gather_graph.borrow();
                    input.for_each_stamp(|cap, data| {
                        let Some(&time) = cap.stamp().iter().next() else {
                            return;
                        };
                        let entry = pending.entry(time).or_insert_with(|| {
                            (cap.delayed(&time, 0), None, vec![St::ZERO; graph.nodes.len()], 0.0)
                        });
                        for batch in data {
                            for (_, flow) in batch.drain(..) {
                                match flow {
                                    Flow::Block(block) => entry.1 = Some(block),
                                    Flow::Share(share) => entry.3 += share,
                                    Flow::Messages(messages) => {
                                        for (node, m) in messages {
                                            if let Some(l) = graph.local(node) {
                                                St::combine(&mut entry.2[l], m);
                                            }
                                        }
                                    }
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
                        let Some((cap, block, received, shared)) = pending.remove(&time) else {
                            continue;
                        };
                        let block = block.unwrap_or_default();
                        let (next, value) = step.gather(&graph, block, &received, shared);
                        *gather_last.borrow_mut() = Some(next.clone());
                        let mut session = output.session(&cap);
                        session.give(Ok(next));
                        session.give(Err(value));
                    }
                }
            },
        );
        let convergence = Convergence {
            first,
            max_iterations,
            stop: move |i, total| stop(i, total),
        };
        close_loop(gathered, handle, convergence, report, index == 0, checkpoints.as_ref()).leave(scope)
    });
    (last, done)
}

/// Emits lines from this worker's final block once the loop is over
/// (`done`'s frontier is empty): `format(node, value)` per node, `None` skips it.
pub fn emit<'s, N: NodeId, S: Clone + 'static>(
    done: StreamVec<'s, BatchTime, f64>,
    last: Kept<S, N>,
    format: impl Fn(N, &S) -> Option<String> + 'static,
) -> StreamVec<'s, BatchTime, String> {
    done.when_done("Emit", last, move |block| {
        block
            .into_iter()
            .flatten()
            .filter_map(move |(node, value)| format(node, &value))
    })
}

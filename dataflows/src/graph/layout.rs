//! Each worker's share of a graph, built once before a loop: the nodes it owns
//! (`v % peers == index`), compact local indices for them, and their edges as
//! a CSR; and the block of per-node values that starts a loop.
//!
//! A loop over a graph carries one record per worker and iteration: the
//! worker's [`Block`] of `(node, value)` in the order of [`Graph::nodes`], so
//! the position in the block is the local index (no lookups), and a loop
//! checkpoint (the records going around) holds every node's value with its
//! id, which is what a resume at another worker count needs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Map, ToStream};

use weir_runtime::JobError;
use weir_runtime::exec::Failure;
use weir_runtime::local_index::fits_u32;

use super::input::Edge;
use super::{Node, NodeId};
use weir_runtime::time::BatchTime;

/// A worker's values of its nodes, in the order of [`Graph::nodes`].
pub type Block<S, N = Node> = Vec<(N, S)>;

/// Which edges a node's adjacency holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Out-edges (`src -> dst` is stored at `src`).
    Out,
    /// Both directions (`src -- dst` is stored at both ends).
    Undirected,
}

/// Node id to local index.
#[derive(Debug)]
enum LocalIndex<N> {
    /// `slots[v / peers]` (ids are dense enough).
    Dense(Vec<u32>),
    /// Sparse ids.
    Sparse(HashMap<N, u32>),
    Empty,
}

/// One worker's share of a graph.
#[derive(Debug)]
pub struct Graph<N = Node> {
    /// Workers in all processes.
    pub peers: usize,
    /// The nodes this worker owns, ascending.
    pub nodes: Vec<N>,
    index: LocalIndex<N>,
    /// CSR offsets: node `nodes[l]`'s edges are `targets[offsets[l]..offsets[l + 1]]`.
    pub offsets: Vec<usize>,
    /// Edge targets (with multiplicity; self-loops included).
    pub targets: Vec<N>,
    /// Nodes of the whole graph (all workers).
    pub total_nodes: u64,
}

impl<N> Default for Graph<N> {
    fn default() -> Self {
        Graph {
            peers: 0,
            nodes: Vec::new(),
            index: LocalIndex::Empty,
            offsets: Vec::new(),
            targets: Vec::new(),
            total_nodes: 0,
        }
    }
}

impl<N: NodeId> Graph<N> {
    /// Builds a worker's share from its half-edges `(owned node, other)`
    /// (`other == N::NONE` only says that the node exists).
    fn build(mut halves: Vec<Edge<N>>, peers: usize) -> Result<Graph<N>, JobError> {
        halves.sort_unstable();
        let mut nodes = Vec::new();
        let mut offsets = Vec::new();
        let mut targets = Vec::with_capacity(halves.len());
        for (node, other) in halves {
            if nodes.last() != Some(&node) {
                nodes.push(node);
                offsets.push(targets.len());
            }
            if other != N::NONE {
                targets.push(other);
            }
        }
        offsets.push(targets.len());
        // every local index below is < nodes.len(), so the casts cannot wrap
        fits_u32(nodes.len(), "nodes")?;
        let span = nodes.last().map_or(0, |&v: &N| v.index() / peers + 1);
        let index = if span <= 4 * nodes.len() + 1024 {
            let mut slots = vec![u32::MAX; span];
            for (l, &v) in nodes.iter().enumerate() {
                slots[v.index() / peers] = l as u32;
            }
            LocalIndex::Dense(slots)
        } else {
            LocalIndex::Sparse(
                nodes
                    .iter()
                    .enumerate()
                    .map(|(l, &v)| (v, l as u32))
                    .collect(),
            )
        };
        Ok(Graph {
            peers,
            nodes,
            index,
            offsets,
            targets,
            total_nodes: 0,
        })
    }

    /// The local index of an owned node.
    pub fn local(&self, node: N) -> Option<usize> {
        let l = match &self.index {
            LocalIndex::Dense(slots) => *slots.get(node.index() / self.peers)?,
            LocalIndex::Sparse(map) => *map.get(&node)?,
            LocalIndex::Empty => return None,
        };
        (l != u32::MAX).then_some(l as usize)
    }

    /// The edges of the node at local index `l`.
    pub fn edges(&self, l: usize) -> &[N] {
        &self.targets[self.offsets[l]..self.offsets[l + 1]]
    }

    /// The largest node id in the whole graph is below this (for dense
    /// per-destination arrays): the largest target or owned id, plus one.
    pub fn id_bound(&self) -> usize {
        let targets = self.targets.iter().max().copied();
        let owned = self.nodes.last().copied();
        targets.max(owned).map_or(0, |v| v.index() + 1)
    }
}

/// A worker's graph, filled in when its edges are all in.
pub type SharedGraph<N = Node> = Rc<RefCell<Graph<N>>>;

/// What flows into the operator that starts a loop.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Start<S, N> {
    /// Nodes a worker owns, sent to every worker (`to`), and whether its
    /// input was clean (no malformed record in its failure slot).
    Count { to: u64, nodes: u64, clean: bool },
    /// A resumed node value, sent to the node's owner.
    Resume(N, S),
}

/// Builds this worker's [`Graph`] from `edges` (all of them, at any times)
/// and starts a loop: once every worker's share is built, emits (at time 0)
/// this worker's block — `resumed` values (from any old worker; they are
/// routed to the new owners), or `fresh(graph, node)` for a fresh start.
/// If any worker's input had a malformed record (in its `failure` slot), no
/// block is emitted and the loop does not run: the job fails with that
/// error, not after iterating over the part that parsed.
pub fn build_and_start<'s, N, S, F>(
    edges: StreamVec<'s, BatchTime, Edge<N>>,
    direction: Direction,
    peers: usize,
    resumed: Option<Vec<(N, S)>>,
    failure: &Failure,
    fresh: F,
) -> (SharedGraph<N>, StreamVec<'s, BatchTime, Block<S, N>>)
where
    N: NodeId,
    S: timely::ExchangeData,
    F: Fn(&Graph<N>, N) -> S + 'static,
{
    let graph: SharedGraph<N> = Rc::default();
    let scope = edges.scope();
    let halves = edges.flat_map(move |(src, dst)| {
        let other = match direction {
            Direction::Out => (dst, N::NONE),
            Direction::Undirected => (dst, src),
        };
        [(src, dst), other]
    });
    let built = Rc::clone(&graph);
    let failure = failure.clone();
    let counts = halves.unary_frontier::<CapacityContainerBuilder<Vec<Start<S, N>>>, _, _, _>(
        Exchange::new(|&(node, _): &Edge<N>| node.as_u64()),
        "BuildGraph",
        move |cap, _| {
            let mut cap = Some(cap);
            let mut halves: Vec<Edge<N>> = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|_, data| halves.append(data));
                if frontier.is_empty()
                    && let Some(cap) = cap.take()
                {
                    let graph = match Graph::build(std::mem::take(&mut halves), peers) {
                        Ok(graph) => graph,
                        Err(error) => {
                            failure.set(error);
                            Graph::default()
                        }
                    };
                    let nodes = graph.nodes.len() as u64;
                    *built.borrow_mut() = graph;
                    let clean = !failure.is_set();
                    let mut session = output.session(&cap);
                    for to in 0..peers as u64 {
                        session.give(Start::Count { to, nodes, clean });
                    }
                }
            }
        },
    );
    let resumed_any = resumed.is_some();
    let resumed = resumed
        .unwrap_or_default()
        .into_iter()
        .map(|(node, s)| Start::Resume(node, s))
        .to_stream(scope);
    let started = Rc::clone(&graph);
    let block = counts
        .concat(resumed)
        .unary_frontier::<CapacityContainerBuilder<Vec<Block<S, N>>>, _, _, _>(
            Exchange::new(|start: &Start<S, N>| match start {
                Start::Count { to, .. } => *to,
                Start::Resume(node, _) => node.as_u64(),
            }),
            "StartLoop",
            move |cap, _| {
                let mut cap = Some(cap);
                let mut total = 0u64;
                let mut clean = true;
                let mut values: HashMap<N, S> = HashMap::new();
                move |(input, frontier), output| {
                    input.for_each(|_, data| {
                        for start in data.drain(..) {
                            match start {
                                Start::Count {
                                    nodes, clean: c, ..
                                } => {
                                    total += nodes;
                                    clean &= c;
                                }
                                Start::Resume(node, s) => {
                                    values.insert(node, s);
                                }
                            }
                        }
                    });
                    if frontier.is_empty()
                        && let Some(cap) = cap.take()
                        && clean
                    {
                        let mut graph = started.borrow_mut();
                        graph.total_nodes = total;
                        let block: Block<S, N> = graph
                            .nodes
                            .iter()
                            .map(|&v| {
                                let s = match resumed_any {
                                    true => values.remove(&v),
                                    false => None,
                                };
                                (v, s.unwrap_or_else(|| fresh(&graph, v)))
                            })
                            .collect();
                        output.session(&cap).give(block);
                    }
                }
            },
        );
    (graph, block)
}

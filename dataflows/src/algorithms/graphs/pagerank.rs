//! PageRank: start at 1/N, then
//! `r'(v) = (1-d)/N + d·(Σ_{u→v} r(u)/outdeg(u) + D/N)`, where D is the rank
//! of the nodes without out-edges, so ranks sum to 1. Stops after the given
//! number of iterations or once the L1 change of an iteration falls below the
//! tolerance.

use std::collections::BTreeMap;

use timely::dataflow::StreamVec;

use super::superstep::{Combiner, LoopOptions, Step, emit, iterate};
use crate::graph::NodeId;
use crate::graph::input::Edge;
use crate::graph::layout::{Block, Direction, Graph, build_and_start};
use weir_runtime::time::BatchTime;

/// PageRank's parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PageRank {
    /// The damping factor d (0.85).
    pub damping: f64,
}

impl<N: NodeId> Step<N> for PageRank {
    type Value = f64;
    type Message = f64;
    const ZERO: f64 = 0.0;

    #[inline]
    fn combine(into: &mut f64, m: f64) {
        *into += m;
    }

    fn scatter(&self, graph: &Graph<N>, block: &Block<f64, N>, out: &mut Combiner<Self, N>) -> f64 {
        let mut dangling = 0.0;
        for (l, &(_, rank)) in block.iter().enumerate() {
            let edges = graph.edges(l);
            if edges.is_empty() {
                dangling += rank;
            } else {
                let share = rank / edges.len() as f64;
                for &target in edges {
                    out.add(target, share);
                }
            }
        }
        dangling
    }

    fn gather(
        &self,
        graph: &Graph<N>,
        mut block: Block<f64, N>,
        received: &[f64],
        dangling: f64,
    ) -> (Block<f64, N>, f64) {
        let n = graph.total_nodes as f64;
        let d = self.damping;
        let base = (1.0 - d) / n + d * dangling / n;
        let mut change = 0.0;
        for ((_, rank), incoming) in block.iter_mut().zip(received) {
            let next = base + d * incoming;
            change += (next - *rank).abs();
            *rank = next;
        }
        (block, change)
    }
}

/// PageRank of the graph of `edges` (all of them, at any times): lines
/// `node<TAB>rank` once the loop is over. `resumed` are the ranks of a loop
/// checkpoint (`options.first` is then its next iteration).
pub fn pagerank<'s, N: NodeId>(
    edges: StreamVec<'s, BatchTime, Edge<N>>,
    params: PageRank,
    options: LoopOptions,
    resumed: Option<Vec<(N, f64)>>,
    index: usize,
    peers: usize,
) -> StreamVec<'s, BatchTime, String> {
    let (graph, start) = build_and_start(
        edges,
        Direction::Out,
        peers,
        resumed,
        &options.failure,
        |g, _| 1.0 / g.total_nodes as f64,
    );
    let (last, done) = iterate(start, graph, params, options, index, peers);
    emit(done, last, |node, rank| Some(format!("{node}\t{rank}")))
}

/// The sequential reference: ranks, and the number of iterations run.
pub fn reference<N: NodeId>(
    edges: &[Edge<N>],
    params: PageRank,
    max_iterations: u64,
    tolerance: f64,
) -> (BTreeMap<N, f64>, u64) {
    let mut nodes: BTreeMap<N, (f64, Vec<N>)> = BTreeMap::new();
    for &(src, dst) in edges {
        nodes.entry(src).or_default().1.push(dst);
        nodes.entry(dst).or_default();
    }
    let n = nodes.len() as f64;
    for value in nodes.values_mut() {
        value.0 = 1.0 / n;
    }
    let d = params.damping;
    let mut iterations = 0;
    while iterations < max_iterations {
        let mut incoming: BTreeMap<N, f64> = BTreeMap::new();
        let mut dangling = 0.0;
        for (rank, out) in nodes.values() {
            if out.is_empty() {
                dangling += rank;
            }
            for &target in out {
                *incoming.entry(target).or_insert(0.0) += rank / out.len() as f64;
            }
        }
        let mut change = 0.0;
        for (node, (rank, _)) in nodes.iter_mut() {
            let next =
                (1.0 - d) / n + d * (incoming.get(node).copied().unwrap_or(0.0) + dangling / n);
            change += (next - *rank).abs();
            *rank = next;
        }
        iterations += 1;
        if change < tolerance {
            break;
        }
    }
    let ranks = nodes
        .into_iter()
        .map(|(node, (rank, _))| (node, rank))
        .collect();
    (ranks, iterations)
}

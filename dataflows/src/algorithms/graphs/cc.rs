//! Connected components of the undirected graph: every node ends with the
//! smallest node id of its component.

use std::collections::BTreeMap;

use timely::dataflow::StreamVec;

use super::propagate::MinStep;
use super::superstep::{LoopOptions, emit, iterate};
use crate::graph::NodeId;
use crate::graph::input::Edge;
use crate::graph::layout::{Direction, build_and_start};
use weir_runtime::time::BatchTime;

/// Components of the graph of `edges`: lines `node<TAB>smallest id in its
/// component` once the loop is over. `resumed` are the values of a loop
/// checkpoint.
pub fn cc<'s, N: NodeId>(
    edges: StreamVec<'s, BatchTime, Edge<N>>,
    options: LoopOptions,
    resumed: Option<Vec<(N, (N, bool))>>,
    index: usize,
    peers: usize,
) -> StreamVec<'s, BatchTime, String> {
    let (graph, start) = build_and_start(
        edges,
        Direction::Undirected,
        peers,
        resumed,
        &options.failure,
        |_, v| (v, true),
    );
    let (last, done) = iterate(start, graph, MinStep { hop: 0 }, options, index, peers);
    emit(done, last, |node, &(label, _)| {
        Some(format!("{node}\t{label}"))
    })
}

/// The sequential reference (union-find): each node's smallest component id.
pub fn reference<N: NodeId>(edges: &[Edge<N>]) -> BTreeMap<N, N> {
    let mut parent: BTreeMap<N, N> = BTreeMap::new();
    fn find<N: NodeId>(parent: &mut BTreeMap<N, N>, v: N) -> N {
        let mut root = v;
        while let Some(&p) = parent.get(&root).filter(|&&p| p != root) {
            root = p;
        }
        root
    }
    for &(a, b) in edges {
        parent.entry(a).or_insert(a);
        parent.entry(b).or_insert(b);
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        // the smaller root becomes the parent, so a root is its set's minimum
        parent.insert(ra.max(rb), ra.min(rb));
    }
    let nodes: Vec<N> = parent.keys().copied().collect();
    nodes
        .into_iter()
        .map(|v| (v, find(&mut parent, v)))
        .collect()
}

//! Breadth-first search: the hop distance of every node reachable from a
//! source along edge direction.

use std::collections::{BTreeMap, VecDeque};

use timely::dataflow::StreamVec;

use super::propagate::MinStep;
use super::superstep::{LoopOptions, emit, iterate};
use crate::graph::NodeId;
use crate::graph::input::Edge;
use crate::graph::layout::{Direction, build_and_start};
use weir_runtime::time::BatchTime;

/// Distances from `source` in the graph of `edges`: lines `node<TAB>distance`
/// for the reachable nodes once the loop is over (none when the source is not
/// in the graph). `resumed` are the values of a loop checkpoint.
pub fn bfs<'s, N: NodeId>(
    edges: StreamVec<'s, BatchTime, Edge<N>>,
    source: N,
    options: LoopOptions,
    resumed: Option<Vec<(N, (N, bool))>>,
    index: usize,
    peers: usize,
) -> StreamVec<'s, BatchTime, String> {
    let (graph, start) = build_and_start(
        edges,
        Direction::Out,
        peers,
        resumed,
        &options.failure,
        move |_, v| {
            if v == source {
                (N::from_u64(0).unwrap_or(N::NONE), true)
            } else {
                (N::NONE, false)
            }
        },
    );
    let (last, done) = iterate(start, graph, MinStep { hop: 1 }, options, index, peers);
    emit(done, last, |node, &(distance, _)| {
        (distance != N::NONE).then(|| format!("{node}\t{distance}"))
    })
}

/// The sequential reference: distances of the reachable nodes.
pub fn reference<N: NodeId>(edges: &[Edge<N>], source: N) -> BTreeMap<N, u32> {
    let mut out: BTreeMap<N, Vec<N>> = BTreeMap::new();
    for &(src, dst) in edges {
        out.entry(src).or_default().push(dst);
        out.entry(dst).or_default();
    }
    let mut distance = BTreeMap::new();
    if !out.contains_key(&source) {
        return distance;
    }
    distance.insert(source, 0);
    let mut queue = VecDeque::from([source]);
    while let Some(v) = queue.pop_front() {
        let next = distance[&v] + 1;
        for &w in &out[&v] {
            if let std::collections::btree_map::Entry::Vacant(slot) = distance.entry(w) {
                slot.insert(next);
                queue.push_back(w);
            }
        }
    }
    distance
}

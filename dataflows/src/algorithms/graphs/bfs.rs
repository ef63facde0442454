//! Breadth-first search: the hop distance of every node reachable from a
//! source along edge direction.

use std::collections::{BTreeMap, VecDeque};

use timely::dataflow::StreamVec;

use super::propagate::{MinStep, UNREACHED};
use super::superstep::{LoopOptions, emit, iterate};
use crate::graph::Node;
use crate::graph::input::Edge;
use crate::graph::layout::{Direction, build_and_start};

/// Distances from `source` in the graph of `edges`: lines `node<TAB>distance`
/// for the reachable nodes once the loop is over (none when the source is not
/// in the graph). `resumed` are the values of a loop checkpoint.
pub fn bfs<'s>(
    edges: StreamVec<'s, u64, Edge>,
    source: Node,
    options: LoopOptions,
    resumed: Option<Vec<(Node, (u32, bool))>>,
    index: usize,
    peers: usize,
) -> StreamVec<'s, u64, String> {
    let (graph, start) = build_and_start(edges, Direction::Out, peers, resumed, move |_, v| {
        if v == source {
            (0, true)
        } else {
            (UNREACHED, false)
        }
    });
    let (last, done) = iterate(start, graph, MinStep { hop: 1 }, options, index, peers);
    emit(done, last, |node, &(distance, _)| {
        (distance != UNREACHED).then(|| format!("{node}\t{distance}"))
    })
}

/// The sequential reference: distances of the reachable nodes.
pub fn reference(edges: &[Edge], source: Node) -> BTreeMap<Node, u32> {
    let mut out: BTreeMap<Node, Vec<Node>> = BTreeMap::new();
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

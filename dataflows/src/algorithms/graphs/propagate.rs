//! Smallest-value propagation along edges, for connected components (labels,
//! both directions) and breadth-first search (hop distances, out-edges): a
//! node whose value fell in the last iteration sends `value + hop` along its
//! edges; a node takes the smallest of its value and what it receives. The
//! loop ends at the fixed point (an iteration where nothing changed).

use super::superstep::{Combiner, Step};
use crate::graph::NodeId;
use crate::graph::layout::{Block, Graph};

/// "Not reached" (BFS) with 32-bit ids; in general [`NodeId::NONE`].
pub const UNREACHED: u32 = u32::MAX;

/// The propagation step: values are `(value, changed in the last iteration)`,
/// of the node id type (labels are ids; distances share the type).
#[derive(Clone, Copy, Debug)]
pub struct MinStep {
    /// Added along each edge (0 for labels, 1 for distances).
    pub hop: u32,
}

impl<N: NodeId> Step<N> for MinStep {
    type Value = (N, bool);
    type Message = N;
    const ZERO: N = N::NONE;

    #[inline]
    fn combine(into: &mut N, m: N) {
        *into = (*into).min(m);
    }

    fn scatter(
        &self,
        graph: &Graph<N>,
        block: &Block<(N, bool), N>,
        out: &mut Combiner<Self, N>,
    ) -> f64 {
        for (l, &(_, (value, changed))) in block.iter().enumerate() {
            if changed && value != N::NONE {
                let sent = value.plus(self.hop);
                for &target in graph.edges(l) {
                    out.add(target, sent);
                }
            }
        }
        0.0
    }

    fn gather(
        &self,
        _graph: &Graph<N>,
        mut block: Block<(N, bool), N>,
        received: &[N],
        _shared: f64,
    ) -> (Block<(N, bool), N>, f64) {
        let mut changed = 0u64;
        for ((_, (value, flag)), &incoming) in block.iter_mut().zip(received) {
            *flag = incoming < *value;
            if *flag {
                *value = incoming;
                changed += 1;
            }
        }
        (block, changed as f64)
    }
}

//! Smallest-value propagation along edges, for connected components (labels,
//! both directions) and breadth-first search (hop distances, out-edges): a
//! node whose value fell in the last iteration sends `value + hop` along its
//! edges; a node takes the smallest of its value and what it receives. The
//! loop ends at the fixed point (an iteration where nothing changed).

use super::superstep::{Combiner, Step};
use crate::graph::layout::{Block, Graph};

/// "Not reached" (BFS).
pub const UNREACHED: u32 = u32::MAX;

/// The propagation step: values are `(value, changed in the last iteration)`.
#[derive(Clone, Copy, Debug)]
pub struct MinStep {
    /// Added along each edge (0 for labels, 1 for distances).
    pub hop: u32,
}

impl Step for MinStep {
    type Value = (u32, bool);
    type Message = u32;
    const ZERO: u32 = UNREACHED;

    #[inline]
    fn combine(into: &mut u32, m: u32) {
        *into = (*into).min(m);
    }

    fn scatter(&self, graph: &Graph, block: &Block<(u32, bool)>, out: &mut Combiner<Self>) -> f64 {
        for (l, &(_, (value, changed))) in block.iter().enumerate() {
            if changed && value != UNREACHED {
                let sent = value.saturating_add(self.hop);
                for &target in graph.edges(l) {
                    out.add(target, sent);
                }
            }
        }
        0.0
    }

    fn gather(
        &self,
        _graph: &Graph,
        mut block: Block<(u32, bool)>,
        received: &[u32],
        _shared: f64,
    ) -> (Block<(u32, bool)>, f64) {
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

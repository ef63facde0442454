//! Graphs for the iterative jobs: edge lists read from files or generated
//! (Graph500 R-MAT), and the per-worker layout the algorithms iterate over.
//!
//! - [`input`]: edge-list lines and the R-MAT generator, as a stream of edges
//!   split across workers, and sequentially for references.
//! - [`layout`]: each worker's share of the nodes (node `v` belongs to worker
//!   `v % peers`) with their out-edges as a CSR, built once before a loop,
//!   and the records that start a loop (fresh, or resumed from a checkpoint).

pub mod input;
pub mod layout;

/// A node id. Ids fit in 32 bits (R-MAT scales up to 31, and edge lists with
/// ids below 2^32 - 1); messages and arrays use them directly.
pub type Node = u32;

/// The worker that owns `node` among `peers` (timely's exchange sends a record
/// routed by `node` to the same worker).
pub fn owner(node: Node, peers: usize) -> usize {
    node as usize % peers.max(1)
}

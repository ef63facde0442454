//! Graphs for the iterative jobs: edge lists read from files or generated
//! (Graph500 R-MAT), and the per-worker layout the algorithms iterate over.
//!
//! - [`input`]: edge-list lines and the R-MAT generator, as a stream of edges
//!   split across workers, and sequentially for references.
//! - [`layout`]: each worker's share of the nodes (node `v` belongs to worker
//!   `v % peers`) with their out-edges as a CSR, built once before a loop,
//!   and the records that start a loop (fresh, or resumed from a checkpoint).
//!
//! Node ids are [`NodeId`]s: `u32` where they fit (R-MAT scales up to 31 and
//! edge lists with ids below 2^32 - 1: half the memory of the edges and
//! messages), `u64` for edge lists with larger ids (`--wide-ids`).

use std::fmt::{Debug, Display};
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod input;
pub mod layout;

/// The default node id: 32 bits.
pub type Node = u32;

/// A node id type: `u32` or `u64`. Its largest value is reserved (it marks
/// "no node" and "not reached"), so ids lie below it.
pub trait NodeId:
    timely::ExchangeData
    + Copy
    + Ord
    + Hash
    + Debug
    + Display
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The reserved largest value.
    const NONE: Self;
    /// Bits, for messages ("32-bit").
    const BITS: u32;
    /// The id as an index (ids are dense enough for arrays where used so).
    fn index(self) -> usize;
    /// The id of an index or a 64-bit id, if it fits below [`NodeId::NONE`].
    fn from_u64(id: u64) -> Option<Self>;
    /// The id as 64 bits.
    fn as_u64(self) -> u64;
    /// `self + hop`, saturating (hop distances share the id type).
    fn plus(self, hop: u32) -> Self;
}

impl NodeId for u32 {
    const NONE: u32 = u32::MAX;
    const BITS: u32 = 32;
    #[inline]
    fn index(self) -> usize {
        self as usize
    }
    #[inline]
    fn from_u64(id: u64) -> Option<u32> {
        u32::try_from(id).ok().filter(|&v| v != u32::MAX)
    }
    #[inline]
    fn as_u64(self) -> u64 {
        u64::from(self)
    }
    #[inline]
    fn plus(self, hop: u32) -> u32 {
        self.saturating_add(hop)
    }
}

impl NodeId for u64 {
    const NONE: u64 = u64::MAX;
    const BITS: u32 = 64;
    #[inline]
    fn index(self) -> usize {
        self as usize
    }
    #[inline]
    fn from_u64(id: u64) -> Option<u64> {
        (id != u64::MAX).then_some(id)
    }
    #[inline]
    fn as_u64(self) -> u64 {
        self
    }
    #[inline]
    fn plus(self, hop: u32) -> u64 {
        self.saturating_add(u64::from(hop))
    }
}

/// The worker that owns `node` among `peers` (timely's exchange sends a record
/// routed by `node` to the same worker).
#[inline]
pub fn owner<N: NodeId>(node: N, peers: usize) -> usize {
    (node.as_u64() % peers.max(1) as u64) as usize
}

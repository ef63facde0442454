//! What a checkpoint's `MANIFEST.json` says: the files that restore each
//! (operator, worker) with their sizes and checksums, and where each source
//! stood (see [`crate::store`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A file of a checkpoint store, with what it must contain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Path relative to the store, e.g. `chk-00000000000000000007/counts-w00001.delta`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// crc32c of the contents.
    pub crc32c: u32,
}

/// The files that restore one worker's state of one operator: a base snapshot,
/// then deltas, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartChain {
    /// Operator name, unique within the job.
    pub operator: String,
    /// Worker index when the checkpoint was taken.
    pub worker: usize,
    /// Base first, then deltas.
    pub files: Vec<FileRef>,
    /// The operator's shared values as of the checkpoint (see
    /// [`crate::state::KeyedState::set_shared`]).
    #[serde(default)]
    pub shared: BTreeMap<String, u64>,
}

/// Where one worker's source stood after an epoch: the position in each of its
/// input streams (a file's byte offset, a Kafka partition's offset) from which
/// epoch `next` reads. Marks are small, so they live in the manifest itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMark {
    /// Source operator name, unique within the job.
    pub operator: String,
    /// Worker index when the mark was taken.
    pub worker: usize,
    /// The first epoch these positions do not cover.
    pub next: u64,
    /// Position per input stream, for every stream this worker read.
    pub positions: BTreeMap<String, u64>,
}

/// A complete checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub format: u32,
    /// The epoch: the state reflects every record of epochs `<= epoch`.
    pub epoch: u64,
    /// Workers of the job that wrote it.
    pub workers: usize,
    /// The hash that routed keys to workers ([`crate::route::KEY_HASH`]); a
    /// restore refuses another (empty: a manifest written before weir
    /// recorded it).
    #[serde(default)]
    pub key_hash: String,
    /// Every (operator, worker) part.
    pub parts: Vec<PartChain>,
    /// Source positions after this checkpoint's epoch, and after each epoch
    /// since the previous complete checkpoint (whose own checkpoints were
    /// skipped): what a restore resumes from, and how a restore from an older
    /// checkpoint replays the same epochs.
    #[serde(default)]
    pub sources: Vec<SourceMark>,
}

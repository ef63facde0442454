//! The thread that writes one worker's snapshots of one operator: it encodes
//! each [`Changes`] as the next file of the operator's chain, compacting the
//! chain into a new base past [`MAX_DELTAS`] (see [`crate::state`]).

use std::collections::BTreeMap;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::background::Background;
use crate::error::CheckpointError;
use crate::state::{Changes, KeyedState, MAX_DELTAS, Part, StateMap, encode, load_chain};
use crate::store::{CheckpointStore, FileRef, PartChain};

/// What a snapshot writer reports: the epoch written and the chain that
/// restores it.
pub type Written = Result<(u64, PartChain), CheckpointError>;

/// Writes one worker's snapshots of one operator on a thread of its own.
pub struct SnapshotWriter<K, V> {
    thread: Background<Snapshot<K, V>, Written>,
}

/// One snapshot for the writer thread.
struct Snapshot<K, V> {
    epoch: u64,
    changes: Changes<K, V>,
    shared: BTreeMap<String, u64>,
}

impl<K, V> SnapshotWriter<K, V>
where
    K: Serialize + DeserializeOwned + Hash + Eq + Clone + Send + 'static,
    V: Serialize + DeserializeOwned + Clone + Send + 'static,
{
    /// A writer for `operator` on `worker`, continuing `chain`.
    pub fn spawn(
        store: CheckpointStore,
        operator: String,
        worker: usize,
        mut chain: Vec<FileRef>,
    ) -> Self {
        let name = format!("weir-snapshot-{operator}-{worker}");
        let write = move |snapshot: Snapshot<K, V>| -> Written {
            let epoch = snapshot.epoch;
            write_snapshot(
                &store,
                &operator,
                worker,
                &mut chain,
                epoch,
                snapshot.changes,
            )?;
            let chain = PartChain {
                operator: operator.clone(),
                worker,
                files: chain.clone(),
                shared: snapshot.shared,
            };
            Ok((epoch, chain))
        };
        SnapshotWriter {
            thread: Background::spawn(name, write, Result::is_err),
        }
    }

    /// Queues the snapshot of `state` as of `epoch` (its changes since the
    /// last one, and its shared values); returns at once.
    pub fn snapshot(
        &self,
        epoch: u64,
        state: &mut KeyedState<K, V>,
    ) -> Result<(), CheckpointError> {
        let shared = state.shared.clone();
        self.queue(Snapshot {
            epoch,
            changes: state.take_changes(),
            shared,
        })
    }

    /// Queues the snapshot of `epoch` made of `changes` (no shared values);
    /// returns at once.
    pub fn submit(&self, epoch: u64, changes: Changes<K, V>) -> Result<(), CheckpointError> {
        self.queue(Snapshot {
            epoch,
            changes,
            shared: BTreeMap::new(),
        })
    }

    fn queue(&self, snapshot: Snapshot<K, V>) -> Result<(), CheckpointError> {
        if self.thread.submit(snapshot) {
            Ok(())
        } else {
            Err(CheckpointError::Io {
                path: "snapshot writer".into(),
                message: "the writer thread is gone (an earlier write failed)".into(),
            })
        }
    }

    /// Snapshots written since the last call, in epoch order.
    pub fn completed(&self) -> Vec<Written> {
        self.thread.completed()
    }

    /// Waits until every queued snapshot is written; returns their results.
    pub fn finish(self) -> Vec<Written> {
        self.thread.finish()
    }
}

fn write_snapshot<K, V>(
    store: &CheckpointStore,
    operator: &str,
    worker: usize,
    chain: &mut Vec<FileRef>,
    epoch: u64,
    changes: Changes<K, V>,
) -> Result<(), CheckpointError>
where
    K: Serialize + DeserializeOwned + Hash + Eq + Clone,
    V: Serialize + DeserializeOwned + Clone,
{
    let part = match changes {
        Changes::Base(entries) => Part {
            base: true,
            entries: entries.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        },
        Changes::Delta(entries) if chain.len() > MAX_DELTAS || chain.is_empty() => {
            // compact: the old chain plus this delta become a new base
            let mut map: StateMap<K, V> = load_chain(store, chain)?;
            for (k, v) in entries {
                match v {
                    Some(v) => map.insert(k, v),
                    None => map.remove(&k),
                };
            }
            Part {
                base: true,
                entries: map.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            }
        }
        Changes::Delta(entries) => Part {
            base: false,
            entries,
        },
    };
    let kind = if part.base { "base" } else { "delta" };
    let file = store.write_part(
        epoch,
        &format!("{operator}-w{worker:05}.{kind}"),
        &encode(&part)?,
    )?;
    if part.base {
        chain.clear();
    }
    chain.push(file);
    Ok(())
}

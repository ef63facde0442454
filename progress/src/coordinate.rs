//! The coordinator of checkpoints: it gathers the acknowledgements of every
//! participant at worker 0 and commits a checkpoint's manifest, on a thread of
//! its own, once the frontier of the acknowledgements has passed its epoch
//! and every participant acknowledged it (see [`crate::checkpoint`]). A
//! source that has finished (its last mark sent at [`FINAL_EPOCH`]) stands
//! for every later epoch with that mark, as Flink's finished tasks do, so
//! that the checkpoints of the others go on.

use std::collections::BTreeMap;
use std::time::Duration;

use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;

use crate::background::Background;
use crate::checkpoint::{Ack, Checkpoints, Committed, FINAL_EPOCH};
use crate::error::CheckpointError;
use crate::store::{CheckpointStore, Manifest, SourceMark};

/// Commits checkpoints from acknowledgements.
pub trait Coordinate<'s> {
    /// Gathers the acks of all workers at worker 0, commits the manifest of each
    /// checkpoint epoch that every (operator, worker) acknowledged once the ack
    /// frontier has passed it, applies retention, and returns the committed epochs
    /// on every worker. The frontier of the result passes `c` only after `c`'s
    /// manifest is durable (or `c` was skipped).
    fn coordinate(self, checkpoints: &Checkpoints) -> StreamVec<'s, u64, Committed>;
}

impl<'s> Coordinate<'s> for StreamVec<'s, u64, Ack> {
    fn coordinate(self, checkpoints: &Checkpoints) -> StreamVec<'s, u64, Committed> {
        let ckpt = checkpoints.clone();
        let scope = self.scope();
        self.unary_frontier(Exchange::new(|_: &Ack| 0), "Coordinate", move |_, info| {
            let activator = scope.activator_for(info.address);
            let mut acks: BTreeMap<u64, (Capability<u64>, Vec<Ack>)> = BTreeMap::new();
            // source marks of skipped checkpoints, for the next manifest
            let mut carried: Vec<SourceMark> = Vec::new();
            let mut aborted = false;
            let mut abort_at = None;
            // manifests are written off the worker's thread, in order
            let mut committer: Option<Committer> = None;
            let mut in_flight: BTreeMap<u64, Capability<u64>> = BTreeMap::new();
            move |(input, frontier), output| {
                let port = output.output_index();
                input.for_each_stamp(|cap, data| {
                    let Some(&epoch) = cap.stamp().least() else {
                        return;
                    };
                    let Some(held) = cap.retain_least(port) else {
                        return;
                    };
                    let entry = acks.entry(epoch).or_insert_with(|| (held, Vec::new()));
                    for batch in data {
                        if batch.iter().any(|a| matches!(a, Ack::Failed(_))) && !aborted {
                            aborted = true;
                            abort_at = Some(entry.0.clone());
                        }
                        entry.1.append(batch);
                    }
                });
                if let Some(cap) = abort_at.take() {
                    ckpt.fail(CheckpointError::Aborted);
                    output.session(&cap).give(Committed::Abort);
                }
                while let Some((&epoch, _)) = acks.first_key_value() {
                    if frontier.less_equal(&epoch) {
                        break;
                    }
                    let Some((_, (cap, received))) = acks.pop_first() else {
                        break;
                    };
                    // the final marks of sources that finished before this epoch
                    let finished: Vec<SourceMark> = match acks.get(&FINAL_EPOCH) {
                        Some((_, last)) if epoch != FINAL_EPOCH => last
                            .iter()
                            .filter_map(|ack| match ack {
                                Ack::Source(mark) if mark.next <= epoch => Some(mark.clone()),
                                _ => None,
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    let complete = received.len() + finished.len() == ckpt.operators() * ckpt.peers;
                    let mut parts = Vec::new();
                    for ack in received {
                        match ack {
                            Ack::State(chain) => parts.push(chain),
                            Ack::Source(mark) => carried.push(mark),
                            Ack::Output { .. } | Ack::Failed(_) => {}
                        }
                    }
                    if !complete || ckpt.failure().is_some() {
                        continue; // some worker snapshotted a later epoch instead
                    }
                    carried.extend(finished);
                    let manifest = Manifest {
                        format: 1,
                        epoch,
                        workers: ckpt.peers,
                        key_hash: crate::route::KEY_HASH.into(),
                        parts,
                        sources: std::mem::take(&mut carried),
                    };
                    let committer = committer
                        .get_or_insert_with(|| Committer::spawn(ckpt.store.clone(), ckpt.retain));
                    match committer.submit(manifest) {
                        Ok(()) => {
                            in_flight.insert(epoch, cap);
                        }
                        Err(e) => ckpt.fail(e),
                    }
                }
                for (epoch, result) in committer.iter().flat_map(Committer::completed) {
                    let cap = in_flight.remove(&epoch);
                    match (result, cap) {
                        (Ok(()), Some(cap)) => {
                            output.session(&cap).give(Committed::Checkpoint(epoch))
                        }
                        (Err(e), _) => ckpt.fail(e),
                        (Ok(()), None) => {}
                    }
                }
                if !in_flight.is_empty() {
                    activator.activate_after(Duration::from_micros(200));
                }
            }
        })
        .broadcast()
    }
}

/// Writes manifests (and applies retention) on a thread of its own, in order.
struct Committer(Background<Manifest, (u64, Result<(), CheckpointError>)>);

impl Committer {
    fn spawn(store: CheckpointStore, retain: usize) -> Self {
        let work = move |manifest: Manifest| (manifest.epoch, commit(&store, manifest, retain));
        // a failed commit fails the job, but the thread need not stop for it
        Committer(Background::spawn("weir-commit".into(), work, |_| false))
    }

    fn submit(&self, manifest: Manifest) -> Result<(), CheckpointError> {
        if self.0.submit(manifest) {
            Ok(())
        } else {
            Err(CheckpointError::Io {
                path: "manifest writer".into(),
                message: "the writer thread could not start or is gone".into(),
            })
        }
    }

    fn completed(&self) -> Vec<(u64, Result<(), CheckpointError>)> {
        self.0.completed()
    }
}

/// Commits `manifest` and applies retention. The checkpoint that ends a job
/// with sources is committed under its last data epoch
/// ([`CheckpointStore::commit_final`]).
fn commit(
    store: &CheckpointStore,
    manifest: Manifest,
    retain: usize,
) -> Result<(), CheckpointError> {
    let last = manifest.sources.iter().map(|m| m.next).max();
    match last.and_then(|n| n.checked_sub(1)) {
        Some(last) if manifest.epoch == FINAL_EPOCH => {
            store.commit_final(manifest, last).map(|_| ())
        }
        _ => store.commit(&manifest),
    }?;
    store.retain(retain).map(|_| ())
}

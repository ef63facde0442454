//! Checkpoints coordinated by frontiers alone: no barrier messages, no alignment.
//!
//! Records carry epochs (`u64` timestamps). A [`Schedule`] says which epochs are
//! checkpoint epochs. A stateful operator (see [`StatefulUnary`]) applies its
//! input epoch by epoch in order; when its input frontier passes a checkpoint epoch
//! `c` (the largest one below the frontier), it snapshots its state as of `c`
//! (every epoch `<= c` applied, none after) and hands the changes to its writer
//! thread. It holds a capability at `c` on its *acknowledgement* output until the
//! snapshot is durable, then sends an ack at `c` (the chain of files that restores
//! it) and lets the capability go. Its data output does not wait for the writer.
//!
//! [`Coordinate::coordinate`](crate::coordinate::Coordinate::coordinate)
//! (in [`crate::coordinate`]) gathers the acks at worker 0. When the frontier of
//! the acks passes `c`, every operator on every worker has either acknowledged `c`
//! or will never do so (a worker whose frontier jumped over `c` snapshots at a
//! later epoch instead); if all acknowledged, the manifest of `c` is committed and
//! `c` appears on the *committed* stream, which every worker receives. A sink
//! makes epoch `e` visible once it has received a committed `c >= e` (the
//! frontier alone is not enough: it also passes skipped checkpoints).
//!
//! Sources and sinks take part too ([`Checkpoints::participate`]): a source acks
//! each epoch with its positions ([`Ack::Source`]), which go into the manifest;
//! a sink acks once its pending output is durable ([`Ack::Output`]).
//!
//! When the input ends, every operator's frontier passes [`FINAL_EPOCH`], a
//! checkpoint epoch of every schedule, so the last checkpoint covers everything.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::error::CheckpointError;
use crate::state::{KeyedState, SnapshotWriter, restore};
use crate::store::{CheckpointStore, Manifest, PartChain, SourceMark};

/// The last epoch of every job: a checkpoint epoch of every schedule.
pub const FINAL_EPOCH: u64 = u64::MAX - 1;

/// What a participant of a checkpoint sends the coordinator at a checkpoint epoch
/// once its share of the checkpoint is durable.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, Serialize)]
pub enum Ack {
    /// A stateful operator's snapshot: the files that restore its state.
    State(PartChain),
    /// A source's positions after the epoch (see [`SourceMark`]).
    Source(SourceMark),
    /// A sink made everything up to the epoch durable (pending, not visible).
    Output {
        /// Sink operator name.
        operator: String,
        /// Worker index.
        worker: usize,
    },
    /// A participant failed: the job must stop (see [`Committed::Abort`]).
    Failed(String),
}

/// What the committed stream of
/// [`Coordinate::coordinate`](crate::coordinate::Coordinate::coordinate) carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, Serialize)]
pub enum Committed {
    /// The manifest of this checkpoint epoch is durable.
    Checkpoint(u64),
    /// A participant failed: sources stop reading, sinks stop publishing, and
    /// the job drains.
    Abort,
}

/// Which epochs are checkpoint epochs: every `every`-th (`every - 1`,
/// `2 * every - 1`, ...) and [`FINAL_EPOCH`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Epochs per checkpoint (at least 1: a checkpoint every epoch).
    pub every: u64,
}

impl Schedule {
    /// Whether `epoch` is a checkpoint epoch.
    pub fn is_checkpoint(&self, epoch: u64) -> bool {
        epoch == FINAL_EPOCH || (epoch + 1).is_multiple_of(self.every.max(1))
    }

    /// The largest checkpoint epoch below `frontier` (`None` for an empty
    /// frontier means: all input is done, so [`FINAL_EPOCH`]).
    pub fn last_before(&self, frontier: Option<u64>) -> Option<u64> {
        let Some(f) = frontier else {
            return Some(FINAL_EPOCH);
        };
        if f > FINAL_EPOCH {
            return Some(FINAL_EPOCH);
        }
        let every = self.every.max(1);
        // largest c < f with (c + 1) % every == 0
        (f / every)
            .checked_sub(1)
            .map(|k| k * every + every - 1)
            .filter(|&c| c < f)
    }

    /// The smallest checkpoint epoch at or after `epoch`.
    pub fn next_from(&self, epoch: u64) -> u64 {
        let every = self.every.max(1);
        let c = epoch.div_ceil(every).max(1) * every - 1;
        let c = if c < epoch { c + every } else { c };
        c.min(FINAL_EPOCH)
    }
}

/// What the stateful operators of one worker share.
#[derive(Clone)]
pub struct Checkpoints {
    /// Where snapshots go.
    pub store: CheckpointStore,
    /// Which epochs are checkpoints.
    pub schedule: Schedule,
    /// The checkpoint this run restored, if any.
    pub restored: Option<Arc<Manifest>>,
    /// Checkpoints to keep.
    pub retain: usize,
    /// This worker's index.
    pub index: usize,
    /// Workers in all processes.
    pub peers: usize,
    operators: Rc<RefCell<Vec<String>>>,
    failure: Rc<RefCell<Option<CheckpointError>>>,
}

impl Checkpoints {
    /// The checkpointing context of worker `index` of `peers`.
    pub fn new(
        store: CheckpointStore,
        schedule: Schedule,
        restored: Option<Arc<Manifest>>,
        index: usize,
        peers: usize,
    ) -> Self {
        Checkpoints {
            store,
            schedule,
            restored,
            retain: crate::store::DEFAULT_RETAIN,
            index,
            peers,
            operators: Rc::default(),
            failure: Rc::default(),
        }
    }

    /// The first checkpoint error of this worker, if any.
    pub fn failure(&self) -> Option<CheckpointError> {
        self.failure.borrow().clone()
    }

    /// Records an error (the first one is kept).
    pub fn fail(&self, error: CheckpointError) {
        self.failure.borrow_mut().get_or_insert(error);
    }

    /// Registers a stateful operator, restores its state, and starts its writer.
    pub fn register<K, V>(&self, name: &str) -> (KeyedState<K, V>, SnapshotWriter<K, V>)
    where
        K: Serialize + DeserializeOwned + std::hash::Hash + Eq + Clone + Send + 'static,
        V: Serialize + DeserializeOwned + Clone + Send + 'static,
    {
        self.operators.borrow_mut().push(name.to_string());
        let (state, chain) = match &self.restored {
            Some(manifest) => match restore(&self.store, manifest, name, self.index, self.peers) {
                Ok(r) => (r.state, r.chain),
                Err(e) => {
                    self.fail(e);
                    (KeyedState::new(), Vec::new())
                }
            },
            None => (KeyedState::new(), Vec::new()),
        };
        let writer = SnapshotWriter::spawn(self.store.clone(), name.to_string(), self.index, chain);
        (state, writer)
    }

    /// The epoch of the restored checkpoint: no participant may acknowledge a
    /// checkpoint at or before it again (the frontier starts at 0 on every
    /// worker, and only jumps to the restored run's first epoch once every
    /// worker has started).
    pub fn restored_epoch(&self) -> Option<u64> {
        self.restored.as_ref().map(|m| m.epoch)
    }

    /// Registers a participant without keyed state (a source or a sink): every
    /// checkpoint then waits for its [`Ack`] from every worker.
    pub fn participate(&self, name: &str) {
        self.operators.borrow_mut().push(name.to_string());
    }

    /// Once every participant is registered: an error if the restored
    /// checkpoint holds state or source positions of an operator that none
    /// of them is (see [`CheckpointError::Unclaimed`]).
    pub fn check_claimed(&self) -> Result<(), CheckpointError> {
        let Some(manifest) = &self.restored else {
            return Ok(());
        };
        let registered = self.operators.borrow();
        let mut unclaimed: Vec<String> = (manifest.parts.iter().map(|p| &p.operator))
            .chain(manifest.sources.iter().map(|s| &s.operator))
            .filter(|name| !registered.contains(name))
            .cloned()
            .collect();
        unclaimed.sort();
        unclaimed.dedup();
        match unclaimed.is_empty() {
            true => Ok(()),
            false => Err(CheckpointError::Unclaimed {
                path: self.store.describe_manifest(manifest.epoch),
                operators: unclaimed,
            }),
        }
    }

    /// Participants (stateful operators, sources, sinks) registered on this
    /// worker so far.
    pub fn operators(&self) -> usize {
        self.operators.borrow().len()
    }
}

/// The ack output of a stateful operator: holds a capability for each snapshot in
/// flight and sends the acks its writer reports.
struct Acks {
    cap: Option<Capability<u64>>,
    in_flight: Vec<u64>,
}

impl Acks {
    /// Lowers the held capability to what may still be acknowledged: the oldest
    /// snapshot in flight, or the next checkpoint epoch from `frontier` (none when
    /// the input is done and nothing is in flight).
    fn settle(&mut self, schedule: &Schedule, frontier: Option<u64>, done: bool) {
        let next =
            self.in_flight.iter().min().copied().or_else(|| {
                (!done).then(|| frontier.map_or(FINAL_EPOCH, |f| schedule.next_from(f)))
            });
        match (next, self.cap.as_mut()) {
            (Some(t), Some(cap)) if *cap.time() <= t => cap.downgrade(&t),
            (None, _) => self.cap = None,
            _ => {}
        }
    }
}

/// A unary operator with checkpointed keyed state.
pub trait StatefulUnary<'s, D> {
    /// Applies `logic(epoch, records, state, output)` to each epoch's records in
    /// epoch order, in one call once the input frontier has passed the epoch
    /// (so `logic` sees the whole epoch: what changed in it), and emits the
    /// output at that epoch. Snapshots the state at checkpoint epochs (see the
    /// module doc). Returns the output and the acknowledgement stream, which goes
    /// to [`Coordinate::coordinate`](crate::coordinate::Coordinate::coordinate).
    fn stateful_unary<K, V, D2, P, L>(
        self,
        pact: P,
        name: &str,
        checkpoints: &Checkpoints,
        logic: L,
    ) -> (StreamVec<'s, u64, D2>, StreamVec<'s, u64, Ack>)
    where
        K: Serialize + DeserializeOwned + std::hash::Hash + Eq + Clone + Send + 'static,
        V: Serialize + DeserializeOwned + Clone + Send + 'static,
        D2: Clone + 'static,
        P: ParallelizationContract<u64, Vec<D>>,
        L: FnMut(u64, Vec<D>, &mut KeyedState<K, V>, &mut Vec<D2>) + 'static;
}

impl<'s, D: Clone + 'static> StatefulUnary<'s, D> for StreamVec<'s, u64, D> {
    fn stateful_unary<K, V, D2, P, L>(
        self,
        pact: P,
        name: &str,
        checkpoints: &Checkpoints,
        mut logic: L,
    ) -> (StreamVec<'s, u64, D2>, StreamVec<'s, u64, Ack>)
    where
        K: Serialize + DeserializeOwned + std::hash::Hash + Eq + Clone + Send + 'static,
        V: Serialize + DeserializeOwned + Clone + Send + 'static,
        D2: Clone + 'static,
        P: ParallelizationContract<u64, Vec<D>>,
        L: FnMut(u64, Vec<D>, &mut KeyedState<K, V>, &mut Vec<D2>) + 'static,
    {
        let scope = self.scope();
        let mut builder = OperatorBuilder::new(name.to_string(), scope);
        let activator = scope.activator_for(builder.operator_info().address);
        let mut input = builder.new_input(self, pact);
        let (data_out, data) = builder.new_output();
        let (ack_out, acks) = builder.new_output();
        let mut data_out =
            OutputBuilder::<u64, timely::container::CapacityContainerBuilder<Vec<D2>>>::from(
                data_out,
            );
        let mut ack_out =
            OutputBuilder::<u64, timely::container::CapacityContainerBuilder<Vec<Ack>>>::from(
                ack_out,
            );
        let (mut state, writer) = checkpoints.register::<K, V>(name);
        let ckpt = checkpoints.clone();
        builder.build(move |mut caps| {
            let ack_cap = caps.pop();
            let mut data_cap = caps.pop();
            let mut acks = Acks {
                cap: ack_cap,
                in_flight: Vec::new(),
            };
            let mut pending: BTreeMap<u64, Vec<D>> = BTreeMap::new();
            // never snapshot at or below the restored epoch: those files exist
            let mut snapshotted: Option<u64> = ckpt.restored_epoch();
            let mut out = Vec::new();
            move |frontiers| {
                input.for_each_stamp(|cap, data| {
                    let Some(&epoch) = cap.stamp().least() else {
                        return;
                    };
                    let buffer = pending.entry(epoch).or_default();
                    for batch in data {
                        buffer.append(batch);
                    }
                });
                let frontier = frontiers[0].frontier().iter().min().copied();
                let snapshot_at = ckpt
                    .schedule
                    .last_before(frontier)
                    .filter(|&c| snapshotted.is_none_or(|s| c > s));
                let mut data_handle = data_out.activate();
                let mut apply = |epoch: u64, records: Vec<D>, state: &mut KeyedState<K, V>| {
                    logic(epoch, records, state, &mut out);
                    if !out.is_empty()
                        && let Some(cap) = data_cap.as_ref()
                    {
                        let time = cap.delayed(&epoch);
                        data_handle.session(&time).give_iterator(out.drain(..));
                    }
                };
                // epochs up to the snapshot, the snapshot, then the rest below the frontier
                let upto_snapshot = match (frontier, snapshot_at) {
                    (Some(f), Some(c)) => Some(f.min(c + 1)),
                    (f, c) => f.or(c.map(|c| c + 1)),
                };
                apply_pending(&mut pending, upto_snapshot, &mut |e, r| {
                    apply(e, r, &mut state)
                });
                if let Some(c) = snapshot_at {
                    snapshotted = Some(c);
                    acks.in_flight.push(c);
                    if let Err(e) = writer.snapshot(c, &mut state) {
                        ckpt.fail(e);
                    }
                }
                apply_pending(&mut pending, frontier, &mut |e, r| apply(e, r, &mut state));
                drop(data_handle);
                match (frontier, data_cap.as_mut()) {
                    (Some(f), Some(cap)) => cap.downgrade(&f),
                    (None, _) => data_cap = None,
                    _ => {}
                }
                // acknowledge what the writer finished
                let mut ack_handle = ack_out.activate();
                for done in writer.completed() {
                    match done {
                        Ok((epoch, chain)) => {
                            acks.in_flight.retain(|&e| e != epoch);
                            if let Some(cap) = acks.cap.as_ref() {
                                let time = cap.delayed(&epoch);
                                ack_handle.session(&time).give(Ack::State(chain));
                            }
                        }
                        Err(e) => ckpt.fail(e),
                    }
                }
                drop(ack_handle);
                let done = frontier.is_none() && snapshotted == Some(FINAL_EPOCH);
                acks.settle(&ckpt.schedule, frontier, done);
                if !acks.in_flight.is_empty() {
                    activator.activate_after(Duration::from_micros(200));
                }
                if let Some(error) = ckpt.failure() {
                    if let Some(cap) = acks.cap.take() {
                        ack_out
                            .activate()
                            .session(&cap)
                            .give(Ack::Failed(error.to_string()));
                    }
                    data_cap = None;
                }
            }
        });
        (data, acks)
    }
}

/// Applies the pending epochs below `below` (all of them for `None`), in order.
fn apply_pending<D>(
    pending: &mut BTreeMap<u64, Vec<D>>,
    below: Option<u64>,
    apply: &mut dyn FnMut(u64, Vec<D>),
) {
    while let Some(entry) = pending.first_entry() {
        let epoch = *entry.key();
        if below.is_some_and(|b| epoch >= b) {
            break;
        }
        apply(epoch, entry.remove());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_epochs() {
        let s = Schedule { every: 3 };
        assert!(s.is_checkpoint(2) && s.is_checkpoint(5) && !s.is_checkpoint(3));
        assert!(s.is_checkpoint(FINAL_EPOCH));
        assert_eq!(s.last_before(Some(0)), None);
        assert_eq!(s.last_before(Some(3)), Some(2));
        assert_eq!(s.last_before(Some(5)), Some(2));
        assert_eq!(s.last_before(Some(6)), Some(5));
        assert_eq!(s.last_before(None), Some(FINAL_EPOCH));
        assert_eq!(s.next_from(0), 2);
        assert_eq!(s.next_from(3), 5);
        assert_eq!(s.next_from(5), 5);
        let every = Schedule { every: 1 };
        assert_eq!(every.last_before(Some(4)), Some(3));
        assert_eq!(every.next_from(4), 4);
    }
}

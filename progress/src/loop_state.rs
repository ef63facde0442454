//! Checkpoints of an iterative loop every K iterations, and resuming mid-loop.
//!
//! A loop's state is the set of records that go around it. Placed on the
//! feedback edge (after [`crate::convergence::Converge::converge`]),
//! [`CheckpointLoop::checkpoint_loop`] copies the records that leave iteration
//! `i` towards iteration `i + 1` when `i + 1` is a multiple of `every`, and
//! once its frontier has passed `i` (it has them all) writes them as this
//! worker's part of the loop checkpoint `i`. A coordinator at worker 0 commits
//! the manifest when the frontier of the acknowledgements passes `i` and every
//! worker has written. A later run calls [`resume`] and feeds the records back
//! in as iteration `i + 1` (with [`crate::convergence::Convergence::first`] set
//! to `i + 1`), at any worker count.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::feedback::Handle;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, ConnectLoop};
use timely::progress::Timestamp;

use crate::convergence::{Converge, Convergence, Iteration, Report, Round, Total};
use crate::error::CheckpointError;
use crate::store::{CheckpointStore, Manifest, PartChain, Restore};

/// Where and how often a loop is checkpointed.
#[derive(Clone, Debug)]
pub struct LoopCheckpoints {
    /// The store (a directory of its own, not shared with other state).
    pub store: CheckpointStore,
    /// Checkpoint after every `every`-th iteration.
    pub every: u64,
    /// The number of the loop's first iteration (as in `Convergence::first`).
    pub first: u64,
    /// This worker's index.
    pub index: usize,
    /// Workers in all processes.
    pub peers: usize,
}

/// Where a loop resumes: the next iteration and this worker's share of the
/// records that enter it.
#[derive(Clone, Debug, PartialEq)]
pub struct Resume<D> {
    /// The iteration the loop goes on with.
    pub next: u64,
    /// Records for this worker (parts of the old workers `w` with
    /// `w % peers == index`).
    pub records: Vec<D>,
}

/// The newest intact loop checkpoint in `store`, for worker `index` of
/// `peers`; `None` when the store holds no complete checkpoint.
pub fn resume<D: DeserializeOwned>(
    store: &CheckpointStore,
    index: usize,
    peers: usize,
) -> Result<Option<Resume<D>>, CheckpointError> {
    if store.complete()?.is_empty() {
        return Ok(None);
    }
    let (manifest, _) = store.restore_point(&Restore::Latest)?;
    // what the interrupted run left after it, this run writes anew; worker 0
    // clears it before its loop starts, so before any worker can write there
    if index == 0 {
        store.discard_after(manifest.epoch)?;
    }
    let mut records = Vec::new();
    for part in manifest.parts.iter().filter(|p| p.worker % peers == index) {
        for file in &part.files {
            let bytes = store.read(file)?;
            let mut some: Vec<D> =
                bincode::deserialize(&bytes).map_err(|e| CheckpointError::Corrupt {
                    path: store.describe_file(file),
                    reason: format!("undecodable loop records: {e}"),
                })?;
            records.append(&mut some);
        }
    }
    Ok(Some(Resume {
        next: manifest.epoch + 1,
        records,
    }))
}

/// Checkpoints the records going around a loop.
pub trait CheckpointLoop<'s, T: Timestamp, D> {
    /// Passes the stream through unchanged and checkpoints it as described in
    /// the module doc.
    fn checkpoint_loop(self, checkpoints: &LoopCheckpoints) -> StreamVec<'s, Iteration<T>, D>;
}

impl<'s, T: Timestamp + Copy, D> CheckpointLoop<'s, T, D> for StreamVec<'s, Iteration<T>, D>
where
    D: Serialize + Clone + 'static,
{
    fn checkpoint_loop(self, checkpoints: &LoopCheckpoints) -> StreamVec<'s, Iteration<T>, D> {
        let ckpt = checkpoints.clone();
        let scope = self.scope();
        let mut builder = OperatorBuilder::new("CheckpointLoop".to_string(), scope);
        let mut input = builder.new_input(self, Pipeline);
        let (data_out, data) = builder.new_output();
        let (ack_out, acks) = builder.new_output();
        let mut data_out =
            OutputBuilder::<Iteration<T>, CapacityContainerBuilder<Vec<D>>>::from(data_out);
        let mut ack_out = OutputBuilder::<
            Iteration<T>,
            CapacityContainerBuilder<Vec<Result<PartChain, String>>>,
        >::from(ack_out);
        builder.build(move |_caps| {
            type Copies<T, D> = BTreeMap<Iteration<T>, (Capability<Iteration<T>>, Vec<D>)>;
            let mut copies: Copies<T, D> = BTreeMap::new();
            move |frontiers| {
                let mut out = data_out.activate();
                input.for_each_stamp(|cap, data| {
                    for batch in data {
                        let Some(&time) = cap.stamp().iter().next() else {
                            continue;
                        };
                        if (ckpt.first + time.inner + 1).is_multiple_of(ckpt.every.max(1)) {
                            let held = cap.delayed(&time, 1);
                            let entry = copies.entry(time).or_insert_with(|| (held, Vec::new()));
                            entry.1.extend(batch.iter().cloned());
                        }
                        let out_cap = cap.delayed(&time, 0);
                        out.session(&out_cap).give_container(batch);
                    }
                });
                drop(out);
                let frontier = frontiers[0].frontier();
                let mut acks = ack_out.activate();
                let ready: Vec<Iteration<T>> = copies
                    .keys()
                    .filter(|t| !frontier.less_equal(t))
                    .copied()
                    .collect();
                for time in ready {
                    let Some((cap, records)) = copies.remove(&time) else {
                        continue;
                    };
                    let iteration = ckpt.first + time.inner;
                    let written = bincode::serialize(&records)
                        .map_err(|e| e.to_string())
                        .and_then(|bytes| {
                            ckpt.store
                                .write_part(
                                    iteration,
                                    &format!("loop-w{:05}.bin", ckpt.index),
                                    &bytes,
                                )
                                .map_err(|e| e.to_string())
                        })
                        .map(|file| PartChain {
                            operator: "loop".into(),
                            worker: ckpt.index,
                            files: vec![file],
                            shared: BTreeMap::new(),
                        });
                    acks.session(&cap).give(written);
                }
            }
        });
        // commit at worker 0 once every worker has written
        let ckpt = checkpoints.clone();
        acks.sink(
            Exchange::new(|_: &Result<PartChain, String>| 0),
            "CommitLoop",
            {
                let mut received: BTreeMap<Iteration<T>, Vec<Result<PartChain, String>>> =
                    BTreeMap::new();
                move |(input, frontier)| {
                    input.for_each_stamp(|cap, data| {
                        if let Some(&time) = cap.stamp().iter().next() {
                            let entry = received.entry(time).or_default();
                            for batch in data {
                                entry.append(batch);
                            }
                        }
                    });
                    let ready: Vec<Iteration<T>> = received
                        .keys()
                        .filter(|t| !frontier.less_equal(t))
                        .copied()
                        .collect();
                    for time in ready {
                        let Some(acks) = received.remove(&time) else {
                            continue;
                        };
                        let parts: Result<Vec<PartChain>, String> = acks.into_iter().collect();
                        // a worker that could not write leaves this checkpoint incomplete
                        let Ok(parts) = parts else { continue };
                        if parts.len() != ckpt.peers {
                            continue;
                        }
                        let manifest = Manifest {
                            format: 1,
                            epoch: ckpt.first + time.inner,
                            workers: ckpt.peers,
                            key_hash: crate::route::KEY_HASH.into(),
                            parts,
                            sources: Vec::new(),
                        };
                        // like a failed write, a failed commit leaves the previous one
                        let _ = ckpt
                            .store
                            .commit(&manifest)
                            .and_then(|()| ckpt.store.retain(2));
                    }
                }
            },
        );
        data
    }
}

/// Closes an iterative loop the way every weir loop does. `results` carries
/// each worker's record for the next iteration (`Ok`) and its part of the
/// iteration's total (`Err`): the records go back into the loop through
/// `handle` past the convergence gate (and the loop checkpoints, if any), and
/// `report` hears every total on the `leader`. Returns the totals, whose
/// frontier, once left out of the loop, says when the loop is over.
pub fn close_loop<'s, T: Timestamp + Copy, D, V, F>(
    results: StreamVec<'s, Iteration<T>, Result<D, V>>,
    handle: Handle<'s, Iteration<T>, Vec<D>>,
    convergence: Convergence<F>,
    report: Option<Report<V>>,
    leader: bool,
    checkpoints: Option<&LoopCheckpoints>,
) -> StreamVec<'s, Iteration<T>, V>
where
    D: Serialize + Clone + 'static,
    V: Total,
    F: Fn(u64, V) -> bool + 'static,
{
    let next = results.clone().flat_map(|r| r.ok());
    let totals = results.flat_map(|r| r.err());
    let report = move |round: Round<V>| {
        if leader && let Some(report) = &report {
            report(round);
        }
    };
    let gated = next.converge(totals.clone(), convergence, report);
    match checkpoints {
        Some(ckpt) => gated.checkpoint_loop(ckpt).connect_loop(handle),
        None => gated.connect_loop(handle),
    }
    totals
}

//! Kafka sinks: exactly-once (transactions committed by checkpoints) and
//! at-least-once (idempotent producer), for comparison.
//!
//! # The exactly-once protocol (two-phase commit)
//!
//! Each worker has one transactional producer with the stable id
//! `<prefix>-<worker>`. Records of an epoch are sent once the epoch is complete
//! (the input frontier has passed it), inside the worker's open transaction.
//!
//! 1. **Prepare.** At checkpoint epoch `c` the sink flushes (everything is in the
//!    broker's log, invisible to `read_committed` readers) and acknowledges `c`
//!    with the transaction's producer id and epoch; the coordinator stores them
//!    in checkpoint `c`'s manifest.
//! 2. **Commit.** When checkpoint `c` is complete (the committed stream brings
//!    `c' >= c`), the sink commits the transaction and durably records, in the
//!    checkpoint store, that its id committed through `c`. Only then does it
//!    begin the next transaction: records of later epochs wait until then.
//!    If checkpoint `c` is skipped (the committed stream's frontier passes `c`
//!    without it), the transaction stays open and takes later epochs too.
//!
//! # Recovery (before a restored run builds its dataflow)
//!
//! For every transaction in the restored checkpoint (and in newer committed
//! checkpoints a fallback replays), the recorded "committed through" tells
//! whether its commit happened. If not, the crash came between "checkpoint
//! complete" and "commit" (the transaction is still open: no later one can have
//! begun), and recovery commits it with the stored producer id and epoch
//! ([`super::wire::end_transaction`]). Then every transactional id a run may
//! have used is initialised again, which fences zombies and aborts whatever
//! they left open (epochs after the checkpoint, which the restored run
//! produces again).
//!
//! For tests, `WEIR_FAULT_KILL_BEFORE_COMMIT=N` makes a process abort right
//! before its `N`-th transaction commit (checkpoint complete, commit not sent):
//! the crash that the second phase's recovery exists for.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::scheduling::Activator;
use weir_dataflows::JobError;
use weir_dataflows::exec::RecordCounter;
use weir_progress::checkpoint::{Ack, Checkpoints, FINAL_EPOCH};
use weir_progress::recovery::Recovery;
use weir_progress::store::{CheckpointStore, SourceMark};

use super::producer::{IdempotentProducer, Produce, TxnProducer};
use super::source::with_retries;
use super::wire::end_transaction;
use crate::dir_sink::{buffer, take_complete};
use crate::dir_source::SourceCtx;
use crate::run::Commit;

/// Delivery guarantee of a Kafka sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarantee {
    /// Transactions committed when checkpoints complete.
    ExactlyOnce,
    /// An idempotent producer; a restored job may write records again.
    AtLeastOnce,
}

impl std::fmt::Display for Guarantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Guarantee::ExactlyOnce => "exactly-once",
            Guarantee::AtLeastOnce => "at-least-once",
        })
    }
}

impl std::str::FromStr for Guarantee {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exactly-once" => Ok(Guarantee::ExactlyOnce),
            "at-least-once" => Ok(Guarantee::AtLeastOnce),
            other => Err(format!(
                "unknown guarantee {other:?} (exactly-once or at-least-once)"
            )),
        }
    }
}

/// Where and how a sink writes.
#[derive(Clone, Debug)]
pub struct KafkaSink {
    /// Bootstrap brokers.
    pub brokers: String,
    /// Transactional ids are `<prefix>-<worker>`.
    pub transactional_prefix: String,
    /// Delivery guarantee.
    pub guarantee: Guarantee,
    /// Epochs below this were committed by an earlier run (a restore replays
    /// them identically): skip them.
    pub committed_before: u64,
    /// How long the broker may stay unreachable before the job fails.
    pub broker_timeout: std::time::Duration,
}

impl KafkaSink {
    /// Checks that `topic` exists (waiting up to `broker_timeout` for the broker).
    pub fn require_topic(&self, topic: &str) -> Result<(), JobError> {
        with_retries(&self.brokers, self.broker_timeout, || {
            super::wire::require_topic(&self.brokers, topic)
        })
        .map(|_| ())
        .map_err(JobError::from)
    }

    /// The transactional id of `worker`.
    pub fn transactional_id(&self, worker: usize) -> String {
        format!("{}-{worker}", self.transactional_prefix)
    }
}

/// The fault-injection variable (see the module doc).
const FAULT: &str = "WEIR_FAULT_KILL_BEFORE_COMMIT";

/// Mark keys of a prepared transaction.
const PRODUCER_ID: &str = "producer_id";
const PRODUCER_EPOCH: &str = "producer_epoch";

/// The store file recording that transactional id `id` committed through an epoch.
fn committed_meta(sink: &str, id: &str) -> String {
    format!("kafka-{sink}-{id}.committed")
}

/// The store file listing every transactional id runs of this sink used.
fn ids_meta(sink: &str) -> String {
    format!("kafka-{sink}-ids.json")
}

fn read_committed_through(
    store: &CheckpointStore,
    sink: &str,
    id: &str,
) -> Result<Option<u64>, JobError> {
    let name = committed_meta(sink, id);
    let Some(bytes) = store.read_meta(&name)? else {
        return Ok(None);
    };
    String::from_utf8_lossy(&bytes)
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| {
            JobError::Checkpoint(format!(
                "{}/{name}: not an epoch number: the record of committed transactions is damaged",
                store.describe()
            ))
        })
}

fn write_committed_through(
    store: &CheckpointStore,
    sink: &str,
    id: &str,
    epoch: u64,
) -> Result<(), JobError> {
    store
        .write_meta(&committed_meta(sink, id), epoch.to_string().as_bytes())
        .map_err(JobError::from)
}

/// A transaction a checkpoint recorded as prepared.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Prepared {
    worker: usize,
    producer_id: i64,
    epoch: i16,
    /// The last data epoch in it.
    through: u64,
}

fn prepared(mark: &SourceMark) -> Option<Prepared> {
    Some(Prepared {
        worker: mark.worker,
        producer_id: i64::try_from(*mark.positions.get(PRODUCER_ID)?).ok()?,
        epoch: i16::try_from(*mark.positions.get(PRODUCER_EPOCH)?).ok()?,
        through: mark.next.checked_sub(1)?,
    })
}

/// Settles what crashed runs of sink `name` left in Kafka (see the module doc);
/// runs once, on worker 0, before any worker opens its producer. `workers` is
/// the worker count of the run about to start.
pub fn recover_transactions(
    store: &CheckpointStore,
    recovery: &Recovery,
    name: &str,
    sink: &KafkaSink,
    workers: usize,
) -> Result<(), JobError> {
    if sink.guarantee == Guarantee::AtLeastOnce {
        return Ok(());
    }
    let mut ids: BTreeSet<String> = match store.read_meta(&ids_meta(name))? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            JobError::Checkpoint(format!("{}/{}: {e}", store.describe(), ids_meta(name)))
        })?,
        None => BTreeSet::new(),
    };
    if recovery.fresh_restore.is_some() {
        // no checkpoint ever completed, so no transaction can have committed:
        // a record of one means the checkpoints were lost, and starting over
        // would write the committed output again
        for id in &ids {
            if let Some(epoch) = read_committed_through(store, name, id)? {
                return Err(JobError::Checkpoint(format!(
                    "{}: transactional id {id} committed output through epoch {epoch}, \
                     but no complete checkpoint is left: the checkpoints were deleted, \
                     and starting over would write that output again \
                     (start in an empty checkpoint directory to do so on purpose)",
                    store.describe()
                )));
            }
        }
    }
    if recovery.manifest.is_none() {
        // a fresh start: no commit of an earlier run is pending
        for id in &ids {
            store.delete_meta(&committed_meta(name, id))?;
        }
    }
    // the newest prepared transaction of each worker: commit it unless recorded
    let marks = recovery
        .manifest
        .iter()
        .flat_map(|m| m.sources.iter())
        .chain(recovery.replay.iter())
        .filter(|m| m.operator == name);
    let mut newest: BTreeMap<usize, Prepared> = BTreeMap::new();
    for p in marks.filter_map(prepared) {
        let slot = newest.entry(p.worker).or_insert_with(|| p.clone());
        if p.through > slot.through {
            *slot = p;
        }
    }
    for p in newest.values() {
        let id = sink.transactional_id(p.worker);
        let done = read_committed_through(store, name, &id)?;
        if done.is_none_or(|d| d < p.through) {
            with_retries(&sink.brokers, sink.broker_timeout, || {
                end_transaction(&sink.brokers, &id, p.producer_id, p.epoch, true)
            })?;
            write_committed_through(store, name, &id, p.through)?;
        }
        ids.insert(id);
    }
    // ids of earlier, wider runs: fence them and abort what they left open
    // (each current worker does the same for its own id when it starts)
    for id in ids
        .iter()
        .filter(|id| !(0..workers).any(|w| **id == sink.transactional_id(w)))
    {
        with_retries(&sink.brokers, sink.broker_timeout, || {
            TxnProducer::open(&sink.brokers, id)
        })?;
    }
    ids.extend((0..workers).map(|w| sink.transactional_id(w)));
    let bytes = serde_json::to_vec(&ids).map_err(|e| JobError::Checkpoint(e.to_string()))?;
    store.write_meta(&ids_meta(name), &bytes)?;
    Ok(())
}

/// The transaction of one worker's exactly-once sink.
#[derive(Default)]
struct Txn {
    /// Whether a transaction is begun in Kafka.
    open: bool,
    /// The last data epoch sent in it.
    through: Option<u64>,
    /// The checkpoint epoch it was acknowledged at, awaiting commit.
    prepared: Option<u64>,
}

/// Shared by a sink and its commit operator.
struct Shared {
    producer: Option<TxnProducer>,
    txn: Txn,
    sink_activator: Option<Activator>,
}

/// Writes a stream of records to Kafka.
pub trait WriteKafka<'s> {
    /// Writes each epoch's records (see the module doc for the exactly-once
    /// protocol) and acknowledges checkpoint epochs. Returns the acks and the
    /// commit step, which [`Commit::publish`] connects to the committed stream.
    fn write_kafka(
        self,
        name: &str,
        sink: &KafkaSink,
        checkpoints: &Checkpoints,
        ctx: &SourceCtx,
        written: &RecordCounter,
    ) -> (StreamVec<'s, u64, Ack>, Box<dyn Commit<'s> + 's>);
}

impl<'s> WriteKafka<'s> for StreamVec<'s, u64, Produce> {
    fn write_kafka(
        self,
        name: &str,
        sink: &KafkaSink,
        checkpoints: &Checkpoints,
        ctx: &SourceCtx,
        written: &RecordCounter,
    ) -> (StreamVec<'s, u64, Ack>, Box<dyn Commit<'s> + 's>) {
        checkpoints.participate(name);
        let shared = Rc::new(RefCell::new(Shared {
            producer: None,
            txn: Txn::default(),
            sink_activator: None,
        }));
        let scope = self.scope();
        let mut builder = OperatorBuilder::new(format!("WriteKafka({name})"), scope);
        shared.borrow_mut().sink_activator =
            Some(scope.activator_for(builder.operator_info().address));
        let mut data_in = builder.new_input(self, Pipeline);
        let (ack_out, acks) = builder.new_output();
        let mut ack_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Ack>>>::from(ack_out);
        let (sink, ctx, written) = (sink.clone(), ctx.clone(), written.clone());
        let (schedule, index, name) = (checkpoints.schedule, checkpoints.index, name.to_string());
        let restored = checkpoints.restored_epoch();
        let state = Rc::clone(&shared);
        let id = sink.transactional_id(index);
        let (sink_op, commit_id, commit_ctx) = (name.clone(), id.clone(), ctx.clone());
        builder.build(move |mut caps| {
            let mut ack_cap = caps.pop();
            let mut buffered: BTreeMap<u64, Vec<Produce>> = BTreeMap::new();
            let mut acked: Option<u64> = restored;
            let mut idempotent: Option<IdempotentProducer> = None;
            // open the producer now: initialising fences this id's zombies
            let opened = match sink.guarantee {
                Guarantee::ExactlyOnce => with_retries(&sink.brokers, sink.broker_timeout, || {
                    TxnProducer::open(&sink.brokers, &id)
                })
                .map(|p| state.borrow_mut().producer = Some(p)),
                Guarantee::AtLeastOnce => {
                    IdempotentProducer::open(&sink.brokers).map(|p| idempotent = Some(p))
                }
            };
            let mut startup_error = opened.err().map(JobError::from);
            move |frontiers| {
                data_in
                    .for_each_stamp(|cap, data| buffer(&mut buffered, cap.stamp().least(), data));
                let frontier = frontiers[0].frontier().iter().min().copied();
                let Some(cap) = ack_cap.as_mut() else {
                    buffered.clear();
                    return;
                };
                let mut fail =
                    |error: JobError, cap: &timely::dataflow::operators::Capability<u64>| {
                        ack_out
                            .activate()
                            .session(cap)
                            .give(Ack::Failed(error.to_string()));
                        ctx.failure.set(error);
                    };
                if let Some(error) = startup_error.take() {
                    fail(error, cap);
                    ack_cap = None;
                    return;
                }
                if ctx.aborted.get() || ctx.failure.is_set() {
                    ack_cap = None;
                    return;
                }
                let due = schedule
                    .last_before(frontier)
                    .is_some_and(|c| acked.is_none_or(|a| c > a));
                let mut guard = state.borrow_mut();
                let shared = &mut *guard;
                let result = match (&idempotent, shared.producer.as_ref()) {
                    (Some(producer), _) => {
                        at_least_once(producer, &mut buffered, due, &sink, &written)
                    }
                    (None, Some(_)) if shared.txn.prepared.is_some() => Ok(false),
                    (None, Some(producer)) => exactly_once(
                        producer,
                        &mut shared.txn,
                        &mut buffered,
                        frontier,
                        due,
                        &sink,
                        &written,
                    ),
                    (None, None) => Ok(false),
                };
                let waiting = shared.txn.prepared.is_some();
                let ack = match result {
                    Ok(ack) => ack,
                    Err(error) => {
                        drop(guard);
                        fail(error, cap);
                        ack_cap = None;
                        return;
                    }
                };
                // acknowledge the newest checkpoint epoch below the frontier,
                // once everything below it is flushed (and, exactly-once, the
                // previous transaction is committed)
                if ack
                    && let Some(c) = schedule.last_before(frontier)
                    && acked.is_none_or(|a| c > a)
                {
                    let time = cap.delayed(&c);
                    let mark = match (&shared.producer, shared.txn.through) {
                        (Some(producer), Some(through)) if shared.txn.open => {
                            let identity = producer.identity();
                            Ack::Source(SourceMark {
                                operator: name.clone(),
                                worker: index,
                                next: through + 1,
                                positions: BTreeMap::from([
                                    (PRODUCER_ID.to_string(), identity.producer_id as u64),
                                    (PRODUCER_EPOCH.to_string(), identity.epoch as u64),
                                ]),
                            })
                        }
                        _ => Ack::Output {
                            operator: name.clone(),
                            worker: index,
                        },
                    };
                    if matches!(mark, Ack::Source(_)) {
                        shared.txn.prepared = Some(c);
                    }
                    ack_out.activate().session(&time).give(mark);
                    acked = Some(c);
                }
                let waiting = waiting || shared.txn.prepared.is_some();
                match frontier {
                    _ if waiting => {
                        // past the acknowledged checkpoint (even the final
                        // one), so that the coordinator can complete it
                        let next = acked.map_or(*cap.time(), |a| a.saturating_add(1));
                        cap.downgrade(&next.max(*cap.time()));
                    }
                    Some(f) => cap.downgrade(&schedule.next_from(f).max(*cap.time())),
                    None if acked == Some(FINAL_EPOCH) => ack_cap = None,
                    None => {}
                }
            }
        });
        let commit = KafkaCommit {
            shared,
            store: checkpoints.store.clone(),
            sink: sink_op,
            id: commit_id,
            ctx: commit_ctx,
        };
        (acks, Box::new(commit))
    }
}

/// Sends every complete epoch's records into the open transaction (beginning
/// one if needed) and flushes when a checkpoint is `due`. Returns whether a due
/// checkpoint may be acknowledged.
fn exactly_once(
    producer: &TxnProducer,
    txn: &mut Txn,
    buffered: &mut BTreeMap<u64, Vec<Produce>>,
    frontier: Option<u64>,
    due: bool,
    sink: &KafkaSink,
    written: &RecordCounter,
) -> Result<bool, JobError> {
    for (epoch, records) in take_complete(buffered, frontier, sink.committed_before) {
        if !txn.open {
            producer.begin()?;
            txn.open = true;
        }
        for record in &records {
            producer.send(record)?;
        }
        written.add(records.len() as u64);
        txn.through = Some(epoch);
    }
    if due && txn.open {
        producer.flush()?;
    }
    Ok(due)
}

/// Sends every buffered record at once; flushes when a checkpoint is `due`.
fn at_least_once(
    producer: &IdempotentProducer,
    buffered: &mut BTreeMap<u64, Vec<Produce>>,
    due: bool,
    sink: &KafkaSink,
    written: &RecordCounter,
) -> Result<bool, JobError> {
    for (epoch, records) in std::mem::take(buffered) {
        if epoch < sink.committed_before {
            continue;
        }
        for record in &records {
            producer.send(record)?;
        }
        written.add(records.len() as u64);
    }
    if due {
        producer.flush()?;
    }
    Ok(due)
}

/// Commits a worker's prepared transaction when its checkpoint completes.
struct KafkaCommit {
    shared: Rc<RefCell<Shared>>,
    store: CheckpointStore,
    /// The sink operator's name.
    sink: String,
    /// This worker's transactional id.
    id: String,
    ctx: SourceCtx,
}

impl<'s> Commit<'s> for KafkaCommit {
    fn publish(self: Box<Self>, committed: StreamVec<'s, u64, u64>) -> StreamVec<'s, u64, ()> {
        let KafkaCommit {
            shared,
            store,
            sink,
            id,
            ctx,
        } = *self;
        let mut fault = std::env::var(FAULT)
            .ok()
            .and_then(|n| n.parse::<u64>().ok());
        committed.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Pipeline,
            "CommitKafka",
            move |_, _| {
                move |(input, frontier), _output| {
                    let mut newest = None;
                    input.for_each_stamp(|_, data| {
                        newest = newest.max(ctx.newest_committed(data.flat_map(|b| b.iter())));
                    });
                    if ctx.aborted.get() || ctx.failure.is_set() {
                        return;
                    }
                    let mut shared = shared.borrow_mut();
                    let Some(prepared) = shared.txn.prepared else {
                        return;
                    };
                    let skipped = !frontier.less_equal(&prepared);
                    if newest.is_some_and(|c| c >= prepared) {
                        let through = shared.txn.through.unwrap_or(prepared);
                        if let Some(n) = fault.as_mut() {
                            *n = n.saturating_sub(1);
                            if *n == 0 {
                                eprintln!("weir: {FAULT}: aborting before a commit");
                                std::process::abort();
                            }
                        }
                        let result = match shared.producer.as_ref() {
                            Some(producer) => {
                                producer.commit().map_err(JobError::from).and_then(|()| {
                                    write_committed_through(&store, &sink, &id, through)
                                })
                            }
                            None => Ok(()),
                        };
                        if let Err(e) = result {
                            ctx.failure.set(e);
                            return;
                        }
                        shared.txn = Txn::default();
                    } else if skipped {
                        // checkpoint `prepared` was skipped: the transaction
                        // stays open and takes later epochs too
                        shared.txn.prepared = None;
                    } else {
                        return;
                    }
                    if let Some(a) = &shared.sink_activator {
                        a.activate();
                    }
                }
            },
        )
    }
}

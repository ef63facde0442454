//! Kafka sinks: exactly-once (transactions committed by checkpoints) and
//! at-least-once (idempotent producer), for comparison.
//!
//! # The exactly-once protocol (two-phase commit)
//!
//! Each worker has a small pool of transactional producers
//! ([`super::txn_pool`]), each with a stable id `<prefix>-<worker>-<slot>`, and
//! a thread that flushes and commits them. Records of an epoch are sent once
//! the epoch is complete (the input frontier has passed it), inside the open
//! transaction.
//!
//! 1. **Prepare.** When checkpoint epoch `c` is due, the pool's thread flushes
//!    the open transaction (everything is in the broker's log, invisible to
//!    `read_committed` readers). Then the sink acknowledges `c` with a mark
//!    naming every transaction that is in the log and not known to be
//!    committed (producer id, epoch, last data epoch); the coordinator stores
//!    it in checkpoint `c`'s manifest. The next epochs go to a transaction in
//!    another slot, begun once the flush is done (so that each partition's log
//!    keeps the epochs in order).
//! 2. **Commit.** When a checkpoint at or after `c` completes, the thread
//!    commits the transaction and durably records, in the checkpoint store,
//!    that its id committed through its last epoch; its slot is then free.
//!    The commit step holds its output back until then, so a job ends only
//!    after its last commit. If every slot is busy, records wait. A
//!    transaction whose checkpoints were all skipped (the committed stream
//!    passed them without completing them) stays open and may take later
//!    epochs too.
//!
//! For tests, `WEIR_FAULT_KILL_BEFORE_COMMIT=N` makes a process abort right
//! before a worker's `N`-th transaction commit (checkpoint complete, commit not
//! sent): the crash that the second phase's recovery exists for
//! ([`super::sink_recovery`]).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::scheduling::Activator;
use weir_progress::checkpoint::{Ack, Checkpoints, Committed, Schedule};
use weir_runtime::JobError;
use weir_runtime::exec::RecordCounter;

use super::producer::{IdempotentProducer, Produce};
use super::retry::with_retries;
pub use super::sink_recovery::recover_transactions;
use super::txn_pool::Pool;
use crate::dir_sink::buffer;
use crate::run::Commit;
use weir_runtime::source_ctx::SourceCtx;

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
    /// Transactional ids are `<prefix>-<worker>-<slot>`.
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

    /// The transactional id of `worker`'s producer in pool slot `slot`.
    pub fn transactional_id(&self, worker: usize, slot: usize) -> String {
        format!("{}-{worker}-{slot}", self.transactional_prefix)
    }
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

/// Shared by an exactly-once sink and its commit step.
struct Shared {
    /// The worker's producers (`None`: at-least-once, or not opened).
    pool: Option<Pool>,
    /// The committed stream's frontier when the commit step last ran
    /// (`None`: empty, every checkpoint resolved).
    committed_frontier: Option<u64>,
    sink_activator: Option<Activator>,
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
            pool: None,
            committed_frontier: Some(0),
            sink_activator: None,
        }));
        let scope = self.scope();
        let mut builder = OperatorBuilder::new(format!("WriteKafka({name})"), scope);
        let address = builder.operator_info().address;
        shared.borrow_mut().sink_activator = Some(scope.activator_for(Rc::clone(&address)));
        let wake = scope.worker().sync_activator_for(address.to_vec());
        let mut data_in = builder.new_input(self, Pipeline);
        let (ack_out, acks) = builder.new_output();
        let mut ack_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Ack>>>::from(ack_out);
        let (sink, ctx, written) = (sink.clone(), ctx.clone(), written.clone());
        let mut state = SinkState {
            name: name.to_string(),
            index: checkpoints.index,
            schedule: checkpoints.schedule,
            committed_before: sink.committed_before,
            buffered: BTreeMap::new(),
            acked: checkpoints.restored_epoch(),
            pending: None,
        };
        let store = checkpoints.store.clone();
        let writer = Rc::clone(&shared);
        let commit_ctx = ctx.clone();
        builder.build(move |mut caps| {
            let mut ack_cap = caps.pop();
            // open the producers now: initialising fences their ids' zombies
            let opened = match sink.guarantee {
                Guarantee::ExactlyOnce => {
                    Pool::open(&sink, state.index, store, &state.name).map(|pool| {
                        pool.wake(wake);
                        writer.borrow_mut().pool = Some(pool);
                        None
                    })
                }
                Guarantee::AtLeastOnce => IdempotentProducer::open(&sink.brokers)
                    .map(Some)
                    .map_err(JobError::from),
            };
            let (idempotent, mut startup_error) = match opened {
                Ok(producer) => (producer, None),
                Err(error) => (None, Some(error)),
            };
            move |frontiers| {
                data_in.for_each_stamp(|cap, data| {
                    buffer(&mut state.buffered, cap.stamp().least(), data)
                });
                let frontier = frontiers[0].frontier().iter().min().copied();
                if ack_cap.is_none() && state.pending.is_none() {
                    state.buffered.clear();
                    return;
                }
                let mut out = ack_out.activate();
                let mut emit = |cap: &Capability<u64>, ack: Ack| out.session(cap).give(ack);
                let mut guard = writer.borrow_mut();
                let shared = &mut *guard;
                let failed = startup_error.take().or_else(|| {
                    let pool = shared.pool.as_mut()?;
                    pool.settle();
                    pool.error().cloned()
                });
                let result = match failed {
                    Some(error) => Err(error),
                    None if ctx.aborted.get() || ctx.failure.is_set() => {
                        ack_cap = None;
                        state.pending = None;
                        return;
                    }
                    None => match (&idempotent, shared.pool.as_mut()) {
                        (Some(producer), _) => state.at_least_once(
                            producer,
                            &mut ack_cap,
                            frontier,
                            &written,
                            &mut emit,
                        ),
                        (None, Some(pool)) => {
                            let resolved = shared.committed_frontier;
                            state.exactly_once(
                                pool,
                                resolved,
                                &mut ack_cap,
                                frontier,
                                &written,
                                &mut emit,
                            )
                        }
                        (None, None) => Ok(()),
                    },
                };
                if let Err(error) = result {
                    if let Some(cap) = state.pending.as_ref().or(ack_cap.as_ref()) {
                        emit(cap, Ack::Failed(error.to_string()));
                    }
                    ctx.failure.set(error);
                    ack_cap = None;
                    state.pending = None;
                }
            }
        });
        let commit = KafkaCommit {
            shared,
            ctx: commit_ctx,
        };
        (acks, Box::new(commit))
    }
}

/// One worker's sink, between activations.
struct SinkState {
    name: String,
    index: usize,
    schedule: Schedule,
    committed_before: u64,
    /// Records by data epoch, not sent yet.
    buffered: BTreeMap<u64, Vec<Produce>>,
    /// The newest checkpoint acknowledged (or being flushed for).
    acked: Option<u64>,
    /// Held at the checkpoint whose flush is under way.
    pending: Option<Capability<u64>>,
}

impl SinkState {
    /// The checkpoint due and not acknowledged yet, if any.
    fn due(&self, frontier: Option<u64>) -> Option<u64> {
        self.schedule
            .last_before(frontier)
            .filter(|&c| self.acked.is_none_or(|a| c > a))
    }

    /// Moves the acknowledgement capability to the next checkpoint it may
    /// acknowledge; drops it once the final one is acknowledged.
    fn downgrade(&self, cap: &mut Option<Capability<u64>>, frontier: Option<u64>) {
        let Some(held) = cap.as_mut() else {
            return;
        };
        match (self.due(frontier), frontier) {
            (Some(c), _) => held.downgrade(&c.max(*held.time())),
            (None, Some(f)) => held.downgrade(&self.schedule.next_from(f).max(*held.time())),
            (None, None) => *cap = None,
        }
    }

    fn ack(&self, pool: &Pool) -> Ack {
        match pool.mark(&self.name, self.index) {
            Some(mark) => Ack::Source(mark),
            None => Ack::Output {
                operator: self.name.clone(),
                worker: self.index,
            },
        }
    }

    /// Sends complete epochs into the pool's open transaction and prepares it
    /// when a checkpoint is due (see the module doc). `resolved` is the
    /// committed stream's frontier.
    fn exactly_once(
        &mut self,
        pool: &mut Pool,
        resolved: Option<u64>,
        cap: &mut Option<Capability<u64>>,
        frontier: Option<u64>,
        written: &RecordCounter,
        emit: &mut impl FnMut(&Capability<u64>, Ack),
    ) -> Result<(), JobError> {
        for _ in pool.take_flushed() {
            if let Some(held) = self.pending.take() {
                emit(&held, self.ack(pool));
            }
        }
        if pool.flushing() {
            return Ok(());
        }
        // every acknowledged checkpoint is resolved: a prepared transaction
        // still waiting belongs to skipped ones only, and may take more epochs
        let reopen = self.acked.is_none_or(|a| resolved.is_none_or(|f| a < f));
        let complete = |epoch: u64| frontier.is_none_or(|f| epoch < f);
        while let Some(entry) = self.buffered.first_entry() {
            let epoch = *entry.key();
            if !complete(epoch) {
                break;
            }
            if epoch < self.committed_before || entry.get().is_empty() {
                entry.remove();
                continue;
            }
            if !pool.send(epoch, entry.get(), reopen)? {
                break; // every slot is busy: wait for a commit
            }
            written.add(entry.remove().len() as u64);
        }
        let blocked = self
            .buffered
            .first_key_value()
            .is_some_and(|(&epoch, _)| complete(epoch));
        if let (Some(c), false, Some(held)) = (self.due(frontier), blocked, cap.as_ref()) {
            let at = held.delayed(&c);
            if pool.prepare(c)? {
                self.pending = Some(at);
            } else {
                emit(&at, self.ack(pool));
            }
            self.acked = Some(c);
        }
        self.downgrade(cap, frontier);
        Ok(())
    }

    /// Sends every buffered record at once; flushes and acknowledges when a
    /// checkpoint is due.
    fn at_least_once(
        &mut self,
        producer: &IdempotentProducer,
        cap: &mut Option<Capability<u64>>,
        frontier: Option<u64>,
        written: &RecordCounter,
        emit: &mut impl FnMut(&Capability<u64>, Ack),
    ) -> Result<(), JobError> {
        for (epoch, records) in std::mem::take(&mut self.buffered) {
            if epoch < self.committed_before {
                continue;
            }
            for record in &records {
                producer.send(record)?;
            }
            written.add(records.len() as u64);
        }
        if let (Some(c), Some(held)) = (self.due(frontier), cap.as_ref()) {
            producer.flush()?;
            emit(
                &held.delayed(&c),
                Ack::Output {
                    operator: self.name.clone(),
                    worker: self.index,
                },
            );
            self.acked = Some(c);
        }
        self.downgrade(cap, frontier);
        Ok(())
    }
}

/// Commits a worker's prepared transactions as checkpoints complete.
struct KafkaCommit {
    shared: Rc<RefCell<Shared>>,
    ctx: SourceCtx,
}

impl<'s> Commit<'s> for KafkaCommit {
    fn publish(
        self: Box<Self>,
        committed: StreamVec<'s, u64, Committed>,
    ) -> StreamVec<'s, u64, ()> {
        let KafkaCommit { shared, ctx } = *self;
        let scope = committed.scope();
        committed.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Pipeline,
            "CommitKafka",
            move |_, info| {
                if let Some(pool) = shared.borrow().pool.as_ref() {
                    pool.wake(scope.worker().sync_activator_for(info.address.to_vec()));
                }
                // held (keeping the output back) until each slot's commit is done
                let mut held: Vec<(usize, Capability<u64>)> = Vec::new();
                move |(input, frontier), output| {
                    let port = output.output_index();
                    let mut newest: Option<(u64, Capability<u64>)> = None;
                    input.for_each_stamp(|cap, data| {
                        let Some(c) = ctx.newest_committed(data.flat_map(|b| b.iter())) else {
                            return;
                        };
                        if newest.as_ref().is_none_or(|(n, _)| c > *n)
                            && let Some(cap) = cap.retain_least(port)
                        {
                            newest = Some((c, cap));
                        }
                    });
                    let mut guard = shared.borrow_mut();
                    let shared = &mut *guard;
                    if let Some(a) = &shared.sink_activator {
                        a.activate();
                    }
                    let Some(pool) = shared.pool.as_mut() else {
                        return;
                    };
                    if ctx.aborted.get() || ctx.failure.is_set() {
                        held.clear();
                        return;
                    }
                    pool.settle();
                    if let Some(error) = pool.error() {
                        ctx.failure.set(error.clone());
                        held.clear();
                        return;
                    }
                    let done = pool.take_committed();
                    held.retain(|(slot, _)| !done.contains(slot));
                    if let Some((c, cap)) = newest {
                        match pool.commit_through(c) {
                            Ok(slots) => held.extend(slots.into_iter().map(|s| (s, cap.clone()))),
                            Err(error) => {
                                ctx.failure.set(error);
                                held.clear();
                                return;
                            }
                        }
                    }
                    shared.committed_frontier = frontier.frontier().iter().min().copied();
                }
            },
        )
    }
}

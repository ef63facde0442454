//! One worker's pool of transactional producers for the exactly-once sink, and
//! the thread that flushes and commits them off the worker's data path (see
//! [`super::sink`] for the protocol they serve).
//!
//! Each producer of the pool is a *slot* with a stable transactional id
//! (`<prefix>-<worker>-<slot>`). The worker thread begins transactions and
//! sends records; the pool's thread flushes a transaction when a checkpoint is
//! due and commits it when a checkpoint at or after that one completes, then
//! wakes the operators that wait for it. While one transaction commits, the
//! next one is already open in another slot.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use timely::scheduling::SyncActivator;
use weir_progress::background::Background;
use weir_progress::store::{CheckpointStore, SourceMark};
use weir_runtime::JobError;

use super::producer::{Produce, TxnProducer};
use super::retry::with_retries;
use super::sink::KafkaSink;
use super::sink_recovery::{PreparedTxn, encode_marks, write_committed_through};

/// Transactional producers per worker.
pub const POOL: usize = 3;

/// The fault-injection variable (see [`super::sink`]).
pub const FAULT: &str = "WEIR_FAULT_KILL_BEFORE_COMMIT";

/// Where one slot of the pool is in the two-phase commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// No transaction begun.
    Free,
    /// Taking records; its transaction holds data epochs up to `through`.
    Open { through: u64 },
    /// Being flushed, to be acknowledged at `checkpoint`.
    Flushing { checkpoint: u64, through: u64 },
    /// In the broker's log and acknowledged at `checkpoint`: it commits when a
    /// checkpoint at or after that one completes.
    Prepared { checkpoint: u64, through: u64 },
    /// Its commit is queued on the pool's thread.
    Committing { through: u64 },
}

enum Job {
    Flush(usize),
    Commit { slot: usize, through: u64 },
}

enum Done {
    Flushed(usize, Result<(), JobError>),
    Committed(usize, Result<(), JobError>),
}

/// A worker's transactional producers, their slots and their thread.
pub struct Pool {
    producers: Vec<Arc<TxnProducer>>,
    slots: Vec<Slot>,
    thread: Background<Job, Done>,
    /// The operators to wake when the thread finished a job.
    wake: Arc<Mutex<Vec<SyncActivator>>>,
    /// Checkpoints whose flush finished since the sink last looked.
    flushed: Vec<u64>,
    /// Slots whose commit finished since the commit step last looked.
    committed: Vec<usize>,
    /// The first failed job.
    error: Option<JobError>,
}

impl Pool {
    /// Opens the pool of `worker`: initialising each producer fences its id's
    /// zombies and aborts what they left open. Commits record, in `store`,
    /// that their id committed through an epoch (sink `name`).
    pub fn open(
        sink: &KafkaSink,
        worker: usize,
        store: CheckpointStore,
        name: &str,
    ) -> Result<Self, JobError> {
        let opened: Vec<Result<TxnProducer, JobError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..POOL)
                .map(|slot| {
                    let id = sink.transactional_id(worker, slot);
                    scope.spawn(move || {
                        with_retries(&sink.brokers, sink.broker_timeout, || {
                            TxnProducer::open(&sink.brokers, &id)
                        })
                        .map_err(JobError::from)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(JobError::Service(
                            "opening a Kafka producer panicked".into(),
                        ))
                    })
                })
                .collect()
        });
        let producers = opened
            .into_iter()
            .map(|p| p.map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let wake: Arc<Mutex<Vec<SyncActivator>>> = Arc::default();
        let work = {
            let producers = producers.clone();
            let name = name.to_string();
            let mut fault = std::env::var(FAULT)
                .ok()
                .and_then(|n| n.parse::<u64>().ok());
            move |job: Job| match job {
                Job::Flush(slot) => {
                    Done::Flushed(slot, producers[slot].flush().map_err(From::from))
                }
                Job::Commit { slot, through } => {
                    if let Some(n) = fault.as_mut() {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            eprintln!("weir: {FAULT}: aborting before a commit");
                            std::process::abort();
                        }
                    }
                    let producer = &producers[slot];
                    let result = producer.commit().map_err(JobError::from).and_then(|()| {
                        write_committed_through(&store, &name, producer.id(), through)
                    });
                    Done::Committed(slot, result)
                }
            }
        };
        let notify = {
            let wake = Arc::clone(&wake);
            move || {
                if let Ok(wake) = wake.lock() {
                    for activator in wake.iter() {
                        let _ = activator.activate();
                    }
                }
            }
        };
        let thread =
            Background::spawn_notifying(format!("weir-kafka-{worker}"), work, |_| false, notify);
        Ok(Pool {
            producers,
            slots: vec![Slot::Free; POOL],
            thread,
            wake,
            flushed: Vec::new(),
            committed: Vec::new(),
            error: None,
        })
    }

    /// Wakes `activator`'s operator whenever the thread finished a job.
    pub fn wake(&self, activator: SyncActivator) {
        if let Ok(mut wake) = self.wake.lock() {
            wake.push(activator);
        }
    }

    /// Takes the thread's results into the slots.
    pub fn settle(&mut self) {
        for done in self.thread.completed() {
            let (slot, result) = match done {
                Done::Flushed(slot, result) => {
                    if let Slot::Flushing {
                        checkpoint,
                        through,
                    } = self.slots[slot]
                    {
                        self.slots[slot] = Slot::Prepared {
                            checkpoint,
                            through,
                        };
                        self.flushed.push(checkpoint);
                    }
                    (slot, result)
                }
                Done::Committed(slot, result) => {
                    self.slots[slot] = Slot::Free;
                    self.committed.push(slot);
                    (slot, result)
                }
            };
            if let Err(error) = result
                && self.error.is_none()
            {
                self.error = Some(JobError::Service(format!(
                    "{} (transactional id {})",
                    error,
                    self.producers[slot].id()
                )));
            }
        }
    }

    /// The first failed flush or commit, if any.
    pub fn error(&self) -> Option<&JobError> {
        self.error.as_ref()
    }

    /// Checkpoints whose flush finished since the last call, in order.
    pub fn take_flushed(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.flushed)
    }

    /// Slots whose commit finished since the last call.
    pub fn take_committed(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.committed)
    }

    /// Whether a flush is under way (the sink sends nothing meanwhile, so that
    /// each partition's log keeps the epochs in order).
    pub fn flushing(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s, Slot::Flushing { .. }))
    }

    /// Sends `records` of data epoch `epoch` into the open transaction,
    /// beginning one in a free slot if none is open. When no slot is free and
    /// `reopen` holds (every checkpoint the sink acknowledged is resolved), a
    /// prepared transaction whose checkpoints were all skipped takes them.
    /// Returns `false` (nothing sent) when no slot can take them yet.
    pub fn send(
        &mut self,
        epoch: u64,
        records: &[Produce],
        reopen: bool,
    ) -> Result<bool, JobError> {
        let open = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::Open { .. }));
        let slot = match open {
            Some(slot) => slot,
            None => match self.slots.iter().position(|s| *s == Slot::Free) {
                Some(slot) => {
                    self.producers[slot].begin()?;
                    slot
                }
                None if reopen => {
                    match self
                        .slots
                        .iter()
                        .position(|s| matches!(s, Slot::Prepared { .. }))
                    {
                        Some(slot) => slot,
                        None => return Ok(false),
                    }
                }
                None => return Ok(false),
            },
        };
        for record in records {
            self.producers[slot].send(record)?;
        }
        let before = match self.slots[slot] {
            Slot::Open { through } | Slot::Prepared { through, .. } => Some(through),
            _ => None,
        };
        self.slots[slot] = Slot::Open {
            through: before.map_or(epoch, |t| t.max(epoch)),
        };
        Ok(true)
    }

    /// Flushes the open transaction on the thread, to be acknowledged at
    /// `checkpoint`; `false` when none is open.
    pub fn prepare(&mut self, checkpoint: u64) -> Result<bool, JobError> {
        let Some(slot) = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::Open { .. }))
        else {
            return Ok(false);
        };
        let Slot::Open { through } = self.slots[slot] else {
            return Ok(false);
        };
        if !self.thread.submit(Job::Flush(slot)) {
            return Err(gone());
        }
        self.slots[slot] = Slot::Flushing {
            checkpoint,
            through,
        };
        Ok(true)
    }

    /// The mark for an acknowledgement: every transaction that is in the
    /// broker's log and not known to be committed (`None`: there is none).
    pub fn mark(&self, sink: &str, worker: usize) -> Option<SourceMark> {
        let prepared: Vec<PreparedTxn> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| match *s {
                Slot::Prepared { through, .. } | Slot::Committing { through } => {
                    let identity = self.producers[slot].identity();
                    Some(PreparedTxn {
                        worker,
                        slot,
                        producer_id: identity.producer_id,
                        epoch: identity.epoch,
                        through,
                    })
                }
                _ => None,
            })
            .collect();
        encode_marks(sink, worker, &prepared)
    }

    /// Queues the commit of every transaction prepared at or before the
    /// complete checkpoint `committed`, in checkpoint order; returns their slots.
    pub fn commit_through(&mut self, committed: u64) -> Result<Vec<usize>, JobError> {
        let mut due: BTreeMap<(u64, usize), u64> = BTreeMap::new();
        for (slot, s) in self.slots.iter().enumerate() {
            if let Slot::Prepared {
                checkpoint,
                through,
            } = *s
                && checkpoint <= committed
            {
                due.insert((checkpoint, slot), through);
            }
        }
        let mut slots = Vec::new();
        for ((_, slot), through) in due {
            if !self.thread.submit(Job::Commit { slot, through }) {
                return Err(gone());
            }
            self.slots[slot] = Slot::Committing { through };
            slots.push(slot);
        }
        Ok(slots)
    }
}

fn gone() -> JobError {
    JobError::Service("the Kafka sink's commit thread could not start or is gone".into())
}

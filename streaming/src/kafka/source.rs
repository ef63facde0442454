//! A Kafka source whose offsets live in weir's checkpoints.
//!
//! Partition `p` of the topic is read by worker `p % workers` (weir assigns
//! partitions itself: no consumer group, no rebalancing). Every epoch is an
//! ingestion interval; at its end the source acknowledges the checkpoint with
//! the next offset of each of its partitions ([`Ack::Source`]), so a restore
//! resumes exactly there, whoever owns the partition then (a rescale moves
//! partitions and their offsets to their new owners). Kafka's own group
//! offsets are not used.
//!
//! Event time: each epoch also carries this worker's [`Watermark`] — the
//! smallest, over its active partitions, of the largest event time seen minus
//! the allowed out-of-orderness. A partition that has shown no event time yet
//! holds it back ([`Watermark::Pending`]): its first fetch may not have
//! answered, and its first records may belong to a window the other partitions
//! have passed. A partition is idle, and stops holding the watermark back,
//! once it has been read to its end (the broker said so) and has had no
//! records for `idle_epochs` epochs. The per-partition state behind it
//! (largest event time, last epoch it was active) is in the marks too, and a
//! replayed epoch takes it from there, so a restored or replayed epoch carries
//! the same watermark as before.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Scope, StreamVec};
use weir_progress::checkpoint::{Ack, Checkpoints, FINAL_EPOCH};
use weir_progress::recovery::Recovery;
use weir_progress::store::SourceMark;
use weir_runtime::JobError;

use super::KafkaError;
use super::producer::base_config;
use super::retry::with_retries;
use crate::dir_source::POLL;
use crate::window::Watermark;
use weir_runtime::source_ctx::SourceCtx;

/// Records a source reads per activation before it lets other operators run.
pub const READ_BUDGET: usize = 4096;
/// How long the broker may stay unreachable before the job fails, by default.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(30);

/// What a Kafka source reads and how it cuts epochs.
#[derive(Clone, Debug)]
pub struct KafkaSource {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// Wall-clock length of an epoch.
    pub interval: Duration,
    /// Stop once no record has arrived for this long (the watermark then goes
    /// to the end of time, so every window fires).
    pub stop_when_idle: Option<Duration>,
    /// Where event time comes from.
    pub event_time: EventTime,
    /// Allowed out-of-orderness of event time, in milliseconds.
    pub out_of_orderness_ms: u64,
    /// Epochs without records after which a partition is idle.
    pub idle_epochs: u64,
    /// How long the broker may stay unreachable before the job fails.
    pub broker_timeout: Duration,
}

/// Where a record's event time comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventTime {
    /// The record's Kafka timestamp.
    RecordTimestamp,
    /// A field of the JSON value: milliseconds since the Unix epoch, as a
    /// number or a decimal string.
    JsonField(String),
}

impl KafkaSource {
    /// A source of `topic` with 1 s epochs, record-timestamp event time, no
    /// out-of-orderness allowance and partitions idle after 5 empty epochs.
    pub fn new(brokers: &str, topic: &str) -> Self {
        KafkaSource {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            interval: Duration::from_secs(1),
            stop_when_idle: None,
            event_time: EventTime::RecordTimestamp,
            out_of_orderness_ms: 0,
            idle_epochs: 5,
            broker_timeout: BROKER_TIMEOUT,
        }
    }

    /// The topic's partition count; waits (with backoff, logging each retry) while
    /// the broker is unreachable, up to `broker_timeout`.
    pub fn partitions(&self) -> Result<usize, JobError> {
        with_retries(&self.brokers, self.broker_timeout, || {
            super::wire::require_topic(&self.brokers, &self.topic)
        })
        .map_err(JobError::from)
    }
}

/// A record read from Kafka.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaRecord {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Record timestamp (ms since the Unix epoch; 0 if it has none).
    pub timestamp: i64,
    /// Event time (ms), if the record has one.
    pub event_time: Option<u64>,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Vec<u8>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl KafkaRecord {
    /// `topic/partition@offset`, for messages.
    pub fn position(&self, topic: &str) -> String {
        format!("{topic}/{}@{}", self.partition, self.offset)
    }
}

/// The key of a partition's offset in a mark; `@max` and `@seen` suffixes
/// key its largest event time and the last epoch it had records in.
fn stream_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// The partition of a mark key of `topic`.
fn key_partition(topic: &str, key: &str) -> Option<i32> {
    let rest = key.strip_prefix(topic)?.strip_prefix('/')?;
    let digits = rest.split('@').next()?;
    digits.parse().ok()
}

/// Whether worker `index` of `peers` reads `partition`.
pub fn owns_partition(partition: i32, index: usize, peers: usize) -> bool {
    usize::try_from(partition).is_ok_and(|p| p % peers == index)
}

/// Reads a Kafka topic into epochs.
pub trait ReadKafka<'s> {
    /// Reads this worker's partitions of `source.topic` (the topic has
    /// `partitions` partitions): returns the records, this worker's watermark
    /// at each epoch (one value per epoch), and the source's acks. A restored
    /// source resumes at the offsets in `recovery` and first replays the
    /// epochs it says were committed, cutting them exactly as before.
    fn read_kafka(
        self,
        name: &str,
        source: &KafkaSource,
        partitions: usize,
        recovery: &Recovery,
        checkpoints: &Checkpoints,
        ctx: &SourceCtx,
    ) -> KafkaStreams<'s>;
}

/// The streams of a Kafka source.
pub struct KafkaStreams<'s> {
    /// The records.
    pub records: StreamVec<'s, u64, KafkaRecord>,
    /// This worker's watermark per epoch.
    pub watermarks: StreamVec<'s, u64, Watermark>,
    /// Acknowledgements for the coordinator.
    pub acks: StreamVec<'s, u64, Ack>,
}

impl<'s> ReadKafka<'s> for Scope<'s, u64> {
    fn read_kafka(
        self,
        name: &str,
        source: &KafkaSource,
        partitions: usize,
        recovery: &Recovery,
        checkpoints: &Checkpoints,
        ctx: &SourceCtx,
    ) -> KafkaStreams<'s> {
        let (index, peers) = (checkpoints.index, checkpoints.peers);
        let topic = source.topic.clone();
        let mine = {
            let topic = topic.clone();
            move |key: &str| {
                key_partition(&topic, key).is_some_and(|p| owns_partition(p, index, peers))
            }
        };
        let start = recovery.start();
        let restored = recovery.positions(name, &mine);
        let plan = recovery.replay_plan(name, &mine);
        checkpoints.participate(name);
        let owned: Vec<i32> = (0..partitions)
            .filter_map(|p| i32::try_from(p).ok())
            .filter(|&p| owns_partition(p, index, peers))
            .collect();
        let mut reader = Reader::new(source, &owned, &restored, start, plan, partitions);

        let mut builder = OperatorBuilder::new(format!("ReadKafka({name})"), self);
        let activator = self.activator_for(builder.operator_info().address);
        let (data_out, records) = builder.new_output();
        let (mark_out, watermarks) = builder.new_output();
        let (ack_out, acks) = builder.new_output();
        let mut data_out =
            OutputBuilder::<u64, CapacityContainerBuilder<Vec<KafkaRecord>>>::from(data_out);
        let mut mark_out =
            OutputBuilder::<u64, CapacityContainerBuilder<Vec<Watermark>>>::from(mark_out);
        let mut ack_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Ack>>>::from(ack_out);
        let (source, ctx, name) = (source.clone(), ctx.clone(), name.to_string());
        builder.build(move |mut caps| {
            let mut ack_cap = caps.pop();
            let mut mark_cap = caps.pop();
            let mut data_cap = caps.pop();
            for cap in data_cap
                .iter_mut()
                .chain(mark_cap.iter_mut())
                .chain(ack_cap.iter_mut())
            {
                cap.downgrade(&start);
            }
            let mut epoch = start;
            move |_frontiers| {
                let (Some(data), Some(marks), Some(ack)) =
                    (data_cap.as_mut(), mark_cap.as_mut(), ack_cap.as_mut())
                else {
                    return;
                };
                let mut stop_all = |error: Option<JobError>, ack: &Capability<u64>| {
                    let reason = match &error {
                        Some(e) => e.to_string(),
                        None => "a worker failed".into(),
                    };
                    if !ctx.aborted.get() {
                        ack_out.activate().session(ack).give(Ack::Failed(reason));
                    }
                    if let Some(e) = error {
                        ctx.failure.set(e);
                    }
                };
                if ctx.aborted.get() || ctx.failure.is_set() {
                    stop_all(None, ack);
                    data_cap = None;
                    mark_cap = None;
                    ack_cap = None;
                    return;
                }
                let mut out = Vec::new();
                let step = reader.step(epoch, &mut out);
                ctx.records_in.add(out.len() as u64);
                if !out.is_empty() {
                    data_out
                        .activate()
                        .session(&*data)
                        .give_iterator(out.drain(..));
                }
                let now = Instant::now();
                let looked = step.and_then(|step| {
                    let stop = !step.replaying && reader.look(source.stop_when_idle, now)?;
                    Ok((step, stop))
                });
                let (step, stop) = match looked {
                    Ok(looked) => looked,
                    Err(error) => {
                        stop_all(Some(error), ack);
                        data_cap = None;
                        mark_cap = None;
                        ack_cap = None;
                        return;
                    }
                };
                let close = match step.replayed_epoch_done {
                    Some(done) => done,
                    None => {
                        !step.replaying && ctx.clock.left(epoch, start, source.interval).is_zero()
                    }
                };
                if close || stop {
                    let watermark = if stop {
                        Watermark::End
                    } else {
                        reader.close(epoch, step.replaying)
                    };
                    mark_out.activate().session(&*marks).give(watermark);
                    let mark = reader.mark(&name, index, epoch + 1);
                    ack_out.activate().session(&*ack).give(mark);
                    epoch += 1;
                    data.downgrade(&epoch);
                    marks.downgrade(&epoch);
                    ack.downgrade(&epoch);
                }
                if stop {
                    ack.downgrade(&FINAL_EPOCH);
                    ack_out
                        .activate()
                        .session(&*ack)
                        .give(reader.mark(&name, index, epoch));
                    data_cap = None;
                    mark_cap = None;
                    ack_cap = None;
                } else if step.replaying || step.read > 0 {
                    activator.activate();
                } else {
                    let left = ctx.clock.left(epoch, start, source.interval);
                    activator.activate_after(left.min(POLL));
                }
            }
        });
        KafkaStreams {
            records,
            watermarks,
            acks,
        }
    }
}

/// What one activation of the reader did.
struct Step {
    /// Records read.
    read: usize,
    /// Whether the epoch being read is replayed (or precedes a replayed one).
    replaying: bool,
    /// For a replayed epoch: whether every partition reached its target.
    replayed_epoch_done: Option<bool>,
}

/// Per-partition state.
#[derive(Clone, Copy, Debug, Default)]
struct PartitionState {
    /// Next offset to read.
    next: i64,
    /// Largest event time seen.
    max_event: Option<u64>,
    /// Last epoch it was active: had records, or was not known to be read to
    /// its end.
    seen: u64,
    /// Whether the broker said it is read to its end, and no record came since.
    caught_up: bool,
}

/// Where a replayed epoch ended in one partition, and the partition's state then.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Target {
    next: i64,
    max_event: Option<u64>,
    seen: Option<u64>,
}

/// One worker's consumer and partition states.
struct Reader {
    source: KafkaSource,
    consumer: Option<BaseConsumer>,
    partitions: BTreeMap<i32, PartitionState>,
    /// Replay targets (next offsets at each replayed epoch's end).
    plan: BTreeMap<u64, BTreeMap<i32, Target>>,
    /// Records read past a replayed epoch's target, per partition.
    stash: BTreeMap<i32, VecDeque<KafkaRecord>>,
    last_record: Instant,
    /// Partitions of the whole topic, and the sum of their end offsets when
    /// last looked at (for a stop when idle: the whole topic must be quiet).
    topic_partitions: usize,
    topic_end: Option<i64>,
    topic_changed: Instant,
    topic_checked: Option<Instant>,
    /// Whether one of this worker's partitions was behind its end at the last look.
    behind: bool,
    unreachable_since: Option<Instant>,
    logged: Option<Instant>,
}

impl Reader {
    fn new(
        source: &KafkaSource,
        owned: &[i32],
        restored: &BTreeMap<String, u64>,
        start: u64,
        plan: BTreeMap<u64, BTreeMap<String, u64>>,
        topic_partitions: usize,
    ) -> Self {
        let topic = &source.topic;
        let get = |key: String| restored.get(&key).copied();
        let partitions = owned
            .iter()
            .map(|&p| {
                let key = stream_key(topic, p);
                let state = PartitionState {
                    next: get(key.clone())
                        .and_then(|o| i64::try_from(o).ok())
                        .unwrap_or(0),
                    max_event: get(format!("{key}@max")),
                    // restored exactly (a replayed epoch must see the same idleness)
                    seen: get(format!("{key}@seen")).unwrap_or(start),
                    caught_up: false,
                };
                (p, state)
            })
            .collect();
        let plan = plan
            .into_iter()
            .map(|(epoch, positions)| {
                let mut targets: BTreeMap<i32, Target> = BTreeMap::new();
                for (key, &value) in &positions {
                    let Some(p) = key_partition(topic, key) else {
                        continue;
                    };
                    let target = targets.entry(p).or_default();
                    match key.split_once('@').map(|(_, suffix)| suffix) {
                        None => target.next = i64::try_from(value).unwrap_or(i64::MAX),
                        Some("max") => target.max_event = Some(value),
                        Some("seen") => target.seen = Some(value),
                        Some(_) => {}
                    }
                }
                (epoch, targets)
            })
            .collect();
        Reader {
            source: source.clone(),
            consumer: None,
            partitions,
            plan,
            stash: BTreeMap::new(),
            last_record: Instant::now(),
            topic_partitions,
            topic_end: None,
            topic_changed: Instant::now(),
            topic_checked: None,
            behind: true,
            unreachable_since: None,
            logged: None,
        }
    }

    /// Creates the consumer and assigns this worker's partitions at their offsets.
    fn connect(&mut self) -> Result<(), JobError> {
        if self.consumer.is_none() {
            let topic = &self.source.topic;
            let consumer: BaseConsumer = base_config(&self.source.brokers)
                .set("group.id", format!("weir-{topic}"))
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("isolation.level", "read_committed")
                // a checkpointed offset outside the log is an error, never a silent reset
                .set("auto.offset.reset", "error")
                .set("fetch.wait.max.ms", "10")
                // the end of a partition is what lets it become idle
                .set("enable.partition.eof", "true")
                .create()
                .map_err(|e| KafkaError::client(format!("consumer of {topic}"), e))?;
            let mut assignment = TopicPartitionList::new();
            for (&p, state) in &self.partitions {
                assignment
                    .add_partition_offset(topic, p, Offset::Offset(state.next))
                    .map_err(|e| KafkaError::client(format!("assigning {topic}/{p}"), e))?;
            }
            consumer
                .assign(&assignment)
                .map_err(|e| KafkaError::client(format!("assigning {topic}"), e))?;
            self.consumer = Some(consumer);
            // idleness counts from when the partitions are assigned
            self.last_record = Instant::now();
        }
        Ok(())
    }

    /// Reads what epoch `epoch` may read now into `out`.
    fn step(&mut self, epoch: u64, out: &mut Vec<KafkaRecord>) -> Result<Step, JobError> {
        if self.partitions.is_empty() {
            let replaying = self.plan.keys().next().is_some_and(|&e| e >= epoch);
            let done = self.plan.remove(&epoch).map(|_| true);
            return Ok(Step {
                read: 0,
                replaying,
                replayed_epoch_done: done.or(replaying.then_some(true)),
            });
        }
        let targets = self.plan.get(&epoch).cloned();
        let replaying = targets.is_some() || !self.plan.is_empty();
        if replaying && targets.is_none() {
            // an epoch before the first replayed one read nothing here
            return Ok(Step {
                read: 0,
                replaying,
                replayed_epoch_done: Some(true),
            });
        }
        let mut read = 0;
        // stashed records first (read past an earlier replayed epoch's end)
        let stashed: Vec<i32> = self.stash.keys().copied().collect();
        for p in stashed {
            while let Some(front) = self.stash.get(&p).and_then(|q| q.front()) {
                if beyond(targets.as_ref(), front) {
                    break;
                }
                if let Some(record) = self.stash.get_mut(&p).and_then(|q| q.pop_front())
                    && self.take(epoch, record, targets.as_ref(), out)
                {
                    read += 1;
                }
            }
        }
        while read < READ_BUDGET {
            if targets.as_ref().is_some_and(|t| self.reached(t)) {
                break;
            }
            self.connect()?;
            let Some(consumer) = self.consumer.as_ref() else {
                break;
            };
            let polled = match consumer.poll(Duration::ZERO) {
                None => None,
                Some(Ok(message)) => Some(Ok(to_record(&message, &self.source.event_time))),
                Some(Err(e)) => Some(Err(e)),
            };
            match polled {
                None => break,
                Some(Ok(record)) => {
                    self.unreachable_since = None;
                    if !self.take(epoch, record, targets.as_ref(), out) {
                        continue;
                    }
                    read += 1;
                }
                Some(Err(RdError::PartitionEOF(p))) => {
                    self.unreachable_since = None;
                    if let Some(state) = self.partitions.get_mut(&p) {
                        state.caught_up = true;
                    }
                }
                Some(Err(e)) => self.poll_error(e)?,
            }
        }
        let done = targets.as_ref().map(|t| self.reached(t));
        if done == Some(true)
            && let Some(targets) = self.plan.remove(&epoch)
        {
            // the replayed epoch ends with the state it ended with before
            for (p, target) in targets {
                if let Some(state) = self.partitions.get_mut(&p) {
                    state.max_event = target.max_event.or(state.max_event);
                    state.seen = target.seen.unwrap_or(state.seen);
                }
            }
        }
        Ok(Step {
            read,
            replaying,
            replayed_epoch_done: done,
        })
    }

    /// Whether every partition reached its target offset.
    fn reached(&self, targets: &BTreeMap<i32, Target>) -> bool {
        targets
            .iter()
            .all(|(p, t)| self.partitions.get(p).is_none_or(|s| s.next >= t.next))
    }

    /// Emits `record` in `epoch` unless a replay target stops it before (then
    /// it waits in the stash). Returns whether it was emitted.
    fn take(
        &mut self,
        epoch: u64,
        record: KafkaRecord,
        targets: Option<&BTreeMap<i32, Target>>,
        out: &mut Vec<KafkaRecord>,
    ) -> bool {
        let p = record.partition;
        let beyond = beyond(targets, &record);
        let Some(state) = self.partitions.get_mut(&p) else {
            return false;
        };
        if record.offset < state.next {
            return false; // read again after a reconnect
        }
        if beyond {
            self.stash.entry(p).or_default().push_back(record);
            return false;
        }
        state.next = record.offset + 1;
        state.seen = epoch;
        state.caught_up = false;
        if let Some(t) = record.event_time {
            state.max_event = state.max_event.max(Some(t));
        }
        self.last_record = Instant::now();
        out.push(record);
        true
    }

    /// Handles a consumer error: transient ones are retried (logged), up to
    /// `broker_timeout` of unreachability; others fail the job.
    fn poll_error(&mut self, e: RdError) -> Result<(), JobError> {
        let topic = &self.source.topic;
        let code = e.rdkafka_error_code();
        let transient = matches!(
            code,
            Some(
                RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::Resolve
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::BrokerNotAvailable
                    | RDKafkaErrorCode::NetworkException
            )
        );
        if !transient {
            let message = match code {
                Some(
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
                ) => {
                    format!("does not exist (any more): {e}")
                }
                Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset) => {
                    format!(
                        "a checkpointed offset is outside the partition's log (was the topic recreated?): {e}"
                    )
                }
                _ => e.to_string(),
            };
            return Err(KafkaError::Topic {
                topic: topic.clone(),
                message,
            }
            .into());
        }
        self.unreachable(&e.to_string())
    }

    /// Counts the broker as unreachable since the first of a run of failures:
    /// logs it (every 5 s) and fails the job once it lasted `broker_timeout`.
    fn unreachable(&mut self, what: &str) -> Result<(), JobError> {
        let now = Instant::now();
        let since = *self.unreachable_since.get_or_insert(now);
        let brokers = &self.source.brokers;
        if now.duration_since(since) >= self.source.broker_timeout {
            return Err(KafkaError::Unreachable {
                brokers: brokers.clone(),
                message: format!("{what} (for {:?})", now.duration_since(since)),
            }
            .into());
        }
        if self
            .logged
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(5))
        {
            eprintln!("weir: kafka broker {brokers} unreachable ({what}); the consumer retries");
            self.logged = Some(now);
        }
        Ok(())
    }

    /// Looks at the topic's ends once this worker has read nothing for a
    /// while: a broker that does not answer counts as unreachable (a hung
    /// broker raises no consumer error), and with a stop when idle, returns
    /// whether this worker read nothing for `stop_when_idle` and no partition
    /// of the topic grew for as long between two answers of the broker.
    fn look(&mut self, stop_when_idle: Option<Duration>, now: Instant) -> Result<bool, JobError> {
        let quiet = now.duration_since(self.last_record);
        let after = stop_when_idle.map_or(LIVENESS_EVERY, |d| d.min(LIVENESS_EVERY));
        if quiet < after {
            self.topic_end = None;
            return Ok(false);
        }
        let idle = stop_when_idle.is_some_and(|limit| quiet >= limit);
        if self.consumer.is_none() {
            return Ok(idle); // no partitions here; the others decide for theirs
        }
        let every =
            stop_when_idle.map_or(LIVENESS_EVERY, |d| (d / 4).min(Duration::from_millis(100)));
        let mut at = now;
        if self
            .topic_checked
            .is_none_or(|t| now.duration_since(t) >= every)
        {
            let ends = self.topic_ends();
            // quiet is measured between answers: an outage is not a quiet
            // topic (regression: a 6 s outage once counted as 3 s of quiet)
            at = Instant::now();
            self.topic_checked = Some(at);
            let (end, behind) = match ends {
                Ok(ends) => ends,
                Err(e) => {
                    self.topic_end = None;
                    let what = format!("no answer about {}'s offsets: {e}", self.source.topic);
                    self.unreachable(&what)?;
                    return Ok(false);
                }
            };
            self.unreachable_since = None;
            if self.topic_end != Some(end) {
                self.topic_end = Some(end);
                self.topic_changed = at;
            }
            self.behind = behind;
        }
        Ok(idle
            && !self.behind
            && self.topic_end.is_some()
            && stop_when_idle.is_some_and(|limit| at.duration_since(self.topic_changed) >= limit))
    }

    /// The sum of the topic's end offsets, and whether one of this worker's
    /// partitions is not read to its end. (Some brokers report the start of a
    /// log's last batch as its end, so "not behind" is confirmed by the idle time.)
    fn topic_ends(&self) -> Result<(i64, bool), RdError> {
        let Some(consumer) = self.consumer.as_ref() else {
            return Ok((0, false));
        };
        let timeout = self.source.broker_timeout.min(Duration::from_secs(5));
        let mut end = 0i64;
        let mut behind = false;
        for p in 0..self.topic_partitions {
            let p = i32::try_from(p).unwrap_or(i32::MAX);
            let (_, high) = consumer.fetch_watermarks(&self.source.topic, p, timeout)?;
            end += high;
            behind |= self.partitions.get(&p).is_some_and(|s| s.next < high);
        }
        Ok((end, behind))
    }

    /// Ends `epoch` (a replayed one keeps the state its marks restored) and
    /// returns this worker's watermark after it.
    fn close(&mut self, epoch: u64, replayed: bool) -> Watermark {
        if !replayed {
            for state in self.partitions.values_mut() {
                if !state.caught_up {
                    state.seen = epoch;
                }
            }
        }
        self.watermark(epoch)
    }

    /// This worker's watermark after `epoch`: the smallest of its active
    /// partitions', or, when all are idle, the largest any of them reached.
    fn watermark(&self, epoch: u64) -> Watermark {
        let idle = self.source.idle_epochs;
        let ooo = self.source.out_of_orderness_ms;
        let mut at: Option<u64> = None;
        let mut through: Option<u64> = None;
        for state in self.partitions.values() {
            let reached = state.max_event.map(|t| t.saturating_sub(ooo));
            if epoch.saturating_sub(state.seen) >= idle {
                through = through.max(reached);
                continue;
            }
            let Some(t) = reached else {
                return Watermark::Pending;
            };
            at = Some(at.map_or(t, |a| a.min(t)));
        }
        at.map_or(Watermark::Idle { through }, Watermark::At)
    }

    /// The source's mark: offsets, largest event times and last active epochs.
    fn mark(&self, name: &str, worker: usize, next: u64) -> Ack {
        let mut positions = BTreeMap::new();
        for (&p, state) in &self.partitions {
            let key = stream_key(&self.source.topic, p);
            positions.insert(format!("{key}@seen"), state.seen);
            if let Some(t) = state.max_event {
                positions.insert(format!("{key}@max"), t);
            }
            positions.insert(key, u64::try_from(state.next).unwrap_or(0));
        }
        Ack::Source(SourceMark {
            operator: name.to_string(),
            worker,
            next,
            positions,
        })
    }
}

/// How often a worker that reads nothing asks the broker for the topic's
/// ends (to notice a hung broker).
const LIVENESS_EVERY: Duration = Duration::from_secs(1);

/// Whether `record` lies past its partition's replay target.
fn beyond(targets: Option<&BTreeMap<i32, Target>>, record: &KafkaRecord) -> bool {
    targets.is_some_and(|t| record.offset >= t.get(&record.partition).map_or(i64::MIN, |t| t.next))
}

/// Copies a consumed message.
fn to_record(
    message: &rdkafka::message::BorrowedMessage<'_>,
    event_time: &EventTime,
) -> KafkaRecord {
    let headers = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut record = KafkaRecord {
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis().unwrap_or(0),
        event_time: None,
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers,
    };
    record.event_time = match event_time {
        EventTime::RecordTimestamp => u64::try_from(record.timestamp).ok(),
        EventTime::JsonField(field) => json_time(&record.value, field),
    };
    record
}

/// The event time in field `field` of a JSON object: milliseconds as a number
/// or a decimal string.
pub fn json_time(value: &[u8], field: &str) -> Option<u64> {
    let object: BTreeMap<&str, &serde_json::value::RawValue> =
        serde_json::from_slice(value).ok()?;
    let raw = object.get(field)?.get();
    let text = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_hold_the_watermark_until_read_and_keep_what_they_read_when_idle() {
        let source = KafkaSource {
            idle_epochs: 3,
            out_of_orderness_ms: 1000,
            ..KafkaSource::new("127.0.0.1:1", "ads")
        };
        // partition 0 read through event time 50 s in epoch 0; partition 1 empty
        let restored = BTreeMap::from([
            ("ads/0".to_string(), 400),
            ("ads/0@max".to_string(), 50_000),
            ("ads/0@seen".to_string(), 0),
        ]);
        let mut reader = Reader::new(&source, &[0, 1], &restored, 0, BTreeMap::new(), 2);
        // not known to be read to its end: partition 1 holds event time
        assert_eq!(reader.close(0, false), Watermark::Pending);
        for state in reader.partitions.values_mut() {
            state.caught_up = true;
        }
        // both read to their ends in epoch 0: partition 1 is still pending
        // until it has been quiet for 3 epochs
        assert_eq!(reader.close(2, false), Watermark::Pending);
        // then both are idle together, and what partition 0 read is kept
        // (regression: the worker said only "idle", and no window ever fired)
        assert_eq!(
            reader.close(3, false),
            Watermark::Idle {
                through: Some(49_000)
            }
        );
        // a record makes partition 0 active again
        if let Some(state) = reader.partitions.get_mut(&0) {
            state.caught_up = false;
        }
        assert_eq!(reader.close(4, false), Watermark::At(49_000));
    }

    #[test]
    fn mark_keys_name_their_partition() {
        assert_eq!(key_partition("ads", "ads/12"), Some(12));
        assert_eq!(key_partition("ads", "ads/12@max"), Some(12));
        assert_eq!(key_partition("ads", "adsx/1"), None);
        assert!(owns_partition(4, 1, 3) && !owns_partition(4, 0, 3));
    }

    #[test]
    fn event_time_is_a_number_or_a_decimal_string() {
        assert_eq!(
            json_time(br#"{"t": 1700000000123, "x": 1}"#, "t"),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            json_time(br#"{"t": "1700000000123"}"#, "t"),
            Some(1_700_000_000_123)
        );
        assert_eq!(json_time(br#"{"t": "soon"}"#, "t"), None);
        assert_eq!(json_time(b"not json", "t"), None);
    }
}

//! One worker's Kafka consumer and the state of its partitions: what it read
//! (next offsets), the event time each has shown and when it was last active
//! (for watermarks and idleness), replay targets, and the liveness checks
//! behind a stop when idle (see [`super::source`]; the liveness checks and
//! the handling of consumer errors are in `liveness`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::{Offset, TopicPartitionList};
use weir_progress::checkpoint::Ack;
use weir_progress::store::SourceMark;
use weir_runtime::JobError;

mod liveness;

use super::KafkaError;
use super::producer::base_config;
use super::source::{KafkaRecord, KafkaSource, READ_BUDGET, key_partition, stream_key, to_record};
use crate::window::Watermark;

/// What one activation of the reader did.
pub(super) struct Step {
    /// Records read.
    pub(super) read: usize,
    /// Whether the epoch being read is replayed (or precedes a replayed one).
    pub(super) replaying: bool,
    /// For a replayed epoch: whether every partition reached its target.
    pub(super) replayed_epoch_done: Option<bool>,
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
pub(super) struct Reader {
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
    pub(super) fn new(
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
    pub(super) fn step(
        &mut self,
        epoch: u64,
        out: &mut Vec<KafkaRecord>,
    ) -> Result<Step, JobError> {
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

    /// Ends `epoch` (a replayed one keeps the state its marks restored) and
    /// returns this worker's watermark after it. A partition about to count
    /// as idle (and, while idle, every `idle_epochs` epochs) is first checked
    /// with the broker: records past what the consumer handed over (waiting
    /// behind other partitions' backlog, or fetched late) keep it active, so
    /// the watermark never passes records that were in the log before it
    /// went idle. A broker that does not answer keeps it active too.
    pub(super) fn close(&mut self, epoch: u64, replayed: bool) -> Result<Watermark, JobError> {
        if !replayed {
            let idle = self.source.idle_epochs.max(1);
            let mut due = Vec::new();
            for (&p, state) in &mut self.partitions {
                if !state.caught_up {
                    state.seen = epoch;
                }
                let quiet = epoch.saturating_sub(state.seen);
                if quiet >= idle && (quiet - idle).is_multiple_of(idle) {
                    due.push(p);
                }
            }
            if !due.is_empty() {
                let active = match self.unread(&due) {
                    Ok(behind) => behind,
                    Err(e) => {
                        let what = format!("no answer about {}'s offsets: {e}", self.source.topic);
                        self.unreachable(&what)?;
                        due
                    }
                };
                for p in active {
                    if let Some(state) = self.partitions.get_mut(&p) {
                        state.seen = epoch;
                        state.caught_up = false;
                    }
                }
            }
        }
        Ok(self.watermark(epoch))
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
    pub(super) fn mark(&self, name: &str, worker: usize, next: u64) -> Ack {
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

/// Whether `record` lies past its partition's replay target.
fn beyond(targets: Option<&BTreeMap<i32, Target>>, record: &KafkaRecord) -> bool {
    targets.is_some_and(|t| record.offset >= t.get(&record.partition).map_or(i64::MIN, |t| t.next))
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
        assert_eq!(reader.close(0, false).unwrap(), Watermark::Pending);
        for state in reader.partitions.values_mut() {
            state.caught_up = true;
        }
        // both read to their ends in epoch 0: partition 1 is still pending
        // until it has been quiet for 3 epochs
        assert_eq!(reader.close(2, false).unwrap(), Watermark::Pending);
        // then both are idle together, and what partition 0 read is kept
        // (regression: the worker said only "idle", and no window ever fired)
        assert_eq!(
            reader.close(3, false).unwrap(),
            Watermark::Idle {
                through: Some(49_000)
            }
        );
        // a record makes partition 0 active again
        if let Some(state) = reader.partitions.get_mut(&0) {
            state.caught_up = false;
        }
        assert_eq!(reader.close(4, false).unwrap(), Watermark::At(49_000));
    }

    /// Reads until partition `p` is read to its end; returns the records.
    fn read_to_end(reader: &mut Reader, epoch: u64, p: i32) -> Vec<KafkaRecord> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut out = Vec::new();
        while !reader.partitions.get(&p).is_some_and(|s| s.caught_up) {
            assert!(
                Instant::now() < deadline,
                "partition {p} never read to its end"
            );
            reader.step(epoch, &mut out).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        out
    }

    /// Regression: a partition read to its end once went idle after
    /// `idle_epochs` epochs without records handed over, even when records
    /// had arrived in its log that the consumer had not handed over yet (a
    /// busy worker, or records waiting behind other partitions' backlog), so
    /// the watermark could pass them. Transactional records, so that the
    /// end is past a commit marker.
    #[test]
    fn regression_a_partition_with_records_not_handed_over_went_idle() {
        use crate::kafka::broker::Broker;
        use crate::kafka::producer::{Produce, TxnProducer};
        let broker = Broker::start().unwrap();
        broker.create_topic("events", 1).unwrap();
        let producer = TxnProducer::open(&broker.brokers(), "test-events").unwrap();
        let write = |time: i64| {
            producer.begin().unwrap();
            let record = Produce {
                partition: Some(0),
                timestamp: Some(time),
                ..Produce::value("events", "e")
            };
            producer.send(&record).unwrap();
            producer.commit().unwrap();
        };
        write(1000);
        let source = KafkaSource {
            idle_epochs: 2,
            ..KafkaSource::new(&broker.brokers(), "events")
        };
        let mut reader = Reader::new(&source, &[0], &BTreeMap::new(), 0, BTreeMap::new(), 1);
        assert_eq!(read_to_end(&mut reader, 0, 0).len(), 1);
        // a record arrives while the worker is busy: epochs end before the
        // consumer hands it over, and the partition must stay active
        write(2000);
        for epoch in 0..5 {
            assert_eq!(reader.close(epoch, false).unwrap(), Watermark::At(1000));
        }
        assert_eq!(read_to_end(&mut reader, 5, 0).len(), 1);
        assert_eq!(reader.close(5, false).unwrap(), Watermark::At(2000));
        assert_eq!(reader.close(6, false).unwrap(), Watermark::At(2000));
        // read to its end (past the commit marker) and quiet: idle
        assert_eq!(
            reader.close(7, false).unwrap(),
            Watermark::Idle {
                through: Some(2000)
            }
        );
    }
}

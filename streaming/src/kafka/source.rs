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
//! once it has been read to its end (the broker said so), has had no
//! records for `idle_epochs` epochs, and the broker confirms that nothing
//! waits in it unread. The per-partition state behind it
//! (largest event time, last epoch it was active) is in the marks too, and a
//! replayed epoch takes it from there, so a restored or replayed epoch carries
//! the same watermark as before.

use std::time::{Duration, Instant};

use rdkafka::message::{Headers, Message};

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Capability, ConnectLoop, Feedback};
use timely::dataflow::{Scope, StreamVec};
use weir_progress::checkpoint::{Ack, Checkpoints, FINAL_EPOCH};
use weir_progress::recovery::Recovery;
use weir_runtime::JobError;

use super::reader::Reader;
use super::retry::with_retries;
use crate::dir_source::POLL;
use crate::event_time::json_time;
use crate::stop::{Vote, Votes};
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
    /// Stop once no record has arrived for this long, on every worker (see
    /// [`crate::stop`]; the watermark then goes to the end of time, so every
    /// window fires).
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
pub(super) fn stream_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// The partition of a mark key of `topic`.
pub(super) fn key_partition(topic: &str, key: &str) -> Option<i32> {
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

        let (vote_loop, heard) = self.feedback::<Vec<Vote>>(1);
        let mut builder = OperatorBuilder::new(format!("ReadKafka({name})"), self);
        let activator = self.activator_for(builder.operator_info().address);
        let (data_out, records) = builder.new_output();
        let (mark_out, watermarks) = builder.new_output();
        let (ack_out, acks) = builder.new_output();
        let (vote_out, votes_out) = builder.new_output();
        // the votes to stop come back one epoch later; they bound no output
        let mut heard = builder.new_input_connection(heard, Pipeline, []);
        let mut vote_out =
            OutputBuilder::<u64, CapacityContainerBuilder<Vec<Vote>>>::from(vote_out);
        let mut votes = Votes::new(peers);
        let mut data_out =
            OutputBuilder::<u64, CapacityContainerBuilder<Vec<KafkaRecord>>>::from(data_out);
        let mut mark_out =
            OutputBuilder::<u64, CapacityContainerBuilder<Vec<Watermark>>>::from(mark_out);
        let mut ack_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Ack>>>::from(ack_out);
        let (source, ctx, name) = (source.clone(), ctx.clone(), name.to_string());
        builder.build(move |mut caps| {
            let mut vote_cap = caps.pop();
            let mut ack_cap = caps.pop();
            let mut mark_cap = caps.pop();
            let mut data_cap = caps.pop();
            for cap in data_cap
                .iter_mut()
                .chain(mark_cap.iter_mut())
                .chain(ack_cap.iter_mut())
                .chain(vote_cap.iter_mut())
            {
                cap.downgrade(&start);
            }
            let mut epoch = start;
            move |_frontiers| {
                heard.for_each(|_, heard| heard.drain(..).for_each(|v| votes.hear(v)));
                let (Some(data), Some(marks), Some(ack), Some(voting)) = (
                    data_cap.as_mut(),
                    mark_cap.as_mut(),
                    ack_cap.as_mut(),
                    vote_cap.as_mut(),
                ) else {
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
                    vote_cap = None;
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
                let stepped = step.and_then(|step| {
                    let quiet = !step.replaying && reader.look(source.stop_when_idle, now)?;
                    if let Some(vote) = quiet.then(|| votes.quiet(epoch)).flatten() {
                        vote_out.activate().session(&*voting).give(vote);
                    }
                    let stop = quiet && votes.agreed();
                    let close = match step.replayed_epoch_done {
                        Some(done) => done,
                        None => {
                            !step.replaying
                                && ctx.clock.left(epoch, start, source.interval).is_zero()
                        }
                    };
                    let watermark = if stop {
                        Some(Watermark::End)
                    } else if close {
                        Some(reader.close(epoch, step.replaying)?)
                    } else {
                        None
                    };
                    Ok((step, stop, watermark))
                });
                let (step, stop, watermark) = match stepped {
                    Ok(stepped) => stepped,
                    Err(error) => {
                        stop_all(Some(error), ack);
                        data_cap = None;
                        mark_cap = None;
                        ack_cap = None;
                        vote_cap = None;
                        return;
                    }
                };
                if let Some(watermark) = watermark {
                    mark_out.activate().session(&*marks).give(watermark);
                    let mark = reader.mark(&name, index, epoch + 1);
                    ack_out.activate().session(&*ack).give(mark);
                    epoch += 1;
                    data.downgrade(&epoch);
                    marks.downgrade(&epoch);
                    ack.downgrade(&epoch);
                    voting.downgrade(&epoch);
                }
                if stop {
                    ack.downgrade(&FINAL_EPOCH);
                    ack_out
                        .activate()
                        .session(&*ack)
                        .give(reader.mark(&name, index, epoch));
                    vote_out
                        .activate()
                        .session(&*voting)
                        .give(Vote::Stopped(epoch));
                    data_cap = None;
                    mark_cap = None;
                    ack_cap = None;
                    vote_cap = None;
                } else if step.replaying || step.read > 0 {
                    activator.activate();
                } else {
                    let left = ctx.clock.left(epoch, start, source.interval);
                    activator.activate_after(left.min(POLL));
                }
            }
        });
        votes_out.broadcast().connect_loop(vote_loop);
        KafkaStreams {
            records,
            watermarks,
            acks,
        }
    }
}

/// Copies a consumed message.
pub(super) fn to_record(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_keys_name_their_partition() {
        assert_eq!(key_partition("ads", "ads/12"), Some(12));
        assert_eq!(key_partition("ads", "ads/12@max"), Some(12));
        assert_eq!(key_partition("ads", "adsx/1"), None);
        assert!(owns_partition(4, 1, 3) && !owns_partition(4, 0, 3));
    }
}

//! Whether the broker is alive and the topic quiet: consumer errors retried
//! up to the broker timeout, and the look at the topic's ends behind a stop
//! when idle.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use weir_runtime::JobError;

use super::Reader;
use crate::kafka::KafkaError;

/// How often a worker that reads nothing asks the broker for the topic's
/// ends (to notice a hung broker).
const LIVENESS_EVERY: Duration = Duration::from_secs(1);

impl Reader {
    /// Handles a consumer error: transient ones are retried (logged), up to
    /// `broker_timeout` of unreachability; others fail the job.
    pub(super) fn poll_error(&mut self, e: RdError) -> Result<(), JobError> {
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
    pub(super) fn unreachable(&mut self, what: &str) -> Result<(), JobError> {
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
    pub(in crate::kafka) fn look(
        &mut self,
        stop_when_idle: Option<Duration>,
        now: Instant,
    ) -> Result<bool, JobError> {
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

    /// Those of `partitions` whose log goes past what the consumer handed
    /// over (its position, which passes transaction markers; the broker's end
    /// is the last stable offset, as the consumer reads committed records).
    pub(super) fn unread(&self, partitions: &[i32]) -> Result<Vec<i32>, RdError> {
        let Some(consumer) = self.consumer.as_ref() else {
            return Ok(Vec::new());
        };
        let topic = &self.source.topic;
        let positions = consumer.position()?;
        let timeout = self.source.broker_timeout.min(Duration::from_secs(5));
        let mut behind = Vec::new();
        for &p in partitions {
            let (_, end) = consumer.fetch_watermarks(topic, p, timeout)?;
            let handed = positions
                .find_partition(topic, p)
                .and_then(|e| e.offset().to_raw())
                .unwrap_or(0);
            let next = self.partitions.get(&p).map_or(0, |s| s.next);
            if handed.max(next) < end {
                behind.push(p);
            }
        }
        Ok(behind)
    }
}

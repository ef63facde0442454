//! The Yahoo streaming benchmark pipeline, exactly once on Kafka: keep the
//! `view` events, join `ad_id -> campaign_id` from a static table, count per
//! campaign in 10 s event-time tumbling windows, and write
//! `{"campaign_id": ..., "window_start": MS, "count": N}` to the output topic.
//! Records that do not parse go, unchanged, to the dead-letter topic with the
//! error and their position in headers — in the same transactions as the
//! output, so exactly once too.
//!
//! [`reference()`] computes the same result sequentially, for tests and
//! `weir stream verify`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::Inspect;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::dataflow::{Scope, StreamVec};
use weir_progress::recovery::Recovery;
use weir_progress::store::CheckpointStore;
use weir_runtime::JobError;

use crate::kafka::producer::Produce;
use crate::kafka::sink::{KafkaSink, WriteKafka, recover_transactions};
use crate::kafka::source::{EventTime, KafkaRecord, KafkaSource, ReadKafka};
use crate::operators::LookupJoin;
use crate::run::{Built, StreamOptions, StreamSummary, run_stream};
use crate::window::{WindowAggregate, WindowInput, Windows, fan_out};

pub use super::yahoo_verify::{
    Verdict, dead_letters_once, expected_from_input, load_expected, verify,
};

/// Operator names (they name the state in checkpoints).
const SOURCE: &str = "events";
const WINDOWS: &str = "campaign-windows";
const SINK: &str = "out";

/// The window length of the benchmark: 10 s.
pub const WINDOW_MS: u64 = 10_000;

/// Metric names in [`StreamSummary::metrics`] (and [`DEAD_LETTERS`]):
/// events dropped because their window had fired.
pub const LATE: &str = "late events";
/// View events whose ad is not in the campaigns table.
pub const UNKNOWN_ADS: &str = "views of unknown ads";

pub use crate::kafka::dead_letter::{DEAD_LETTERS, ERROR_HEADER, SOURCE_HEADER, dead_letter};

/// View counts per (campaign, window start).
pub type WindowCounts = BTreeMap<(String, u64), u64>;

/// The `ad_id -> campaign_id` table.
pub type Campaigns = HashMap<String, String>;

/// Reads CSV lines `ad_id,campaign_id` (blank lines and a first line
/// `ad_id,campaign_id` are skipped).
pub fn load_campaigns(path: &Path) -> Result<Campaigns, JobError> {
    let text = std::fs::read_to_string(path).map_err(|e| JobError::io(path, &e))?;
    let mut table = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line == "ad_id,campaign_id") {
            continue;
        }
        let parsed = line.split_once(',').filter(|(ad, campaign)| {
            !ad.is_empty() && !campaign.is_empty() && !campaign.contains(',')
        });
        let Some((ad, campaign)) = parsed else {
            return Err(JobError::Malformed {
                position: format!("{}:{}", path.display(), n + 1),
                message: format!("expected ad_id,campaign_id, found {line:?}"),
                remedy: None,
            });
        };
        table.insert(ad.trim().to_string(), campaign.trim().to_string());
    }
    if table.is_empty() {
        return Err(JobError::Malformed {
            position: path.display().to_string(),
            message: "no ad_id,campaign_id lines".into(),
            remedy: None,
        });
    }
    Ok(table)
}

/// Milliseconds as a JSON number or a decimal string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Millis<'a> {
    Number(u64),
    Text(#[serde(borrow)] Cow<'a, str>),
}

/// Strings are borrowed from the record unless they hold JSON escapes
/// (`Cow`): a `&str` cannot hold an unescaped copy, and such a valid event
/// went to the dead-letter topic.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    ad_id: Cow<'a, str>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    event_time: Millis<'a>,
}

/// An event's fields the pipeline uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Ad.
    pub ad_id: String,
    /// `view`, `click` or `purchase`.
    pub event_type: String,
    /// Event time (ms since the Unix epoch).
    pub event_time: u64,
}

/// Parses an event (a JSON object with at least `ad_id`, `event_type` and
/// `event_time`).
pub fn parse_event(value: &[u8]) -> Result<Event, String> {
    let raw: RawEvent = serde_json::from_slice(value).map_err(|e| format!("not an event: {e}"))?;
    let event_time = match raw.event_time {
        Millis::Number(ms) => ms,
        Millis::Text(text) => text
            .parse()
            .map_err(|_| format!("event_time {text:?} is not milliseconds"))?,
    };
    Ok(Event {
        ad_id: raw.ad_id.into_owned(),
        event_type: raw.event_type.into_owned(),
        event_time,
    })
}

/// One output record's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCount {
    /// Campaign.
    pub campaign_id: String,
    /// Window start (ms).
    pub window_start: u64,
    /// Views in the window.
    pub count: u64,
}

/// What the yahoo job reads and writes.
#[derive(Clone, Debug)]
pub struct Yahoo {
    /// The input (its event time should be `JsonField("event_time")`).
    pub source: KafkaSource,
    /// Output topic.
    pub output_topic: String,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// The campaigns file.
    pub campaigns: PathBuf,
    /// How output is written.
    pub sink: KafkaSink,
}

/// The parsed side of the pipeline: view events, and dead letters.
fn parse<'s>(
    records: StreamVec<'s, u64, KafkaRecord>,
    topic: &str,
    dead_topic: &str,
    dead_count: weir_runtime::exec::RecordCounter,
) -> (StreamVec<'s, u64, Event>, StreamVec<'s, u64, Produce>) {
    let scope = records.scope();
    let mut builder = OperatorBuilder::new("ParseEvents".to_string(), scope);
    let mut input = builder.new_input(records, Pipeline);
    let (views_out, views) = builder.new_output();
    let (dead_out, dead) = builder.new_output();
    let mut views_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Event>>>::from(views_out);
    let mut dead_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Produce>>>::from(dead_out);
    let (topic, dead_topic) = (topic.to_string(), dead_topic.to_string());
    builder.build(move |_caps| {
        move |_frontiers| {
            input.for_each_stamp(|cap, data| {
                let mut views = views_out.activate();
                let mut views = views.session(&cap);
                let mut dead = dead_out.activate();
                let mut dead = dead.session(&cap);
                for record in data.flat_map(|b| b.drain(..)) {
                    match parse_event(&record.value) {
                        Ok(event) if event.event_type == "view" => views.give(event),
                        Ok(_) => {}
                        Err(error) => {
                            dead_count.add(1);
                            dead.give(dead_letter(&dead_topic, &topic, record, &error));
                        }
                    }
                }
            });
        }
    });
    (views, dead)
}

/// Runs the pipeline until its source stops (`stop_when_idle`).
pub fn run(
    config: timely::Config,
    job: Yahoo,
    options: &StreamOptions,
) -> Result<StreamSummary, JobError> {
    let campaigns = Arc::new(load_campaigns(&job.campaigns)?);
    let partitions = job.source.partitions()?;
    for topic in [&job.output_topic, &job.dead_letter_topic] {
        job.sink.require_topic(topic)?;
    }
    let sink = job.sink.clone();
    let prepare = move |recovery: &Recovery, store: &CheckpointStore, workers: usize| {
        recover_transactions(store, recovery, SINK, &sink, workers)
    };
    run_stream(
        config,
        options,
        prepare,
        move |scope: Scope<'_, u64>, ctx| {
            let streams = scope.read_kafka(
                SOURCE,
                &job.source,
                partitions,
                &ctx.recovery,
                &ctx.checkpoints,
                &ctx.source,
            );
            let (views, dead) = parse(
                streams.records,
                &job.source.topic,
                &job.dead_letter_topic,
                ctx.metrics.counter(DEAD_LETTERS),
            );
            let (views, unknown) = views.lookup_join(
                Arc::clone(&campaigns),
                |event: &Event| &event.ad_id,
                |event, campaign: &String| WindowInput::Event {
                    key: campaign.clone(),
                    time: event.event_time,
                    value: 1.0,
                },
            );
            let unknown_ads = ctx.metrics.counter(UNKNOWN_ADS);
            unknown.inspect(move |_| unknown_ads.add(1));
            let input = views.concat(fan_out(streams.watermarks, ctx.checkpoints.peers));
            let (fired, window_acks) = input.window_aggregate(
                WINDOWS,
                Windows::Tumbling { size: WINDOW_MS },
                &ctx.checkpoints,
                &ctx.metrics.counter(LATE),
            );
            let output_topic = job.output_topic.clone();
            let results = fired.unary::<CapacityContainerBuilder<Vec<Produce>>, _, _, _>(
                Pipeline,
                "ToJson",
                move |_, _| {
                    move |input, output| {
                        input.for_each_stamp(|stamp, data| {
                            let mut session = output.session(&stamp);
                            for w in data.flat_map(|b| b.drain(..)) {
                                let value = WindowCount {
                                    campaign_id: w.key.clone(),
                                    window_start: w.start,
                                    count: w.acc.count,
                                };
                                let value = serde_json::to_vec(&value).unwrap_or_default();
                                session.give(Produce {
                                    key: Some(w.key.into_bytes()),
                                    ..Produce::value(&output_topic, value)
                                });
                            }
                        });
                    }
                },
            );
            let sink = KafkaSink {
                committed_before: ctx.recovery.committed_before(),
                ..job.sink.clone()
            };
            let (sink_acks, commit) = results.concat(dead).write_kafka(
                SINK,
                &sink,
                &ctx.checkpoints,
                &ctx.source,
                &ctx.records_out,
            );
            Built {
                acks: vec![streams.acks, window_acks, sink_acks],
                commits: vec![commit],
            }
        },
    )
}

/// The source settings of the benchmark: event time from the `event_time`
/// field, allowing `out_of_orderness_ms` of disorder.
pub fn source(brokers: &str, topic: &str, out_of_orderness_ms: u64) -> KafkaSource {
    KafkaSource {
        event_time: EventTime::JsonField("event_time".into()),
        out_of_orderness_ms,
        ..KafkaSource::new(brokers, topic)
    }
}

/// The pipeline's result computed sequentially from the input values: view
/// counts per (campaign, window start), and the number of records that do
/// not parse.
pub fn reference<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    campaigns: &Campaigns,
) -> (WindowCounts, usize) {
    let mut counts = BTreeMap::new();
    let mut malformed = 0;
    for value in values {
        match parse_event(value) {
            Ok(event) if event.event_type == "view" => {
                if let Some(campaign) = campaigns.get(&event.ad_id) {
                    let start = event.event_time - event.event_time % WINDOW_MS;
                    *counts.entry((campaign.clone(), start)).or_insert(0) += 1;
                }
            }
            Ok(_) => {}
            Err(_) => malformed += 1,
        }
    }
    (counts, malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_is_a_number_or_a_string() {
        let a = parse_event(br#"{"ad_id":"a","event_type":"view","event_time":"1700000000123"}"#);
        let b = parse_event(br#"{"ad_id":"a","event_type":"view","event_time":1700000000123}"#);
        assert_eq!(a, b);
        assert_eq!(a.map(|e| e.event_time), Ok(1_700_000_000_123));
        assert!(parse_event(br#"{"ad_id":"a","event_type":"view","event_time":"soon"}"#).is_err());
        assert!(parse_event(b"{").is_err());
    }

    #[test]
    fn regression_strings_with_json_escapes_are_events_not_dead_letters() {
        let escaped = parse_event(
            br#"{"ad_id":"ad\/7 \"x\"","event_type":"vi\u0065w","event_time":"17\u0030"}"#,
        );
        assert_eq!(
            escaped,
            Ok(Event {
                ad_id: "ad/7 \"x\"".into(),
                event_type: "view".into(),
                event_time: 170,
            })
        );
    }

    #[test]
    fn a_bad_campaign_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("campaigns.csv");
        std::fs::write(&path, "ad_id,campaign_id\na1,c1\nbroken\n").unwrap();
        let err = load_campaigns(&path).unwrap_err().to_string();
        assert!(err.contains("campaigns.csv:3"), "{err}");
    }
}

//! Streaming on Kafka, on the project's own broker (started here, on a free port):
//!
//! - `kafka-latency`: end-to-end latency of a pass-through job (record creation
//!   → visible to a `read_committed` consumer of the output) at a fixed input
//!   rate, exactly-once vs at-least-once, checkpoint interval 100 ms and 1 s;
//! - `kafka-throughput`: the Yahoo pipeline draining a preloaded topic, with a
//!   checkpoint every 100 ms and with only the final one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use weir_streaming::jobs::yahoo::{self, Yahoo};
use weir_streaming::jobs::yahoo_events::{Amount, EventGenerator, now_ms, produce};
use weir_streaming::kafka::broker::Broker;
use weir_streaming::kafka::producer::{Produce, base_config};
use weir_streaming::kafka::sink::{Guarantee, KafkaSink, WriteKafka, recover_transactions};
use weir_streaming::kafka::source::{BROKER_TIMEOUT, KafkaSource, ReadKafka};
use weir_streaming::run::{Built, StreamOptions, run_stream};

const PARTITIONS: usize = 4;

fn sink(brokers: &str, guarantee: Guarantee) -> KafkaSink {
    KafkaSink {
        brokers: brokers.to_string(),
        transactional_prefix: "bench".into(),
        guarantee,
        committed_before: 0,
        broker_timeout: BROKER_TIMEOUT,
    }
}

/// Copies `in` to `out` (record timestamps kept) until the input is idle.
fn pass_through(
    brokers: &str,
    interval: Duration,
    guarantee: Guarantee,
    checkpoints: &std::path::Path,
) -> Result<()> {
    let source = KafkaSource {
        interval,
        stop_when_idle: Some(Duration::from_secs(2)),
        ..KafkaSource::new(brokers, "in")
    };
    let sink = sink(brokers, guarantee);
    let options = StreamOptions {
        checkpoint_dir: checkpoints.to_path_buf(),
        restore: None,
        retain: 3,
        progress: None,
    };
    let settle = sink.clone();
    let prepare = move |recovery: &_, store: &_, workers| {
        recover_transactions(store, recovery, "out", &settle, workers)
    };
    run_stream(
        timely::Config::process(2),
        &options,
        prepare,
        move |scope, ctx| {
            let streams = scope.read_kafka(
                "in",
                &source,
                PARTITIONS,
                &ctx.recovery,
                &ctx.checkpoints,
                &ctx.source,
            );
            let records = streams
                .records
                .unary::<CapacityContainerBuilder<Vec<Produce>>, _, _, _>(
                    Pipeline,
                    "Copy",
                    |_, _| {
                        |input, output| {
                            input.for_each_stamp(|stamp, data| {
                                output.session(&stamp).give_iterator(
                                    data.flat_map(|b| b.drain(..)).map(|r| Produce {
                                        timestamp: Some(r.timestamp),
                                        ..Produce::value("out", r.value)
                                    }),
                                );
                            });
                        }
                    },
                );
            let (acks, commit) = records.write_kafka(
                "out",
                &sink,
                &ctx.checkpoints,
                &ctx.source,
                &ctx.records_out,
            );
            Built {
                acks: vec![streams.acks, acks],
                commits: vec![commit],
            }
        },
    )?;
    Ok(())
}

/// Reads `out` as a `read_committed` consumer until `want` records came or
/// `stop` is set; returns each record's latency (receive time − creation time).
fn consume_latencies(brokers: &str, want: usize, stop: &AtomicBool) -> Result<Vec<u64>> {
    let consumer: BaseConsumer = base_config(brokers)
        .set("group.id", "bench-reader")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS as i32 {
        assignment.add_partition_offset("out", p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut latencies = Vec::with_capacity(want);
    while latencies.len() < want && !stop.load(Ordering::SeqCst) {
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            let message = message?;
            let created = message.timestamp().to_millis().unwrap_or(0) as u64;
            latencies.push(now_ms().saturating_sub(created));
        }
    }
    Ok(latencies)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// End-to-end latency, exactly-once vs at-least-once, at two checkpoint intervals.
pub fn bench_latency(rate: u64, seconds: u64) -> Result<()> {
    println!(
        "\nKafka end-to-end latency (creation -> visible to read_committed), pass-through job, \
         2 workers, {rate} records/s for {seconds} s, first second skipped"
    );
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>10}",
        "guarantee", "interval", "p50 ms", "p99 ms", "records"
    );
    for interval in [Duration::from_millis(100), Duration::from_secs(1)] {
        for guarantee in [Guarantee::ExactlyOnce, Guarantee::AtLeastOnce] {
            let broker = Broker::start()?;
            let brokers = broker.brokers();
            broker.create_topic("in", PARTITIONS)?;
            broker.create_topic("out", PARTITIONS)?;
            let checkpoints = tempfile::tempdir()?;
            let want = (rate * seconds) as usize;
            let stop = Arc::new(AtomicBool::new(false));
            let reader = {
                let (brokers, stop) = (brokers.clone(), Arc::clone(&stop));
                std::thread::spawn(move || consume_latencies(&brokers, want, &stop))
            };
            let job = {
                let brokers = brokers.clone();
                let path = checkpoints.path().to_path_buf();
                std::thread::spawn(move || pass_through(&brokers, interval, guarantee, &path))
            };
            let mut generator = EventGenerator::new(3);
            produce(
                &brokers,
                "in",
                rate,
                Amount::Count(want as u64),
                &mut generator,
                &|_| {},
            )?;
            job.join().map_err(|_| anyhow!("the job panicked"))??;
            let deadline = Instant::now() + Duration::from_secs(10);
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.store(true, Ordering::SeqCst);
            let mut latencies = reader
                .join()
                .map_err(|_| anyhow!("the reader panicked"))??;
            let received = latencies.len();
            let skip = (rate as usize).min(latencies.len());
            latencies.drain(..skip);
            latencies.sort_unstable();
            println!(
                "{:<16} {:>10} {:>10} {:>10} {:>10}",
                guarantee.to_string(),
                format!("{interval:?}"),
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                received
            );
            if received < want {
                println!("  (only {received} of {want} records became visible)");
            }
        }
    }
    Ok(())
}

/// The Yahoo pipeline draining `events` preloaded events, with checkpoints
/// every 100 ms and with only the final checkpoint.
pub fn bench_throughput(events: u64) -> Result<()> {
    let broker = Broker::start()?;
    let brokers = broker.brokers();
    broker.create_topic("events", PARTITIONS)?;
    let mut generator = EventGenerator::new(9);
    let campaigns = tempfile::NamedTempFile::new()?;
    generator.write_campaigns(campaigns.path())?;
    let start = Instant::now();
    produce(
        &brokers,
        "events",
        u64::MAX / 4,
        Amount::Count(events),
        &mut generator,
        &|_| {},
    )?;
    println!(
        "\nYahoo pipeline throughput, 2 workers, exactly-once, draining {events} preloaded events \
         (loaded in {:.1} s)",
        start.elapsed().as_secs_f64()
    );
    println!(
        "{:<28} {:>10} {:>14} {:>12}",
        "checkpoints", "seconds", "events/s", "checkpoints"
    );
    let idle = Duration::from_millis(300);
    let mut rates = Vec::new();
    for (name, interval) in [
        ("only the final one", Duration::from_secs(3600)),
        ("every 100 ms", Duration::from_millis(100)),
    ] {
        let out = format!("out-{}", rates.len());
        broker.create_topic(&out, 2)?;
        broker.create_topic(&format!("{out}.dead"), 1)?;
        let checkpoints = tempfile::tempdir()?;
        let job = Yahoo {
            source: KafkaSource {
                interval,
                stop_when_idle: Some(idle),
                ..yahoo::source(&brokers, "events", 1000)
            },
            output_topic: out.clone(),
            dead_letter_topic: format!("{out}.dead"),
            campaigns: campaigns.path().to_path_buf(),
            sink: sink(&brokers, Guarantee::ExactlyOnce),
        };
        let options = StreamOptions {
            checkpoint_dir: checkpoints.path().to_path_buf(),
            restore: None,
            retain: 3,
            progress: None,
        };
        let summary = yahoo::run(timely::Config::process(2), job, &options)
            .context("the yahoo job failed")?;
        // the idle wait (and one look at the topic) is not processing time
        let seconds = (summary.elapsed.saturating_sub(idle * 2)).as_secs_f64();
        let rate = summary.records_in as f64 / seconds;
        println!(
            "{:<28} {:>10.2} {:>14.0} {:>12}",
            name, seconds, rate, summary.checkpoints
        );
        rates.push(rate);
    }
    if let [without, with] = rates[..] {
        println!(
            "checkpointing every 100 ms costs {:.1}% of the throughput",
            (1.0 - with / without) * 100.0
        );
    }
    Ok(())
}

//! The Kafka source's watermark on the real broker: a partition that stops
//! receiving records stops holding the watermark back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use timely::dataflow::operators::Inspect;
use weir_streaming::kafka::broker::Broker;
use weir_streaming::kafka::producer::{IdempotentProducer, Produce};
use weir_streaming::kafka::source::{EventTime, KafkaSource, ReadKafka};
use weir_streaming::run::{Built, StreamOptions, run_stream};
use weir_streaming::window::Watermark;

const START: i64 = 1_700_000_000_000;

/// Feeds one record into partition 1 and then, for 1.2 s, records one event
/// second apart into partition 0; runs a 1-worker source with `idle_epochs`
/// and returns the largest watermark it sent before its end.
fn largest_watermark(idle_epochs: u64) -> u64 {
    let broker = Broker::start().unwrap();
    broker.create_topic("events", 2).unwrap();
    let brokers = broker.brokers();
    let feeder = {
        let brokers = brokers.clone();
        std::thread::spawn(move || {
            let producer = IdempotentProducer::open(&brokers).unwrap();
            let record = |partition: i32, time: i64| Produce {
                partition: Some(partition),
                timestamp: Some(time),
                ..Produce::value("events", "e")
            };
            producer.send(&record(1, START)).unwrap();
            producer.flush().unwrap();
            for i in 0..60 {
                producer.send(&record(0, START + i * 1000)).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            producer.flush().unwrap();
        })
    };
    let source = KafkaSource {
        interval: Duration::from_millis(30),
        stop_when_idle: Some(Duration::from_secs(2)),
        event_time: EventTime::RecordTimestamp,
        out_of_orderness_ms: 0,
        idle_epochs,
        ..KafkaSource::new(&brokers, "events")
    };
    let checkpoints = tempfile::tempdir().unwrap();
    let options = StreamOptions {
        checkpoint_dir: checkpoints.path().to_path_buf(),
        restore: None,
        retain: 2,
        progress: None,
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watermarks = Arc::clone(&seen);
    run_stream(
        timely::Config::thread(),
        &options,
        |_, _, _| Ok(()),
        move |scope, ctx| {
            let streams = scope.read_kafka(
                "source",
                &source,
                2,
                &ctx.recovery,
                &ctx.checkpoints,
                &ctx.source,
            );
            let watermarks = Arc::clone(&watermarks);
            streams.watermarks.inspect(move |w| {
                if let Watermark::At(w) = *w {
                    watermarks.lock().unwrap().push(w);
                }
            });
            Built {
                acks: vec![streams.acks],
                commits: Vec::new(),
            }
        },
    )
    .unwrap();
    feeder.join().unwrap();
    let largest = seen.lock().unwrap().iter().copied().max();
    largest.expect("no watermark before the end")
}

#[test]
fn an_idle_partition_stops_holding_the_watermark_back() {
    let start = u64::try_from(START).unwrap();
    // partition 1 is idle after 5 empty epochs (150 ms): the watermark follows partition 0
    let followed = largest_watermark(5);
    assert!(
        followed >= start + 30_000,
        "the watermark stayed at {} s",
        (followed - start) / 1000
    );
    // never idle: partition 1's only record holds the watermark at its time
    assert_eq!(largest_watermark(u64::MAX), start);
}

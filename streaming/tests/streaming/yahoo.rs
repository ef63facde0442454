//! The Yahoo pipeline on the project's real broker: exact window counts and
//! dead letters exactly once (rescaling and crashes: the CLI's kafka_chaos).

use std::path::Path;
use std::time::Duration;

use weir_streaming::jobs::yahoo::{
    self, DEAD_LETTERS, LATE, UNKNOWN_ADS, Yahoo, dead_letters_once, expected_from_input,
    load_campaigns, verify,
};
use weir_streaming::jobs::yahoo_events::{Amount, EventGenerator, produce};
use weir_streaming::kafka::broker::Broker;
use weir_streaming::kafka::producer::{IdempotentProducer, Produce};
use weir_streaming::kafka::sink::{Guarantee, KafkaSink};
use weir_streaming::run::{StreamOptions, StreamSummary};

const MALFORMED: [&str; 3] = [
    "not json at all",
    r#"{"ad_id":"x","event_type":"view"}"#,
    r#"{"ad_id":"x","event_type":"view","event_time":"soon"}"#,
];

struct Setup {
    broker: Broker,
    campaigns: tempfile::NamedTempFile,
    checkpoints: tempfile::TempDir,
    generator: EventGenerator,
}

fn setup() -> Setup {
    let broker = Broker::start().unwrap();
    broker.create_topic("events", 4).unwrap();
    broker.create_topic("out", 2).unwrap();
    broker.create_topic("events.dead", 1).unwrap();
    let generator = EventGenerator::new(7);
    let campaigns = tempfile::NamedTempFile::new().unwrap();
    generator.write_campaigns(campaigns.path()).unwrap();
    Setup {
        broker,
        campaigns,
        checkpoints: tempfile::tempdir().unwrap(),
        generator,
    }
}

fn send_events(setup: &mut Setup, count: u64) {
    produce(
        &setup.broker.brokers(),
        "events",
        50_000,
        Amount::Count(count),
        &mut setup.generator,
        &|_| {},
    )
    .unwrap();
}

fn send_malformed(brokers: &str) {
    let producer = IdempotentProducer::open(brokers).unwrap();
    for bad in MALFORMED {
        producer.send(&Produce::value("events", bad)).unwrap();
    }
    producer.flush().unwrap();
}

fn run(setup: &Setup, workers: usize) -> StreamSummary {
    try_run(setup, workers, None).unwrap()
}

fn try_run(
    setup: &Setup,
    workers: usize,
    restore: Option<weir_progress::store::Restore>,
) -> Result<StreamSummary, weir_runtime::JobError> {
    try_run_idle(setup, workers, restore, Duration::from_millis(800))
}

fn try_run_idle(
    setup: &Setup,
    workers: usize,
    restore: Option<weir_progress::store::Restore>,
    idle: Duration,
) -> Result<StreamSummary, weir_runtime::JobError> {
    let brokers = setup.broker.brokers();
    let job = Yahoo {
        source: weir_streaming::kafka::source::KafkaSource {
            interval: Duration::from_millis(50),
            stop_when_idle: Some(idle),
            ..yahoo::source(&brokers, "events", 1000)
        },
        output_topic: "out".into(),
        dead_letter_topic: "events.dead".into(),
        campaigns: setup.campaigns.path().to_path_buf(),
        sink: KafkaSink {
            brokers: brokers.clone(),
            transactional_prefix: "yahoo".into(),
            guarantee: Guarantee::ExactlyOnce,
            committed_before: 0,
            broker_timeout: Duration::from_secs(10),
        },
    };
    let options = StreamOptions {
        checkpoint_dir: setup.checkpoints.path().to_path_buf(),
        restore,
        retain: 3,
        progress: None,
    };
    yahoo::run(timely::Config::process(workers), job, &options)
}

fn check(setup: &Setup, campaigns: &Path) {
    let brokers = setup.broker.brokers();
    let table = load_campaigns(campaigns).unwrap();
    let (expected, malformed) = expected_from_input(&brokers, "events", &table).unwrap();
    assert!(!expected.is_empty());
    let mut verdict = verify(&brokers, "out", &expected).unwrap();
    verdict.dead_letters = Some((
        malformed.len(),
        dead_letters_once(&brokers, "events.dead", &malformed).unwrap(),
    ));
    assert!(verdict.ok(), "{}", verdict.describe());
    assert_eq!(verdict.open, 0);
}

#[test]
fn window_counts_and_dead_letters_are_exact_at_2_workers() {
    let mut setup = setup();
    let brokers = setup.broker.brokers();
    send_events(&mut setup, 1500);
    send_malformed(&brokers);
    // a view of an ad the campaigns table does not know: counted, not windowed
    let producer = IdempotentProducer::open(&brokers).unwrap();
    let unknown = r#"{"ad_id":"no-such-ad","event_type":"view","event_time":1}"#;
    producer.send(&Produce::value("events", unknown)).unwrap();
    producer.flush().unwrap();
    send_events(&mut setup, 1500);
    let summary = run(&setup, 2);
    assert_eq!(summary.records_in, 3004);
    assert_eq!(summary.metrics.get(DEAD_LETTERS), Some(&3));
    assert_eq!(summary.metrics.get(UNKNOWN_ADS), Some(&1));
    assert_eq!(summary.metrics.get(LATE).copied().unwrap_or(0), 0);
    check(&setup, setup.campaigns.path());
}

#[test]
fn restore_with_a_deleted_input_topic_names_the_topic() {
    let mut setup = setup();
    send_events(&mut setup, 200);
    run(&setup, 1);
    setup.broker.delete_topic("events").unwrap();
    let err = try_run(&setup, 1, Some(weir_progress::store::Restore::Latest))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("kafka topic events:"), "{err}");
}

#[test]
fn stop_when_idle_reads_a_large_preloaded_topic_to_its_end() {
    // regression: a worker whose consumer paused longer than the idle time while
    // catching up stopped before the end of its partitions
    let mut setup = setup();
    send_events(&mut setup, 300_000);
    let summary = try_run_idle(&setup, 2, None, Duration::from_millis(300)).unwrap();
    assert_eq!(summary.records_in, 300_000);
}

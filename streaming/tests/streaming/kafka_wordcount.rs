//! Streaming word count from a Kafka topic to a Kafka topic, exactly once, on
//! the project's real broker.

use std::time::Duration;

use weir_progress::store::Restore;
use weir_streaming::jobs::wordcount::{self, Input, Output};
use weir_streaming::kafka::broker::Broker;
use weir_streaming::kafka::producer::IdempotentProducer;
use weir_streaming::kafka::sink::{Guarantee, KafkaSink};
use weir_streaming::kafka::source::KafkaSource;
use weir_streaming::kafka::wire::read_committed;
use weir_streaming::run::{StreamOptions, StreamSummary};
use weir_streaming::testing::{check_kafka_word_counts, produce_files, reference, send_files};

/// How long an epoch is, when a run stops (idle for `idle`) and when it
/// gives up on the broker.
#[derive(Clone, Copy)]
struct Timing {
    interval: Duration,
    idle: Duration,
    broker_timeout: Duration,
}

const QUICK: Timing = Timing {
    interval: Duration::from_millis(30),
    idle: Duration::from_millis(800),
    broker_timeout: Duration::from_secs(10),
};

fn run(
    config: timely::Config,
    brokers: &str,
    checkpoints: &std::path::Path,
    restore: Option<Restore>,
    Timing {
        interval,
        idle,
        broker_timeout,
    }: Timing,
) -> Result<StreamSummary, weir_runtime::JobError> {
    let source = KafkaSource {
        interval,
        stop_when_idle: Some(idle),
        broker_timeout,
        ..KafkaSource::new(brokers, "lines")
    };
    let sink = KafkaSink {
        brokers: brokers.to_string(),
        transactional_prefix: "wc".into(),
        guarantee: Guarantee::ExactlyOnce,
        committed_before: 0,
        broker_timeout,
    };
    let options = StreamOptions {
        checkpoint_dir: checkpoints.to_path_buf(),
        restore,
        retain: 3,
        progress: None,
    };
    wordcount::run(
        config,
        Input::Kafka(source),
        Output::Kafka {
            topic: "counts".into(),
            sink,
        },
        &options,
    )
}

fn broker_with_topics() -> Broker {
    let broker = Broker::start().unwrap();
    broker.create_topic("lines", 3).unwrap();
    broker.create_topic("counts", 2).unwrap();
    broker
}

/// Runs the job on `workers` while `files` files arrive, one every `gap`, and
/// checks the counts; returns the broker and the checkpoint directory.
fn run_while_files_arrive(
    workers: usize,
    files: usize,
    gap: Duration,
    interval: Duration,
) -> (Broker, tempfile::TempDir) {
    let broker = broker_with_topics();
    let brokers = broker.brokers();
    let checkpoints = tempfile::tempdir().unwrap();
    let producer = {
        let brokers = brokers.clone();
        std::thread::spawn(move || {
            let producer = IdempotentProducer::open(&brokers).unwrap();
            for i in 0..files {
                send_files(&producer, "lines", [i]).unwrap();
                std::thread::sleep(gap);
            }
        })
    };
    // Regression (CI, 2 workers read 178 of 240 lines): a producer stall
    // under load outlasted an 800 ms idle timeout and the job stopped
    // early. The producer is opened once, and the timeout is far longer
    // than any stall between its files.
    let timing = Timing {
        interval,
        idle: Duration::from_secs(3),
        ..QUICK
    };
    let summary = run(
        timely::Config::process(workers),
        &brokers,
        checkpoints.path(),
        None,
        timing,
    )
    .unwrap();
    producer.join().unwrap();
    assert_eq!(summary.records_in, files as u64 * 20, "{workers} workers");
    check_kafka_word_counts(&brokers, "counts", &reference(0..files))
        .unwrap_or_else(|e| panic!("{workers} workers: {e}"));
    (broker, checkpoints)
}

#[test]
fn exact_counts_from_kafka_to_kafka_at_1_2_and_3_workers() {
    for workers in 1..=3 {
        run_while_files_arrive(workers, 12, Duration::from_millis(15), QUICK.interval);
    }
}

#[test]
fn restore_resumes_at_the_checkpointed_offsets_without_duplicates_and_rescales() {
    let broker = broker_with_topics();
    let brokers = broker.brokers();
    let checkpoints = tempfile::tempdir().unwrap();
    produce_files(&brokers, "lines", 0..5).unwrap();
    run(
        timely::Config::process(2),
        &brokers,
        checkpoints.path(),
        None,
        QUICK,
    )
    .unwrap();
    check_kafka_word_counts(&brokers, "counts", &reference(0..5)).unwrap();
    produce_files(&brokers, "lines", 5..9).unwrap();
    let again = run(
        timely::Config::process(3),
        &brokers,
        checkpoints.path(),
        Some(Restore::Latest),
        QUICK,
    )
    .unwrap();
    assert!(again.restored.is_some());
    assert_eq!(again.records_in, 4 * 20, "only the new lines are read");
    check_kafka_word_counts(&brokers, "counts", &reference(0..9)).unwrap();
}

/// Runs the job on 2 workers while the broker is frozen for `outage` after
/// files 0..4 went in; files 4..8 go in once it is back.
fn run_through_outage(
    broker: &Broker,
    checkpoints: &std::path::Path,
    outage: Duration,
    broker_timeout: Duration,
) -> Result<StreamSummary, weir_runtime::JobError> {
    let brokers = broker.brokers();
    produce_files(&brokers, "lines", 0..4).unwrap();
    std::thread::scope(|s| {
        let job = s.spawn(|| {
            let timing = Timing {
                idle: Duration::from_secs(3),
                interval: QUICK.interval,
                broker_timeout,
            };
            run(
                timely::Config::process(2),
                &brokers,
                checkpoints,
                None,
                timing,
            )
        });
        // the job runs (its first counts are committed) before the outage
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while read_committed(&brokers, "counts")
            .unwrap()
            .records
            .is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no output within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        broker.pause().unwrap();
        std::thread::sleep(outage);
        broker.resume().unwrap();
        produce_files(&brokers, "lines", 4..8).unwrap();
        job.join().unwrap()
    })
}

#[test]
fn a_broker_outage_shorter_than_the_timeout_is_ridden_out() {
    let broker = broker_with_topics();
    let checkpoints = tempfile::tempdir().unwrap();
    let summary = run_through_outage(
        &broker,
        checkpoints.path(),
        Duration::from_secs(2),
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(summary.records_in, 8 * 20);
    check_kafka_word_counts(&broker.brokers(), "counts", &reference(0..8)).unwrap();
}

#[test]
fn a_broker_outage_past_the_timeout_fails_clearly_and_a_restore_loses_nothing() {
    let broker = broker_with_topics();
    let brokers = broker.brokers();
    let checkpoints = tempfile::tempdir().unwrap();
    let err = run_through_outage(
        &broker,
        checkpoints.path(),
        Duration::from_secs(6),
        Duration::from_secs(2),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&brokers), "the error names the broker: {err}");
    let timing = Timing {
        idle: Duration::from_secs(2),
        ..QUICK
    };
    let again = run(
        timely::Config::process(2),
        &brokers,
        checkpoints.path(),
        Some(Restore::Latest),
        timing,
    )
    .unwrap();
    assert!(again.restored.is_some());
    check_kafka_word_counts(&brokers, "counts", &reference(0..8)).unwrap();
}

#[test]
fn the_next_transaction_is_open_while_the_last_one_commits() {
    // epochs of 5 ms: a checkpoint's flush and commit take about as long,
    // so epochs are ready while the last transaction commits
    let (broker, checkpoints) =
        run_while_files_arrive(1, 40, Duration::from_millis(10), Duration::from_millis(5));
    // one worker, and its output came from more than one producer of its
    // pool: the next epochs went out while the last transaction committed
    let log = read_committed(&broker.brokers(), "counts").unwrap();
    let producers: std::collections::BTreeSet<i64> =
        log.records.iter().map(|r| r.producer_id).collect();
    assert!(
        producers.len() >= 2,
        "one producer wrote everything: {producers:?}"
    );
    let ids = std::fs::read_to_string(checkpoints.path().join("kafka-out-ids.json"));
    let ids = ids.unwrap_or_default();
    for slot in 0..3 {
        assert!(ids.contains(&format!("\"wc-0-{slot}\"")), "{ids}");
    }
}

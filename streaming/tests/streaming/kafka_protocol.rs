//! The broker, the transactional producer and the committed-log reader
//! against the project's real broker.

use weir_streaming::kafka::broker::Broker;
use weir_streaming::kafka::producer::{Produce, TxnProducer};
use weir_streaming::kafka::wire::{end_transaction, read_committed};

fn values(brokers: &str, topic: &str) -> Vec<String> {
    let log = read_committed(brokers, topic).unwrap();
    let mut v: Vec<String> = log
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn committed_reader_applies_commit_and_abort_markers_and_stops_at_open_transactions() {
    let broker = Broker::start().unwrap();
    let brokers = broker.brokers();
    broker.create_topic("t", 2).unwrap();
    let producer = TxnProducer::open(&brokers, "t-writer").unwrap();
    let send = |p: &TxnProducer, v: &str| p.send(&Produce::value("t", v)).unwrap();

    producer.begin().unwrap();
    send(&producer, "committed-1");
    send(&producer, "committed-2");
    producer.commit().unwrap();
    producer.begin().unwrap();
    send(&producer, "aborted");
    producer.abort().unwrap();
    assert_eq!(values(&brokers, "t"), ["committed-1", "committed-2"]);
    let log = read_committed(&brokers, "t").unwrap();
    assert_eq!((log.aborted, log.open, log.partitions), (1, 0, 2));

    // a transaction left open by a "crashed" producer holds back what follows it
    producer.begin().unwrap();
    send(&producer, "pending");
    producer.flush().unwrap();
    let identity = producer.identity();
    std::mem::forget(producer); // no abort, no commit: as after kill -9
    assert_eq!(values(&brokers, "t"), ["committed-1", "committed-2"]);
    assert_eq!(read_committed(&brokers, "t").unwrap().open, 1);

    // the second phase, completed by another process with the stored identity
    assert!(
        end_transaction(
            &brokers,
            "t-writer",
            identity.producer_id,
            identity.epoch,
            true
        )
        .unwrap()
    );
    assert_eq!(
        values(&brokers, "t"),
        ["committed-1", "committed-2", "pending"]
    );
    // ending it again (a recovery that crashed before recording the commit) is harmless
    let _ = end_transaction(
        &brokers,
        "t-writer",
        identity.producer_id,
        identity.epoch,
        true,
    );
    assert_eq!(
        values(&brokers, "t"),
        ["committed-1", "committed-2", "pending"]
    );
}

#[test]
fn a_new_producer_fences_the_old_one_and_aborts_its_open_transaction() {
    let broker = Broker::start().unwrap();
    let brokers = broker.brokers();
    broker.create_topic("z", 1).unwrap();
    let zombie = TxnProducer::open(&brokers, "z-writer").unwrap();
    zombie.begin().unwrap();
    zombie.send(&Produce::value("z", "zombie")).unwrap();
    zombie.flush().unwrap();
    let old = zombie.identity();
    let fresh = TxnProducer::open(&brokers, "z-writer").unwrap();
    assert!(fresh.identity().epoch > old.epoch || fresh.identity().producer_id != old.producer_id);
    let zombie_commit = zombie.commit_within(std::time::Duration::from_secs(2));
    assert!(zombie_commit.is_err(), "a fenced producer cannot commit");
    assert!(values(&brokers, "z").is_empty());
    assert_eq!(read_committed(&brokers, "z").unwrap().aborted, 1);
    // the stale identity cannot commit either (refused, or the connection dropped)
    let stale = end_transaction(&brokers, "z-writer", old.producer_id, old.epoch, true);
    assert!(!matches!(stale, Ok(true)), "{stale:?}");
    assert!(values(&brokers, "z").is_empty());
}

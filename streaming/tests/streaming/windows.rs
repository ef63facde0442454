//! Event-time windows against their sequential reference, at 1, 2 and 3
//! workers: tumbling, sliding and session windows, every aggregate.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use timely::dataflow::InputHandle;
use timely::dataflow::operators::capture::Event;
use timely::dataflow::operators::{Capture, Input, Probe};
use weir_progress::checkpoint::{Checkpoints, Schedule};
use weir_progress::store::CheckpointStore;
use weir_runtime::exec::RecordCounter;
use weir_streaming::window::{Acc, Watermark, WindowAggregate, WindowInput, Windows, reference};

const EPOCHS: u64 = 8;
const SPAN: u64 = 10_000;

/// Seeded events: epoch `e` holds times in `[e·SPAN, (e+1)·SPAN)`, integer values.
fn events() -> Vec<Vec<(String, u64, f64)>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    (0..EPOCHS)
        .map(|e| {
            (0..60)
                .map(|_| {
                    let key = format!("k{}", rng.random_range(0..4));
                    let time = e * SPAN + rng.random_range(0..SPAN);
                    (key, time, f64::from(rng.random_range(-5i32..20)))
                })
                .collect()
        })
        .collect()
}

/// Runs the window operator; watermarks trail by one epoch, the last is the end.
fn run(workers: usize, windows: Windows) -> BTreeMap<(String, u64, u64), Acc> {
    let all = events();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let results = timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let store = CheckpointStore::local(&path).unwrap();
        let ckpt = Checkpoints::new(store, Schedule { every: 1 }, None, index, peers);
        let mut input = InputHandle::new();
        let (probe, captured) = worker.dataflow::<u64, _, _>(|scope| {
            let (fired, _acks) = scope.input_from(&mut input).window_aggregate(
                "w",
                windows,
                &ckpt,
                &RecordCounter::default(),
            );
            let (probe, fired) = fired.probe();
            (probe, fired.capture())
        });
        for (epoch, events) in all.iter().enumerate() {
            for (i, (key, time, value)) in events.iter().enumerate() {
                if i % peers == index {
                    input.send(WindowInput::Event {
                        key: key.clone(),
                        time: *time,
                        value: *value,
                    });
                }
            }
            let last = epoch as u64 + 1 == EPOCHS;
            let watermark = if last {
                Watermark::End
            } else {
                Watermark::At(epoch as u64 * SPAN)
            };
            for to in 0..peers {
                input.send(WindowInput::Watermark { to, watermark });
            }
            input.advance_to(epoch as u64 + 1);
            worker.step_while(|| probe.less_than(input.time()));
        }
        drop(input);
        while worker.step() {}
        captured
    })
    .unwrap()
    .join();
    let mut out = BTreeMap::new();
    for result in results {
        for event in result.unwrap().try_iter() {
            let Event::Messages(_, batch) = event else {
                continue;
            };
            for w in batch {
                assert!(
                    out.insert((w.key, w.start, w.end), w.acc).is_none(),
                    "a window fired twice"
                );
            }
        }
    }
    out
}

fn check(windows: Windows) {
    let flat: Vec<(String, u64, f64)> = events().into_iter().flatten().collect();
    let expected = reference(&flat, windows);
    assert!(expected.len() > 10);
    for workers in 1..=3 {
        assert_eq!(
            run(workers, windows),
            expected,
            "{windows:?} at {workers} workers"
        );
    }
}

#[test]
fn tumbling_windows_match_the_reference() {
    check(Windows::Tumbling { size: 3_000 });
}

#[test]
fn sliding_windows_match_the_reference() {
    check(Windows::Sliding {
        size: 5_000,
        slide: 2_000,
    });
}

#[test]
fn session_windows_match_the_reference() {
    check(Windows::Session { gap: 700 });
}

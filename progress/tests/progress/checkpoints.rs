use std::collections::BTreeMap;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use weir_progress::checkpoint::{Checkpoints, Committed, FINAL_EPOCH, Schedule, StatefulUnary};
use weir_progress::coordinate::Coordinate;
use weir_progress::route::key_hash;
use weir_progress::state::restore;
use weir_progress::store::CheckpointStore;
use weir_progress::testing;

const EPOCHS: u64 = 20;

/// The records worker `index` of `peers` sends in `epoch`: a share of a fixed set.
fn records(epoch: u64, index: usize, peers: usize) -> Vec<(u64, u64)> {
    (0..30u64)
        .filter(|i| (i + epoch) as usize % peers == index)
        .map(|i| ((i * 7 + epoch) % 11, epoch + 1))
        .collect()
}

/// Sum of values per key over epochs `<= upto`, computed sequentially.
fn reference(upto: u64) -> BTreeMap<u64, u64> {
    let mut sums = BTreeMap::new();
    for epoch in 0..=upto.min(EPOCHS - 1) {
        for (k, v) in records(epoch, 0, 1) {
            *sums.entry(k).or_insert(0) += v;
        }
    }
    sums
}

/// Runs the toy job: keyed sums with a checkpoint every 3 epochs; returns the
/// epochs that worker 0 saw committed.
fn run(config: timely::Config, dir: std::path::PathBuf) -> Vec<u64> {
    let guards = timely::execute(config, move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let store = CheckpointStore::local(&dir).unwrap();
        let ckpt = Checkpoints::new(store, Schedule { every: 3 }, None, index, peers);
        let mut input =
            InputHandle::<u64, timely::container::CapacityContainerBuilder<Vec<(u64, u64)>>>::new();
        let probe = ProbeHandle::new();
        let committed = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        worker.dataflow::<u64, _, _>(|scope| {
            let (_, acks) = scope.input_from(&mut input).stateful_unary(
                Exchange::new(|(k, _): &(u64, u64)| key_hash(k)),
                "sums",
                &ckpt,
                |_epoch, records, state, out: &mut Vec<(u64, u64)>| {
                    for (k, v) in records {
                        let total = *state.update(k, || 0, |s| *s += v);
                        out.push((k, total));
                    }
                },
            );
            let seen = std::rc::Rc::clone(&committed);
            use timely::dataflow::operators::Inspect;
            acks.coordinate(&ckpt)
                .inspect(move |c| seen.borrow_mut().push(*c))
                .probe_with(&probe);
        });
        for epoch in 0..EPOCHS {
            for r in records(epoch, index, peers) {
                input.send(r);
            }
            input.advance_to(epoch + 1);
            worker.step_while(|| probe.less_than(&epoch));
        }
        drop(input);
        worker.step_while(|| !probe.done());
        assert!(ckpt.failure().is_none(), "{:?}", ckpt.failure());
        let epochs = committed.take().into_iter().map(|c| match c {
            Committed::Checkpoint(epoch) => epoch,
            Committed::Abort => panic!("a checkpoint was aborted"),
        });
        epochs.collect::<Vec<u64>>()
    })
    .unwrap();
    guards.join().into_iter().next().unwrap().unwrap()
}

#[test]
fn committed_checkpoints_restore_the_state_as_of_their_epoch_on_every_layout() {
    for (layout, configs) in testing::layouts().unwrap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let peers = configs.len()
            * match &configs[0].communication {
                timely::CommunicationConfig::Process(n) => *n,
                _ => 1,
            };
        let committed =
            testing::run_processes(configs, move |config| run(config, path.clone())).remove(0);
        assert_eq!(
            committed.last(),
            Some(&FINAL_EPOCH),
            "{layout}: the final checkpoint commits"
        );
        assert!(
            committed.len() >= 3,
            "{layout}: regular checkpoints commit too: {committed:?}"
        );
        let store = CheckpointStore::local(dir.path()).unwrap();
        let complete = store.complete().unwrap();
        assert!(
            complete.len() <= 3,
            "{layout}: retention keeps 3: {complete:?}"
        );
        for &epoch in &complete {
            let manifest = store.manifest(epoch).unwrap();
            assert_eq!(manifest.parts.len(), peers, "{layout}: one part per worker");
            let mut sums = BTreeMap::new();
            for index in 0..peers {
                let r = restore::<u64, u64>(&store, &manifest, "sums", index, peers).unwrap();
                sums.extend(r.state.iter().map(|(k, v)| (*k, *v)));
            }
            assert_eq!(sums, reference(epoch), "{layout}: checkpoint {epoch}");
            // and restoring into another worker count gives the same totals
            let mut rescaled = BTreeMap::new();
            for index in 0..peers + 1 {
                let r = restore::<u64, u64>(&store, &manifest, "sums", index, peers + 1).unwrap();
                rescaled.extend(r.state.iter().map(|(k, v)| (*k, *v)));
            }
            assert_eq!(rescaled, sums, "{layout}: rescaled {epoch}");
        }
    }
}

/// Regression: a source that stopped early on one worker (it owned no input)
/// held every later checkpoint back until the job ended, as the coordinator
/// waited for its acks of epochs it would never read.
#[test]
fn a_source_finished_on_one_worker_does_not_hold_the_checkpoints_of_the_others() {
    use weir_progress::checkpoint::Ack;
    use weir_progress::store::SourceMark;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let mark = |worker: usize, next: u64, stream: &str| {
        Ack::Source(SourceMark {
            operator: "src".into(),
            worker,
            next,
            positions: BTreeMap::from([(stream.to_string(), next * 10)]),
        })
    };
    let guards = timely::execute(timely::Config::process(2), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let store = CheckpointStore::local(&path).unwrap();
        let ckpt = Checkpoints::new(store, Schedule { every: 1 }, None, index, peers);
        ckpt.participate("src");
        let mut acks =
            InputHandle::<u64, timely::container::CapacityContainerBuilder<Vec<Ack>>>::new();
        let probe = ProbeHandle::new();
        let committed = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        worker.dataflow::<u64, _, _>(|scope| {
            let seen = std::rc::Rc::clone(&committed);
            use timely::dataflow::operators::Inspect;
            scope
                .input_from(&mut acks)
                .coordinate(&ckpt)
                .inspect(move |c| seen.borrow_mut().push(*c))
                .probe_with(&probe);
        });
        // worker 0 reads epoch 0 and finishes; worker 1 reads epochs 0..6
        let last = if index == 0 { 0 } else { 5 };
        for epoch in 0..=last {
            acks.send(mark(index, epoch + 1, &format!("w{index}")));
            acks.advance_to(epoch + 1);
        }
        acks.advance_to(FINAL_EPOCH);
        acks.send(mark(index, last + 1, &format!("w{index}")));
        // hands the mark over, as a source does once it stops
        acks.advance_to(FINAL_EPOCH + 1);
        // before the end, the others' checkpoints commit
        worker.step_while(|| probe.less_than(&(last + 1)));
        let before_end = committed.borrow().len();
        drop(acks);
        worker.step_while(|| !probe.done());
        assert!(ckpt.failure().is_none(), "{:?}", ckpt.failure());
        (before_end, committed.take())
    })
    .unwrap();
    let results: Vec<_> = guards.join().into_iter().map(Result::unwrap).collect();
    let (before_end, committed) = &results[1];
    let epochs: Vec<u64> = committed
        .iter()
        .filter_map(|c| match c {
            Committed::Checkpoint(e) => Some(*e),
            Committed::Abort => None,
        })
        .collect();
    assert!(*before_end >= 6, "{committed:?}");
    assert_eq!(&epochs[..6], [0, 1, 2, 3, 4, 5], "{committed:?}");
    // each manifest holds the finished worker's positions too
    let store = CheckpointStore::local(dir.path()).unwrap();
    let complete = store.complete().unwrap();
    let newest = complete
        .iter()
        .copied()
        .filter(|&e| e < FINAL_EPOCH)
        .max()
        .unwrap();
    let manifest = store.manifest(newest).unwrap();
    let workers: Vec<usize> = manifest.sources.iter().map(|m| m.worker).collect();
    assert!(workers.contains(&0) && workers.contains(&1), "{manifest:?}");
}

use std::cell::RefCell;
use std::rc::Rc;

use std::path::PathBuf;
use timely::dataflow::operators::vec::{Filter, Map};
use timely::dataflow::operators::{Concat, ConnectLoop, Enter, Input, LoopVariable, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

use weir_progress::convergence::{Converge, Convergence};
use weir_progress::loop_state::{CheckpointLoop, LoopCheckpoints, resume};
use weir_progress::store::CheckpointStore;
use weir_progress::testing;

const MAX: u64 = 40;

fn start(index: usize, peers: usize) -> Vec<u64> {
    (0..300u64)
        .filter(|i| *i as usize % peers == index)
        .map(|i| i * 7919 % 100_003)
        .collect()
}

fn stop(_iteration: u64, total: f64) -> bool {
    total < 2_000.0
}

/// The same loop, sequentially: (iteration, total) until it stops.
fn reference() -> Vec<(u64, f64)> {
    let mut xs = start(0, 1);
    let mut rounds = Vec::new();
    for i in 0..MAX {
        xs = xs
            .into_iter()
            .map(|x| x * 3 / 4)
            .filter(|x| *x > 0)
            .collect();
        let total: f64 = xs.iter().map(|x| *x as f64).sum();
        rounds.push((i, total));
        if stop(i, total) || i + 1 == MAX {
            break;
        }
    }
    rounds
}

fn run(config: timely::Config) -> Vec<(u64, f64)> {
    run_loop(config, MAX, None)
}

/// The loop up to `max` iterations; with `checkpoints`, resumes from the newest
/// loop checkpoint there and checkpoints every 3 iterations.
fn run_loop(config: timely::Config, max: u64, checkpoints: Option<PathBuf>) -> Vec<(u64, f64)> {
    let guards = timely::execute(config, move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let store = checkpoints
            .as_ref()
            .map(|d| CheckpointStore::local(d).unwrap());
        let resumed = store
            .as_ref()
            .and_then(|s| resume::<u64>(s, index, peers).unwrap());
        let first = resumed.as_ref().map_or(0, |r| r.next);
        let records = resumed.map_or_else(|| start(index, peers), |r| r.records);
        let loop_checkpoints = store.map(|store| LoopCheckpoints {
            store,
            every: 3,
            first,
            index,
            peers,
        });
        let mut input =
            InputHandle::<u64, timely::container::CapacityContainerBuilder<Vec<u64>>>::new();
        let probe = ProbeHandle::new();
        let rounds = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::clone(&rounds);
        worker.dataflow::<u64, _, _>(|scope| {
            let data = scope.input_from(&mut input);
            scope.iterative::<u64, _, _>(|inner| {
                let (handle, cycle) = inner.loop_variable(1);
                let next = data
                    .enter(inner)
                    .concat(cycle)
                    .map(|x| x * 3 / 4)
                    .filter(|x| *x > 0);
                let values = next.clone().map(|x| x as f64);
                let gated = next.clone().converge(
                    values,
                    Convergence {
                        first,
                        max_iterations: max,
                        stop,
                    },
                    move |r| {
                        seen.borrow_mut().push((r.iteration, r.value));
                    },
                );
                match &loop_checkpoints {
                    Some(c) => gated.checkpoint_loop(c).connect_loop(handle),
                    None => gated.connect_loop(handle),
                }
                next.probe_with(&probe);
            });
        });
        for x in records {
            input.send(x);
        }
        drop(input);
        worker.step_while(|| !probe.done());
        rounds.take()
    })
    .unwrap();
    guards.join().into_iter().next().unwrap().unwrap()
}

#[test]
fn the_loop_stops_at_the_same_iteration_on_every_layout() {
    let want = reference();
    assert!(
        want.len() > 5 && want.len() < MAX as usize,
        "the predicate stops it: {want:?}"
    );
    for (layout, configs) in testing::layouts().unwrap() {
        let got = testing::run_processes(configs, run).remove(0);
        assert_eq!(got, want, "{layout}");
    }
}

#[test]
fn the_maximum_ends_a_loop_that_would_not_converge() {
    let rounds = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&rounds);
    timely::example(move |scope| {
        use timely::dataflow::operators::ToStream;
        let start = vec![1u64].to_stream(scope);
        scope.iterative::<u64, _, _>(|inner| {
            let (handle, cycle) = inner.loop_variable(1);
            let same = start.enter(inner).concat(cycle);
            let values = same.clone().map(|x| x as f64);
            let never = Convergence {
                first: 0,
                max_iterations: 7,
                stop: |_, _| false,
            };
            same.converge(values, never, move |r| {
                seen.lock().unwrap().push((r.iteration, r.last))
            })
            .connect_loop(handle);
        });
    });
    let rounds = rounds.lock().unwrap().clone();
    assert_eq!(rounds.len(), 7);
    assert_eq!(rounds.last(), Some(&(6, true)));
    assert!(rounds[..6].iter().all(|(_, last)| !last));
}

#[test]
fn a_loop_checkpointed_every_3_iterations_resumes_mid_loop_at_another_worker_count() {
    let want = reference();
    let layouts = testing::layouts().unwrap();
    for (i, (layout, configs)) in layouts.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        // the first run ends after iteration 4 (as if killed): its newest
        // checkpoint is iteration 2's
        let p = path.clone();
        let first =
            testing::run_processes(configs.clone(), move |c| run_loop(c, 5, Some(p.clone())));
        assert_eq!(first[0], want[..5], "{layout}");
        // resume on the next layout
        let (next_layout, next_configs) = &layouts[(i + 1) % layouts.len()];
        let p = path.clone();
        let resumed = testing::run_processes(next_configs.clone(), move |c| {
            run_loop(c, MAX, Some(p.clone()))
        });
        assert_eq!(
            resumed[0],
            want[3..],
            "{layout} then {next_layout}: the loop goes on from iteration 3"
        );
    }
}

use std::cell::RefCell;
use std::rc::Rc;

use timely::dataflow::operators::vec::{Filter, Map};
use timely::dataflow::operators::{Concat, ConnectLoop, Enter, Input, LoopVariable, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use weir_progress::convergence::{Converge, Convergence};
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
    let guards = timely::execute(config, |worker| {
        let (index, peers) = (worker.index(), worker.peers());
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
                next.clone()
                    .converge(
                        values,
                        Convergence {
                            max_iterations: MAX,
                            stop,
                        },
                        move |r| {
                            seen.borrow_mut().push((r.iteration, r.value));
                        },
                    )
                    .connect_loop(handle);
                next.probe_with(&probe);
            });
        });
        for x in start(index, peers) {
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

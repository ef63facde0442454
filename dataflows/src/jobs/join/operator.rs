//! The timely operator that runs a [`LocalStrategy`] on one worker.

use std::collections::VecDeque;

use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use super::{LocalStrategy, Row};
use weir_runtime::exec::WorkerCtx;
use weir_runtime::operators::EMIT_BATCH;
use weir_runtime::time::BatchTime;

/// Joins a build stream with a probe stream.
pub trait LocalJoin<'s> {
    /// Feeds this (build) stream and then `probe` to `strategy`, routed by the given
    /// contracts, and emits joined lines (left row, then right row).
    ///
    /// Build rows are absorbed as they come; probe rows wait until the build input
    /// is complete. A probe chunk's capability is held until its rows are joined,
    /// so the output frontier says how far the join has really got (the sources
    /// read ahead of it by a bounded amount). Work the strategy put aside is
    /// finished at [`BatchTime::End`], a bounded batch per activation.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use timely::dataflow::channels::pact::Pipeline;
    /// use timely::dataflow::operators::ToStream;
    /// use weir_runtime::exec::{run_job, JobOptions};
    /// use weir_dataflows::jobs::join::{HybridHash, LocalJoin};
    ///
    /// let options = JobOptions { show: 10, ..Default::default() };
    /// let summary = run_job(timely::Config::thread(), &options, |scope, ctx| {
    ///     let row = |k: &str, v: &str| (k.to_string(), format!("{k}\t{v}"));
    ///     let build = vec![row("a", "1"), row("b", "2")].to_stream(scope);
    ///     let probe = vec![row("a", "x"), row("a", "y"), row("c", "z")].to_stream(scope);
    ///     let strategy = Box::new(HybridHash::new(1 << 20, None, Rc::clone(&ctx.spilled)));
    ///     build.local_join(probe, Pipeline, Pipeline, strategy, true, ctx)
    /// })
    /// .unwrap();
    /// assert_eq!(summary.records, Some(vec!["a\t1\ta\tx".into(), "a\t1\ta\ty".into()]));
    /// ```
    fn local_join<P1, P2>(
        self,
        probe: StreamVec<'s, BatchTime, Row>,
        build_pact: P1,
        probe_pact: P2,
        strategy: Box<dyn LocalStrategy>,
        build_left: bool,
        ctx: &WorkerCtx,
    ) -> StreamVec<'s, BatchTime, String>
    where
        P1: ParallelizationContract<BatchTime, Vec<Row>>,
        P2: ParallelizationContract<BatchTime, Vec<Row>>;
}

fn line(build_left: bool, build: &str, probe: &str) -> String {
    if build_left {
        format!("{build}\t{probe}")
    } else {
        format!("{probe}\t{build}")
    }
}

impl<'s> LocalJoin<'s> for StreamVec<'s, BatchTime, Row> {
    fn local_join<P1, P2>(
        self,
        probe: StreamVec<'s, BatchTime, Row>,
        build_pact: P1,
        probe_pact: P2,
        strategy: Box<dyn LocalStrategy>,
        build_left: bool,
        ctx: &WorkerCtx,
    ) -> StreamVec<'s, BatchTime, String>
    where
        P1: ParallelizationContract<BatchTime, Vec<Row>>,
        P2: ParallelizationContract<BatchTime, Vec<Row>>,
    {
        let scope = self.scope();
        let failure = ctx.failure.clone();
        self.binary_frontier(
            probe,
            build_pact,
            probe_pact,
            "LocalJoin",
            move |cap, info| {
                let activator = scope.activator_for(info.address);
                let mut final_cap = Some(cap.delayed(&BatchTime::End));
                let mut strategy = Some(strategy);
                let mut build_done = false;
                let mut pending: VecDeque<(Capability<BatchTime>, Vec<Row>)> = VecDeque::new();
                move |(build_in, build_frontier), (probe_in, probe_frontier), output| {
                    let Some(join) = strategy.as_mut().filter(|_| !failure.is_set()) else {
                        // failed (or done): drop everything, keep inputs drained
                        build_in.for_each_stamp(|_, _| {});
                        probe_in.for_each_stamp(|_, _| {});
                        strategy = None;
                        pending.clear();
                        final_cap = None;
                        return;
                    };
                    build_in.for_each_stamp(|_, data| {
                        for batch in data {
                            for row in batch.drain(..) {
                                if let Err(e) = join.build(row) {
                                    failure.set(e);
                                    return;
                                }
                            }
                        }
                    });
                    if !build_done && build_frontier.is_empty() && !failure.is_set() {
                        build_done = true;
                        if let Err(e) = join.build_done() {
                            failure.set(e);
                        }
                    }
                    let port = output.output_index();
                    probe_in.for_each_stamp(|cap, data| {
                        let mut rows = Vec::new();
                        for batch in data {
                            rows.append(batch);
                        }
                        if let Some(cap) = cap.retain_least(port) {
                            pending.push_back((cap, rows));
                        }
                    });
                    if !build_done || failure.is_set() {
                        return;
                    }
                    let mut emitted = 0;
                    while emitted < EMIT_BATCH {
                        let Some((cap, rows)) = pending.front_mut() else {
                            break;
                        };
                        let mut session = output.session(&*cap);
                        while emitted < EMIT_BATCH {
                            let Some(row) = rows.pop() else { break };
                            let mut emit = |b: &str, p: &str| {
                                session.give(line(build_left, b, p));
                                emitted += 1;
                            };
                            if let Err(e) = join.probe(row, &mut emit) {
                                failure.set(e);
                                return;
                            }
                        }
                        drop(session);
                        if rows.is_empty() {
                            pending.pop_front();
                        }
                    }
                    if !pending.is_empty() {
                        activator.activate();
                        return;
                    }
                    if !probe_frontier.is_empty() {
                        return;
                    }
                    let Some(time) = final_cap.as_ref() else {
                        return;
                    };
                    let mut session = output.session(time);
                    let mut emit = |b: &str, p: &str| session.give(line(build_left, b, p));
                    match join.finish(&mut emit, EMIT_BATCH) {
                        Ok(true) => {
                            drop(session);
                            final_cap = None;
                            strategy = None; // removes the spill files
                        }
                        Ok(false) => activator.activate(),
                        Err(e) => failure.set(e),
                    }
                }
            },
        )
    }
}

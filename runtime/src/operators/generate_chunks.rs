//! A source of generated records, chunk by chunk, split across all workers.

use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, StreamVec};

use crate::exec::WorkerCtx;
use crate::time::BatchTime;

/// Generates records in numbered chunks on the workers.
pub trait GenerateChunks<'s> {
    /// Chunks `0..chunks` of a generated input, made by `fill(chunk, out)`:
    /// worker `i` of `n` makes chunks `i`, `i + n`, ..., one per activation,
    /// all at time 0, and counts them in `ctx.records_in`. A generator whose
    /// chunks are seeded by their number gives the same records at any worker
    /// count.
    ///
    /// ```
    /// use timely::dataflow::operators::vec::Map;
    /// use weir_runtime::exec::{run_job, JobOptions};
    /// use weir_runtime::operators::GenerateChunks;
    ///
    /// let options = JobOptions { show: 10, ..Default::default() };
    /// let summary = run_job(timely::Config::process(2), &options, |scope, ctx| {
    ///     scope
    ///         .generate_chunks(ctx, "Squares", 3, |chunk, out: &mut Vec<u64>| out.push(chunk * chunk))
    ///         .map(|x| x.to_string())
    /// })
    /// .unwrap();
    /// assert_eq!(summary.records, Some(vec!["0".into(), "1".into(), "4".into()]));
    /// ```
    fn generate_chunks<T, F>(
        self,
        ctx: &WorkerCtx,
        name: &str,
        chunks: u64,
        fill: F,
    ) -> StreamVec<'s, BatchTime, T>
    where
        T: Clone + 'static,
        F: FnMut(u64, &mut Vec<T>) + 'static;
}

impl<'s> GenerateChunks<'s> for Scope<'s, BatchTime> {
    fn generate_chunks<T, F>(
        self,
        ctx: &WorkerCtx,
        name: &str,
        chunks: u64,
        mut fill: F,
    ) -> StreamVec<'s, BatchTime, T>
    where
        T: Clone + 'static,
        F: FnMut(u64, &mut Vec<T>) + 'static,
    {
        let (index, peers) = (ctx.index as u64, ctx.peers as u64);
        let records_in = ctx.records_in.clone();
        source(self, name, move |cap, info| {
            let activator = self.activator_for(info.address);
            let mut cap = Some(cap);
            let mut chunk = index;
            let mut records = Vec::new();
            move |output| {
                let Some(time) = cap.as_ref() else {
                    return;
                };
                if chunk >= chunks {
                    cap = None;
                    return;
                }
                fill(chunk, &mut records);
                records_in.add(records.len() as u64);
                output.session(time).give_container(&mut records);
                records.clear();
                chunk += peers;
                activator.activate();
            }
        })
    }
}

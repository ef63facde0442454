//! A source reading one worker's share of a [`LineInput`].

use std::time::Duration;

use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, StreamVec};

use crate::error::{JobError, Rejected};
use crate::exec::WorkerCtx;
use crate::input::{LineInput, LinePos};
use crate::time::BatchTime;

/// Bytes of input per chunk (one timestamp).
pub const CHUNK_BYTES: usize = 256 * 1024;
/// How many chunks a source may be ahead of the frontier of `ctx.flow`.
pub const READ_AHEAD: u64 = 2;

/// Reads lines into a stream, parsing each.
pub trait ReadLines<'s> {
    /// Reads this worker's share of `input`, chunk `k` at time `(phase, k)`, passing
    /// each line and its position to `parse` (`Ok(None)` skips the line;
    /// `Err(why)` (a message, or a [`Rejected`] with a remedy) fails the job
    /// with the line's `file:line`; a position
    /// with offset 0 is the first line of its file, e.g. a header).
    ///
    /// The source reads chunk `k` only once the frontier of `ctx.flow` has reached
    /// `(phase, k - READ_AHEAD)` (and `(phase, 0)` for the first chunk): attach
    /// `ctx.flow` after the operator that absorbs the input to bound the data in
    /// flight, or to start reading only once an earlier phase is complete.
    ///
    /// ```
    /// use weir_runtime::exec::{run_job, JobOptions};
    /// use weir_runtime::input::LineInput;
    /// use weir_runtime::operators::ReadLines;
    /// use timely::dataflow::operators::vec::Map;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("in.txt");
    /// std::fs::write(&path, "1\n2\n3\n").unwrap();
    /// let input = LineInput::Files(vec![path]);
    /// let options = JobOptions { show: 10, ..Default::default() };
    /// let summary = run_job(timely::Config::process(2), &options, move |scope, ctx| {
    ///     scope
    ///         .read_lines(&input, ctx, 0, |line, _| line.parse::<u64>().map(Some).map_err(|e| e.to_string()))
    ///         .map(|x| (x * 10).to_string())
    /// })
    /// .unwrap();
    /// assert_eq!(summary.records, Some(vec!["10".into(), "20".into(), "30".into()]));
    /// ```
    fn read_lines<T, E, P>(
        self,
        input: &LineInput,
        ctx: &WorkerCtx,
        phase: u32,
        parse: P,
    ) -> StreamVec<'s, BatchTime, T>
    where
        T: Clone + 'static,
        E: Into<Rejected>,
        P: FnMut(&str, LinePos) -> Result<Option<T>, E> + 'static;
}

impl<'s> ReadLines<'s> for Scope<'s, BatchTime> {
    fn read_lines<T, E, P>(
        self,
        input: &LineInput,
        ctx: &WorkerCtx,
        phase: u32,
        mut parse: P,
    ) -> StreamVec<'s, BatchTime, T>
    where
        T: Clone + 'static,
        E: Into<Rejected>,
        P: FnMut(&str, LinePos) -> Result<Option<T>, E> + 'static,
    {
        let mut reader = match input.reader(ctx.index, ctx.peers) {
            Ok(reader) => Some(reader),
            Err(e) => {
                ctx.failure.set(e);
                None
            }
        };
        let failure = ctx.failure.clone();
        let flow = ctx.flow.clone();
        let records_in = ctx.records_in.clone();
        source(self, "ReadLines", move |cap, info| {
            let activator = self.activator_for(info.address);
            let mut cap = Some(cap);
            if let Some(cap) = cap.as_mut() {
                cap.downgrade(&BatchTime::phase(phase));
            }
            let mut chunk = 0u64;
            let mut line = String::new();
            move |output| {
                let (Some(time), Some(lines)) = (cap.as_mut(), reader.as_mut()) else {
                    cap = None;
                    return;
                };
                if failure.is_set() {
                    cap = None;
                    return;
                }
                if flow.less_than(&BatchTime::chunk(phase, chunk.saturating_sub(READ_AHEAD))) {
                    activator.activate_after(Duration::from_micros(100));
                    return;
                }
                let mut session = output.session(time);
                let (mut bytes, mut records, mut finished) = (0, 0, false);
                while bytes < CHUNK_BYTES {
                    match lines.next_line(&mut line) {
                        Ok(Some(pos)) => {
                            bytes += line.len() + 1;
                            match parse(&line, pos) {
                                Ok(Some(record)) => {
                                    session.give(record);
                                    records += 1;
                                }
                                Ok(None) => {}
                                Err(why) => {
                                    let Rejected { message, remedy } = why.into();
                                    failure.set(JobError::Malformed {
                                        position: lines.locate(pos),
                                        message,
                                        remedy,
                                    });
                                    finished = true;
                                    break;
                                }
                            }
                        }
                        Ok(None) => {
                            finished = true;
                            break;
                        }
                        Err(e) => {
                            failure.set(e);
                            finished = true;
                            break;
                        }
                    }
                }
                drop(session);
                records_in.add(records);
                if finished {
                    cap = None;
                } else {
                    chunk += 1;
                    time.downgrade(&BatchTime::chunk(phase, chunk));
                    activator.activate();
                }
            }
        })
    }
}

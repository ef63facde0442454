//! A source that watches a directory for new files and reads their lines, with
//! its (file, byte offset) positions in every checkpoint; when lines carry
//! event time (JSON objects with a time field), with each file's watermark
//! too, as a Kafka partition's.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Capability, ConnectLoop, Feedback};
use timely::dataflow::{Scope, StreamVec};
use weir_progress::checkpoint::{Ack, Checkpoints, FINAL_EPOCH};
use weir_progress::recovery::Recovery;
use weir_progress::route::key_hash;
use weir_progress::store::SourceMark;
use weir_runtime::JobError;
use weir_runtime::source_ctx::SourceCtx;

use crate::stop::{Vote, Votes};
use crate::window::Watermark;
pub use lines::Lines;
use reader::{Reader, file_of};

mod lines;
mod reader;

/// Bytes a source reads per activation before it lets other operators run.
pub const READ_BUDGET: usize = 1 << 20;
/// How often an idle source looks at its directory.
pub const POLL: Duration = Duration::from_millis(20);

/// What a [`WatchDir`] source reads and when it closes epochs.
#[derive(Clone, Debug)]
pub struct DirSource {
    /// The directory to watch. Files whose names start with `.` are ignored;
    /// writers create files under such a name and rename them when complete.
    pub dir: PathBuf,
    /// Wall-clock length of an epoch (every epoch is a checkpoint).
    pub interval: Duration,
    /// Stop once no new file has appeared for this long and every file is
    /// read, on every worker (see [`crate::stop`]).
    pub stop_when_idle: Option<Duration>,
    /// The event time of lines, if they carry one: the source then gives
    /// its watermark at the end of every epoch.
    pub event_time: Option<LineTime>,
}

/// Where a line's event time is, and how the watermark follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineTime {
    /// The field of the line's JSON object that holds its event time, in
    /// milliseconds (a whole number, or one in a string). Blank lines are
    /// skipped; a line without one fails the job, naming its byte.
    pub field: String,
    /// Allowed out-of-orderness of event time, in milliseconds.
    pub out_of_orderness_ms: u64,
    /// Epochs after which a file read to its end stops holding event time
    /// back.
    pub idle_epochs: u64,
}

impl DirSource {
    /// Checks that the watched directory exists.
    pub fn validate(&self) -> Result<(), JobError> {
        if self.dir.is_dir() {
            Ok(())
        } else {
            Err(JobError::Io {
                path: self.dir.display().to_string(),
                message: "not a directory (the source watches a directory for new files)".into(),
            })
        }
    }
}

/// Whether worker `index` of `peers` owns the file named `name`.
pub fn owns(name: &str, index: usize, peers: usize) -> bool {
    (key_hash(&name) % peers as u64) as usize == index
}

/// Watches a directory and reads new files' lines.
pub trait WatchDir<'s> {
    /// Reads the lines of the files in `source.dir` (each file is read by the
    /// worker that owns its name by hash) into a stream stamped with epochs. Every
    /// `source.interval` it closes the current epoch and acknowledges it with its
    /// positions ([`Ack::Source`]), so the checkpoint of that epoch records them;
    /// with `source.event_time`, it also gives its watermark for the epoch.
    /// A restored source resumes from the positions in `recovery` and first
    /// replays the epochs that `recovery` says were committed already, cutting
    /// them exactly as before.
    ///
    /// ```
    /// use timely::dataflow::operators::{Capture, capture::Extract};
    /// use weir_progress::checkpoint::{Checkpoints, Schedule};
    /// use weir_progress::recovery::Recovery;
    /// use weir_progress::store::CheckpointStore;
    /// use weir_streaming::dir_source::{DirSource, WatchDir};
    /// use weir_runtime::source_ctx::SourceCtx;
    ///
    /// let input = tempfile::tempdir().unwrap();
    /// std::fs::write(input.path().join("a.txt"), "one\ntwo\n").unwrap();
    /// let checkpoints = tempfile::tempdir().unwrap();
    /// let source = DirSource {
    ///     dir: input.path().to_owned(),
    ///     interval: std::time::Duration::from_millis(10),
    ///     stop_when_idle: Some(std::time::Duration::from_millis(50)),
    ///     event_time: None,
    /// };
    /// let store = CheckpointStore::local(checkpoints.path()).unwrap();
    /// let lines = timely::example(move |scope| {
    ///     let ckpt = Checkpoints::new(store.clone(), Schedule { every: 1 }, None, 0, 1);
    ///     let watched =
    ///         scope.watch_dir("lines", &source, &Recovery::default(), &ckpt, &SourceCtx::default());
    ///     watched.lines.capture()
    /// });
    /// let mut all: Vec<String> = lines
    ///     .extract()
    ///     .into_iter()
    ///     .flat_map(|(_, reads)| reads)
    ///     .flat_map(|read| read.lines().map(String::from).collect::<Vec<_>>())
    ///     .collect();
    /// all.sort();
    /// assert_eq!(all, ["one", "two"]);
    /// ```
    fn watch_dir(
        self,
        name: &str,
        source: &DirSource,
        recovery: &Recovery,
        checkpoints: &Checkpoints,
        ctx: &SourceCtx,
    ) -> Watched<'s>;
}

/// What a [`WatchDir`] source gives.
pub struct Watched<'s> {
    /// The lines, as each read took them from a file, stamped with the
    /// epochs that read them.
    pub lines: StreamVec<'s, u64, Lines>,
    /// The acknowledgements for the checkpoint coordinator.
    pub acks: StreamVec<'s, u64, Ack>,
    /// The worker's watermark at the end of every epoch (with event time
    /// only; [`Watermark::End`] once the source stops).
    pub watermarks: StreamVec<'s, u64, Watermark>,
}

impl<'s> WatchDir<'s> for Scope<'s, u64> {
    fn watch_dir(
        self,
        name: &str,
        source: &DirSource,
        recovery: &Recovery,
        checkpoints: &Checkpoints,
        ctx: &SourceCtx,
    ) -> Watched<'s> {
        let (index, peers) = (checkpoints.index, checkpoints.peers);
        let mine = move |key: &str| owns(file_of(key), index, peers);
        let mut reader = Reader::new(
            source.dir.clone(),
            &recovery.positions(name, mine),
            source.event_time.clone(),
        );
        let mut plan = recovery.replay_plan(name, mine);
        checkpoints.participate(name);
        let start = recovery.start();

        let (vote_loop, heard) = self.feedback::<Vec<Vote>>(1);
        let mut builder = OperatorBuilder::new(format!("WatchDir({name})"), self);
        let activator = self.activator_for(builder.operator_info().address);
        let (data_out, lines) = builder.new_output();
        let (ack_out, acks) = builder.new_output();
        let (watermark_out, watermarks) = builder.new_output();
        let (vote_out, votes_out) = builder.new_output();
        // the votes come back to every worker one epoch later; they bound
        // none of the outputs
        let mut heard = builder.new_input_connection(heard, Pipeline, []);
        let mut vote_out =
            OutputBuilder::<u64, CapacityContainerBuilder<Vec<Vote>>>::from(vote_out);
        let mut votes = Votes::new(peers);
        let mut watermark_out =
            OutputBuilder::<u64, CapacityContainerBuilder<Vec<Watermark>>>::from(watermark_out);
        let mut data_out =
            OutputBuilder::<u64, CapacityContainerBuilder<Vec<Lines>>>::from(data_out);
        let mut ack_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Ack>>>::from(ack_out);
        let (source, ctx, name) = (source.clone(), ctx.clone(), name.to_string());
        builder.build(move |mut caps| {
            let mut vote_cap = caps.pop();
            let mut watermark_cap = caps.pop();
            let mut ack_cap = caps.pop();
            let mut data_cap = caps.pop();
            for cap in data_cap
                .iter_mut()
                .chain(ack_cap.iter_mut())
                .chain(watermark_cap.iter_mut())
                .chain(vote_cap.iter_mut())
            {
                cap.downgrade(&start);
            }
            let mut epoch = start;
            move |_frontiers| {
                heard.for_each(|_, heard| heard.drain(..).for_each(|v| votes.hear(v)));
                let (Some(data), Some(ack), Some(at), Some(voting)) = (
                    data_cap.as_mut(),
                    ack_cap.as_mut(),
                    watermark_cap.as_mut(),
                    vote_cap.as_mut(),
                ) else {
                    return;
                };
                let mark = |reader: &Reader, next: u64| {
                    Ack::Source(SourceMark {
                        operator: name.clone(),
                        worker: index,
                        next,
                        positions: reader.positions(),
                    })
                };
                let mut fail = |error: JobError, ack: &Capability<u64>| {
                    ack_out
                        .activate()
                        .session(ack)
                        .give(Ack::Failed(error.to_string()));
                    ctx.failure.set(error);
                };
                if ctx.aborted.get() || ctx.failure.is_set() {
                    if !ctx.aborted.get() {
                        // another operator of this worker failed: stop the job
                        ack_out
                            .activate()
                            .session(&*ack)
                            .give(Ack::Failed("a worker failed".into()));
                    }
                    data_cap = None;
                    ack_cap = None;
                    watermark_cap = None;
                    vote_cap = None;
                    return;
                }
                let mut lines = Vec::new();
                let replayed = plan.remove(&epoch);
                let result = if let Some(targets) = &replayed {
                    // replay: read exactly what this epoch read before
                    reader.replay(epoch, targets, &mut lines)
                } else if !plan.is_empty() {
                    Ok(()) // an epoch before the restore read nothing here
                } else {
                    reader
                        .list(mine)
                        .and_then(|()| reader.read(epoch, READ_BUDGET, &mut lines))
                        .map(|_| ())
                };
                ctx.records_in
                    .add(lines.iter().map(|l| l.count as u64).sum());
                if !lines.is_empty() {
                    data_out
                        .activate()
                        .session(&*data)
                        .give_iterator(lines.drain(..));
                }
                if let Err(error) = result {
                    fail(error, ack);
                    data_cap = None;
                    ack_cap = None;
                    watermark_cap = None;
                    vote_cap = None;
                    return;
                }
                // a replayed epoch ends where it ended before, and so do the
                // epochs up to the last replayed one (none of them reads live)
                let replaying = replayed.is_some() || !plan.is_empty();
                let idle = !reader.unread();
                let now = Instant::now();
                let quiet = !replaying
                    && idle
                    && source
                        .stop_when_idle
                        .is_some_and(|d| now.duration_since(reader.changed) >= d);
                if let Some(vote) = quiet.then(|| votes.quiet(epoch)).flatten() {
                    vote_out.activate().session(&*voting).give(vote);
                }
                let stop = quiet && votes.agreed();
                let left = ctx.clock.left(epoch, start, source.interval);
                if replaying || stop || left.is_zero() {
                    if replayed.is_none() {
                        reader.close(epoch);
                    }
                    ack_out
                        .activate()
                        .session(&*ack)
                        .give(mark(&reader, epoch + 1));
                    let watermark = match reader.watermark(epoch) {
                        Some(_) if stop => Some(Watermark::End),
                        other => other,
                    };
                    if let Some(watermark) = watermark {
                        watermark_out.activate().session(&*at).give(watermark);
                    }
                    epoch += 1;
                    data.downgrade(&epoch);
                    ack.downgrade(&epoch);
                    at.downgrade(&epoch);
                    voting.downgrade(&epoch);
                }
                if stop {
                    ack.downgrade(&FINAL_EPOCH);
                    ack_out.activate().session(&*ack).give(mark(&reader, epoch));
                    vote_out
                        .activate()
                        .session(&*voting)
                        .give(Vote::Stopped(epoch));
                    data_cap = None;
                    ack_cap = None;
                    watermark_cap = None;
                    vote_cap = None;
                } else if replaying || !idle {
                    activator.activate();
                } else {
                    let left = ctx.clock.left(epoch, start, source.interval);
                    activator.activate_after(left.min(POLL));
                }
            }
        });
        votes_out.broadcast().connect_loop(vote_loop);
        Watched {
            lines,
            acks,
            watermarks,
        }
    }
}

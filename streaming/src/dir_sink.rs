//! An exactly-once sink into a directory: one file per (epoch, worker), made
//! visible only once a checkpoint covering its epoch is complete.
//!
//! For each epoch the sink writes its lines to a hidden *pending* file
//! (`.pending-<epoch>-w<worker>.<extension>`: written to a temp name, fsynced,
//! renamed), and acknowledges a checkpoint epoch once every pending file up to
//! it is durable. When the committed stream brings a checkpoint `c`,
//! [`Staged::publish`] renames the pending files of epochs `<= c` to
//! `epoch-<epoch>-w<worker>.<extension>`. A crash
//! leaves only hidden files behind, which [`recover_output`] settles before a
//! restored run starts: pending files of committed epochs are published, the
//! others deleted.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use weir_progress::checkpoint::{Ack, Checkpoints, Committed, FINAL_EPOCH};
use weir_runtime::JobError;
use weir_runtime::exec::RecordCounter;

use weir_runtime::source_ctx::SourceCtx;

/// The extension of [`DirSink`] files of lines of tab-separated values.
pub const TSV: &str = "tsv";

/// The visible name of `epoch`'s output of `worker`.
pub fn output_name(epoch: u64, worker: usize, extension: &str) -> String {
    format!("epoch-{epoch:020}-w{worker:05}.{extension}")
}

fn pending_name(epoch: u64, worker: usize, extension: &str) -> String {
    format!(".pending-{epoch:020}-w{worker:05}.{extension}")
}

/// The epoch, worker and extension of a file's name after `prefix`.
fn parse_name<'a>(name: &'a str, prefix: &str) -> Option<(u64, usize, &'a str)> {
    let (rest, extension) = name.strip_prefix(prefix)?.split_once('.')?;
    let (epoch, worker) = rest.split_once("-w")?;
    Some((epoch.parse().ok()?, worker.parse().ok()?, extension))
}

/// The epoch, worker and extension of a pending file's name.
fn parse_pending(name: &str) -> Option<(u64, usize, &str)> {
    parse_name(name, ".pending-")
}

/// The epoch and worker of a visible output file's name (of any extension).
pub fn parse_output(name: &str) -> Option<(u64, usize)> {
    parse_name(name, "epoch-").map(|(epoch, worker, _)| (epoch, worker))
}

/// Settles what a crashed run left in `dir` before a run starts: pending files
/// of epochs below `committed_before` (covered by a complete checkpoint) become
/// visible, other pending and temp files go. A fresh start (`fresh`) refuses a
/// directory that holds visible output already.
pub fn recover_output(dir: &Path, committed_before: u64, fresh: bool) -> Result<(), JobError> {
    std::fs::create_dir_all(dir).map_err(|e| JobError::io(dir, &e))?;
    let entries = std::fs::read_dir(dir).map_err(|e| JobError::io(dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| JobError::io(dir, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if fresh && parse_output(&name).is_some() {
            return Err(JobError::Invalid(format!(
                "{} holds the output of an earlier run ({name}): restore its checkpoints, \
                 or write to an empty directory",
                dir.display()
            )));
        }
        match parse_pending(&name) {
            Some((epoch, worker, extension)) if epoch < committed_before => {
                let visible = dir.join(output_name(epoch, worker, extension));
                std::fs::rename(&path, &visible).map_err(|e| JobError::io(&visible, &e))?;
            }
            Some(_) => std::fs::remove_file(&path).map_err(|e| JobError::io(&path, &e))?,
            None if name.starts_with(".tmp-") => {
                std::fs::remove_file(&path).map_err(|e| JobError::io(&path, &e))?
            }
            None => {}
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), JobError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JobError::io(dir, &e))
}

/// Where a [`CommitFiles`] sink writes.
#[derive(Clone, Debug)]
pub struct DirSink {
    /// The output directory.
    pub dir: PathBuf,
    /// Epochs below this were made visible by an earlier run (they are being
    /// replayed identically): skip them.
    pub committed_before: u64,
    /// The extension of its files' names ([`TSV`], `json`, ...).
    pub extension: &'static str,
}

/// Writes a stream of lines to a directory, exactly once.
pub trait CommitFiles<'s> {
    /// Writes each epoch's lines to a pending file (see the module doc) and
    /// acknowledges checkpoint epochs once their pending files are durable.
    /// Counts written lines in `written`. Returns the acknowledgements for the
    /// coordinator, and the [`Staged`] files, which
    /// [`Staged::publish`] makes visible as checkpoints complete.
    fn commit_files(
        self,
        name: &str,
        sink: &DirSink,
        checkpoints: &Checkpoints,
        ctx: &SourceCtx,
        written: &RecordCounter,
    ) -> (StreamVec<'s, u64, Ack>, Staged);
}

impl<'s> CommitFiles<'s> for StreamVec<'s, u64, String> {
    fn commit_files(
        self,
        name: &str,
        sink: &DirSink,
        checkpoints: &Checkpoints,
        ctx: &SourceCtx,
        written: &RecordCounter,
    ) -> (StreamVec<'s, u64, Ack>, Staged) {
        checkpoints.participate(name);
        let staged = Staged {
            dir: sink.dir.clone(),
            extension: sink.extension,
            worker: checkpoints.index,
            pending: Rc::default(),
            ctx: ctx.clone(),
        };
        let scope = self.scope();
        let mut builder = OperatorBuilder::new(format!("CommitFiles({name})"), scope);
        let mut data_in = builder.new_input(self, Pipeline);
        let (ack_out, acks) = builder.new_output();
        let mut ack_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Ack>>>::from(ack_out);
        let (sink, ctx, written) = (sink.clone(), ctx.clone(), written.clone());
        let (schedule, index, name) = (checkpoints.schedule, checkpoints.index, name.to_string());
        let pending = Rc::clone(&staged.pending);
        let restored = checkpoints.restored_epoch();
        builder.build(move |mut caps| {
            let mut ack_cap = caps.pop();
            let mut buffered: BTreeMap<u64, Vec<String>> = BTreeMap::new();
            let mut acked: Option<u64> = restored;
            move |frontiers| {
                data_in
                    .for_each_stamp(|cap, data| buffer(&mut buffered, cap.stamp().least(), data));
                let frontier = frontiers[0].frontier().iter().min().copied();
                let Some(cap) = ack_cap.as_mut() else {
                    buffered.clear();
                    return;
                };
                for (epoch, lines) in take_complete(&mut buffered, frontier, sink.committed_before)
                {
                    match write_pending(&sink, epoch, index, &lines) {
                        Ok(()) => {
                            written.add(lines.len() as u64);
                            pending.borrow_mut().insert(epoch);
                        }
                        Err(error) => {
                            ack_out
                                .activate()
                                .session(&*cap)
                                .give(Ack::Failed(error.to_string()));
                            ctx.failure.set(error);
                            ack_cap = None;
                            return;
                        }
                    }
                }
                // everything below the frontier is durable: acknowledge the
                // newest checkpoint epoch below it
                if let Some(c) = schedule.last_before(frontier)
                    && acked.is_none_or(|a| c > a)
                {
                    let time = cap.delayed(&c);
                    ack_out.activate().session(&time).give(Ack::Output {
                        operator: name.clone(),
                        worker: index,
                    });
                    acked = Some(c);
                }
                match frontier {
                    Some(f) => cap.downgrade(&schedule.next_from(f).max(*cap.time())),
                    None if acked == Some(FINAL_EPOCH) => ack_cap = None,
                    None => {}
                }
            }
        });
        (acks, staged)
    }
}

/// The pending files of one worker's sink, waiting for their checkpoints.
pub struct Staged {
    dir: PathBuf,
    extension: &'static str,
    worker: usize,
    pending: Rc<RefCell<BTreeSet<u64>>>,
    ctx: SourceCtx,
}

impl Staged {
    /// Makes the pending files of epochs `<= c` visible when `committed` brings
    /// checkpoint `c`; on [`Committed::Abort`] tells the worker's sources to stop. The
    /// result's frontier passes an epoch once its files are visible.
    pub fn publish<'s>(self, committed: StreamVec<'s, u64, Committed>) -> StreamVec<'s, u64, ()> {
        let Staged {
            dir,
            extension,
            worker,
            pending,
            ctx,
        } = self;
        committed.unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Pipeline,
            "Publish",
            move |_, _| {
                move |input, _output| {
                    let mut newest = None;
                    input.for_each_stamp(|_, data| {
                        newest = newest.max(ctx.newest_committed(data.flat_map(|b| b.iter())));
                    });
                    if ctx.aborted.get() || ctx.failure.is_set() {
                        return;
                    }
                    let files = (dir.as_path(), extension, worker);
                    if let Err(e) = publish(files, &mut pending.borrow_mut(), newest) {
                        ctx.failure.set(e);
                    }
                }
            },
        )
    }
}

/// Appends the batches of an input stamp (`epoch`) to that epoch's buffer: a
/// sink writes an epoch once the frontier has passed it.
pub(crate) fn buffer<'a, D: 'a>(
    buffered: &mut BTreeMap<u64, Vec<D>>,
    epoch: Option<&u64>,
    batches: impl Iterator<Item = &'a mut Vec<D>>,
) {
    if let Some(&epoch) = epoch {
        let records = buffered.entry(epoch).or_default();
        for batch in batches {
            records.append(batch);
        }
    }
}

/// Takes the buffered epochs below `frontier` (complete: the sink may write
/// them), in order, leaving out empty ones and those below `committed_before`
/// (an earlier run made them visible).
pub(crate) fn take_complete<D>(
    buffered: &mut BTreeMap<u64, Vec<D>>,
    frontier: Option<u64>,
    committed_before: u64,
) -> Vec<(u64, Vec<D>)> {
    let pending = match frontier {
        Some(f) => buffered.split_off(&f),
        None => BTreeMap::new(),
    };
    let complete = std::mem::replace(buffered, pending);
    complete
        .into_iter()
        .filter(|(epoch, records)| *epoch >= committed_before && !records.is_empty())
        .collect()
}

/// Writes `epoch`'s pending file durably.
fn write_pending(
    sink: &DirSink,
    epoch: u64,
    worker: usize,
    lines: &[String],
) -> Result<(), JobError> {
    let dir = &sink.dir;
    let target = dir.join(pending_name(epoch, worker, sink.extension));
    let tmp = dir.join(format!(".tmp-{epoch:020}-w{worker:05}"));
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        for line in lines {
            file.write_all(line.as_bytes())?;
            file.write_all(b"\n")?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    write().map_err(|e| JobError::io(&tmp, &e))?;
    std::fs::rename(&tmp, &target).map_err(|e| JobError::io(&target, &e))?;
    sync_dir(dir)
}

/// Makes `worker`'s pending files (of `extension`) in `dir` of epochs `<=
/// committed` visible.
fn publish(
    (dir, extension, worker): (&Path, &str, usize),
    pending: &mut BTreeSet<u64>,
    committed: Option<u64>,
) -> Result<(), JobError> {
    let Some(committed) = committed else {
        return Ok(());
    };
    let mut any = false;
    while let Some(&epoch) = pending.first() {
        if epoch > committed {
            break;
        }
        let visible = dir.join(output_name(epoch, worker, extension));
        std::fs::rename(dir.join(pending_name(epoch, worker, extension)), &visible)
            .map_err(|e| JobError::io(&visible, &e))?;
        pending.pop_first();
        any = true;
    }
    if any { sync_dir(dir) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_pending(&pending_name(17, 3, TSV)), Some((17, 3, TSV)));
        assert_eq!(parse_output(&output_name(17, 3, "json")), Some((17, 3)));
        assert_eq!(parse_pending("epoch-1-w1.tsv"), None);
    }

    #[test]
    fn recovery_publishes_committed_pending_files_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirSink {
            dir: dir.path().to_owned(),
            committed_before: 0,
            extension: "json",
        };
        write_pending(&sink, 4, 0, &["a\t1".into()]).unwrap();
        write_pending(&sink, 5, 1, &["b\t1".into()]).unwrap();
        std::fs::write(dir.path().join(".tmp-00000000000000000006-w00000"), "x").unwrap();
        recover_output(dir.path(), 5, false).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![output_name(4, 0, "json")]);
        let err = recover_output(dir.path(), 0, true).unwrap_err();
        assert!(
            err.to_string()
                .contains("holds the output of an earlier run"),
            "{err}"
        );
    }
}

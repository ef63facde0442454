//! A source that watches a directory for new files and reads their lines, with
//! its (file, byte offset) positions in every checkpoint.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Scope, StreamVec};
use weir_progress::checkpoint::{Ack, Checkpoints, FINAL_EPOCH};
use weir_progress::recovery::Recovery;
use weir_progress::route::key_hash;
use weir_progress::store::SourceMark;
use weir_runtime::JobError;

use weir_runtime::source_ctx::SourceCtx;

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
    /// Stop once no new file has appeared for this long and every file is read.
    pub stop_when_idle: Option<Duration>,
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
    /// positions ([`Ack::Source`]), so the checkpoint of that epoch records them.
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
    /// };
    /// let store = CheckpointStore::local(checkpoints.path()).unwrap();
    /// let lines = timely::example(move |scope| {
    ///     let ckpt = Checkpoints::new(store.clone(), Schedule { every: 1 }, None, 0, 1);
    ///     let (lines, _acks) =
    ///         scope.watch_dir("lines", &source, &Recovery::default(), &ckpt, &SourceCtx::default());
    ///     lines.capture()
    /// });
    /// let mut all: Vec<String> = lines.extract().into_iter().flat_map(|(_, l)| l).collect();
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
    ) -> (StreamVec<'s, u64, String>, StreamVec<'s, u64, Ack>);
}

impl<'s> WatchDir<'s> for Scope<'s, u64> {
    fn watch_dir(
        self,
        name: &str,
        source: &DirSource,
        recovery: &Recovery,
        checkpoints: &Checkpoints,
        ctx: &SourceCtx,
    ) -> (StreamVec<'s, u64, String>, StreamVec<'s, u64, Ack>) {
        let (index, peers) = (checkpoints.index, checkpoints.peers);
        let mine = move |f: &str| owns(f, index, peers);
        let mut reader = Reader {
            dir: source.dir.clone(),
            positions: recovery.positions(name, mine),
            sizes: BTreeMap::new(),
            names: 0,
            changed: Instant::now(),
            listed: None,
        };
        let mut plan = recovery.replay_plan(name, mine);
        checkpoints.participate(name);
        let start = recovery.start();

        let mut builder = OperatorBuilder::new(format!("WatchDir({name})"), self);
        let activator = self.activator_for(builder.operator_info().address);
        let (data_out, lines) = builder.new_output();
        let (ack_out, acks) = builder.new_output();
        let mut data_out =
            OutputBuilder::<u64, CapacityContainerBuilder<Vec<String>>>::from(data_out);
        let mut ack_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Ack>>>::from(ack_out);
        let (source, ctx, name) = (source.clone(), ctx.clone(), name.to_string());
        builder.build(move |mut caps| {
            let mut ack_cap = caps.pop();
            let mut data_cap = caps.pop();
            for cap in data_cap.iter_mut().chain(ack_cap.iter_mut()) {
                cap.downgrade(&start);
            }
            let mut epoch = start;
            move |_frontiers| {
                let (Some(data), Some(ack)) = (data_cap.as_mut(), ack_cap.as_mut()) else {
                    return;
                };
                let mark = |reader: &Reader, next: u64| {
                    Ack::Source(SourceMark {
                        operator: name.clone(),
                        worker: index,
                        next,
                        positions: reader.positions.clone(),
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
                        .and_then(|()| reader.read(READ_BUDGET, &mut lines))
                        .map(|_| ())
                };
                ctx.records_in.add(lines.len() as u64);
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
                    return;
                }
                // a replayed epoch ends where it ended before, and so do the
                // epochs up to the last replayed one (none of them reads live)
                let replaying = replayed.is_some() || !plan.is_empty();
                let idle = !reader.unread();
                let now = Instant::now();
                let stop = !replaying
                    && idle
                    && source
                        .stop_when_idle
                        .is_some_and(|d| now.duration_since(reader.changed) >= d);
                let left = ctx.clock.left(epoch, start, source.interval);
                if replaying || stop || left.is_zero() {
                    ack_out
                        .activate()
                        .session(&*ack)
                        .give(mark(&reader, epoch + 1));
                    epoch += 1;
                    data.downgrade(&epoch);
                    ack.downgrade(&epoch);
                }
                if stop {
                    ack.downgrade(&FINAL_EPOCH);
                    ack_out.activate().session(&*ack).give(mark(&reader, epoch));
                    data_cap = None;
                    ack_cap = None;
                } else if replaying || !idle {
                    activator.activate();
                } else {
                    let left = ctx.clock.left(epoch, start, source.interval);
                    activator.activate_after(left.min(POLL));
                }
            }
        });
        (lines, acks)
    }
}

/// The files of one worker and how far each is read.
struct Reader {
    dir: PathBuf,
    /// Bytes read so far, per owned file name.
    positions: BTreeMap<String, u64>,
    /// Sizes of owned files at the last listing.
    sizes: BTreeMap<String, u64>,
    /// Files in the directory (any owner) at the last listing.
    names: usize,
    /// When the listing last changed.
    changed: Instant,
    /// When the directory was last listed.
    listed: Option<Instant>,
}

impl Reader {
    /// Lists the directory: new files start at position 0. While files are
    /// still being read, at most once per [`POLL`] (not on every read).
    fn list(&mut self, owns: impl Fn(&str) -> bool) -> Result<(), JobError> {
        if self.unread() && self.listed.is_some_and(|t| t.elapsed() < POLL) {
            return Ok(());
        }
        self.listed = Some(Instant::now());
        let entries = std::fs::read_dir(&self.dir).map_err(|e| JobError::io(&self.dir, &e))?;
        let mut names = 0;
        for entry in entries {
            let entry = entry.map_err(|e| JobError::io(&self.dir, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let meta = entry
                .metadata()
                .map_err(|e| JobError::io(entry.path(), &e))?;
            if !meta.is_file() {
                continue;
            }
            names += 1;
            if owns(&name) {
                let position = *self.positions.entry(name.clone()).or_insert(0);
                if meta.len() < position {
                    return Err(JobError::Io {
                        path: entry.path().display().to_string(),
                        message: format!(
                            "has {} bytes, but {position} were read already: files in a watched \
                             directory must not change once they appear",
                            meta.len()
                        ),
                    });
                }
                self.sizes.insert(name, meta.len());
            }
        }
        if names != self.names {
            self.names = names;
            self.changed = Instant::now();
        }
        Ok(())
    }

    /// Whether an owned file has bytes not read yet.
    fn unread(&self) -> bool {
        self.sizes
            .iter()
            .any(|(name, &size)| self.positions.get(name).is_some_and(|&p| p < size))
    }

    /// Reads whole lines of unread files, about `budget` bytes in all.
    fn read(&mut self, budget: usize, lines: &mut Vec<String>) -> Result<usize, JobError> {
        let mut read = 0;
        let names: Vec<(String, u64)> = self.sizes.iter().map(|(n, &s)| (n.clone(), s)).collect();
        for (name, size) in names {
            let position = self.positions.get(&name).copied().unwrap_or(0);
            if position >= size || read >= budget {
                continue;
            }
            let limit = (size - position).min((budget - read) as u64);
            let next = read_lines(&self.dir.join(&name), position, limit, size, lines)?;
            read += (next - position) as usize;
            self.positions.insert(name, next);
        }
        Ok(read)
    }

    /// Reads each file up to its position in `targets` (the end of `epoch` in
    /// the run being replayed).
    fn replay(
        &mut self,
        epoch: u64,
        targets: &BTreeMap<String, u64>,
        lines: &mut Vec<String>,
    ) -> Result<(), JobError> {
        for (name, &target) in targets {
            let position = self.positions.get(name).copied().unwrap_or(0);
            if target <= position {
                self.positions.insert(name.clone(), position);
                continue;
            }
            let path = self.dir.join(name);
            let size = std::fs::metadata(&path)
                .map_err(|e| JobError::io(&path, &e))?
                .len();
            if size < target {
                return Err(JobError::Io {
                    path: path.display().to_string(),
                    message: format!(
                        "has {size} bytes, but epoch {epoch} read it up to byte {target} \
                         before the restore: it cannot be replayed"
                    ),
                });
            }
            let next = read_lines(&path, position, target - position, size, lines)?;
            self.positions.insert(name.clone(), next);
            self.sizes.insert(name.clone(), size);
        }
        Ok(())
    }
}

/// Reads the lines that start in `[position, position + limit)` of `path` (a
/// file of `size` bytes) and returns the position after the last whole line
/// (the end of the file ends a line). A line longer than `limit` is read whole.
fn read_lines(
    path: &Path,
    position: u64,
    limit: u64,
    size: u64,
    lines: &mut Vec<String>,
) -> Result<u64, JobError> {
    let io = |e: std::io::Error| JobError::io(path, &e);
    let mut file = File::open(path).map_err(io)?;
    file.seek(SeekFrom::Start(position)).map_err(io)?;
    let mut bytes = Vec::new();
    let mut want = limit;
    let end = loop {
        let have = bytes.len() as u64;
        (&mut file)
            .take(want.saturating_sub(have).max(1))
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if position + bytes.len() as u64 >= size {
            break bytes.len();
        }
        if let Some(last) = bytes.iter().rposition(|&b| b == b'\n') {
            break last + 1;
        }
        want = want.max(1) * 2;
    };
    let text = std::str::from_utf8(&bytes[..end]).map_err(|e| JobError::Malformed {
        position: format!(
            "{}:byte {}",
            path.display(),
            position + e.valid_up_to() as u64
        ),
        message: "not UTF-8 text".into(),
        remedy: None,
    })?;
    lines.extend(
        text.lines()
            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()),
    );
    Ok(position + end as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_lines_and_resumes_after_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "ab\ncd\nlast").unwrap();
        let mut lines = Vec::new();
        let next = read_lines(&path, 0, 4, 10, &mut lines).unwrap();
        assert_eq!((next, lines.clone()), (3, vec!["ab".to_string()]));
        let next = read_lines(&path, next, 1, 10, &mut lines).unwrap();
        assert_eq!(next, 6, "a line longer than the limit is read whole");
        let next = read_lines(&path, next, 100, 10, &mut lines).unwrap();
        assert_eq!(
            (next, lines),
            (10, vec!["ab".into(), "cd".into(), "last".into()])
        );
    }

    #[test]
    fn bad_utf8_names_the_file_and_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, b"ok\n\xff\xfe\n").unwrap();
        let err = read_lines(&path, 0, 100, 6, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("bin:byte 3"), "{err}");
    }
}

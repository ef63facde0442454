//! One worker's files of a watched directory: how far each is read and,
//! when lines carry event time, how far each has come in event time.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Instant;

use weir_runtime::JobError;

use super::lines::Lines;
use super::{LineTime, POLL};
use crate::event_time::json_time;
use crate::window::Watermark;

/// The fewest bytes a file is given of a read's budget.
const MIN_SHARE: usize = 64 << 10;

/// Where a file stands in event time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct FileTime {
    /// The largest event time of its lines read so far.
    max: Option<u64>,
    /// The last epoch in which it had lines read or bytes unread.
    seen: u64,
}

/// What a key of the source's positions holds: a file's position, or its
/// event-time state (`max/<file>`, `seen/<file>`: a file name holds no `/`).
enum Key<'a> {
    Position(&'a str),
    Max(&'a str),
    Seen(&'a str),
}

impl<'a> Key<'a> {
    fn of(key: &'a str) -> Key<'a> {
        if let Some(file) = key.strip_prefix("max/") {
            Key::Max(file)
        } else if let Some(file) = key.strip_prefix("seen/") {
            Key::Seen(file)
        } else {
            Key::Position(key)
        }
    }
}

/// The file a key of the source's positions is about.
pub(super) fn file_of(key: &str) -> &str {
    match Key::of(key) {
        Key::Position(f) | Key::Max(f) | Key::Seen(f) => f,
    }
}

/// The files of one worker and how far each is read.
pub(super) struct Reader {
    pub(super) dir: PathBuf,
    /// Bytes read so far, per owned file name.
    positions: BTreeMap<String, u64>,
    /// Where each owned file stands in event time (with event time only).
    times: BTreeMap<String, FileTime>,
    /// The event time of lines, if they carry one.
    time: Option<LineTime>,
    /// Sizes of owned files at the last listing.
    sizes: BTreeMap<String, u64>,
    /// Files in the directory (any owner) at the last listing.
    names: usize,
    /// When the listing last changed.
    pub(super) changed: Instant,
    /// When the directory was last listed.
    listed: Option<Instant>,
}

impl Reader {
    /// A reader of `dir` resuming from `restored` (positions and event-time
    /// state, as [`Reader::positions`] gives them).
    pub(super) fn new(
        dir: PathBuf,
        restored: &BTreeMap<String, u64>,
        time: Option<LineTime>,
    ) -> Reader {
        let mut reader = Reader {
            dir,
            positions: BTreeMap::new(),
            times: BTreeMap::new(),
            time,
            sizes: BTreeMap::new(),
            names: 0,
            changed: Instant::now(),
            listed: None,
        };
        reader.restore(restored);
        reader
    }

    /// Takes the positions and event-time state of `marks`.
    fn restore(&mut self, marks: &BTreeMap<String, u64>) {
        for (key, &value) in marks {
            match Key::of(key) {
                Key::Position(file) => {
                    self.positions.insert(file.to_string(), value);
                }
                Key::Max(file) => self.times.entry(file.to_string()).or_default().max = Some(value),
                Key::Seen(file) => self.times.entry(file.to_string()).or_default().seen = value,
            }
        }
    }

    /// The positions to record in a checkpoint, with the event-time state.
    pub(super) fn positions(&self) -> BTreeMap<String, u64> {
        let mut marks = self.positions.clone();
        for (file, time) in &self.times {
            marks.insert(format!("seen/{file}"), time.seen);
            if let Some(max) = time.max {
                marks.insert(format!("max/{file}"), max);
            }
        }
        marks
    }

    /// Lists the directory: new files start at position 0. While files are
    /// still being read, at most once per [`POLL`] (not on every read).
    pub(super) fn list(&mut self, owns: impl Fn(&str) -> bool) -> Result<(), JobError> {
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
    pub(super) fn unread(&self) -> bool {
        self.sizes
            .iter()
            .any(|(name, &size)| self.positions.get(name).is_some_and(|&p| p < size))
    }

    /// Reads whole lines of unread files, about `budget` bytes in all,
    /// shared among them (so that files read together come forward in
    /// event time together), in `epoch`.
    pub(super) fn read(
        &mut self,
        epoch: u64,
        budget: usize,
        lines: &mut Vec<Lines>,
    ) -> Result<usize, JobError> {
        let unread: Vec<(String, u64, u64)> = self
            .sizes
            .iter()
            .filter_map(|(name, &size)| {
                let position = self.positions.get(name).copied().unwrap_or(0);
                (position < size).then(|| (name.clone(), position, size))
            })
            .collect();
        let share = (budget / unread.len().max(1)).max(MIN_SHARE) as u64;
        let mut read = 0;
        for (name, position, size) in unread {
            if read >= budget {
                break;
            }
            let limit = (size - position).min(share);
            let next = self.read_file(&name, epoch, (position, limit, size), lines)?;
            read += (next - position) as usize;
        }
        Ok(read)
    }

    /// Reads each file up to its position in `targets` (the end of `epoch` in
    /// the run being replayed), and takes the event-time state the epoch
    /// ended with.
    pub(super) fn replay(
        &mut self,
        epoch: u64,
        targets: &BTreeMap<String, u64>,
        lines: &mut Vec<Lines>,
    ) -> Result<(), JobError> {
        for (key, &target) in targets {
            let Key::Position(name) = Key::of(key) else {
                continue;
            };
            let position = self.positions.get(name).copied().unwrap_or(0);
            if target <= position {
                self.positions.insert(name.to_string(), position);
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
            self.read_file(name, epoch, (position, target - position, size), lines)?;
            self.sizes.insert(name.to_string(), size);
        }
        self.restore(targets);
        Ok(())
    }

    /// Reads the lines of file `name` in `[position, position + limit)` (of
    /// a file of `size` bytes) in `epoch`; returns the position after them.
    fn read_file(
        &mut self,
        name: &str,
        epoch: u64,
        (position, limit, size): (u64, u64, u64),
        lines: &mut Vec<Lines>,
    ) -> Result<u64, JobError> {
        let field = self.time.as_ref().map(|t| t.field.as_str());
        let read = read_lines(&self.dir, name, (position, limit, size), field)?;
        let next = position + read.text.len() as u64;
        self.positions.insert(name.to_string(), next);
        if self.time.is_some() {
            let time = self.times.entry(name.to_string()).or_default();
            time.max = time.max.max(read.times.iter().copied().max());
            time.seen = epoch;
        }
        if !read.text.is_empty() {
            lines.push(read);
        }
        Ok(next)
    }

    /// Ends live `epoch`: a file with bytes unread holds event time.
    pub(super) fn close(&mut self, epoch: u64) {
        if self.time.is_none() {
            return;
        }
        for (name, &size) in &self.sizes {
            if self.positions.get(name).is_some_and(|&p| p < size) {
                self.times.entry(name.clone()).or_default().seen = epoch;
            }
        }
    }

    /// This worker's watermark after `epoch`: the smallest event time of the
    /// files read or unread in the last `idle_epochs` epochs (less the
    /// allowed disorder; a file of those not read yet holds it back), or,
    /// when every file is idle, the largest any of them reached. `None`
    /// without event time.
    pub(super) fn watermark(&self, epoch: u64) -> Option<Watermark> {
        let time = self.time.as_ref()?;
        let mut at: Option<u64> = None;
        let mut through: Option<u64> = None;
        for state in self.times.values() {
            let reached = state
                .max
                .map(|t| t.saturating_sub(time.out_of_orderness_ms));
            if epoch.saturating_sub(state.seen) >= time.idle_epochs.max(1) {
                through = through.max(reached);
                continue;
            }
            let Some(t) = reached else {
                return Some(Watermark::Pending);
            };
            at = Some(at.map_or(t, |a| a.min(t)));
        }
        Some(at.map_or(Watermark::Idle { through }, Watermark::At))
    }
}

/// Reads the lines that start in `[position, position + limit)` of file
/// `name` of `dir` (a file of `size` bytes), up to the end of the last whole
/// line (the end of the file ends a line; a line longer than `limit` is read
/// whole). With an event-time `field`, it takes each line's event time,
/// blank lines left out; a line without one is an error naming its byte.
fn read_lines(
    dir: &Path,
    name: &str,
    (position, limit, size): (u64, u64, u64),
    field: Option<&str>,
) -> Result<Lines, JobError> {
    let path = dir.join(name);
    let io = |e: std::io::Error| JobError::io(&path, &e);
    let mut file = File::open(&path).map_err(io)?;
    file.seek(SeekFrom::Start(position)).map_err(io)?;
    let mut want = limit.min(size.saturating_sub(position));
    // room for all it reads at once: growing it would copy
    let mut bytes = Vec::with_capacity(usize::try_from(want).unwrap_or(0).saturating_add(1));
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
    bytes.truncate(end);
    let malformed = |at: u64, message: String| JobError::Malformed {
        position: format!("{}:byte {}", path.display(), position + at),
        message,
        remedy: None,
    };
    let text = String::from_utf8(bytes)
        .map_err(|e| malformed(e.utf8_error().valid_up_to() as u64, "not UTF-8 text".into()))?;
    let mut lines = Lines {
        file: name.to_string(),
        start: position,
        text,
        times: Vec::new(),
        count: 0,
    };
    match field {
        None => lines.count = lines.lines().count(),
        Some(field) => {
            let mut times = Vec::new();
            for (at, line) in lines.lines_at() {
                let time = json_time(line.as_bytes(), field).ok_or_else(|| {
                    malformed(
                        at - position,
                        format!(
                            "no event time: the line is not a JSON object whose field '{field}' \
                             holds milliseconds (a whole number, or one in a string)"
                        ),
                    )
                })?;
                times.push(time);
            }
            lines.count = times.len();
            lines.times = times;
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(dir: &Path, at: (u64, u64, u64), lines: &mut Vec<String>) -> u64 {
        let read = read_lines(dir, "f", at, None).unwrap();
        assert_eq!(read.count, read.lines().count());
        lines.extend(read.lines().map(String::from));
        at.0 + read.text.len() as u64
    }

    #[test]
    fn reads_whole_lines_and_resumes_after_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "ab\ncd\nlast").unwrap();
        let mut lines = Vec::new();
        let next = lines_of(dir.path(), (0, 4, 10), &mut lines);
        assert_eq!((next, lines.clone()), (3, vec!["ab".to_string()]));
        let next = lines_of(dir.path(), (next, 1, 10), &mut lines);
        assert_eq!(next, 6, "a line longer than the limit is read whole");
        let next = lines_of(dir.path(), (next, 100, 10), &mut lines);
        assert_eq!(
            (next, lines),
            (10, vec!["ab".into(), "cd".into(), "last".into()])
        );
    }

    #[test]
    fn bad_utf8_names_the_file_and_byte() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bin"), b"ok\n\xff\xfe\n").unwrap();
        let err = read_lines(dir.path(), "bin", (0, 100, 6), None).unwrap_err();
        assert!(err.to_string().contains("bin:byte 3"), "{err}");
    }

    #[test]
    fn a_line_without_event_time_names_its_byte() {
        let dir = tempfile::tempdir().unwrap();
        let name = "events.json";
        let text = "{\"t\": 5}\r\n\n{\"t\": \"7\"}\n{\"x\": 1}\n";
        std::fs::write(dir.path().join(name), text).unwrap();
        let size = text.len() as u64;
        let read = read_lines(dir.path(), name, (0, 22, size), Some("t")).unwrap();
        let next = read.text.len() as u64;
        assert_eq!((next, &read.times[..], read.count), (22, &[5, 7][..], 2));
        let err = read_lines(dir.path(), name, (next, 100, size), Some("t")).unwrap_err();
        assert!(err.to_string().contains("events.json:byte 22"), "{err}");
    }

    #[test]
    fn files_read_together_share_each_read() {
        let dir = tempfile::tempdir().unwrap();
        let line = "x".repeat(99);
        let text = format!("{line}\n").repeat(20_000); // 2 MB
        std::fs::write(dir.path().join("a"), &text).unwrap();
        std::fs::write(dir.path().join("b"), &text).unwrap();
        let mut reader = Reader::new(dir.path().to_owned(), &BTreeMap::new(), None);
        reader.list(|_| true).unwrap();
        let read = reader.read(0, 1 << 20, &mut Vec::new()).unwrap();
        assert!(read.abs_diff(1 << 20) <= 200, "{read}");
        // half of the budget each, not all of it to the first file
        let (a, b) = (reader.positions["a"], reader.positions["b"]);
        assert!(a.abs_diff(b) <= 100 && a > 0, "{a} {b}");
    }

    #[test]
    fn files_hold_event_time_until_read_and_keep_what_they_read_when_idle() {
        let dir = tempfile::tempdir().unwrap();
        let time = LineTime {
            field: "t".into(),
            out_of_orderness_ms: 10,
            idle_epochs: 2,
        };
        let mut reader = Reader::new(dir.path().to_owned(), &BTreeMap::new(), Some(time));
        // nothing yet: idle, without a time
        assert_eq!(reader.watermark(0), Some(Watermark::Idle { through: None }));
        std::fs::write(dir.path().join("a"), "{\"t\": 100}\n").unwrap();
        std::fs::write(dir.path().join("b"), "{\"t\": 50}\n").unwrap();
        reader.list(|_| true).unwrap();
        // listed, not read: both hold event time back
        reader.close(0);
        assert_eq!(reader.watermark(0), Some(Watermark::Pending));
        reader.read(1, 1 << 20, &mut Vec::new()).unwrap();
        reader.close(1);
        assert_eq!(reader.watermark(1), Some(Watermark::At(40)));
        assert_eq!(reader.watermark(2), Some(Watermark::At(40)));
        // quiet for two epochs: idle, keeping the most either read
        assert_eq!(
            reader.watermark(3),
            Some(Watermark::Idle { through: Some(90) })
        );
        // the state survives a restore, and a replayed epoch takes its marks
        let restored = Reader::new(
            dir.path().to_owned(),
            &reader.positions(),
            reader.time.clone(),
        );
        assert_eq!(restored.watermark(3), reader.watermark(3));
        assert_eq!(restored.times, reader.times);
        let mut replayed =
            Reader::new(dir.path().to_owned(), &BTreeMap::new(), reader.time.clone());
        replayed
            .replay(1, &reader.positions(), &mut Vec::new())
            .unwrap();
        assert_eq!(replayed.times, reader.times);
        // without event time, no watermarks
        let untimed = Reader::new(dir.path().to_owned(), &BTreeMap::new(), None);
        assert_eq!(untimed.watermark(0), None);
    }
}

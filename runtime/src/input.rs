//! Line inputs split across all workers of all processes.
//!
//! Files are cut into one contiguous byte range per worker (global worker index over
//! all processes), Hadoop style: a worker reads the lines that *start* inside its
//! range, so no line is lost or read twice and no worker reads a whole file. A
//! generated input is cut into ranges of line indices the same way.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::JobError;
use crate::generate::{Generator, LineMaker};

/// Where a job's lines come from.
#[derive(Clone, Debug)]
pub enum LineInput {
    /// These files, in order.
    Files(Vec<PathBuf>),
    /// A seeded generator (the embedded default of a job).
    Generated(Generator),
}

/// Where a line is: input number (file index) and byte offset, or line index for
/// generated input. Turned into `file:line` text only when an error is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinePos {
    /// Index of the file in the input.
    pub file: usize,
    /// Byte offset of the line's first byte (files) or the line index (generated).
    pub offset: u64,
}

impl LineInput {
    /// Checks that every file exists and is a readable regular file; returns the
    /// total size in bytes (generated inputs: an estimate from the line count).
    pub fn validate(&self) -> Result<u64, JobError> {
        match self {
            LineInput::Files(files) => {
                if files.is_empty() {
                    return Err(JobError::Invalid("no input files given".into()));
                }
                let mut total = 0;
                for path in files {
                    let meta = std::fs::metadata(path).map_err(|e| JobError::io(path, &e))?;
                    if !meta.is_file() {
                        return Err(JobError::Io {
                            path: path.display().to_string(),
                            message: "not a regular file".into(),
                        });
                    }
                    File::open(path).map_err(|e| JobError::io(path, &e))?;
                    total += meta.len();
                }
                Ok(total)
            }
            LineInput::Generated(g) => Ok(g.lines().saturating_mul(64)),
        }
    }

    /// The number of lines, where it is known without reading (generated input).
    pub fn known_lines(&self) -> Option<u64> {
        match self {
            LineInput::Files(_) => None,
            LineInput::Generated(g) => Some(g.lines()),
        }
    }

    /// What the input is, for summaries.
    pub fn describe(&self) -> String {
        match self {
            LineInput::Files(files) => files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            LineInput::Generated(g) => g.describe(),
        }
    }

    /// The reader of worker `index` out of `peers`.
    pub fn reader(&self, index: usize, peers: usize) -> Result<LineReader, JobError> {
        match self {
            LineInput::Files(files) => {
                let mut sizes = Vec::with_capacity(files.len());
                for path in files {
                    let meta = std::fs::metadata(path).map_err(|e| JobError::io(path, &e))?;
                    sizes.push(meta.len());
                }
                let total: u64 = sizes.iter().sum();
                let (lo, hi) = share(total, index, peers);
                let mut pieces = Vec::new();
                let mut start = 0u64;
                for (file, size) in sizes.iter().enumerate() {
                    let end = start + size;
                    let (a, b) = (lo.max(start), hi.min(end));
                    if a < b {
                        pieces.push((file, a - start, b - start));
                    }
                    start = end;
                }
                pieces.reverse();
                Ok(LineReader {
                    kind: ReaderKind::Files {
                        files: Arc::new(files.clone()),
                        pieces,
                        current: None,
                        bytes: Vec::new(),
                    },
                })
            }
            LineInput::Generated(g) => {
                let (lo, hi) = share(g.lines(), index, peers);
                Ok(LineReader {
                    kind: ReaderKind::Generated {
                        maker: Box::new(g.maker()),
                        name: match g {
                            Generator::Text(_) => "generated text",
                            Generator::Table(_) => "generated table",
                        },
                        next: lo,
                        end: hi,
                    },
                })
            }
        }
    }
}

/// The range `[lo, hi)` of `total` that worker `index` of `peers` owns.
pub fn share(total: u64, index: usize, peers: usize) -> (u64, u64) {
    let part = |i: usize| (u128::from(total) * i as u128 / peers.max(1) as u128) as u64;
    (part(index), part(index + 1))
}

/// Reads the lines of one worker's share, in order.
pub struct LineReader {
    kind: ReaderKind,
}

enum ReaderKind {
    Files {
        files: Arc<Vec<PathBuf>>,
        /// Remaining (file, start, end) pieces, last first.
        pieces: Vec<(usize, u64, u64)>,
        /// The piece being read: file, reader, offset of the next line, end.
        current: Option<(usize, BufReader<File>, u64, u64)>,
        bytes: Vec<u8>,
    },
    Generated {
        maker: Box<LineMaker>,
        name: &'static str,
        next: u64,
        end: u64,
    },
}

const READ_BUFFER: usize = 1 << 20;

impl LineReader {
    /// Reads the next line (without its line terminator) into `line` and returns its
    /// position, or `None` at the end of this worker's share.
    pub fn next_line(&mut self, line: &mut String) -> Result<Option<LinePos>, JobError> {
        match &mut self.kind {
            ReaderKind::Generated {
                maker, next, end, ..
            } => {
                if *next >= *end {
                    return Ok(None);
                }
                maker.line(*next, line);
                *next += 1;
                Ok(Some(LinePos {
                    file: 0,
                    offset: *next - 1,
                }))
            }
            ReaderKind::Files {
                files,
                pieces,
                current,
                bytes,
            } => loop {
                if current.is_none() {
                    let Some((file, start, end)) = pieces.pop() else {
                        return Ok(None);
                    };
                    let path = &files[file];
                    let handle = File::open(path).map_err(|e| JobError::io(path, &e))?;
                    let mut reader = BufReader::with_capacity(READ_BUFFER, handle);
                    let mut offset = start;
                    if start > 0 {
                        // Skip the line that began in the previous worker's range.
                        reader
                            .seek(SeekFrom::Start(start - 1))
                            .map_err(|e| JobError::io(path, &e))?;
                        bytes.clear();
                        let n = reader
                            .read_until(b'\n', bytes)
                            .map_err(|e| JobError::io(path, &e))?;
                        offset = start - 1 + n as u64;
                    }
                    *current = Some((file, reader, offset, end));
                }
                let Some((file, reader, offset, end)) = current.as_mut() else {
                    continue;
                };
                if *offset >= *end {
                    *current = None;
                    continue;
                }
                bytes.clear();
                let n = reader
                    .read_until(b'\n', bytes)
                    .map_err(|e| JobError::io(&files[*file], &e))?;
                if n == 0 {
                    *current = None;
                    continue;
                }
                let pos = LinePos {
                    file: *file,
                    offset: *offset,
                };
                *offset += n as u64;
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                }
                line.clear();
                match std::str::from_utf8(bytes) {
                    Ok(text) => line.push_str(text),
                    Err(e) => {
                        return Err(JobError::Malformed {
                            position: self.locate(pos),
                            message: format!(
                                "invalid UTF-8 at byte {} of the line",
                                e.valid_up_to() + 1
                            ),
                            remedy: None,
                        });
                    }
                }
                return Ok(Some(pos));
            },
        }
    }

    /// `file:line` for a position (counts the newlines before it: only done on errors).
    pub fn locate(&self, pos: LinePos) -> String {
        match &self.kind {
            ReaderKind::Generated { name, .. } => format!("{name}:{}", pos.offset + 1),
            ReaderKind::Files { files, .. } => {
                let path = &files[pos.file];
                match line_number(path, pos.offset) {
                    Ok(line) => format!("{}:{line}", path.display()),
                    Err(_) => format!("{} (byte {})", path.display(), pos.offset),
                }
            }
        }
    }
}

fn line_number(path: &Path, offset: u64) -> std::io::Result<u64> {
    let mut reader = BufReader::new(std::io::Read::take(File::open(path)?, offset));
    let mut lines = 1;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(lines);
        }
        lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(input: &LineInput, peers: usize) -> Vec<Vec<String>> {
        (0..peers)
            .map(|i| {
                let mut reader = input.reader(i, peers).unwrap();
                let mut line = String::new();
                let mut out = Vec::new();
                while reader.next_line(&mut line).unwrap().is_some() {
                    out.push(line.clone());
                }
                out
            })
            .collect()
    }

    #[test]
    fn every_line_is_read_once_at_any_worker_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let mut expected = Vec::new();
        for (f, lines) in [7usize, 0, 1, 30].iter().enumerate() {
            let path = dir.path().join(format!("f{f}"));
            let mut file = File::create(&path).unwrap();
            for l in 0..*lines {
                let text = format!("file {f} line {l} {}", "x".repeat(l % 11));
                writeln!(file, "{text}").unwrap();
                expected.push(text);
            }
            paths.push(path);
        }
        // a last line without a newline, with a CR before it elsewhere
        let path = dir.path().join("last");
        std::fs::write(&path, "a\r\nb").unwrap();
        expected.extend(["a".to_string(), "b".to_string()]);
        paths.push(path);
        let input = LineInput::Files(paths);
        for peers in 1..=9 {
            let all: Vec<String> = read_all(&input, peers).into_iter().flatten().collect();
            assert_eq!(all, expected, "peers = {peers}");
        }
    }

    #[test]
    fn invalid_utf8_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.txt");
        std::fs::write(&path, b"ok\nalso ok\nbad \xff here\n").unwrap();
        let mut reader = LineInput::Files(vec![path.clone()]).reader(0, 1).unwrap();
        let mut line = String::new();
        reader.next_line(&mut line).unwrap();
        reader.next_line(&mut line).unwrap();
        let err = reader.next_line(&mut line).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}:3: invalid UTF-8 at byte 5 of the line", path.display())
        );
    }

    #[test]
    fn shares_cover_the_whole_range() {
        for total in [0u64, 1, 5, 1000] {
            for peers in 1..6 {
                let mut next = 0;
                for i in 0..peers {
                    let (lo, hi) = share(total, i, peers);
                    assert_eq!(lo, next);
                    next = hi;
                }
                assert_eq!(next, total);
            }
        }
    }
}

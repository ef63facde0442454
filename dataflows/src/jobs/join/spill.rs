//! Spill files: rows written to a private temporary directory (removed on drop)
//! when a local join strategy exceeds its memory budget.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::Row;
use weir_runtime::error::JobError;

/// Bytes a row is charged against the memory budget: its text plus the overhead
/// of two `String`s and a slot in a vector or hash table.
pub fn row_bytes(row: &Row) -> usize {
    row.0.len() + row.1.len() + 160
}

pub use weir_runtime::spill::SpillDir;

/// Creates a spill file for rows in `dir`.
pub fn create(dir: &mut SpillDir) -> Result<SpillWriter, JobError> {
    let (path, file) = dir.create()?;
    Ok(SpillWriter {
        writer: BufWriter::with_capacity(32 * 1024, file),
        path,
        rows: 0,
        written: dir.written(),
    })
}

/// Appends rows to a spill file.
pub struct SpillWriter {
    writer: BufWriter<File>,
    path: PathBuf,
    rows: u64,
    written: Rc<Cell<u64>>,
}

impl SpillWriter {
    /// Appends a row given as its key and text.
    pub fn push(&mut self, key: &str, text: &str) -> Result<(), JobError> {
        bincode::serialize_into(&mut self.writer, &(key, text)).map_err(|e| self.error(&e))?;
        self.rows += 1;
        Ok(())
    }

    /// Flushes and turns the file into something that can be read (repeatedly).
    pub fn finish(mut self) -> Result<SpillFile, JobError> {
        self.writer
            .flush()
            .map_err(|e| JobError::io(&self.path, &e))?;
        let bytes = self
            .writer
            .get_ref()
            .metadata()
            .map_err(|e| JobError::io(&self.path, &e))?
            .len();
        self.written.set(self.written.get() + bytes);
        Ok(SpillFile {
            path: self.path,
            rows: self.rows,
        })
    }

    fn error(&self, e: &bincode::Error) -> JobError {
        JobError::Io {
            path: self.path.display().to_string(),
            message: format!("writing spill file: {e}"),
        }
    }
}

/// A finished spill file.
#[derive(Debug)]
pub struct SpillFile {
    path: PathBuf,
    rows: u64,
}

impl SpillFile {
    /// Reads the file from its start.
    pub fn read(&self) -> Result<SpillReader, JobError> {
        let file = File::open(&self.path).map_err(|e| JobError::io(&self.path, &e))?;
        Ok(SpillReader {
            reader: BufReader::with_capacity(64 * 1024, file),
            path: self.path.clone(),
            left: self.rows,
        })
    }
}

/// Reads a spill file's rows in order.
pub struct SpillReader {
    reader: BufReader<File>,
    path: PathBuf,
    left: u64,
}

impl SpillReader {
    /// The next row, or `None` after the last.
    pub fn next_row(&mut self) -> Result<Option<Row>, JobError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        bincode::deserialize_from(&mut self.reader)
            .map(Some)
            .map_err(|e| spill_read_error(&self.path, &e))
    }
}

fn spill_read_error(path: &Path, e: &bincode::Error) -> JobError {
    JobError::Io {
        path: path.display().to_string(),
        message: format!("reading spill file: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_the_directory_is_removed() {
        let parent = tempfile::tempdir().unwrap();
        let written = Rc::new(Cell::new(0));
        let mut dir = SpillDir::new(Some(parent.path().to_path_buf()), Rc::clone(&written));
        assert!(!dir.used());
        let mut w = create(&mut dir).unwrap();
        let rows: Vec<Row> = (0..100)
            .map(|i| (format!("k{i}"), format!("v\t{i}")))
            .collect();
        for r in &rows {
            w.push(&r.0, &r.1).unwrap();
        }
        let file = w.finish().unwrap();
        assert!(written.get() > 100 * 8);
        for _ in 0..2 {
            let mut reader = file.read().unwrap();
            let mut back = Vec::new();
            while let Some(r) = reader.next_row().unwrap() {
                back.push(r);
            }
            assert_eq!(back, rows);
        }
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 1);
        drop(dir);
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }
}

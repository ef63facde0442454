//! Where operators spill: a private temporary directory, made on first use
//! and removed on drop, with the bytes written to it counted.

use std::cell::Cell;
use std::fs::File;
use std::path::PathBuf;
use std::rc::Rc;

use crate::error::JobError;

/// A lazily created temporary directory for one worker's spill files.
pub struct SpillDir {
    parent: Option<PathBuf>,
    dir: Option<tempfile::TempDir>,
    next: usize,
    written: Rc<Cell<u64>>,
}

impl SpillDir {
    /// Spill files will go below `parent` (default: the system's temp
    /// directory); `written` counts the bytes written to them.
    pub fn new(parent: Option<PathBuf>, written: Rc<Cell<u64>>) -> Self {
        SpillDir {
            parent,
            dir: None,
            next: 0,
            written,
        }
    }

    /// Creates a new, empty spill file: its path and the file.
    pub fn create(&mut self) -> Result<(PathBuf, File), JobError> {
        let dir = match &self.dir {
            Some(dir) => dir.path().to_path_buf(),
            None => {
                let parent = self.parent.clone().unwrap_or_else(std::env::temp_dir);
                let dir = tempfile::Builder::new()
                    .prefix("weir-spill-")
                    .tempdir_in(&parent)
                    .map_err(|e| JobError::io(&parent, &e))?;
                let path = dir.path().to_path_buf();
                self.dir = Some(dir);
                path
            }
        };
        self.next += 1;
        let path = dir.join(format!("spill-{:06}", self.next));
        let file = File::create(&path).map_err(|e| JobError::io(&path, &e))?;
        Ok((path, file))
    }

    /// Counts `bytes` more written to this directory's files.
    pub fn wrote(&self, bytes: u64) {
        self.written.set(self.written.get() + bytes);
    }

    /// The counter of bytes written, for the writers of this directory.
    pub fn written(&self) -> Rc<Cell<u64>> {
        Rc::clone(&self.written)
    }

    /// Whether anything was spilled.
    pub fn used(&self) -> bool {
        self.dir.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_appears_on_first_use_and_goes_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let written = Rc::new(Cell::new(0));
        let mut dir = SpillDir::new(Some(parent.path().to_path_buf()), Rc::clone(&written));
        assert!(!dir.used());
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
        let (a, _) = dir.create().unwrap();
        let (b, _) = dir.create().unwrap();
        assert_ne!(a, b);
        assert!(a.exists() && b.exists());
        dir.wrote(10);
        assert_eq!(written.get(), 10);
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 1);
        drop(dir);
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }
}

//! Where checkpoint files live. [`LocalFs`] keeps them in a directory; the
//! [`Backend`] trait is what an object store would implement (every operation is
//! an object put, get, list or delete, and `put` is atomic per object there).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::CheckpointError;

/// Storage for checkpoint files, addressed by `/`-separated relative paths.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` at `path` durably: once this returns, a crash does not lose
    /// them, and readers never see a partial file under `path`.
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), CheckpointError>;
    /// Reads the file at `path`.
    fn get(&self, path: &str) -> Result<Vec<u8>, CheckpointError>;
    /// Whether a file exists at `path`.
    fn exists(&self, path: &str) -> bool;
    /// The names of the top-level directories (checkpoint epochs live there).
    fn list_dirs(&self) -> Result<Vec<String>, CheckpointError>;
    /// Deletes the top-level directory `dir` and everything in it.
    fn delete_dir(&self, dir: &str) -> Result<(), CheckpointError>;
    /// The names of the files in the top-level directory `dir`.
    fn list_files(&self, dir: &str) -> Result<Vec<String>, CheckpointError>;
    /// Deletes the file at `path` (no error if it is already gone).
    fn delete(&self, path: &str) -> Result<(), CheckpointError>;
    /// Moves the file at `from` to `to` (durably; an object store copies, then
    /// deletes).
    fn rename(&self, from: &str, to: &str) -> Result<(), CheckpointError>;
    /// A description for messages (a directory path, a bucket URL).
    fn describe(&self, path: &str) -> String;
}

/// Checkpoint files in a local (or shared, e.g. NFS) directory.
#[derive(Debug, Clone)]
pub struct LocalFs {
    root: PathBuf,
}

impl LocalFs {
    /// Files under `root`, which is created if missing.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| CheckpointError::io(root.display(), &e))?;
        Ok(LocalFs { root })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CheckpointError::io(dir.display(), &e))
}

impl Backend for LocalFs {
    /// Writes a temporary file, fsyncs it, renames it into place and fsyncs the
    /// directory (and, for a new directory, its parent).
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
        let target = self.path(path);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        let created = !dir.exists();
        std::fs::create_dir_all(&dir).map_err(|e| CheckpointError::io(dir.display(), &e))?;
        if created {
            sync_dir(dir.parent().unwrap_or(&self.root))?;
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()
        };
        write().map_err(|e| CheckpointError::io(tmp.display(), &e))?;
        std::fs::rename(&tmp, &target).map_err(|e| CheckpointError::io(target.display(), &e))?;
        sync_dir(&dir)
    }

    fn get(&self, path: &str) -> Result<Vec<u8>, CheckpointError> {
        let p = self.path(path);
        std::fs::read(&p).map_err(|e| CheckpointError::io(p.display(), &e))
    }

    fn exists(&self, path: &str) -> bool {
        self.path(path).is_file()
    }

    fn list_dirs(&self) -> Result<Vec<String>, CheckpointError> {
        let entries = std::fs::read_dir(&self.root)
            .map_err(|e| CheckpointError::io(self.root.display(), &e))?;
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CheckpointError::io(self.root.display(), &e))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(dirs)
    }

    fn delete_dir(&self, dir: &str) -> Result<(), CheckpointError> {
        let p = self.path(dir);
        match std::fs::remove_dir_all(&p) {
            Ok(()) => sync_dir(&self.root),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CheckpointError::io(p.display(), &e)),
        }
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>, CheckpointError> {
        let p = self.path(dir);
        let entries = std::fs::read_dir(&p).map_err(|e| CheckpointError::io(p.display(), &e))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CheckpointError::io(p.display(), &e))?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                files.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(files)
    }

    fn delete(&self, path: &str) -> Result<(), CheckpointError> {
        let p = self.path(path);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CheckpointError::io(p.display(), &e)),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), CheckpointError> {
        let (source, target) = (self.path(from), self.path(to));
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| CheckpointError::io(dir.display(), &e))?;
        std::fs::rename(&source, &target).map_err(|e| CheckpointError::io(source.display(), &e))?;
        sync_dir(&dir)?;
        sync_dir(source.parent().unwrap_or(&self.root))
    }

    fn describe(&self, path: &str) -> String {
        self.path(path).display().to_string()
    }
}

//! Checkpoints on a [`Backend`]: one directory per epoch, `chk-<epoch>`, holding
//! part files and, once every part is durable, a `MANIFEST.json` that lists the
//! files needed to restore each (operator, worker) with their sizes and crc32c
//! checksums. A checkpoint is *complete* exactly when its manifest exists; the
//! manifest is written last and atomically.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::backend::{Backend, LocalFs};
use crate::error::CheckpointError;
use crate::route::KEY_HASH;

pub use crate::manifest::{FileRef, Manifest, PartChain, SourceMark};

/// The manifest's file name inside a checkpoint directory.
pub const MANIFEST: &str = "MANIFEST.json";
/// Checkpoints kept by default.
pub const DEFAULT_RETAIN: usize = 3;

/// Which checkpoint to restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restore {
    /// The newest complete checkpoint whose files are all intact, falling back to
    /// older ones.
    Latest,
    /// Exactly this epoch.
    Epoch(u64),
}

/// The directory name of `epoch`'s checkpoint.
pub fn dir_name(epoch: u64) -> String {
    format!("chk-{epoch:020}")
}

fn parse_dir(name: &str) -> Option<u64> {
    name.strip_prefix("chk-")?.parse().ok()
}

/// A store of checkpoints.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    backend: Arc<dyn Backend>,
}

impl CheckpointStore {
    /// A store on `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        CheckpointStore { backend }
    }

    /// A store in the local directory `root` (created if missing).
    pub fn local(root: impl Into<std::path::PathBuf>) -> Result<Self, CheckpointError> {
        Ok(Self::new(Arc::new(LocalFs::new(root)?)))
    }

    /// Where the store is, for messages.
    pub fn describe(&self) -> String {
        self.backend.describe("")
    }

    /// Where a file is, for messages.
    pub fn describe_file(&self, file: &FileRef) -> String {
        self.backend.describe(&file.path)
    }

    /// Where the manifest of `epoch` is, for messages.
    pub fn describe_manifest(&self, epoch: u64) -> String {
        self.backend
            .describe(&format!("{}/{MANIFEST}", dir_name(epoch)))
    }

    /// Writes a part file of `epoch`'s checkpoint durably and returns its reference.
    pub fn write_part(
        &self,
        epoch: u64,
        name: &str,
        bytes: &[u8],
    ) -> Result<FileRef, CheckpointError> {
        let path = format!("{}/{name}", dir_name(epoch));
        if self.backend.exists(&path) {
            // a checkpoint file is written once: another writer means a bug
            return Err(CheckpointError::Io {
                path: self.backend.describe(&path),
                message: "exists already; checkpoint files are never overwritten".into(),
            });
        }
        self.backend.put(&path, bytes)?;
        Ok(FileRef {
            path,
            size: bytes.len() as u64,
            crc32c: crc32c::crc32c(bytes),
        })
    }

    /// Reads a file, checking its size and checksum.
    pub fn read(&self, file: &FileRef) -> Result<Vec<u8>, CheckpointError> {
        let corrupt = |reason: String| CheckpointError::Corrupt {
            path: self.backend.describe(&file.path),
            reason,
        };
        if !self.backend.exists(&file.path) {
            return Err(corrupt("missing".into()));
        }
        let bytes = self.backend.get(&file.path)?;
        if bytes.len() as u64 != file.size {
            return Err(corrupt(format!(
                "{} bytes, expected {} (truncated or overwritten)",
                bytes.len(),
                file.size
            )));
        }
        let crc = crc32c::crc32c(&bytes);
        if crc != file.crc32c {
            return Err(corrupt(format!(
                "checksum {crc:08x}, expected {:08x}",
                file.crc32c
            )));
        }
        Ok(bytes)
    }

    /// Makes `manifest`'s checkpoint complete (writes its manifest atomically).
    pub fn commit(&self, manifest: &Manifest) -> Result<(), CheckpointError> {
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| CheckpointError::Io {
            path: self.backend.describe(&dir_name(manifest.epoch)),
            message: format!("encoding manifest: {e}"),
        })?;
        self.backend
            .put(&format!("{}/{MANIFEST}", dir_name(manifest.epoch)), &bytes)
    }

    fn epochs(&self) -> Result<Vec<u64>, CheckpointError> {
        let mut epochs: Vec<u64> = self
            .backend
            .list_dirs()?
            .iter()
            .filter_map(|d| parse_dir(d))
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// Epochs of complete checkpoints (those with a manifest), oldest first.
    pub fn complete(&self) -> Result<Vec<u64>, CheckpointError> {
        Ok(self
            .epochs()?
            .into_iter()
            .filter(|&e| self.backend.exists(&format!("{}/{MANIFEST}", dir_name(e))))
            .collect())
    }

    /// The manifest of `epoch`.
    pub fn manifest(&self, epoch: u64) -> Result<Manifest, CheckpointError> {
        let path = format!("{}/{MANIFEST}", dir_name(epoch));
        let bytes = self.backend.get(&path)?;
        serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
            path: self.backend.describe(&path),
            reason: format!("unreadable manifest: {e}"),
        })
    }

    /// Checks that every file of `manifest` is present and intact.
    pub fn validate(&self, manifest: &Manifest) -> Result<(), CheckpointError> {
        for chain in &manifest.parts {
            for file in &chain.files {
                self.read(file)?;
            }
        }
        Ok(())
    }

    /// Picks the checkpoint to restore and returns it with warnings about newer
    /// complete checkpoints that were damaged and skipped. Never falls back to a
    /// fresh start: no valid checkpoint is an error.
    pub fn restore_point(
        &self,
        which: &Restore,
    ) -> Result<(Manifest, Vec<String>), CheckpointError> {
        let complete = self.complete()?;
        let candidates: Vec<u64> = match which {
            Restore::Latest => complete.into_iter().rev().collect(),
            Restore::Epoch(e) => {
                if !complete.contains(e) {
                    return Err(CheckpointError::NoValidCheckpoint {
                        dir: self.describe(),
                        tried: vec![format!("{} is not a complete checkpoint", dir_name(*e))],
                    });
                }
                vec![*e]
            }
        };
        let mut warnings = Vec::new();
        for epoch in candidates {
            // the hash is checked before the files are read: another hash is
            // an error, never a fall-back to an older checkpoint
            let checked = match self.manifest(epoch) {
                Ok(manifest) if manifest.key_hash != KEY_HASH => {
                    return Err(CheckpointError::KeyHash {
                        path: self
                            .backend
                            .describe(&format!("{}/{MANIFEST}", dir_name(epoch))),
                        found: manifest.key_hash,
                    });
                }
                manifest => manifest.and_then(|m| self.validate(&m).map(|()| m)),
            };
            match checked {
                Ok(manifest) => return Ok((manifest, warnings)),
                Err(e) => warnings.push(format!("skipping checkpoint {}: {e}", dir_name(epoch))),
            }
        }
        Err(CheckpointError::NoValidCheckpoint {
            dir: self.describe(),
            tried: warnings,
        })
    }

    /// Deletes every checkpoint directory newer than `epoch`: what a crashed run
    /// left unfinished, and damaged checkpoints that a restore skipped. Files that
    /// a complete checkpoint up to `epoch` still uses stay. Call it before a
    /// restored job writes its next checkpoint.
    pub fn discard_after(&self, epoch: u64) -> Result<Vec<u64>, CheckpointError> {
        let mut referenced = BTreeSet::new();
        for e in self.complete()?.into_iter().filter(|&e| e <= epoch) {
            if let Ok(manifest) = self.manifest(e) {
                referenced.extend(files_of(&manifest));
            }
        }
        let newer: Vec<u64> = self.epochs()?.into_iter().filter(|&e| e > epoch).collect();
        for &e in &newer {
            self.delete_unreferenced(&dir_name(e), &referenced)?;
        }
        Ok(newer)
    }

    /// Deletes every checkpoint directory without a manifest (what crashed runs
    /// left). Only for a job about to start: a running job's checkpoints in
    /// progress have no manifest yet either. Returns how many it deleted.
    pub fn discard_incomplete(&self) -> Result<usize, CheckpointError> {
        let complete = self.complete()?;
        let mut discarded = 0;
        for e in self.epochs()? {
            if !complete.contains(&e) {
                self.backend.delete_dir(&dir_name(e))?;
                discarded += 1;
            }
        }
        Ok(discarded)
    }

    /// Deletes the files of `dir` that are not in `referenced` (the manifest
    /// first, so that a crash midway never leaves a complete-looking checkpoint
    /// with files missing), and `dir` itself when nothing in it is referenced.
    fn delete_unreferenced(
        &self,
        dir: &str,
        referenced: &BTreeSet<String>,
    ) -> Result<(), CheckpointError> {
        let files = self.backend.list_files(dir)?;
        if files
            .iter()
            .all(|f| !referenced.contains(&format!("{dir}/{f}")))
        {
            return self.backend.delete_dir(dir);
        }
        self.backend.delete(&format!("{dir}/{MANIFEST}"))?;
        for f in files {
            let path = format!("{dir}/{f}");
            if !referenced.contains(&path) {
                self.backend.delete(&path)?;
            }
        }
        Ok(())
    }

    /// Commits the checkpoint that ends a job ([`crate::checkpoint::FINAL_EPOCH`])
    /// under the last epoch that held data, `last`, so that a later run, which
    /// restores from it and goes on from `last + 1`, orders its own checkpoints
    /// after it. Its part files move into `last`'s directory (under `final-`
    /// names). If `last` is complete already it holds the same state, and the
    /// final checkpoint is dropped. Returns the epoch committed under.
    pub fn commit_final(&self, mut manifest: Manifest, last: u64) -> Result<u64, CheckpointError> {
        let from = dir_name(manifest.epoch);
        if self.complete()?.contains(&last) {
            self.backend.delete_dir(&from)?;
            return Ok(last);
        }
        let to = dir_name(last);
        for chain in &mut manifest.parts {
            for file in &mut chain.files {
                if let Some(name) = file.path.strip_prefix(&format!("{from}/")) {
                    let path = format!("{to}/final-{name}");
                    self.backend.rename(&file.path, &path)?;
                    file.path = path;
                }
            }
        }
        manifest.epoch = last;
        self.commit(&manifest)?;
        self.backend.delete_dir(&from)?;
        Ok(last)
    }

    /// Writes a small file of the store's own (next to the checkpoint
    /// directories) atomically.
    pub fn write_meta(&self, name: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
        self.backend.put(name, bytes)
    }

    /// Reads a file written by [`write_meta`](Self::write_meta), if it exists.
    pub fn read_meta(&self, name: &str) -> Result<Option<Vec<u8>>, CheckpointError> {
        if self.backend.exists(name) {
            self.backend.get(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Deletes a file written by [`write_meta`](Self::write_meta).
    pub fn delete_meta(&self, name: &str) -> Result<(), CheckpointError> {
        self.backend.delete(name)
    }

    /// Keeps the newest `keep` complete checkpoints (at least one). Older
    /// checkpoints stop being restorable (their manifests go); of their
    /// directories, only the files that the kept checkpoints' chains still use
    /// remain. Directories newer than the newest complete checkpoint are in
    /// progress and stay. Returns the epochs that are no longer complete.
    pub fn retain(&self, keep: usize) -> Result<Vec<u64>, CheckpointError> {
        let complete = self.complete()?;
        let kept: Vec<u64> = complete.iter().rev().take(keep.max(1)).copied().collect();
        let Some(&newest) = kept.first() else {
            return Ok(Vec::new());
        };
        let mut referenced = BTreeSet::new();
        for &e in &kept {
            referenced.extend(files_of(&self.manifest(e)?));
        }
        let mut dropped = Vec::new();
        for e in self.epochs()? {
            if e >= newest || kept.contains(&e) {
                continue;
            }
            if complete.contains(&e) {
                dropped.push(e);
            }
            self.delete_unreferenced(&dir_name(e), &referenced)?;
        }
        Ok(dropped)
    }
}

/// The paths a checkpoint needs: its manifest and every part file.
fn files_of(manifest: &Manifest) -> impl Iterator<Item = String> + '_ {
    std::iter::once(format!("{}/{MANIFEST}", dir_name(manifest.epoch))).chain(
        manifest
            .parts
            .iter()
            .flat_map(|c| c.files.iter().map(|f| f.path.clone())),
    )
}

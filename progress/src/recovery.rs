//! Where a restored job starts: which checkpoint, where each source resumes,
//! and which epochs it must read again exactly as before.
//!
//! A sink makes epoch `e` visible once a checkpoint `c >= e` is complete. When a
//! restore falls back from a damaged checkpoint `c2` to an older `c1`, the
//! epochs in `(c1, c2]` are already visible, so the restored job must produce
//! them again identically (and its sinks skip them). Every manifest records the
//! source positions after each epoch since the previous manifest, so sources can
//! cut those epochs exactly where they were cut before: [`Recovery::replay_plan`].
//! Before the damaged checkpoints are deleted, their marks are saved in the
//! store's `REPLAY.json`, so that a crash during the replay replays the same.
//!
//! Restoring the latest checkpoint of a store that never held a complete one
//! (the run before was stopped before its first checkpoint completed) is a
//! fresh start, as in Flink: nothing of that run was made visible, so its
//! unfinished checkpoint directories go and the job starts from the beginning
//! ([`Recovery::fresh_restore`]). A store whose complete checkpoints are all
//! damaged stays an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::CheckpointError;
use crate::store::{CheckpointStore, Manifest, Restore, SourceMark};

/// The store file that keeps the marks of epochs a restore must replay.
pub const REPLAY: &str = "REPLAY.json";

/// How a job starts: fresh, or from a checkpoint, possibly replaying epochs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// The checkpoint to restore (`None`: a fresh start).
    pub manifest: Option<Manifest>,
    /// Newer checkpoints that were damaged and skipped, one line each.
    pub warnings: Vec<String>,
    /// Marks of epochs after the restored checkpoint that an earlier run
    /// committed: sources replay them, sinks skip their output.
    pub replay: Vec<SourceMark>,
    /// Set when a restore of the latest checkpoint found a store that never
    /// held a complete one and started fresh.
    pub fresh_restore: Option<FreshRestore>,
}

/// A restore that found no complete checkpoint and started fresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreshRestore {
    /// The store.
    pub store: String,
    /// Unfinished checkpoint directories of the earlier run, discarded.
    pub discarded: usize,
}

impl std::fmt::Display for FreshRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} holds no complete checkpoint (the run before stopped before its first): \
             starting from the beginning ({} unfinished checkpoint director{} discarded)",
            self.store,
            self.discarded,
            if self.discarded == 1 { "y" } else { "ies" }
        )
    }
}

impl Recovery {
    /// Decides how a job starts (call it once, on one worker: see
    /// [`crate::agree::decide_once`]). Without `restore` the store must hold no
    /// complete checkpoint (a fresh start over an earlier run's checkpoints
    /// would duplicate its output). With it, picks the checkpoint (falling back
    /// past damaged ones), saves the marks of newer committed epochs for the
    /// replay, and deletes the newer directories; [`Restore::Latest`] on a
    /// store without any complete checkpoint is a fresh start (see the module
    /// doc).
    pub fn prepare(
        store: &CheckpointStore,
        restore: Option<&Restore>,
    ) -> Result<Recovery, CheckpointError> {
        let never_complete = store.complete()?.is_empty();
        let which = match restore {
            Some(Restore::Latest) | None if never_complete => {
                let discarded = store.discard_incomplete()?;
                store.delete_meta(REPLAY)?;
                let fresh_restore = restore.is_some().then(|| FreshRestore {
                    store: store.describe(),
                    discarded,
                });
                return Ok(Recovery {
                    fresh_restore,
                    ..Recovery::default()
                });
            }
            None => {
                return Err(CheckpointError::Exists {
                    dir: store.describe(),
                });
            }
            Some(which) => which,
        };
        let (manifest, warnings) = store.restore_point(which)?;
        let start = start_of(&manifest);
        let mut replay: Vec<SourceMark> = Vec::new();
        for epoch in store.complete()? {
            if epoch > manifest.epoch
                && let Ok(newer) = store.manifest(epoch)
            {
                replay.extend(newer.sources);
            }
        }
        if let Some(bytes) = store.read_meta(REPLAY)? {
            let saved: Vec<SourceMark> =
                serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
                    path: format!("{}/{REPLAY}", store.describe()),
                    reason: format!("unreadable replay marks: {e}"),
                })?;
            replay.extend(saved);
        }
        replay.retain(|m| m.next > start);
        replay
            .sort_by(|a, b| (&a.operator, a.worker, a.next).cmp(&(&b.operator, b.worker, b.next)));
        replay.dedup();
        if replay.is_empty() {
            store.delete_meta(REPLAY)?;
        } else {
            let bytes = serde_json::to_vec(&replay).map_err(|e| CheckpointError::Io {
                path: format!("{}/{REPLAY}", store.describe()),
                message: e.to_string(),
            })?;
            store.write_meta(REPLAY, &bytes)?;
        }
        store.discard_after(manifest.epoch)?;
        Ok(Recovery {
            manifest: Some(manifest),
            warnings,
            replay,
            fresh_restore: None,
        })
    }

    /// The first epoch of this run.
    pub fn start(&self) -> u64 {
        self.manifest.as_ref().map_or(0, start_of)
    }

    /// Sinks' output of the epochs below this was made visible by an earlier
    /// run (all of it, or it is pending and covered by a complete checkpoint).
    pub fn committed_before(&self) -> u64 {
        self.replay
            .iter()
            .map(|m| m.next)
            .max()
            .unwrap_or(0)
            .max(self.start())
    }

    /// The positions from which `operator` resumes, for the streams this worker
    /// owns now (`owns`; the owner may differ from the run that took the
    /// checkpoint, which is how positions follow a rescale).
    pub fn positions(&self, operator: &str, owns: impl Fn(&str) -> bool) -> BTreeMap<String, u64> {
        let marks = self.manifest.iter().flat_map(|m| m.sources.iter());
        let mut latest: BTreeMap<usize, &SourceMark> = BTreeMap::new();
        for mark in marks.filter(|m| m.operator == operator) {
            let slot = latest.entry(mark.worker).or_insert(mark);
            if mark.next > slot.next {
                *slot = mark;
            }
        }
        let mut positions = BTreeMap::new();
        for mark in latest.values() {
            merge(&mut positions, &mark.positions, &owns);
        }
        positions
    }

    /// For each epoch to replay, the positions (of the streams this worker owns)
    /// at its end: read each stream up to there, then close the epoch.
    pub fn replay_plan(
        &self,
        operator: &str,
        owns: impl Fn(&str) -> bool,
    ) -> BTreeMap<u64, BTreeMap<String, u64>> {
        let mut plan: BTreeMap<u64, BTreeMap<String, u64>> = BTreeMap::new();
        for mark in self.replay.iter().filter(|m| m.operator == operator) {
            if let Some(epoch) = mark.next.checked_sub(1) {
                merge(plan.entry(epoch).or_default(), &mark.positions, &owns);
            }
        }
        plan
    }
}

/// Adds the positions `from` of owned streams to `into`, keeping the larger
/// where both have one.
fn merge(
    into: &mut BTreeMap<String, u64>,
    from: &BTreeMap<String, u64>,
    owns: &impl Fn(&str) -> bool,
) {
    for (stream, &position) in from {
        if owns(stream) {
            let slot = into.entry(stream.clone()).or_insert(position);
            *slot = (*slot).max(position);
        }
    }
}

/// The epoch a run restored from `manifest` starts with: after every epoch its
/// sources covered, or after the checkpoint's epoch when it has no sources.
fn start_of(manifest: &Manifest) -> u64 {
    manifest
        .sources
        .iter()
        .map(|m| m.next)
        .max()
        .unwrap_or_else(|| manifest.epoch.saturating_add(1))
}

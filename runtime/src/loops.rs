//! What every iterative job does with loop checkpoints: open the directory,
//! learn the iteration to start at (refusing a directory of an earlier run
//! unless asked to resume), and read this worker's share of the resumed loop
//! records; and keep the rounds a loop reports.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use weir_progress::convergence::{Report, Round};
use weir_progress::loop_state::{LoopCheckpoints, resume};
use weir_progress::store::{CheckpointStore, Restore};

use crate::error::{JobError, Remedy, Setting};
use crate::exec::WorkerCtx;

/// Loop checkpoints as a user asks for them.
#[derive(Clone, Debug)]
pub struct LoopCheckpointing {
    /// The directory (of this job only).
    pub dir: PathBuf,
    /// Checkpoint every `every` iterations.
    pub every: u64,
    /// Resume from the latest complete checkpoint.
    pub restore: bool,
}

/// An opened checkpoint directory and the iteration the loop starts at.
#[derive(Clone, Debug)]
pub struct OpenLoop {
    /// The store.
    pub store: CheckpointStore,
    /// Checkpoint every `every` iterations.
    pub every: u64,
    /// The first iteration: 0, or the resumed checkpoint's next.
    pub first: u64,
}

impl LoopCheckpointing {
    /// Opens the directory: with `restore`, finds the latest complete
    /// checkpoint; without, refuses one that holds an earlier run's.
    pub fn open(&self) -> Result<OpenLoop, JobError> {
        if self.every == 0 {
            return Err(JobError::setting(
                Setting::CheckpointEvery,
                "must be at least 1",
            ));
        }
        let store = CheckpointStore::local(&self.dir)?;
        let first = if self.restore {
            let (manifest, _) = store.restore_point(&Restore::Latest)?;
            manifest.epoch + 1
        } else if !store.complete()?.is_empty() {
            return Err(JobError::Remedy {
                message: format!(
                    "{} holds loop checkpoints of an earlier run (or use another directory)",
                    self.dir.display()
                ),
                remedy: Remedy::Set(Setting::RestoreLatest),
            });
        } else {
            0
        };
        Ok(OpenLoop {
            store,
            every: self.every,
            first,
        })
    }
}

impl OpenLoop {
    /// The loop checkpoints of worker `index` of `peers`.
    pub fn for_worker(&self, index: usize, peers: usize) -> LoopCheckpoints {
        LoopCheckpoints {
            store: self.store.clone(),
            every: self.every,
            first: self.first,
            index,
            peers,
        }
    }
}

/// This worker's share of the resumed loop records (records of old workers
/// `w` with `w % peers == index`; a job routes them to their new owners),
/// when the loop resumes; a missing or unreadable checkpoint fails the job.
pub fn resumed<D: DeserializeOwned>(open: Option<&OpenLoop>, ctx: &WorkerCtx) -> Option<Vec<D>> {
    let open = open.filter(|o| o.first > 0)?;
    match resume::<D>(&open.store, ctx.index, ctx.peers) {
        Ok(Some(resumed)) => Some(resumed.records),
        Ok(None) => {
            ctx.failure.set(JobError::Checkpoint(format!(
                "{}: no complete loop checkpoint",
                open.store.describe()
            )));
            Some(Vec::new())
        }
        Err(e) => {
            ctx.failure.set(e.into());
            Some(Vec::new())
        }
    }
}

/// The rounds a loop reports (in the process of worker 0), kept for the
/// job's summary while each still goes on to the user's report.
#[derive(Clone, Default)]
pub struct Rounds<V>(Arc<Mutex<Vec<Round<V>>>>);

impl<V: Copy + Send + 'static> Rounds<V> {
    /// A report that keeps every round here and passes it on to `user`.
    pub fn report(&self, user: Option<Report<V>>) -> Report<V> {
        let kept = Arc::clone(&self.0);
        Arc::new(move |round: Round<V>| {
            if let Ok(mut rounds) = kept.lock() {
                rounds.push(round);
            }
            if let Some(user) = &user {
                user(round);
            }
        })
    }

    /// The rounds kept so far.
    pub fn taken(&self) -> Vec<Round<V>> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Iterations run in all by a loop that reported `rounds`, counting those
/// before a resume at `resumed_at`.
pub fn iterations_run<V>(rounds: &[Round<V>], resumed_at: Option<u64>) -> u64 {
    rounds
        .last()
        .map_or(resumed_at.unwrap_or(0), |r| r.iteration + 1)
}

//! A thread that works through jobs in order off a worker's data path: the
//! snapshot writer and the manifest committer both run on one.

use std::sync::mpsc;
use std::thread::JoinHandle;

/// Jobs `J` done in order on a thread of their own, each giving a result `R`.
pub struct Background<J, R> {
    jobs: Option<mpsc::Sender<J>>,
    done: mpsc::Receiver<R>,
    thread: Option<JoinHandle<()>>,
}

impl<J: Send + 'static, R: Send + 'static> Background<J, R> {
    /// Starts thread `name`, which calls `work` on each job and stops after a
    /// result for which `fatal` holds.
    pub fn spawn(
        name: String,
        work: impl FnMut(J) -> R + Send + 'static,
        fatal: fn(&R) -> bool,
    ) -> Self {
        Self::spawn_notifying(name, work, fatal, || {})
    }

    /// As [`Background::spawn`], and calls `notify` after each result is
    /// ready (to wake the operator that takes it, say).
    pub fn spawn_notifying(
        name: String,
        mut work: impl FnMut(J) -> R + Send + 'static,
        fatal: fn(&R) -> bool,
        notify: impl Fn() + Send + 'static,
    ) -> Self {
        let (jobs, inbox) = mpsc::channel::<J>();
        let (outbox, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                for job in inbox {
                    let result = work(job);
                    let stop = fatal(&result);
                    if outbox.send(result).is_err() {
                        return;
                    }
                    notify();
                    if stop {
                        return;
                    }
                }
            })
            .ok();
        Background {
            jobs: Some(jobs),
            done,
            thread,
        }
    }

    /// Queues `job`; `false` when the thread could not start or has stopped.
    pub fn submit(&self, job: J) -> bool {
        self.thread.is_some() && self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }

    /// Results since the last call, in job order.
    pub fn completed(&self) -> Vec<R> {
        self.done.try_iter().collect()
    }

    /// Waits until every queued job is done; returns their results.
    pub fn finish(mut self) -> Vec<R> {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.done.try_iter().collect()
    }
}

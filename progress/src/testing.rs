//! Helpers for tests that run a job at several worker counts and across processes.
//!
//! A two-process cluster runs inside one test: one thread per process, each
//! calling the job with a `Cluster` configuration whose addresses are free ports on
//! 127.0.0.1, so the processes really exchange data over TCP.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

use timely::{CommunicationConfig, Config, WorkerConfig};

/// A port that was free a moment ago. Each test process draws from a block
/// of its own (by process id, below the ephemeral range), in turn, so that
/// two test processes running at once do not both pick a port between
/// probing it and timely binding it (a cluster of one would then talk to
/// the other's).
fn free_port() -> std::io::Result<u16> {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    const BLOCK: u16 = 32;
    let base = 20_000 + (std::process::id() % 380) as u16 * BLOCK;
    for _ in 0..BLOCK {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % BLOCK;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The configurations of a cluster of `processes` processes with `threads` workers
/// each, on free loopback ports; element `i` is process `i`'s configuration.
pub fn cluster(processes: usize, threads: usize) -> std::io::Result<Vec<Config>> {
    let mut addresses = Vec::with_capacity(processes);
    for _ in 0..processes {
        addresses.push(format!("127.0.0.1:{}", free_port()?));
    }
    Ok((0..processes)
        .map(|process| Config {
            communication: CommunicationConfig::Cluster {
                threads,
                process,
                addresses: addresses.clone(),
                report: false,
                zerocopy: false,
            },
            worker: WorkerConfig::default(),
        })
        .collect())
}

/// The layouts every dataflow is tested on: 1, 2 and 3 worker threads in one
/// process, and two processes of one worker each. Each entry is a label and the
/// configurations of the processes that run together.
pub fn layouts() -> std::io::Result<Vec<(String, Vec<Config>)>> {
    let mut all: Vec<(String, Vec<Config>)> = (1..=3)
        .map(|w| (format!("{w} worker(s)"), vec![Config::process(w)]))
        .collect();
    all.push(("2 processes".to_string(), cluster(2, 1)?));
    Ok(all)
}

/// Runs `job` on every layout of [`layouts`]; returns each layout's label
/// with the result of its process 0.
pub fn on_every_layout<R, F>(job: F) -> std::io::Result<Vec<(String, R)>>
where
    R: Send + 'static,
    F: Fn(Config) -> R + Send + Sync + Clone + 'static,
{
    Ok(layouts()?
        .into_iter()
        .filter_map(|(label, configs)| {
            let first = run_processes(configs, job.clone()).into_iter().next()?;
            Some((label, first))
        })
        .collect())
}

/// Runs `job` once per configuration, each in its own thread (as separate processes
/// would), and returns the results in process order.
pub fn run_processes<R, F>(configs: Vec<Config>, job: F) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(Config) -> R + Send + Sync + Clone + 'static,
{
    let handles: Vec<_> = configs
        .into_iter()
        .map(|config| {
            let job = job.clone();
            std::thread::spawn(move || job(config))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        })
        .collect()
}

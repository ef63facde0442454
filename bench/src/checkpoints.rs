//! Benchmarks of the progress core: per-epoch latency with and without
//! checkpoints (Naiad style: one record per epoch, advance, wait for the probe),
//! and the bytes, time and data-path pause of incremental vs full snapshots.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use weir_progress::checkpoint::{Checkpoints, Schedule, StatefulUnary};
use weir_progress::coordinate::Coordinate;
use weir_progress::route::key_hash;
use weir_progress::state::{Changes, KeyedState, SnapshotWriter};
use weir_progress::store::CheckpointStore;

/// The jobs whose latency is compared.
pub const VARIANTS: [&str; 5] = [
    "bare",
    "bare-epochs",
    "stateful",
    "checkpointed",
    "checkpointed-commit",
];

fn describe(variant: &str) -> &'static str {
    match variant {
        "bare" => "bare timely (exchange + counting operator)",
        "bare-epochs" => "bare timely, counting each epoch once complete (unary_frontier)",
        "stateful" => "weir stateful_unary, no checkpoints",
        "checkpointed" => "weir stateful_unary, checkpoint every epoch",
        _ => "same, waiting until each checkpoint is committed",
    }
}

/// Per-epoch latencies of `variant` on `config`, measured at worker 0.
pub fn latencies(
    config: timely::Config,
    variant: &str,
    epochs: u64,
    dir: &Path,
) -> Result<Vec<Duration>> {
    let variant = variant.to_string();
    let dir = dir.to_path_buf();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&samples);
    timely::execute(config, move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<(u64, u64)>>>::new();
        let probe = ProbeHandle::new();
        let every = if variant.starts_with("checkpointed") {
            1
        } else {
            u64::MAX / 2
        };
        let store = CheckpointStore::local(dir.join(&variant)).expect("checkpoint dir");
        let ckpt = Checkpoints::new(store, Schedule { every }, None, index, peers);
        worker.dataflow::<u64, _, _>(|scope| {
            let records = scope.input_from(&mut input);
            let route = Exchange::new(|(k, _): &(u64, u64)| key_hash(k));
            if variant == "bare" {
                records
                    .unary::<CapacityContainerBuilder<Vec<(u64, u64)>>, _, _, _>(
                        route,
                        "Count",
                        |_, _| {
                            let mut counts: HashMap<u64, u64> = HashMap::new();
                            move |input, output| {
                                input.for_each_stamp(|stamp, data| {
                                    let mut session = output.session(&stamp);
                                    for (k, v) in data.flat_map(|b| b.drain(..)) {
                                        let c = counts.entry(k).or_insert(0);
                                        *c += v;
                                        session.give((k, *c));
                                    }
                                });
                            }
                        },
                    )
                    .probe_with(&probe);
            } else if variant == "bare-epochs" {
                records
                    .unary_frontier::<CapacityContainerBuilder<Vec<(u64, u64)>>, _, _, _>(
                        route,
                        "CountEpochs",
                        |_, _| {
                            let mut counts: HashMap<u64, u64> = HashMap::new();
                            let mut pending = std::collections::BTreeMap::new();
                            move |(input, frontier), output| {
                                let port = output.output_index();
                                input.for_each_stamp(|stamp, data| {
                                    let Some(&epoch) = stamp.stamp().least() else {
                                        return;
                                    };
                                    let Some(cap) = stamp.retain_least(port) else {
                                        return;
                                    };
                                    let entry =
                                        pending.entry(epoch).or_insert_with(|| (cap, Vec::new()));
                                    for batch in data {
                                        entry.1.append(batch);
                                    }
                                });
                                while let Some(entry) = pending.first_entry() {
                                    if frontier.less_equal(entry.key()) {
                                        break;
                                    }
                                    let (cap, records) = entry.remove();
                                    let mut session = output.session(&cap);
                                    for (k, v) in records {
                                        let c = counts.entry(k).or_insert(0);
                                        *c += v;
                                        session.give((k, *c));
                                    }
                                }
                            }
                        },
                    )
                    .probe_with(&probe);
            } else {
                let (data, acks) = records.stateful_unary(
                    route,
                    "counts",
                    &ckpt,
                    |_, records, state: &mut KeyedState<u64, u64>, out| {
                        for (k, v) in records {
                            out.push((k, *state.update(k, || 0, |c| *c += v)));
                        }
                    },
                );
                let committed = acks.coordinate(&ckpt);
                if variant == "checkpointed-commit" {
                    committed.probe_with(&probe);
                } else {
                    data.probe_with(&probe);
                }
            }
        });
        let mut mine = Vec::with_capacity(epochs as usize);
        for epoch in 0..epochs {
            let start = Instant::now();
            if index == 0 {
                input.send((epoch % 1000, 1));
            }
            input.advance_to(epoch + 1);
            worker.step_while(|| probe.less_than(&(epoch + 1)));
            mine.push(start.elapsed());
        }
        drop(input);
        worker.step_while(|| !probe.done());
        if index == 0
            && let Ok(mut all) = out.lock()
        {
            *all = mine;
        }
    })
    .map_err(anyhow::Error::msg)?
    .join();
    let mut all = samples
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    // the first epochs warm up
    all.drain(..all.len().min(50));
    Ok(all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// `(median, p99)` in microseconds.
pub fn summarize(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    (
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
    )
}

/// Runs `variant` as two processes (this binary re-invoked) and returns
/// process 0's (median, p99).
fn two_processes(variant: &str, epochs: u64, dir: &Path) -> Result<(f64, f64)> {
    let ports: Vec<String> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            Ok(l.local_addr()?.to_string())
        })
        .collect::<Result<_>>()?;
    let hosts = dir.join(format!("hosts-{variant}.txt"));
    std::fs::write(&hosts, ports.join("\n") + "\n")?;
    let exe = std::env::current_exe()?;
    let spawn = |p: usize| {
        Command::new(&exe)
            .args([
                "latency",
                "--variant",
                variant,
                "--epochs",
                &epochs.to_string(),
            ])
            .args(["--process", &p.to_string(), "--hosts"])
            .arg(&hosts)
            .arg("--dir")
            .arg(dir.join(format!("p{p}")))
            .output()
    };
    let first = std::thread::scope(|s| {
        let a = s.spawn(|| spawn(0));
        std::thread::sleep(Duration::from_millis(100));
        let b = spawn(1);
        (a.join(), b)
    });
    let (a, b) = first;
    let a = a.map_err(|_| anyhow::anyhow!("process 0 panicked"))??;
    let b = b?;
    if !a.status.success() || !b.status.success() {
        bail!(
            "latency processes failed: {} {}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
    }
    let text = String::from_utf8_lossy(&a.stdout);
    let mut numbers = text
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok());
    match (numbers.next(), numbers.next()) {
        (Some(m), Some(p)) => Ok((m, p)),
        _ => bail!("unexpected output of process 0: {text}"),
    }
}

/// One process of a two-process latency run: prints `median p99` (process 0).
pub fn latency_process(
    variant: &str,
    epochs: u64,
    process: usize,
    hosts: &Path,
    dir: &Path,
) -> Result<()> {
    let text = std::fs::read_to_string(hosts).with_context(|| hosts.display().to_string())?;
    let addresses: Vec<String> = text.lines().map(String::from).collect();
    let config = timely::Config {
        communication: timely::CommunicationConfig::Cluster {
            threads: 1,
            process,
            addresses,
            report: false,
            zerocopy: false,
        },
        worker: timely::WorkerConfig::default(),
    };
    let samples = latencies(config, variant, epochs, dir)?;
    if process == 0 {
        let (median, p99) = summarize(samples);
        println!("{median} {p99}");
    }
    Ok(())
}

/// The latency table: every variant at 1 worker, 2 workers and 2 processes.
pub fn bench_latency(dir: &Path, epochs: u64) -> Result<()> {
    println!("per-epoch latency, {epochs} epochs of one record (first 50 dropped), worker 0");
    println!();
    println!("| layout | job | median (us) | p99 (us) | median vs bare | p99 vs bare |");
    println!("|---|---|---:|---:|---:|---:|");
    for layout in ["1 worker", "2 workers", "2 processes"] {
        let mut bare = (0.0, 0.0);
        for variant in VARIANTS {
            let run_dir = dir.join(format!("{}-{variant}", layout.replace(' ', "-")));
            std::fs::create_dir_all(&run_dir)?;
            let (median, p99) = match layout {
                "1 worker" => summarize(latencies(
                    timely::Config::process(1),
                    variant,
                    epochs,
                    &run_dir,
                )?),
                "2 workers" => summarize(latencies(
                    timely::Config::process(2),
                    variant,
                    epochs,
                    &run_dir,
                )?),
                _ => two_processes(variant, epochs, &run_dir)?,
            };
            if variant == "bare" {
                bare = (median, p99);
            }
            println!(
                "| {layout} | {} | {median:.0} | {p99:.0} | {:.2}x | {:.2}x |",
                describe(variant),
                median / bare.0.max(1e-9),
                p99 / bare.1.max(1e-9)
            );
        }
    }
    Ok(())
}

/// Bytes, writer time and data-path pause of snapshots of `keys` keys, with
/// `changed` of them updated per epoch: incremental (deltas) vs full.
pub fn bench_snapshots(dir: &Path, key_counts: &[u64]) -> Result<()> {
    println!(
        "snapshots of u64 -> u64 keyed state, 1% of keys changed per epoch, median of 5 epochs"
    );
    println!();
    println!(
        "| keys | snapshot | bytes | bytes vs full | writer time (ms) | pause on the data path (ms) |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    for &keys in key_counts {
        let changed = keys / 100;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut full_bytes = 1;
        for incremental in [false, true] {
            let store = CheckpointStore::local(dir.join(format!(
                "snap-{keys}-{}",
                if incremental { "delta" } else { "full" }
            )))?;
            let mut state: KeyedState<u64, u64> = KeyedState::new();
            for k in 0..keys {
                state.insert(k, k);
            }
            let writer = SnapshotWriter::spawn(store.clone(), "counts".into(), 0, Vec::new());
            // the base every chain starts from
            writer.submit(0, state.take_changes())?;
            wait(&writer, 1)?;
            let (mut bytes, mut times, mut pauses) = (Vec::new(), Vec::new(), Vec::new());
            for epoch in 1..=5u64 {
                for _ in 0..changed {
                    let k = rng.random_range(0..keys);
                    state.update(k, || 0, |v| *v += 1);
                }
                let start = Instant::now();
                let changes = if incremental {
                    state.take_changes()
                } else {
                    state.take_changes();
                    Changes::Base(state.iter().map(|(k, v)| (*k, *v)).collect())
                };
                pauses.push(start.elapsed());
                let written = Instant::now();
                writer.submit(epoch, changes)?;
                let chain = wait(&writer, 1)?;
                times.push(written.elapsed());
                bytes.push(chain.last().map_or(0, |f| f.size));
            }
            writer.finish();
            bytes.sort_unstable();
            let time = summarize(times).0 / 1e3;
            let pause = summarize(pauses).0 / 1e3;
            let median_bytes = bytes[bytes.len() / 2];
            if !incremental {
                full_bytes = median_bytes.max(1);
            }
            println!(
                "| {keys} | {} | {median_bytes} | {:.2}% | {time:.1} | {pause:.2} |",
                if incremental {
                    "incremental (delta)"
                } else {
                    "full"
                },
                median_bytes as f64 * 100.0 / full_bytes as f64
            );
        }
    }
    Ok(())
}

/// Waits for `n` snapshots; returns the last chain's files.
fn wait(writer: &SnapshotWriter<u64, u64>, n: usize) -> Result<Vec<weir_progress::store::FileRef>> {
    let mut done = 0;
    let mut files = Vec::new();
    while done < n {
        for result in writer.completed() {
            let (_, chain) = result?;
            files = chain.files;
            done += 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(files)
}

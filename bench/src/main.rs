//! `weir-bench`: throughput of weir's batch jobs at 1 and 2 workers against
//! hand-written single-threaded baselines of the same computation (COST), and the
//! peak memory of a join whose inputs are five times its budget.
//!
//! Also the progress core: per-epoch latency with checkpoints (`latency`) and
//! incremental vs full snapshots (`snapshots`); and streaming on Kafka:
//! end-to-end latency (`kafka-latency`) and throughput (`kafka-throughput`).
//! Iterative ML: ALS per-iteration time (`als`; `als-split` writes the split
//! the Spark comparison `bench/spark/als.sh` uses) and CoCoA against
//! mini-batch SGD (`cocoa`).
//!
//! Run with `cargo run --release -p weir-bench -- <wordcount|join|join-spill|latency|snapshots|graphs|als|als-split|cocoa|kafka-latency|kafka-throughput>`.
//! Timings on a shared 2-core machine are noisy: compare the ratios of one run.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod checkpoints;
mod graphs;
mod kafka;
mod ml;
use weir_dataflows::jobs::join::{self, FieldSplitter, JoinSpec, Local, Ship, Side};
use weir_dataflows::jobs::wordcount;
use weir_runtime::exec::{JobOptions, peak_rss};
use weir_runtime::generate::{Generator, TableSpec, TextSpec};
use weir_runtime::input::LineInput;

fn main() -> Result<()> {
    let mut opts = getopts::Options::new();
    opts.optflag("", "help", "print this help");
    opts.optopt("", "scale", "input size multiplier (default 1)", "X");
    opts.optopt(
        "",
        "dir",
        "where generated inputs go (default: a temp dir)",
        "DIR",
    );
    opts.optopt(
        "",
        "strategy",
        "join-spill: run only this strategy (used for a fresh process per strategy)",
        "S",
    );
    opts.optopt(
        "",
        "epochs",
        "latency: epochs to measure (default 2000)",
        "N",
    );
    opts.optopt(
        "",
        "variant",
        "latency: run only this job (one process of two)",
        "V",
    );
    opts.optopt(
        "",
        "process",
        "latency: this process's index (with --hosts)",
        "P",
    );
    opts.optopt(
        "",
        "hosts",
        "latency: hostfile of the two processes",
        "FILE",
    );
    opts.optopt(
        "",
        "sets",
        "als: comma-separated data sets (default ml100k,synthetic10m,synthetic10m-rank50; also synthetic100m-rank50)",
        "NAMES",
    );
    opts.optopt(
        "",
        "rmat-scale",
        "graphs: the R-MAT scale (default 20)",
        "S",
    );
    let args: Vec<String> = std::env::args().skip(1).collect();
    let m = opts.parse(&args)?;
    let usage = "Usage: weir-bench <wordcount|join|join-spill|latency|snapshots|graphs|als|als-split|\
                 cocoa|kafka-latency|kafka-throughput> [--scale X] [--dir DIR]";
    if m.opt_present("help") {
        print!("{}", opts.usage(usage));
        return Ok(());
    }
    let scale: f64 = m.opt_get_default("scale", 1.0)?;
    let tmp = tempfile::tempdir()?;
    let dir = m
        .opt_str("dir")
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    match m.free.first().map(String::as_str) {
        Some("wordcount") => bench_wordcount(&dir, scale),
        Some("join") => bench_join(&dir, scale),
        Some("join-spill") => match m.opt_str("strategy") {
            Some(strategy) => join_spill_one(&dir, scale, &strategy),
            None => bench_join_spill(&dir, scale),
        },
        Some("latency") => {
            let epochs: u64 = m.opt_get_default("epochs", 2000)?;
            match (
                m.opt_str("variant"),
                m.opt_get::<usize>("process")?,
                m.opt_str("hosts"),
            ) {
                (Some(variant), Some(process), Some(hosts)) => {
                    checkpoints::latency_process(&variant, epochs, process, Path::new(&hosts), &dir)
                }
                _ => checkpoints::bench_latency(&dir, epochs),
            }
        }
        Some("snapshots") => {
            let keys = (1_000_000.0 * scale) as u64;
            checkpoints::bench_snapshots(&dir, &[keys, keys * 10])
        }
        Some("graphs") => {
            let scale: u32 = m.opt_get_default("rmat-scale", 20)?;
            match m.opt_str("variant") {
                Some(variant) => graphs::one(&variant, scale),
                None => graphs::bench(scale),
            }
        }
        Some("als") => match m.opt_str("variant") {
            Some(variant) => ml::one_als(&variant, scale),
            None => ml::bench_als(scale, m.opt_str("sets").as_deref()),
        },
        Some("als-split") => ml::als_split(&dir),
        Some("cocoa") => ml::bench_cocoa(),
        Some("kafka-latency") => kafka::bench_latency(2000, (10.0 * scale).max(2.0) as u64),
        Some("kafka-throughput") => kafka::bench_throughput((2_000_000.0 * scale) as u64),
        _ => bail!("{usage}"),
    }
}

fn write_lines(path: &Path, generator: &Generator) -> Result<u64> {
    let maker = generator.maker();
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut line = String::new();
    for i in 0..generator.lines() {
        maker.line(i, &mut line);
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

struct Row {
    name: String,
    seconds: f64,
    records: u64,
    out: u64,
}

fn print_table(title: &str, rows: &[Row]) {
    let base = rows[0].seconds;
    println!("\n{title}");
    println!("| run | time (s) | records/s | records out | time vs baseline |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.2} | {:.0} | {} | {:.2}x |",
            r.name,
            r.seconds,
            r.records as f64 / r.seconds,
            r.out,
            r.seconds / base
        );
    }
}

fn median_of<F: FnMut() -> Result<(u64, u64)>>(runs: usize, mut f: F) -> Result<(f64, u64, u64)> {
    let mut times = Vec::new();
    let mut result = (0, 0);
    for _ in 0..runs {
        let start = Instant::now();
        result = f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], result.0, result.1))
}

/// Single-threaded word count: read, tokenize, count in a hash map, format.
fn baseline_wordcount(path: &Path) -> Result<(u64, u64)> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut line = String::new();
    let mut lines = 0;
    while reader.read_line(&mut line)? > 0 {
        lines += 1;
        weir_runtime::text::for_each_word(line.trim_end_matches(['\n', '\r']), |w| {
            match counts.get_mut(w) {
                Some(c) => *c += 1,
                None => {
                    counts.insert(w.to_owned(), 1);
                }
            }
        });
        line.clear();
    }
    let out = counts
        .iter()
        .map(|(w, c)| format!("{w}\t{c}"))
        .filter(|l| !l.is_empty())
        .count();
    Ok((lines, out as u64))
}

fn bench_wordcount(dir: &Path, scale: f64) -> Result<()> {
    let path = dir.join("wordcount.txt");
    let generator = Generator::Text(TextSpec {
        lines: (2_000_000.0 * scale) as u64,
        max_words: 16,
        vocabulary: 100_000,
        seed: 1,
    });
    let bytes = write_lines(&path, &generator)?;
    println!(
        "word count over {} ({:.0} MB)",
        generator.describe(),
        bytes as f64 / 1e6
    );
    let mut rows = Vec::new();
    let (t, n, o) = median_of(3, || baseline_wordcount(&path))?;
    rows.push(Row {
        name: "single-thread baseline".into(),
        seconds: t,
        records: n,
        out: o,
    });
    for workers in [1, 2] {
        let input = LineInput::Files(vec![path.clone()]);
        let (t, n, o) = median_of(3, || {
            let s = wordcount::run(
                timely::Config::process(workers),
                input.clone(),
                &JobOptions::default(),
            )?;
            Ok((s.records_in, s.records_out))
        })?;
        rows.push(Row {
            name: format!("weir wordcount -w {workers}"),
            seconds: t,
            records: n,
            out: o,
        });
    }
    print_table("word count (median of 3)", &rows);
    Ok(())
}

fn table(path: &Path, rows: u64, keys: u64, seed: u64) -> Result<u64> {
    write_lines(
        path,
        &Generator::Table(TableSpec {
            rows,
            keys,
            columns: 4,
            delimiter: b',',
            seed,
        }),
    )
}

/// Single-threaded hash join: build a map from the smaller file, stream the other.
fn baseline_join(build: &Path, probe: &Path) -> Result<(u64, u64)> {
    let mut splitter = FieldSplitter::new(b',');
    let mut table: HashMap<String, Vec<String>> = HashMap::new();
    let mut records = 0;
    for line in BufReader::with_capacity(1 << 20, std::fs::File::open(build)?).lines() {
        let line = line?;
        records += 1;
        if let Some((k, row)) = splitter.row(&line, 0).map_err(anyhow::Error::msg)? {
            table.entry(k).or_default().push(row);
        }
    }
    let mut out = 0u64;
    for line in BufReader::with_capacity(1 << 20, std::fs::File::open(probe)?).lines() {
        let line = line?;
        records += 1;
        if let Some((k, row)) = splitter.row(&line, 0).map_err(anyhow::Error::msg)? {
            for b in table.get(&k).into_iter().flatten() {
                let joined = format!("{row}\t{b}");
                out += u64::from(!joined.is_empty());
            }
        }
    }
    Ok((records, out))
}

fn join_spec(
    left: &Path,
    right: &Path,
    ship: Option<Ship>,
    local: Option<Local>,
    budget: u64,
) -> JoinSpec {
    let side = |p: &Path| Side {
        input: LineInput::Files(vec![p.to_path_buf()]),
        key: 0,
        delimiter: b',',
    };
    JoinSpec {
        left: side(left),
        right: side(right),
        ship,
        local,
        memory_budget: budget,
        spill_dir: None,
    }
}

fn bench_join(dir: &Path, scale: f64) -> Result<()> {
    let left = dir.join("left.csv");
    let right = dir.join("right.csv");
    let rows = (2_000_000.0 * scale) as u64;
    let lb = table(&left, rows, rows, 1)?;
    let rb = table(&right, rows / 4, rows, 2)?;
    println!(
        "join of {rows} x {} rows on a key with {rows} values ({:.0} MB + {:.0} MB)",
        rows / 4,
        lb as f64 / 1e6,
        rb as f64 / 1e6
    );
    let mut rows_out = Vec::new();
    let (t, n, o) = median_of(3, || baseline_join(&right, &left))?;
    rows_out.push(Row {
        name: "single-thread hash join baseline".into(),
        seconds: t,
        records: n,
        out: o,
    });
    for (ship, local) in [
        (None, None),
        (Some(Ship::Repartition), Some(Local::Hash)),
        (Some(Ship::Broadcast), Some(Local::Hash)),
        (Some(Ship::Repartition), Some(Local::SortMerge)),
    ] {
        for workers in [1, 2] {
            let spec = join_spec(&left, &right, ship, local, 8 << 30);
            let mut picked = String::new();
            let (t, n, o) = median_of(3, || {
                let (s, plan) = join::run(
                    timely::Config::process(workers),
                    spec.clone(),
                    &JobOptions::default(),
                )?;
                picked = format!("{}+{}", plan.ship, plan.local);
                Ok((s.records_in, s.records_out))
            })?;
            let what = if ship.is_none() {
                format!("auto: {picked}")
            } else {
                picked
            };
            rows_out.push(Row {
                name: format!("weir join {what} -w {workers}"),
                seconds: t,
                records: n,
                out: o,
            });
        }
    }
    print_table("join, everything in memory (median of 3)", &rows_out);
    Ok(())
}

fn spill_budget(scale: f64) -> u64 {
    (64.0 * scale) as u64 * (1 << 20)
}

/// Generates the inputs, then runs each strategy in a fresh process of this
/// binary, so that each peak RSS is its own.
fn bench_join_spill(dir: &Path, scale: f64) -> Result<()> {
    let budget = spill_budget(scale);
    let left = dir.join("spill-left.csv");
    let right = dir.join("spill-right.csv");
    // both sides larger than the budget, together 5x it
    let rows = budget * 5 / 2 / 35;
    let lb = table(&left, rows, rows, 3)?;
    let rb = table(&right, rows, rows, 4)?;
    println!(
        "join with memory budget {} MB, inputs {:.0} MB + {:.0} MB ({:.1}x the budget), each strategy in a fresh process",
        budget >> 20,
        lb as f64 / 1e6,
        rb as f64 / 1e6,
        (lb + rb) as f64 / budget as f64,
    );
    println!(
        "| strategy | workers | time (s) | records out | spilled (MB) | peak RSS (MB) | <= budget + 64 MB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for strategy in ["hash", "sort-merge"] {
        let status = std::process::Command::new(std::env::current_exe()?)
            .args([
                "join-spill",
                "--strategy",
                strategy,
                "--scale",
                &scale.to_string(),
                "--dir",
            ])
            .arg(dir)
            .status()?;
        if !status.success() {
            bail!("the {strategy} run failed: {status}");
        }
    }
    Ok(())
}

fn join_spill_one(dir: &Path, scale: f64, strategy: &str) -> Result<()> {
    let budget = spill_budget(scale);
    let local = match strategy {
        "hash" => Local::Hash,
        "sort-merge" => Local::SortMerge,
        other => bail!("unknown strategy {other}"),
    };
    let (left, right) = (dir.join("spill-left.csv"), dir.join("spill-right.csv"));
    let spec = join_spec(&left, &right, Some(Ship::Repartition), Some(local), budget);
    let start = Instant::now();
    let (s, _) = join::run(timely::Config::process(2), spec, &JobOptions::default())?;
    let rss = peak_rss().context("peak RSS needs /proc/self/status")?;
    println!(
        "| repartition+{local} | 2 | {:.1} | {} | {} | {} | {} |",
        start.elapsed().as_secs_f64(),
        s.records_out,
        s.spilled_bytes >> 20,
        rss >> 20,
        if rss <= budget + (64 << 20) {
            "yes"
        } else {
            "NO"
        }
    );
    Ok(())
}

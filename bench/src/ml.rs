//! ML benchmarks.
//!
//! - `als`: per-iteration time of weir's blocked ALS at 1 and 2 workers on
//!   MovieLens 100K and on synthetic ratings generated on the workers, with
//!   peak RSS and ratings per second per core per iteration; each variant in
//!   a fresh process.
//! - `als-split`: writes the seeded 80/20 split of MovieLens 100K that weir
//!   uses, as two files, for the Spark comparison (`bench/spark/als.sh`).
//! - `cocoa`: rounds and time to a duality gap (CoCoA, CoCoA+) or primal
//!   suboptimality (mini-batch SGD) of 1e-3, at 2 partitions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use weir_ml::als::{AlsParams, Errors};
use weir_ml::cocoa::reference;
use weir_ml::cocoa::sdca::{Aggregation, CocoaParams, Duality};
use weir_ml::cocoa::sgd::minibatch_sgd;
use weir_ml::jobs::als::{self, AlsJob};
use weir_ml::jobs::cocoa::{self, CocoaJob};
use weir_ml::libsvm::{SvmInput, SyntheticSvm};
use weir_ml::ratings::{Format, RatingsInput, Split, Synthetic, split_all};
use weir_progress::convergence::Round;
use weir_runtime::exec::{JobOptions, peak_rss};
use weir_runtime::input::LineInput;

/// A data set of the ALS bench.
struct AlsSet {
    name: &'static str,
    input: RatingsInput,
    rank: usize,
    iterations: u64,
    /// Run without `--sets`.
    default: bool,
}

/// The data sets of the ALS bench. The 100M set (1M users x 200k items,
/// generated on the workers) runs 3 iterations, and only when asked for.
fn als_sets(scale: f64) -> Vec<AlsSet> {
    let synthetic = |users: u64, items: u64, ratings: f64| {
        RatingsInput::Synthetic(Synthetic {
            users,
            items,
            ratings: (ratings * scale) as u64,
            rank: 10,
            seed: 7,
        })
    };
    let set = |name, input, rank, iterations, default| AlsSet {
        name,
        input,
        rank,
        iterations,
        default,
    };
    vec![
        set("ml100k", movielens(), 10, 10, true),
        set(
            "synthetic10m",
            synthetic(100_000, 20_000, 1e7),
            10,
            10,
            true,
        ),
        set(
            "synthetic10m-rank50",
            synthetic(100_000, 20_000, 1e7),
            50,
            10,
            true,
        ),
        set(
            "synthetic100m-rank50",
            synthetic(1_000_000, 200_000, 1e8),
            50,
            3,
            false,
        ),
    ]
}

fn movielens() -> RatingsInput {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/ml-100k/ml-100k.inter");
    RatingsInput::Files(LineInput::Files(vec![path]), Format::Tsv)
}

/// Runs the ALS variants of `sets` (comma-separated names; the default
/// sets without it), each in its own process, and prints the table rows.
pub fn bench_als(scale: f64, sets: Option<&str>) -> Result<()> {
    let all = als_sets(scale);
    let chosen: Vec<&AlsSet> = match sets {
        None => all.iter().filter(|s| s.default).collect(),
        Some(names) => names
            .split(',')
            .map(|n| {
                all.iter().find(|s| s.name == n).with_context(|| {
                    let known: Vec<&str> = all.iter().map(|s| s.name).collect();
                    format!("--sets: no data set {n:?} (known: {})", known.join(", "))
                })
            })
            .collect::<Result<_>>()?,
    };
    println!("ALS, λ 0.1, 80/20 seeded split; each variant in a fresh process");
    println!(
        "| data | rank | workers | iterations | train ratings | setup (s) | per iteration (s) | ratings/s/core/iteration | test RMSE | peak RSS (MB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for set in chosen {
        for workers in ["1", "2"] {
            let variant = format!("{}/{workers}", set.name);
            let status = std::process::Command::new(std::env::current_exe()?)
                .args(["als", "--variant", &variant, "--scale", &scale.to_string()])
                .status()?;
            if !status.success() {
                bail!("the {variant} run failed: {status}");
            }
        }
    }
    Ok(())
}

/// Runs one ALS variant (`set/workers`) and prints its row.
pub fn one_als(variant: &str, scale: f64) -> Result<()> {
    let (name, workers) = variant.split_once('/').context("variant set/workers")?;
    let workers: usize = workers.parse()?;
    let AlsSet {
        input,
        rank,
        iterations,
        ..
    } = als_sets(scale)
        .into_iter()
        .find(|s| s.name == name)
        .with_context(|| format!("no data set {name}"))?;
    let times: Arc<Mutex<Vec<(Instant, Errors)>>> = Arc::default();
    let seen = Arc::clone(&times);
    let job = AlsJob {
        input,
        split: Split::Fraction {
            fraction: 0.2,
            seed: 42,
        },
        params: AlsParams {
            rank,
            lambda: 0.1,
            seed: 42,
        },
        blocks: None,
        iterations,
        tolerance: None,
        checkpoints: None,
        report: Some(Arc::new(move |r: Round<Errors>| {
            if let Ok(mut t) = seen.lock() {
                t.push((Instant::now(), r.value));
            }
        })),
        keep_model: false,
    };
    let start = Instant::now();
    als::run(
        timely::Config::process(workers),
        job,
        &JobOptions::default(),
    )?;
    let times = times.lock().map(|t| t.clone()).unwrap_or_default();
    let (Some((first, _)), Some((last, errors))) = (times.first(), times.last()) else {
        bail!("no iterations reported");
    };
    // iteration 0 also builds the layout; the others are pure iterations
    let per_iteration = last.duration_since(*first).as_secs_f64() / (times.len() - 1).max(1) as f64;
    let setup = first.duration_since(start).as_secs_f64() - per_iteration;
    let rss = peak_rss().context("peak RSS needs /proc/self/status")?;
    println!(
        "| {name} | {rank} | {workers} | {iterations} | {} | {setup:.2} | {per_iteration:.4} | {:.0} | {:.4} | {:.0} |",
        errors.train_count,
        errors.train_count / per_iteration / workers as f64,
        errors.test_rmse().unwrap_or(f64::NAN),
        rss as f64 / 1e6
    );
    Ok(())
}

/// Writes weir's seeded 80/20 split of MovieLens 100K into `dir` as
/// `train.tsv` and `test.tsv`.
pub fn als_split(dir: &Path) -> Result<()> {
    let split = Split::Fraction {
        fraction: 0.2,
        seed: 42,
    };
    let (train, test) = split_all(&movielens(), &split)?;
    std::fs::create_dir_all(dir)?;
    for (name, ratings) in [("train.tsv", &train), ("test.tsv", &test)] {
        let text: String = ratings
            .iter()
            .map(|r| format!("{}\t{}\t{}\n", r.user, r.item, r.value))
            .collect();
        let path: PathBuf = dir.join(name);
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    }
    eprintln!(
        "wrote {} train and {} test ratings to {}",
        train.len(),
        test.len(),
        dir.display()
    );
    Ok(())
}

/// CoCoA, CoCoA+ and mini-batch SGD to 1e-3 on two data sets.
pub fn bench_cocoa() -> Result<()> {
    let cancer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/breast-cancer/all.libsvm");
    let sets = [
        (
            "synthetic 20,000 x 500",
            SvmInput::Synthetic(SyntheticSvm::DEFAULT),
            1e-3,
        ),
        (
            "breast cancer 569 x 30",
            SvmInput::Files(LineInput::Files(vec![cancer])),
            1e-3,
        ),
    ];
    let (k, target, rounds) = (2usize, 1e-3, 5_000u64);
    println!(
        "Hinge-loss SVM, 2 partitions (weir: 2 workers), H = local steps per partition and round; target 1e-3"
    );
    println!(
        "| data | λ | method | H (or batch) | rounds to gap < 1e-3 | rounds to P - P* < 1e-3 | time (s) |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|");
    for (name, input, lambda) in sets {
        let examples = input.all()?;
        let n = examples.len();
        let h = (n / k).max(1) as u64;
        let params = |aggregation| CocoaParams {
            lambda,
            local_iters: h,
            aggregation,
            seed: 42,
        };
        // the optimum: a long sequential run to a tiny gap
        let (_, long) =
            reference::cocoa(&examples, 1, params(Aggregation::Add), 20_000, Some(1e-9));
        let optimum = long.last().context("no rounds")?.primal();
        for (method, aggregation) in [
            ("CoCoA (average)", Aggregation::Average),
            ("CoCoA+ (add)", Aggregation::Add),
        ] {
            let history: Arc<Mutex<Vec<Duality>>> = Arc::default();
            let seen = Arc::clone(&history);
            let job = CocoaJob {
                input: input.clone(),
                test: None,
                params: params(aggregation),
                rounds,
                tolerance: Some(target),
                checkpoints: None,
                report: Some(Arc::new(move |r: Round<Duality>| {
                    if let Ok(mut h) = seen.lock() {
                        h.push(r.value);
                    }
                })),
            };
            let start = Instant::now();
            let summary = cocoa::run(timely::Config::process(k), job, &JobOptions::default())?;
            let took = start.elapsed().as_secs_f64();
            let history = history.lock().map(|h| h.clone()).unwrap_or_default();
            let sub = history
                .iter()
                .position(|d| d.primal() - optimum < target)
                .map(|r| r + 1);
            println!(
                "| {name} | {lambda} | {method} | {h} | {} | {} | {took:.2} |",
                summary.rounds_run(),
                sub.map_or("-".into(), |r| r.to_string())
            );
        }
        let start = Instant::now();
        let batch = h as usize;
        let (_, primal) = minibatch_sgd(&examples, k, batch, lambda, rounds, 42, |_, p| {
            p - optimum < target
        });
        let took = start.elapsed().as_secs_f64();
        let reached = primal.last().is_some_and(|p| p - optimum < target);
        println!(
            "| {name} | {lambda} | mini-batch SGD | {batch} | n/a | {} | {took:.2} |",
            if reached {
                primal.len().to_string()
            } else {
                format!("> {rounds}")
            }
        );
    }
    Ok(())
}

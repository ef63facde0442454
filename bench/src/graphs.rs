//! The COST comparison for graphs: weir's PageRank (20 iterations) and
//! connected components on an R-MAT graph at 1 and 2 workers, against
//! optimised single-threaded baselines over the same edges (PageRank over a
//! CSR, union-find for components). Each variant runs in a fresh process of
//! this binary, so that each peak RSS is its own.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use weir_dataflows::algorithms::graphs::pagerank::PageRank;
use weir_dataflows::graph::input::{Edge, GraphInput, Rmat};
use weir_dataflows::jobs::graph::{self, Algorithm, GraphJob};
use weir_runtime::exec::{JobOptions, peak_rss};

const ITERATIONS: u64 = 20;
const VARIANTS: [&str; 6] = [
    "pagerank-baseline",
    "pagerank-1",
    "pagerank-2",
    "cc-baseline",
    "cc-1",
    "cc-2",
];

fn rmat(scale: u32) -> Rmat {
    Rmat {
        scale,
        edge_factor: 16,
        seed: 1,
    }
}

/// Runs every variant in its own process and prints the table rows.
pub fn bench(scale: u32) -> Result<()> {
    let r = rmat(scale);
    println!(
        "R-MAT scale {scale} ({} edges), PageRank {ITERATIONS} iterations and CC; each variant in a fresh process",
        r.edges()
    );
    println!(
        "| job | variant | generate + build (s) | per iteration (s) | iterations | total (s) | peak RSS (MB) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for variant in VARIANTS {
        let status = std::process::Command::new(std::env::current_exe()?)
            .args([
                "graphs",
                "--variant",
                variant,
                "--rmat-scale",
                &scale.to_string(),
            ])
            .status()?;
        if !status.success() {
            bail!("the {variant} run failed: {status}");
        }
    }
    Ok(())
}

/// Runs one variant and prints its row.
pub fn one(variant: &str, scale: u32) -> Result<()> {
    let (job, how) = variant.split_once('-').context("variant job-how")?;
    let start = Instant::now();
    let (setup, per_iteration, iterations) = match how {
        "baseline" => {
            let edges = GraphInput::Rmat(rmat(scale)).all_edges()?;
            match job {
                "pagerank" => baseline_pagerank(&edges, 1 << scale, start),
                _ => baseline_cc(&edges, 1 << scale, start),
            }
        }
        workers => weir(job, workers.parse()?, scale, start)?,
    };
    let total = start.elapsed().as_secs_f64();
    let rss = peak_rss().context("peak RSS needs /proc/self/status")?;
    let how = match how {
        "baseline" => "single-thread baseline".to_string(),
        w => format!("weir, {w} worker(s)"),
    };
    println!(
        "| {job} | {how} | {setup:.2} | {per_iteration:.3} | {iterations} | {total:.2} | {} |",
        rss >> 20
    );
    Ok(())
}

/// A weir run: time to the first iteration's end minus one iteration (setup),
/// mean time per iteration after the first, and iterations.
fn weir(job: &str, workers: usize, scale: u32, start: Instant) -> Result<(f64, f64, u64)> {
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&times);
    let algorithm = match job {
        "pagerank" => Algorithm::PageRank {
            params: PageRank { damping: 0.85 },
            iterations: ITERATIONS,
            tolerance: None,
        },
        _ => Algorithm::Cc,
    };
    let summary = graph::run(
        timely::Config::process(workers),
        GraphJob {
            input: GraphInput::Rmat(rmat(scale)),
            algorithm,
            checkpoints: None,
            wide_ids: false,
            report: Some(Arc::new(move |_| {
                if let Ok(mut t) = seen.lock() {
                    t.push(start.elapsed().as_secs_f64());
                }
            })),
        },
        &JobOptions::default(),
    )?;
    let times = times.lock().map(|t| t.clone()).unwrap_or_default();
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        bail!("no iterations reported");
    };
    let n = times.len();
    let per = if n > 1 {
        (last - first) / (n - 1) as f64
    } else {
        first
    };
    Ok((first - per, per, summary.iterations()))
}

/// A CSR over `0..bound` (the R-MAT id space) with nodes = ids with an edge.
struct Csr {
    offsets: Vec<u32>,
    targets: Vec<u32>,
    present: Vec<bool>,
}

fn csr(edges: &[Edge], bound: usize) -> Csr {
    let mut offsets = vec![0u32; bound + 1];
    let mut present = vec![false; bound];
    for &(s, d) in edges {
        offsets[s as usize + 1] += 1;
        present[s as usize] = true;
        present[d as usize] = true;
    }
    for i in 0..bound {
        offsets[i + 1] += offsets[i];
    }
    let mut fill = offsets.clone();
    let mut targets = vec![0u32; edges.len()];
    for &(s, d) in edges {
        targets[fill[s as usize] as usize] = d;
        fill[s as usize] += 1;
    }
    Csr {
        offsets,
        targets,
        present,
    }
}

/// PageRank over a CSR, the same formula as weir's (dangling rank spread).
fn baseline_pagerank(edges: &[Edge], bound: usize, start: Instant) -> (f64, f64, u64) {
    let g = csr(edges, bound);
    let n = g.present.iter().filter(|&&p| p).count() as f64;
    let d = 0.85;
    let mut rank: Vec<f64> = g
        .present
        .iter()
        .map(|&p| if p { 1.0 / n } else { 0.0 })
        .collect();
    let mut next = vec![0.0; bound];
    let setup = start.elapsed().as_secs_f64();
    for _ in 0..ITERATIONS {
        let mut dangling = 0.0;
        for (u, &r) in rank.iter().enumerate() {
            let (a, b) = (g.offsets[u] as usize, g.offsets[u + 1] as usize);
            if a == b {
                dangling += r;
                continue;
            }
            let share = r / (b - a) as f64;
            for &v in &g.targets[a..b] {
                next[v as usize] += share;
            }
        }
        let base = (1.0 - d) / n + d * dangling / n;
        for ((r, incoming), &present) in rank.iter_mut().zip(next.iter_mut()).zip(&g.present) {
            *r = if present { base + d * *incoming } else { 0.0 };
            *incoming = 0.0;
        }
    }
    let per = (start.elapsed().as_secs_f64() - setup) / ITERATIONS as f64;
    assert!((rank.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    (setup, per, ITERATIONS)
}

/// Union-find with path halving, the smaller root kept (so roots are minima).
fn baseline_cc(edges: &[Edge], bound: usize, start: Instant) -> (f64, f64, u64) {
    let setup = start.elapsed().as_secs_f64();
    let mut parent: Vec<u32> = (0..bound as u32).collect();
    let find = |parent: &mut Vec<u32>, mut v: u32| {
        while parent[v as usize] != v {
            let grand = parent[parent[v as usize] as usize];
            parent[v as usize] = grand;
            v = grand;
        }
        v
    };
    for &(a, b) in edges {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb) as usize] = ra.min(rb);
        }
    }
    let mut components = 0;
    for v in 0..bound as u32 {
        if find(&mut parent, v) == v {
            components += 1;
        }
    }
    assert!(components > 0);
    (setup, start.elapsed().as_secs_f64() - setup, 1)
}

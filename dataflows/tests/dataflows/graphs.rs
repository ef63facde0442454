//! The graph jobs against their sequential references on seeded random graphs
//! (self-loops, duplicate edges, isolated and dangling nodes) and R-MAT, on
//! every layout (1, 2, 3 workers and 2 processes).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use rand::{Rng, SeedableRng};
use weir_dataflows::algorithms::graphs::pagerank::{self, PageRank};
use weir_dataflows::algorithms::graphs::{bfs, cc};
use weir_dataflows::graph::input::{Edge, GraphInput, Rmat};
use weir_dataflows::jobs::graph::{self, Algorithm, GraphJob, GraphSummary};
use weir_runtime::JobError;
use weir_runtime::input::LineInput;
use weir_runtime::testing;

use crate::common::all_records;

/// A seeded graph file: random edges among `nodes` ids (spread out, so ids are
/// not dense), duplicates, self-loops, a self-loop-only node, dangling nodes,
/// comments and a weight column.
pub fn random_graph(dir: &Path, seed: u64, nodes: u32, edges: usize) -> GraphInput {
    random_graph_from(dir, seed, nodes, edges, 0)
}

/// [`random_graph`] with ids from `first` on (64-bit ids when it is 2^32 or
/// more).
pub fn random_graph_from(
    dir: &Path,
    seed: u64,
    nodes: u32,
    edges: usize,
    first: u64,
) -> GraphInput {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let path = dir.join(format!("graph-{seed}-{first}.txt"));
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "# seeded test graph").unwrap();
    let id = |k: u32| first + u64::from(k) * 7 + 3;
    for i in 0..edges {
        let src = id(rng.random_range(0..nodes));
        // every tenth edge leads into a node without out-edges
        let dst = if i % 10 == 0 {
            id(nodes + rng.random_range(0..5))
        } else {
            id(rng.random_range(0..nodes))
        };
        writeln!(file, "{src} {dst}").unwrap();
        if i % 17 == 0 {
            writeln!(file, "{src}\t{dst}\t2.5").unwrap(); // a duplicate, weighted
        }
        if i % 23 == 0 {
            writeln!(file, "{src} {src}").unwrap(); // a self-loop
        }
    }
    writeln!(file, "{} {}", id(nodes + 9), id(nodes + 9)).unwrap(); // alone but for its loop
    GraphInput::Edges(LineInput::Files(vec![path]))
}

fn run_everywhere(job: GraphJob) -> Vec<(String, Result<GraphSummary, JobError>)> {
    testing::on_every_layout(move |config| graph::run(config, job.clone(), &all_records())).unwrap()
}

fn job(input: &GraphInput, algorithm: Algorithm) -> GraphJob {
    GraphJob {
        input: input.clone(),
        algorithm,
        checkpoints: None,
        report: None,
        wide_ids: false,
    }
}

/// The error of a job that must fail, on `workers` threads.
fn error_of(workers: usize, job: GraphJob) -> String {
    graph::run(timely::Config::process(workers), job, &all_records())
        .unwrap_err()
        .to_string()
}

/// `node<TAB>value` lines as a map.
pub fn parse<V: std::str::FromStr>(summary: &GraphSummary) -> BTreeMap<u64, V> {
    summary
        .job
        .records
        .as_ref()
        .unwrap()
        .iter()
        .map(|line| {
            let (node, value) = line.split_once('\t').unwrap();
            let value = value.parse().ok().unwrap();
            (node.parse().unwrap(), value)
        })
        .collect()
}

pub fn assert_close(
    got: &BTreeMap<u64, f64>,
    want: &BTreeMap<u64, f64>,
    tolerance: f64,
    what: &str,
) {
    assert_eq!(got.len(), want.len(), "{what}: node count");
    for (node, rank) in want {
        let diff = (got[node] - rank).abs();
        assert!(
            diff <= tolerance,
            "{what}: node {node}: {} vs {rank}",
            got[node]
        );
    }
}

const DAMPING: PageRank = PageRank { damping: 0.85 };

fn check_pagerank(input: &GraphInput, iterations: u64, tolerance: Option<f64>) {
    check_pagerank_job(job(input, Algorithm::Cc), iterations, tolerance);
}

fn check_pagerank_job(mut job: GraphJob, iterations: u64, tolerance: Option<f64>) {
    let edges: Vec<Edge<u64>> = job.input.all_edges().unwrap();
    let (want, want_iterations) = pagerank::reference(
        &edges,
        DAMPING,
        iterations,
        tolerance.unwrap_or(f64::NEG_INFINITY),
    );
    let sum: f64 = want.values().sum();
    assert!((sum - 1.0).abs() < 1e-9, "reference ranks sum to {sum}");
    job.algorithm = Algorithm::PageRank {
        params: DAMPING,
        iterations,
        tolerance,
    };
    for (layout, result) in run_everywhere(job) {
        let summary = result.unwrap();
        assert_close(&parse(&summary), &want, 1e-12, &layout);
        assert_eq!(
            summary.iterations(),
            want_iterations,
            "{layout}: iterations"
        );
    }
}

#[test]
fn pagerank_matches_the_reference_for_fixed_iterations() {
    let dir = tempfile::tempdir().unwrap();
    check_pagerank(&random_graph(dir.path(), 1, 300, 1500), 12, None);
}

#[test]
fn pagerank_stops_at_the_same_iteration_on_every_layout() {
    let dir = tempfile::tempdir().unwrap();
    let input = random_graph(dir.path(), 2, 200, 900);
    let (_, ran) = pagerank::reference(&input.all_edges::<u32>().unwrap(), DAMPING, 100, 1e-6);
    assert!(
        ran > 3 && ran < 100,
        "the tolerance stops the reference early: {ran}"
    );
    check_pagerank(&input, 100, Some(1e-6));
}

#[test]
fn pagerank_on_rmat_matches_the_reference() {
    let rmat = GraphInput::Rmat(Rmat {
        scale: 9,
        edge_factor: 8,
        seed: 5,
    });
    check_pagerank(&rmat, 10, None);
}

fn check_exact<V>(input: &GraphInput, algorithm: Algorithm, want: &BTreeMap<u64, V>)
where
    V: std::str::FromStr + PartialEq + std::fmt::Debug,
{
    check_exact_job(job(input, algorithm), want);
}

fn check_exact_job<V>(job: GraphJob, want: &BTreeMap<u64, V>)
where
    V: std::str::FromStr + PartialEq + std::fmt::Debug,
{
    assert!(!want.is_empty());
    for (layout, result) in run_everywhere(job) {
        let summary = result.unwrap();
        assert_eq!(&parse::<V>(&summary), want, "{layout}");
    }
}

#[test]
fn cc_matches_union_find() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, nodes, edges) in [(3, 400, 300), (4, 100, 400)] {
        let input = random_graph(dir.path(), seed, nodes, edges);
        let want = cc::reference(&input.all_edges::<u64>().unwrap());
        let components: std::collections::BTreeSet<_> = want.values().collect();
        assert!(components.len() > 1);
        check_exact(&input, Algorithm::Cc, &want);
    }
    let rmat = GraphInput::Rmat(Rmat {
        scale: 9,
        edge_factor: 2,
        seed: 1,
    });
    check_exact(
        &rmat,
        Algorithm::Cc,
        &cc::reference(&rmat.all_edges::<u64>().unwrap()),
    );
}

#[test]
fn bfs_matches_the_sequential_search() {
    let dir = tempfile::tempdir().unwrap();
    let input = random_graph(dir.path(), 6, 500, 900);
    let edges = input.all_edges::<u64>().unwrap();
    let source = edges[0].0;
    let want = bfs::reference(&edges, source);
    assert!(want.values().any(|&d| d >= 3), "a deep enough search");
    check_exact(&input, Algorithm::Bfs { source }, &want);
}

#[test]
fn a_bad_edge_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.txt");
    std::fs::write(&path, "# header\n1 2\n2 three\n").unwrap();
    let input = GraphInput::Edges(LineInput::Files(vec![path]));
    let err = error_of(2, job(&input, Algorithm::Cc));
    assert!(
        err.contains("bad.txt:3") && err.contains("\"three\""),
        "{err}"
    );
}

/// Edge lists with ids of 2^32 and above run with 64-bit ids, on every
/// layout, and match the references; without `wide_ids` they fail naming the
/// line and the flag.
#[test]
fn wide_ids_match_the_references() {
    let dir = tempfile::tempdir().unwrap();
    let first = 5 << 32;
    let input = random_graph_from(dir.path(), 8, 300, 900, first);
    let wide = |algorithm| GraphJob {
        wide_ids: true,
        ..job(&input, algorithm)
    };
    let edges = input.all_edges::<u64>().unwrap();
    assert!(edges.iter().all(|&(s, d)| s > first && d > first));
    check_pagerank_job(wide(Algorithm::Cc), 8, None);
    check_exact_job(wide(Algorithm::Cc), &cc::reference(&edges));
    let source = edges[0].0;
    let want = bfs::reference(&edges, source);
    assert!(want.values().any(|&d| d >= 3), "a deep enough search");
    check_exact_job(wide(Algorithm::Bfs { source }), &want);

    let err = error_of(2, job(&input, Algorithm::Cc));
    assert!(
        err.contains(&format!("graph-8-{first}.txt:2")) && err.ends_with(": run with wide ids"),
        "{err}"
    );
    let err = error_of(1, job(&input, Algorithm::Bfs { source }));
    assert!(err.ends_with(": run with wide ids"), "{err}");
}

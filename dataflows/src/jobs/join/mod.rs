//! Inner equi-join of two delimited files with the strategies of Flink's 2015
//! engine: a *ship* strategy moves the rows (broadcast the smaller side and keep the
//! larger where it is, or repartition both by key), then a *local* strategy joins
//! them on each worker (hybrid hash join, or sort-merge join), both spilling to disk
//! when their rows exceed the memory budget.
//!
//! The smaller input (by bytes) is the *build* side. It is read first; the larger
//! (*probe*) side is read only once every worker has absorbed the whole build side,
//! which timely's progress tracking tells the probe source: its chunks start at
//! [`PROBE_PHASE`], and it waits until the frontier of the join's output has reached
//! that time. The same frontier throttles every source to a few chunks ahead of the
//! join, so memory stays bounded.
//!
//! Output lines are the left row then the right row, fields tab-separated.

mod fields;
mod hash;
mod operator;
mod plan;
mod sort_merge;
pub mod spill;

pub use fields::{FieldSplitter, delimiter_for};
pub use plan::{Plan, default_memory_budget, plan};

use std::collections::HashMap;
use std::path::PathBuf;

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Probe;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::{Scope, StreamVec};
use weir_runtime::time::BatchTime;

pub use hash::HybridHash;
pub use operator::LocalJoin;
pub use sort_merge::SortMerge;

use weir_runtime::error::JobError;
use weir_runtime::exec::{JobOptions, JobSummary, WorkerCtx, run_job, workers};
use weir_runtime::generate::{Generator, TableSpec};
use weir_runtime::input::LineInput;
use weir_runtime::operators::{ReadLines, key_hash};

/// A row: its key and its fields joined by tabs.
pub type Row = (String, String);

/// Receives each joined pair as (build row, probe row).
pub type Emit<'a> = dyn FnMut(&str, &str) + 'a;

/// The phase of the build side's chunks; the probe side's come after them.
pub const BUILD_PHASE: u32 = 0;
/// The phase of the probe side's chunks, read once the build side is in.
pub const PROBE_PHASE: u32 = 1;

/// How rows move between workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ship {
    /// The build side goes to every worker; the probe side stays where it was read.
    Broadcast,
    /// Both sides go to the worker that owns their key.
    Repartition,
}

/// How each worker joins the rows it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    /// Hybrid hash join on the build side.
    Hash,
    /// Sort both sides, then merge.
    SortMerge,
}

impl std::fmt::Display for Ship {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ship::Broadcast => "broadcast",
            Ship::Repartition => "repartition",
        })
    }
}

impl std::fmt::Display for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Local::Hash => "hash",
            Local::SortMerge => "sort-merge",
        })
    }
}

/// One side of a join.
#[derive(Clone, Debug)]
pub struct Side {
    /// Its lines.
    pub input: LineInput,
    /// 0-based key column.
    pub key: usize,
    /// Field delimiter.
    pub delimiter: u8,
}

/// Everything a join needs.
#[derive(Clone, Debug)]
pub struct JoinSpec {
    /// Left input.
    pub left: Side,
    /// Right input.
    pub right: Side,
    /// Ship strategy, `None` for the cost-based choice.
    pub ship: Option<Ship>,
    /// Local strategy, `None` for the cost-based choice.
    pub local: Option<Local>,
    /// Bytes of rows a process may hold in memory (shared by its workers).
    pub memory_budget: u64,
    /// Where spill files go (default: the system's temp directory).
    pub spill_dir: Option<PathBuf>,
}

/// The embedded default: two generated tab-separated tables keyed on column 0.
pub fn default_spec(memory_budget: u64) -> JoinSpec {
    let table = |rows, seed| Side {
        input: LineInput::Generated(Generator::Table(TableSpec {
            rows,
            keys: 100_000,
            columns: 4,
            delimiter: b'\t',
            seed,
        })),
        key: 0,
        delimiter: b'\t',
    };
    JoinSpec {
        left: table(200_000, 11),
        right: table(50_000, 12),
        ship: None,
        local: None,
        memory_budget,
        spill_dir: None,
    }
}

/// The join dataflow of one worker.
pub fn dataflow<'s>(
    scope: Scope<'s, BatchTime>,
    ctx: &WorkerCtx,
    spec: &JoinSpec,
    plan: &Plan,
) -> StreamVec<'s, BatchTime, String> {
    let (build_side, probe_side) = if plan.build_left {
        (&spec.left, &spec.right)
    } else {
        (&spec.right, &spec.left)
    };
    let parser = |side: &Side| {
        let mut splitter = FieldSplitter::new(side.delimiter);
        let key = side.key;
        move |line: &str, _| splitter.row(line, key)
    };
    let build = scope.read_lines(&build_side.input, ctx, BUILD_PHASE, parser(build_side));
    let probe = scope.read_lines(&probe_side.input, ctx, PROBE_PHASE, parser(probe_side));
    let budget = (spec.memory_budget / ctx.local_peers.max(1) as u64).max(1) as usize;
    let strategy: Box<dyn LocalStrategy> = match plan.local {
        Local::Hash => Box::new(HybridHash::new(
            budget,
            spec.spill_dir.clone(),
            ctx.spilled.clone(),
        )),
        Local::SortMerge => Box::new(SortMerge::new(
            budget,
            spec.spill_dir.clone(),
            ctx.spilled.clone(),
        )),
    };
    let route = || Exchange::new(|row: &Row| key_hash(&row.0));
    let joined = match plan.ship {
        Ship::Broadcast => {
            build
                .broadcast()
                .local_join(probe, Pipeline, Pipeline, strategy, plan.build_left, ctx)
        }
        Ship::Repartition => {
            build.local_join(probe, route(), route(), strategy, plan.build_left, ctx)
        }
    };
    joined.probe_with(&ctx.flow)
}

/// Checks the inputs and picks the strategies for running on `config`.
pub fn prepare(config: &timely::Config, spec: &JoinSpec) -> Result<Plan, JobError> {
    let left_bytes = spec.left.input.validate()?;
    let right_bytes = spec.right.input.validate()?;
    let (peers, local_peers) = workers(config);
    Ok(plan(
        spec,
        left_bytes,
        right_bytes,
        peers,
        local_peers,
        spec.memory_budget / local_peers.max(1) as u64,
    ))
}

/// Runs the join with the strategies of `plan`.
pub fn execute(
    config: timely::Config,
    spec: JoinSpec,
    plan: Plan,
    options: &JobOptions,
) -> Result<JobSummary, JobError> {
    run_job(config, options, move |scope, ctx| {
        dataflow(scope, ctx, &spec, &plan)
    })
}

/// Checks the inputs, plans and runs the join.
pub fn run(
    config: timely::Config,
    spec: JoinSpec,
    options: &JobOptions,
) -> Result<(JobSummary, Plan), JobError> {
    let plan = prepare(&config, &spec)?;
    let summary = execute(config, spec, plan.clone(), options)?;
    Ok((summary, plan))
}

/// Sequential reference: the joined lines, sorted.
pub fn reference(spec: &JoinSpec) -> Result<Vec<String>, JobError> {
    let read = |side: &Side| -> Result<Vec<Row>, JobError> {
        let mut reader = side.input.reader(0, 1)?;
        let mut splitter = FieldSplitter::new(side.delimiter);
        let mut rows = Vec::new();
        let mut line = String::new();
        while let Some(pos) = reader.next_line(&mut line)? {
            match splitter.row(&line, side.key) {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => {}
                Err(message) => {
                    return Err(JobError::Malformed {
                        position: reader.locate(pos),
                        message,
                        remedy: None,
                    });
                }
            }
        }
        Ok(rows)
    };
    let left = read(&spec.left)?;
    let mut right: HashMap<String, Vec<String>> = HashMap::new();
    for (key, text) in read(&spec.right)? {
        right.entry(key).or_default().push(text);
    }
    let mut out = Vec::new();
    for (key, text) in left {
        for r in right.get(&key).into_iter().flatten() {
            out.push(format!("{text}\t{r}"));
        }
    }
    out.sort();
    Ok(out)
}

/// A local join strategy: receives the build side, then the probe side, then
/// finishes what it had to put aside.
pub trait LocalStrategy {
    /// Takes a build-side row.
    fn build(&mut self, row: Row) -> Result<(), JobError>;
    /// The build side is complete.
    fn build_done(&mut self) -> Result<(), JobError>;
    /// Takes a probe-side row, emitting the matches it can give now.
    fn probe(&mut self, row: Row, emit: &mut Emit) -> Result<(), JobError>;
    /// After the probe side is complete: continues the remaining work, returning
    /// after about `max` matches (`Ok(false)`) or when done (`Ok(true)`).
    fn finish(&mut self, emit: &mut Emit, max: usize) -> Result<bool, JobError>;
    /// Whether anything went to disk.
    fn spilled(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    fn naive(build: &[Row], probe: &[Row]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in probe {
            for b in build.iter().filter(|b| b.0 == p.0) {
                out.push((b.1.clone(), p.1.clone()));
            }
        }
        out.sort();
        out
    }

    fn rows(n: usize, keys: usize, salt: usize) -> Vec<Row> {
        (0..n)
            .map(|i| {
                let k = (i * 7919 + salt * 31) % keys;
                (format!("k{k}"), format!("k{k}	v{salt}-{i}"))
            })
            .collect()
    }

    fn run_strategy(
        mut s: Box<dyn LocalStrategy>,
        build: &[Row],
        probe: &[Row],
    ) -> (Vec<(String, String)>, bool) {
        let mut out = Vec::new();
        for r in build {
            s.build(r.clone()).unwrap();
        }
        s.build_done().unwrap();
        for r in probe {
            s.probe(r.clone(), &mut |b, p| {
                out.push((b.to_string(), p.to_string()))
            })
            .unwrap();
        }
        // a small batch size exercises resuming across activations
        while !s
            .finish(&mut |b, p| out.push((b.to_string(), p.to_string())), 7)
            .unwrap()
        {}
        out.sort();
        (out, s.spilled())
    }

    #[test]
    fn strategies_match_a_nested_loop_join_with_and_without_spilling() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (rows(300, 50, 1), rows(900, 80, 2)), // duplicates on both sides, keys on one side only
            (rows(0, 1, 1), rows(100, 10, 2)),    // empty build side
            (rows(100, 10, 1), rows(0, 1, 2)),    // empty probe side
            (rows(400, 1, 1), rows(50, 1, 2)),    // one key larger than the budget
        ];
        for (build, probe) in &cases {
            let want = naive(build, probe);
            for budget in [1 << 30, 2_000] {
                let spilled = Rc::new(Cell::new(0));
                let parent = Some(dir.path().to_path_buf());
                let strategies: Vec<Box<dyn LocalStrategy>> = vec![
                    Box::new(HybridHash::new(budget, parent.clone(), Rc::clone(&spilled))),
                    Box::new(SortMerge::new(budget, parent.clone(), Rc::clone(&spilled))),
                ];
                for s in strategies {
                    let (got, did_spill) = run_strategy(s, build, probe);
                    assert_eq!(got, want, "budget {budget}");
                    let big = build.len() * 90 > budget;
                    if budget < 10_000 && big {
                        assert!(did_spill, "a {budget}-byte budget must spill");
                    }
                    if budget > 10_000 {
                        assert!(!did_spill);
                    }
                }
                assert_eq!(
                    std::fs::read_dir(dir.path()).unwrap().count(),
                    0,
                    "spill files removed"
                );
            }
        }
    }

    fn spec() -> JoinSpec {
        default_spec(1 << 30)
    }

    #[test]
    fn auto_broadcasts_a_small_side_and_repartitions_similar_sides() {
        let p = plan(&spec(), 1_000_000, 100_000_000, 4, 4, 1 << 30);
        assert_eq!(
            (p.ship, p.local, p.build_left),
            (Ship::Broadcast, Local::Hash, true)
        );
        let p = plan(&spec(), 90_000_000, 100_000_000, 4, 2, 1 << 30);
        assert_eq!((p.ship, p.build_left), (Ship::Repartition, true));
        let p = plan(&spec(), 100_000_000, 90_000_000, 4, 1, 1 << 30);
        assert!(!p.build_left);
        assert!(
            p.explanation.contains("ship repartition (auto)"),
            "{}",
            p.explanation
        );
    }

    #[test]
    fn auto_weighs_moves_within_a_process_below_network_moves() {
        // a quarter-size build side: broadcast across processes, repartition among threads
        let across = plan(&spec(), 17_000_000, 68_000_000, 2, 1, 1 << 30);
        assert_eq!(across.ship, Ship::Broadcast, "{}", across.explanation);
        let within = plan(&spec(), 17_000_000, 68_000_000, 2, 2, 1 << 30);
        assert_eq!(within.ship, Ship::Repartition, "{}", within.explanation);
    }

    #[test]
    fn given_strategies_are_kept() {
        let mut s = spec();
        s.ship = Some(Ship::Repartition);
        s.local = Some(Local::SortMerge);
        let p = plan(&s, 1, 1_000_000, 2, 1, 10);
        assert_eq!((p.ship, p.local), (Ship::Repartition, Local::SortMerge));
        assert!(p.explanation.contains("(given)"));
    }
}

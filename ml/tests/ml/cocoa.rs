//! CoCoA and CoCoA+ against the sequential reference on the same partitions
//! (1, 2, 3 workers and 2 processes), convergence to the optimum, loop
//! checkpoints and bad input.

use std::path::Path;

use weir_ml::cocoa::reference;
use weir_ml::cocoa::sdca::{Aggregation, CocoaParams};
use weir_ml::cocoa::sgd;
use weir_ml::jobs::cocoa::{self, CocoaJob, CocoaSummary};
use weir_ml::libsvm::{SvmInput, SyntheticSvm};
use weir_runtime::JobError;
use weir_runtime::exec::{JobOptions, workers};
use weir_runtime::input::LineInput;
use weir_runtime::loops::LoopCheckpointing;
use weir_runtime::testing;

const SMALL: SyntheticSvm = SyntheticSvm {
    examples: 1_500,
    dimension: 60,
    nonzeros: 8,
    noise: 0.05,
    seed: 3,
};

fn job(input: SvmInput, aggregation: Aggregation, rounds: u64) -> CocoaJob {
    CocoaJob {
        input,
        test: None,
        params: CocoaParams {
            lambda: 1e-3,
            local_iters: 200,
            aggregation,
            seed: 9,
        },
        rounds,
        tolerance: None,
        checkpoints: None,
        report: None,
    }
}

/// (layout, workers in all, result of process 0) for every layout.
fn run_everywhere(job: &CocoaJob) -> Vec<(String, usize, Result<CocoaSummary, JobError>)> {
    testing::layouts()
        .unwrap()
        .into_iter()
        .map(|(label, configs)| {
            let k: usize = configs.iter().map(|c| workers(c).1).sum();
            let job = job.clone();
            let mut results = testing::run_processes(configs, move |config| {
                cocoa::run(config, job.clone(), &JobOptions::default())
            });
            (label, k, results.remove(0))
        })
        .collect()
}

#[test]
fn cocoa_and_cocoa_plus_match_the_reference_on_every_layout() {
    let input = SvmInput::Synthetic(SMALL);
    let examples = input.all().unwrap();
    for aggregation in [Aggregation::Average, Aggregation::Add] {
        let job = job(input.clone(), aggregation, 8);
        for (label, k, result) in run_everywhere(&job) {
            let summary = result.unwrap_or_else(|e| panic!("{label}: {e}"));
            let (w, history) = reference::cocoa(&examples, k, job.params, 8, None);
            assert_eq!(summary.rounds.len(), 8, "{label}");
            assert_eq!(summary.weights.len(), w.len(), "{label}");
            for (a, b) in summary.weights.iter().zip(&w) {
                assert!((a - b).abs() < 1e-9, "{label} {aggregation:?}: {a} vs {b}");
            }
            for (got, want) in summary.rounds.iter().zip(&history) {
                assert!((got.value.gap() - want.gap()).abs() < 1e-9, "{label}");
                assert_eq!(got.value.examples, 1_500.0, "{label}");
            }
            // the gap only shrinks towards 0
            assert!(history[7].gap() < history[0].gap() && history[7].gap() >= 0.0);
        }
    }
}

#[test]
fn both_aggregations_reach_the_optimum_and_stop_below_the_gap() {
    let input = SvmInput::Synthetic(SMALL);
    let examples = input.all().unwrap();
    let params = CocoaParams {
        lambda: 1e-2,
        ..job(input.clone(), Aggregation::Add, 1).params
    };
    // the optimum's objective, from a long sequential run to a tiny gap
    let (_, long) = reference::cocoa(&examples, 1, params, 2_000, Some(1e-7));
    let optimum = long.last().unwrap().primal();
    assert!(long.last().unwrap().gap() < 1e-7);
    let mut rounds = Vec::new();
    for aggregation in [Aggregation::Average, Aggregation::Add] {
        let mut job = job(input.clone(), aggregation, 500);
        job.params = CocoaParams {
            aggregation,
            ..params
        };
        job.tolerance = Some(1e-4);
        let summary = cocoa::run(timely::Config::process(3), job, &JobOptions::default()).unwrap();
        let last = summary.rounds.last().unwrap().value;
        assert!(last.gap() < 1e-4, "{aggregation:?}: {last:?}");
        assert!(summary.rounds_run() < 500, "{aggregation:?}");
        // P(w) - P* ≤ gap
        assert!(last.primal() - optimum < 1e-4 && last.primal() >= optimum - 1e-9);
        assert!(last.train_accuracy() > 0.85, "{last:?}");
        rounds.push(summary.rounds_run());
    }
    // CoCoA+ (adding) needs fewer rounds than averaging on 3 workers
    assert!(rounds[1] < rounds[0], "{rounds:?}");
    // and mini-batch SGD with the same examples per round does not get there
    // in as many rounds as CoCoA+
    let (_, sgd) = sgd::minibatch_sgd(&examples, 3, 200, 1e-2, rounds[1], 9, |_, _| false);
    assert!(sgd.last().unwrap() - optimum > 1e-4, "{:?}", sgd.last());
}

#[test]
fn a_resumed_run_ends_with_the_uninterrupted_weights() {
    let dir = tempfile::tempdir().unwrap();
    let input = SvmInput::Synthetic(SMALL);
    let whole = cocoa::run(
        timely::Config::process(2),
        job(input.clone(), Aggregation::Add, 9),
        &JobOptions::default(),
    )
    .unwrap();
    let mut first = job(input.clone(), Aggregation::Add, 6);
    first.checkpoints = Some(LoopCheckpointing {
        dir: dir.path().to_path_buf(),
        every: 2,
        restore: false,
    });
    cocoa::run(
        timely::Config::process(2),
        first.clone(),
        &JobOptions::default(),
    )
    .unwrap();
    let mut resume = job(input, Aggregation::Add, 9);
    resume.checkpoints = Some(LoopCheckpointing {
        restore: true,
        ..first.checkpoints.unwrap()
    });
    let resumed = cocoa::run(timely::Config::process(2), resume, &JobOptions::default()).unwrap();
    assert_eq!(resumed.resumed_at, Some(4));
    assert_eq!(resumed.rounds_run(), 9);
    assert_eq!(resumed.weights, whole.weights);
}

#[test]
fn a_bad_libsvm_line_fails_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.libsvm");
    std::fs::write(&path, "+1 1:0.5 2:1\n-1 2:0.5 1:1\n").unwrap();
    let input = SvmInput::Files(LineInput::Files(vec![path]));
    for (label, _, result) in run_everywhere(&job(input, Aggregation::Add, 2)) {
        let err = result
            .err()
            .unwrap_or_else(|| panic!("{label}: no error"))
            .to_string();
        assert!(
            err.contains("bad.libsvm:2") && err.contains("ascend"),
            "{label}: {err}"
        );
    }
    let missing = SvmInput::Files(LineInput::Files(vec![
        Path::new("/nonexistent/x.libsvm").into(),
    ]));
    let err = cocoa::run(
        timely::Config::thread(),
        job(missing, Aggregation::Add, 2),
        &JobOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("x.libsvm"), "{err}");
}

#[test]
fn breast_cancer_is_separated_on_held_out_data() {
    // fetched by `scripts/data.sh breast-cancer` (the test script runs it):
    // its absence is a failure, not a skip
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/breast-cancer");
    assert!(
        dir.join("test.libsvm").is_file(),
        "{} is missing: run scripts/data.sh breast-cancer",
        dir.display()
    );
    let file = |name: &str| SvmInput::Files(LineInput::Files(vec![dir.join(name)]));
    let mut job = job(file("train.libsvm"), Aggregation::Add, 1_000);
    job.test = Some(file("test.libsvm"));
    job.tolerance = Some(1e-3);
    let summary = cocoa::run(timely::Config::process(2), job, &JobOptions::default()).unwrap();
    let last = summary.rounds.last().unwrap().value;
    assert_eq!(last.examples, 455.0);
    assert!(last.gap() < 1e-3, "{last:?}");
    assert!(
        summary.test_accuracy.unwrap() > 0.95,
        "{:?}",
        summary.test_accuracy
    );
}

//! `weir cocoa`: a linear SVM (hinge loss, no bias) trained with CoCoA or
//! CoCoA+.

use std::fmt::Write as _;
use std::path::PathBuf;

use weir_ml::cocoa::sdca::{Aggregation, CocoaParams, Duality};
use weir_ml::jobs::cocoa::{self, CocoaJob};
use weir_ml::libsvm::{SvmInput, SyntheticSvm};
use weir_progress::convergence::Round;
use weir_runtime::input::LineInput;

use crate::cli::{self, CliError, Command};
use crate::flag::Flag;
use crate::iterative;
use crate::plot::{self, Curve, Plot};

pub fn command() -> Command {
    let mut c = Command::with_output(
        "cocoa",
        "weir cocoa [--data PATH.libsvm] [--test PATH] [--lambda L] [--rounds R] [--local-iters H] [--aggregation average|add] [--tolerance GAP] [--output FILE] [timely flags]",
        "A linear SVM (hinge loss, no bias term) trained with CoCoA: every worker runs\n\
         H steps of dual coordinate ascent (SDCA) on its partition per round, then the\n\
         updates are averaged (CoCoA) or added (CoCoA+). Stops after R rounds or once\n\
         the duality gap is below GAP. Data: LIBSVM lines `label index:value ...`\n\
         (labels -1/+1 or 0/1). Without --data: a seeded synthetic set (20,000\n\
         examples, 500 features).",
        &OUTPUT,
    );
    c.flags(&[
        &DATA,
        &TEST,
        &LAMBDA,
        &ROUNDS,
        &LOCAL_ITERS,
        &AGGREGATION,
        &TOLERANCE,
        &SEED,
    ]);
    iterative::loop_flags(&mut c);
    c
}

const OUTPUT: Flag<PathBuf> = Flag::new(
    "output",
    "FILE",
    "write the weights as lines index<TAB>weight (1-based, as in the data) to FILE",
);
const DATA: Flag<PathBuf> = Flag::new("data", "PATH", "a LIBSVM training file").repeat();
const TEST: Flag<PathBuf> = Flag::new("test", "PATH", "a LIBSVM test file: report accuracy on it");
const LAMBDA: Flag<f64> = Flag::new("lambda", "L", "regularisation λ").default("1e-3");
const ROUNDS: Flag<u64> = Flag::new("rounds", "R", "rounds at most").default("100");
const LOCAL_ITERS: Flag<u64> =
    Flag::new("local-iters", "H", "SDCA steps per worker and round").default("1000");
const AGGREGATION: Flag<Aggregation> =
    Flag::new("aggregation", "A", "average (CoCoA) or add (CoCoA+)").default("add");
const TOLERANCE: Flag<f64> =
    Flag::new("tolerance", "GAP", "stop once the duality gap is below GAP");
const SEED: Flag<u64> = Flag::new("seed", "S", "seeds the coordinate sampling").default("42");

fn line(round: &Round<Duality>) -> String {
    let d = &round.value;
    format!(
        "duality gap {:.3e}, primal {:.6}, train accuracy {:.4}",
        d.gap(),
        d.primal(),
        d.train_accuracy()
    )
}

pub fn main(args: &[String]) -> Result<(), CliError> {
    let Some(m) = command().parse(args)? else {
        return Ok(());
    };
    let config = cli::timely_config(&m)?;
    let files = DATA.all(&m)?;
    let input = if files.is_empty() {
        SvmInput::Synthetic(SyntheticSvm::DEFAULT)
    } else {
        SvmInput::Files(LineInput::Files(files))
    };
    let test = TEST
        .get(&m)?
        .map(|t| SvmInput::Files(LineInput::Files(vec![t])));
    let params = CocoaParams {
        lambda: LAMBDA.value(&m)?,
        local_iters: LOCAL_ITERS.value(&m)?,
        aggregation: AGGREGATION.value(&m)?,
        seed: SEED.value(&m)?,
    };
    let rounds = ROUNDS.value(&m)?;
    let leader = cli::process_zero(&m);
    let plot = plot::path(&m)?;
    let describe = input.describe();
    let (report, bar) =
        iterative::iteration_progress("cocoa", "round", Some(rounds), leader, |round, took| {
            format!("{} ({:.2} ms)", line(round), took.as_secs_f64() * 1e3)
        })?;
    cli::note(&m, format!("cocoa: input {}", input.describe()));
    let job = CocoaJob {
        input,
        test,
        params,
        rounds,
        tolerance: TOLERANCE.get(&m)?,
        checkpoints: iterative::loop_checkpoints(&m)?,
        report: Some(report),
    };
    let summary = cocoa::run(config, job, &Default::default())?;
    bar.finish_and_clear();
    if !leader || !summary.job.leader {
        return Ok(());
    }
    let resumed = summary
        .resumed_at
        .map(|i| format!(" (resumed at round {i})"))
        .unwrap_or_default();
    if let Some(round) = summary.rounds.last() {
        eprintln!(
            "cocoa: {} rounds{resumed}, {}",
            summary.rounds_run(),
            line(round)
        );
    }
    if let Some(accuracy) = summary.test_accuracy {
        eprintln!("cocoa: test accuracy {accuracy:.4}");
    }
    eprintln!("cocoa: {}", cli::summary_line(&summary.job));
    if let Some(file) = OUTPUT.get(&m)? {
        let mut text = String::new();
        for (j, w) in summary.weights.iter().enumerate() {
            let _ = writeln!(text, "{}\t{w}", j + 1);
        }
        std::fs::write(&file, text)
            .map_err(|e| CliError::Runtime(anyhow::anyhow!("{}: {e}", file.display())))?;
        eprintln!(
            "cocoa: wrote {} weights to {}",
            summary.weights.len(),
            file.display()
        );
    }
    if let Some(path) = plot {
        Plot {
            title: format!(
                "weir cocoa ({}): {describe}",
                match params.aggregation {
                    Aggregation::Average => "CoCoA, averaged",
                    Aggregation::Add => "CoCoA+, added",
                }
            ),
            x_label: "round",
            y_label: "duality gap".to_string(),
            log: true,
            curves: vec![Curve {
                label: "duality gap".to_string(),
                points: summary
                    .rounds
                    .iter()
                    .map(|r| (r.iteration, r.value.gap()))
                    .collect(),
            }],
        }
        .write(&path)?;
        eprintln!("cocoa: plotted to {}", path.display());
    }
    Ok(())
}

//! `weir cocoa`: a linear SVM (hinge loss, no bias) trained with CoCoA or
//! CoCoA+.

use std::fmt::Write as _;
use std::path::PathBuf;

use weir_ml::cocoa::sdca::{Aggregation, CocoaParams, Duality};
use weir_ml::jobs::cocoa::{self, CocoaJob};
use weir_ml::libsvm::{SvmInput, SyntheticSvm};
use weir_progress::convergence::Round;
use weir_runtime::input::LineInput;

use crate::cli::{self, CliError, Command, opt, opt_or};
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
        "write the weights as lines index<TAB>weight (1-based, as in the data) to FILE",
    );
    let o = &mut c.opts;
    o.optmulti("", "data", "a LIBSVM training file (repeatable)", "PATH");
    o.optopt(
        "",
        "test",
        "a LIBSVM test file: report accuracy on it",
        "PATH",
    );
    o.optopt("", "lambda", "regularisation λ (default 1e-3)", "L");
    o.optopt("", "rounds", "rounds at most (default 100)", "R");
    o.optopt(
        "",
        "local-iters",
        "SDCA steps per worker and round (default 1000)",
        "H",
    );
    o.optopt(
        "",
        "aggregation",
        "average (CoCoA) or add (CoCoA+, default)",
        "A",
    );
    o.optopt(
        "",
        "tolerance",
        "stop once the duality gap is below GAP",
        "GAP",
    );
    o.optopt(
        "",
        "seed",
        "seeds the coordinate sampling (default 42)",
        "S",
    );
    iterative::loop_options(o);
    c
}

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
    let files: Vec<PathBuf> = m.opt_strs("data").into_iter().map(PathBuf::from).collect();
    let input = if files.is_empty() {
        SvmInput::Synthetic(SyntheticSvm::DEFAULT)
    } else {
        SvmInput::Files(LineInput::Files(files))
    };
    let test = m
        .opt_str("test")
        .map(|t| SvmInput::Files(LineInput::Files(vec![PathBuf::from(t)])));
    let params = CocoaParams {
        lambda: opt_or(&m, "lambda", 1e-3)?,
        local_iters: opt_or(&m, "local-iters", 1000)?,
        aggregation: opt_or(&m, "aggregation", Aggregation::Add)?,
        seed: opt_or(&m, "seed", 42)?,
    };
    let rounds: u64 = opt_or(&m, "rounds", 100)?;
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
        tolerance: opt(&m, "tolerance")?,
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
    if let Some(file) = m.opt_str("output") {
        let mut text = String::new();
        for (j, w) in summary.weights.iter().enumerate() {
            let _ = writeln!(text, "{}\t{w}", j + 1);
        }
        std::fs::write(&file, text)
            .map_err(|e| CliError::Runtime(anyhow::anyhow!("{file}: {e}")))?;
        eprintln!("cocoa: wrote {} weights to {file}", summary.weights.len());
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

//! `weir als` (blocked ALS on ratings) and `weir recommend` (top items of a
//! trained model).

use std::collections::HashSet;
use std::path::PathBuf;

use weir_ml::als::{AlsParams, Errors};
use weir_ml::jobs::als::{self, AlsJob, AlsSummary};
use weir_ml::model::{Model, ModelInfo, RatingsSource};
use weir_ml::ratings::{Format, RatingsInput, Split, Synthetic};
use weir_progress::convergence::Round;
use weir_runtime::input::LineInput;

use crate::cli::{self, CliError, Command, usage};
use crate::flag::Flag;
use crate::iterative;
use crate::plot::{self, Curve, Plot};

pub fn als_command() -> Command {
    let mut c = Command::with_output(
        "als",
        "weir als [--ratings PATH] [--format tsv|csv] [--test PATH | --test-fraction F] [--rank K] [--lambda L] [--iterations N] [--tolerance T] [--output DIR] [timely flags]",
        "Blocked alternating least squares for explicit ratings (weighted-λ\n\
         regularisation, as Spark and Flink do). Ratings are lines `user item\n\
         rating [timestamp]`; a first line whose rating is not a number is a header.\n\
         Without --ratings: seeded synthetic low-rank ratings (1,000 users x 1,700\n\
         items, 100,000 ratings). Reports train and test RMSE per iteration.",
        &OUTPUT,
    );
    c.flags(&[
        &RATINGS,
        &FORMAT,
        &TEST,
        &TEST_FRACTION,
        &SEED,
        &RANK,
        &LAMBDA,
        &ITERATIONS,
        &TOLERANCE,
        &BLOCKS,
    ]);
    iterative::loop_flags(&mut c);
    c
}

const OUTPUT: Flag<PathBuf> = Flag::new(
    "output",
    "DIR",
    "write user_factors.tsv, item_factors.tsv (id<TAB>f1 ... fK) and model.json into DIR",
);
const RATINGS: Flag<PathBuf> = Flag::new("ratings", "PATH", "a ratings file").repeat();
const FORMAT: Flag<Format> =
    Flag::new("format", "FORMAT", "tsv (tabs or spaces) or csv").default("tsv");
const TEST: Flag<PathBuf> = Flag::new(
    "test",
    "PATH",
    "test ratings from this file instead of a split",
);
const TEST_FRACTION: Flag<f64> = Flag::new(
    "test-fraction",
    "F",
    "hold out this seeded share of the ratings for testing",
)
.default("0.2");
const SEED: Flag<u64> =
    Flag::new("seed", "S", "seeds the split and the initial factors").default("42");
const RANK: Flag<usize> = Flag::new("rank", "K", "factors per user and item").default("10");
const LAMBDA: Flag<f64> = Flag::new("lambda", "L", "regularisation λ").default("0.1");
const ITERATIONS: Flag<u64> = Flag::new("iterations", "N", "iterations at most").default("10");
const TOLERANCE: Flag<f64> = Flag::new(
    "tolerance",
    "T",
    "stop once the train RMSE improves by less than T",
);
const BLOCKS: Flag<u64> = Flag::new(
    "blocks",
    "B",
    "user and item blocks (default: one per worker)",
);
const MODEL: Flag<PathBuf> = Flag::new("model", "DIR", "the model directory");
const USER: Flag<u64> = Flag::new("user", "ID", "the user's id");
const TOP: Flag<usize> = Flag::new("top", "N", "how many items").default("10");

pub fn recommend_command() -> Command {
    let mut c = Command::new(
        "recommend",
        "weir recommend --model DIR --user ID [--top N]",
        "The items of highest predicted rating that a user has not rated, from a\n\
         model written by `weir als --output DIR`. Output lines: item<TAB>score.",
        false,
    );
    c.flags(&[&MODEL, &USER, &TOP]);
    c
}

fn input(m: &getopts::Matches) -> Result<(RatingsInput, Split, u64), CliError> {
    let format = FORMAT.value(m)?;
    let files = RATINGS.all(m)?;
    let input = if files.is_empty() {
        RatingsInput::Synthetic(Synthetic::DEFAULT)
    } else {
        RatingsInput::Files(LineInput::Files(files), format)
    };
    let seed = SEED.value(m)?;
    let split = match (TEST.get(m)?, TEST_FRACTION.given(m)) {
        (Some(_), true) => return Err(usage("--test and --test-fraction exclude each other")),
        (Some(test), false) => {
            Split::File(RatingsInput::Files(LineInput::Files(vec![test]), format))
        }
        (None, _) => match TEST_FRACTION.value(m)? {
            0.0 => Split::None,
            fraction => Split::Fraction { fraction, seed },
        },
    };
    Ok((input, split, seed))
}

fn line(round: &Round<Errors>) -> String {
    let e = &round.value;
    let test = e
        .test_rmse()
        .map(|t| format!(", test RMSE {t:.4}"))
        .unwrap_or_default();
    format!("train RMSE {:.4}{test}", e.train_rmse())
}

pub fn main(args: &[String]) -> Result<(), CliError> {
    let command = als_command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    let config = cli::timely_config(&m)?;
    let (input, split, seed) = input(&m)?;
    let params = AlsParams {
        rank: RANK.value(&m)?,
        lambda: LAMBDA.value(&m)?,
        seed,
    };
    let iterations = ITERATIONS.value(&m)?;
    let output = OUTPUT.get(&m)?;
    let leader = cli::process_zero(&m);
    let plot = plot::path(&m)?;
    let (report, bar) = iterative::iteration_progress(
        "als",
        "iteration",
        Some(iterations),
        leader,
        |round, took| format!("{} ({:.2} ms)", line(round), took.as_secs_f64() * 1e3),
    )?;
    let job = AlsJob {
        input: input.clone(),
        split,
        params,
        blocks: BLOCKS.get(&m)?,
        iterations,
        tolerance: TOLERANCE.get(&m)?,
        checkpoints: iterative::loop_checkpoints(&m)?,
        report: Some(report),
        keep_model: output.is_some(),
    };
    cli::note(&m, format!("als: input {}", input.describe()));
    let summary = als::run(config, job, &Default::default())?;
    bar.finish_and_clear();
    finish(&summary, &input, params, output, leader)?;
    if let Some(path) = plot
        && leader
        && summary.job.leader
    {
        let curve = |label: &str, rmse: fn(&Errors) -> Option<f64>| Curve {
            label: label.to_string(),
            points: summary
                .rounds
                .iter()
                .filter_map(|r| Some((r.iteration, rmse(&r.value)?)))
                .collect(),
        };
        Plot {
            title: format!(
                "weir als rank {}, λ {}: {}",
                params.rank,
                params.lambda,
                input.describe()
            ),
            x_label: "iteration",
            y_label: "RMSE".to_string(),
            log: false,
            curves: vec![
                curve("train RMSE", |e| Some(e.train_rmse())),
                curve("test RMSE", Errors::test_rmse),
            ],
        }
        .write(&path)?;
        eprintln!("als: plotted to {}", path.display());
    }
    Ok(())
}

fn finish(
    summary: &AlsSummary,
    input: &RatingsInput,
    params: AlsParams,
    output: Option<PathBuf>,
    leader: bool,
) -> Result<(), CliError> {
    if !leader || !summary.job.leader {
        return Ok(());
    }
    let resumed = summary
        .resumed_at
        .map(|i| format!(" (resumed at iteration {i})"))
        .unwrap_or_default();
    if let Some(round) = summary.rounds.last() {
        let e = &round.value;
        eprintln!(
            "als: {} iterations{resumed}, {}; {} training ratings, {} test ratings ({} without a trained user or item, skipped)",
            summary.iterations(),
            line(round),
            e.train_count,
            e.test_count + e.untested,
            e.untested
        );
    }
    eprintln!("als: {}", cli::summary_line(&summary.job));
    if let (Some(dir), Some(model)) = (output, &summary.model) {
        let info = ModelInfo {
            rank: params.rank,
            lambda: params.lambda,
            iterations: summary.iterations(),
            ratings: RatingsSource::of(input)
                .ok_or_else(|| usage("generated line input cannot be a ratings source"))?,
        };
        model.write(&dir, &info)?;
        eprintln!(
            "als: wrote {} user and {} item factors to {}",
            model.users.len(),
            model.items.len(),
            dir.display()
        );
    }
    Ok(())
}

pub fn recommend(args: &[String]) -> Result<(), CliError> {
    let command = recommend_command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    let dir = MODEL.value(&m)?;
    let user = USER.value(&m)?;
    let top = TOP.value(&m)?;
    let (model, info) = Model::read(&dir)?;
    let rated: HashSet<u64> = info
        .ratings
        .input()?
        .all()?
        .into_iter()
        .filter(|r| r.user == user)
        .map(|r| r.item)
        .collect();
    for (item, score) in model.recommend(user, &rated, top)? {
        println!("{item}\t{score:.4}");
    }
    Ok(())
}

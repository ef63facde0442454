//! `weir join`.

use std::path::PathBuf;

use weir_dataflows::jobs::join::{self, JoinSpec, Local, Ship, Side};
use weir_runtime::input::LineInput;

use crate::cli::{self, CliError, Command, usage};

pub fn command() -> Command {
    let mut c = Command::new(
        "join",
        "weir join --left PATH --right PATH --left-key I --right-key J [options] [timely flags]",
        "Inner equi-join of two CSV/TSV files; output lines are the left row then the right\n\
         row, tab-separated. Ship strategies (broadcast-forward, repartition-repartition) and\n\
         local strategies (hybrid hash, sort-merge) are those of Flink; both local strategies\n\
         spill to disk past --memory-budget. Without --left/--right, joins two generated\n\
         tables (the embedded default).",
        true,
    );
    c.opts
        .optopt("", "left", "left input file", "PATH")
        .optopt("", "right", "right input file", "PATH")
        .optopt("", "left-key", "0-based key column of the left input", "I")
        .optopt(
            "",
            "right-key",
            "0-based key column of the right input",
            "J",
        )
        .optopt(
            "",
            "ship",
            "auto (default), broadcast or repartition",
            "STRATEGY",
        )
        .optopt(
            "",
            "local",
            "auto (default), hash or sort-merge",
            "STRATEGY",
        )
        .optopt(
            "",
            "memory-budget",
            "memory for join rows per process, e.g. 512M (default: 1/4 of available memory)",
            "SIZE",
        )
        .optopt(
            "",
            "delimiter",
            "field delimiter of both inputs: one character, or 'tab' (default: tab for\n\
             .tsv/.tab/.txt files, comma otherwise)",
            "C",
        )
        .optopt(
            "",
            "spill-dir",
            "where spill files go (default: the temp directory)",
            "DIR",
        );
    c
}

fn strategy<T>(
    m: &getopts::Matches,
    name: &str,
    values: &[(&str, T)],
) -> Result<Option<T>, CliError>
where
    T: Copy,
{
    let Some(text) = m.opt_str(name) else {
        return Ok(None);
    };
    if text == "auto" {
        return Ok(None);
    }
    values
        .iter()
        .find(|(n, _)| *n == text)
        .map(|(_, v)| Some(*v))
        .ok_or_else(|| {
            let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
            usage(format!(
                "invalid value '{text}' for --{name}: expected auto, {}",
                names.join(" or ")
            ))
        })
}

/// The delimiter of `--delimiter`: one character (ASCII) or `tab`.
pub fn delimiter(m: &getopts::Matches) -> Result<Option<u8>, CliError> {
    let Some(text) = m.opt_str("delimiter") else {
        return Ok(None);
    };
    match text.as_str() {
        "tab" | "\\t" | "\t" => Ok(Some(b'\t')),
        t if t.len() == 1 && t.is_ascii() && t != "\n" && t != "\"" => Ok(Some(t.as_bytes()[0])),
        _ => Err(usage(format!(
            "invalid value '{text}' for --delimiter: expected one ASCII character or 'tab'"
        ))),
    }
}

fn spec(m: &getopts::Matches) -> Result<JoinSpec, CliError> {
    let budget = cli::memory_budget(m, join::default_memory_budget())?;
    let delimiter = delimiter(m)?;
    let mut spec = match (m.opt_str("left"), m.opt_str("right")) {
        (None, None) => {
            for key in ["left-key", "right-key"] {
                if m.opt_present(key) {
                    return Err(usage(format!("--{key} needs --left and --right")));
                }
            }
            join::default_spec(budget)
        }
        (Some(left), Some(right)) => {
            let side = |path: String, key: &str| -> Result<Side, CliError> {
                let path = PathBuf::from(path);
                Ok(Side {
                    delimiter: delimiter.unwrap_or_else(|| join::delimiter_for(&path)),
                    input: LineInput::Files(vec![path]),
                    key: cli::required(m, key)?,
                })
            };
            JoinSpec {
                left: side(left, "left-key")?,
                right: side(right, "right-key")?,
                ship: None,
                local: None,
                memory_budget: budget,
                spill_dir: None,
            }
        }
        (Some(_), None) => return Err(usage("--left needs --right")),
        (None, Some(_)) => return Err(usage("--right needs --left")),
    };
    spec.ship = strategy(
        m,
        "ship",
        &[
            ("broadcast", Ship::Broadcast),
            ("repartition", Ship::Repartition),
        ],
    )?;
    spec.local = strategy(
        m,
        "local",
        &[("hash", Local::Hash), ("sort-merge", Local::SortMerge)],
    )?;
    spec.spill_dir = m.opt_str("spill-dir").map(PathBuf::from);
    Ok(spec)
}

pub fn main(args: &[String]) -> Result<(), CliError> {
    let Some((m, config, options)) = cli::parse_job(&command(), args)? else {
        return Ok(());
    };
    let spec = spec(&m)?;
    let plan = join::prepare(&config, &spec)?;
    cli::note(
        &m,
        format!(
            "join: left {}, right {}",
            spec.left.input.describe(),
            spec.right.input.describe()
        ),
    );
    cli::note(&m, format!("join: {}", plan.explanation));
    let summary = join::execute(config, spec, plan, &options)?;
    cli::report("join", &summary, &options);
    Ok(())
}

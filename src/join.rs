//! `weir join`.

use std::path::PathBuf;

use weir_dataflows::jobs::join::{self, JoinSpec, Local, Ship, Side};
use weir_runtime::input::LineInput;

use crate::cli::{self, CliError, Command, usage};
use crate::flag::{self, Flag};

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
    c.flags(&[
        &LEFT,
        &RIGHT,
        &LEFT_KEY,
        &RIGHT_KEY,
        &SHIP,
        &LOCAL,
        &cli::MEMORY_BUDGET,
        &DELIMITER,
        &SPILL_DIR,
    ]);
    c
}

const LEFT: Flag<PathBuf> = Flag::new("left", "PATH", "left input file");
const RIGHT: Flag<PathBuf> = Flag::new("right", "PATH", "right input file");
const LEFT_KEY: Flag<usize> = Flag::new("left-key", "I", "0-based key column of the left input");
const RIGHT_KEY: Flag<usize> = Flag::new("right-key", "J", "0-based key column of the right input");
const SHIP: Flag<Option<Ship>> = Flag::parsed(
    "ship",
    "STRATEGY",
    "auto, broadcast or repartition",
    |text| {
        flag::choice(
            text,
            &[
                ("broadcast", Ship::Broadcast),
                ("repartition", Ship::Repartition),
            ],
        )
    },
)
.default("auto");
const LOCAL: Flag<Option<Local>> =
    Flag::parsed("local", "STRATEGY", "auto, hash or sort-merge", |text| {
        flag::choice(
            text,
            &[("hash", Local::Hash), ("sort-merge", Local::SortMerge)],
        )
    })
    .default("auto");
const DELIMITER: Flag<u8> = Flag::parsed(
    "delimiter",
    "C",
    "field delimiter of both inputs: one character, or 'tab' (default: tab for \
     .tsv/.tab/.txt files, comma otherwise)",
    delimiter,
);
const SPILL_DIR: Flag<PathBuf> = Flag::new(
    "spill-dir",
    "DIR",
    "where spill files go (default: the temp directory)",
);

/// A `--delimiter`: one character (ASCII) or `tab`.
pub fn delimiter(text: &str) -> Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        t if t.len() == 1 && t.is_ascii() && t != "\n" && t != "\"" => Ok(t.as_bytes()[0]),
        _ => Err("expected one ASCII character or 'tab'".to_string()),
    }
}

fn spec(m: &getopts::Matches) -> Result<JoinSpec, CliError> {
    let budget = cli::MEMORY_BUDGET
        .get(m)?
        .unwrap_or_else(join::default_memory_budget);
    let delimiter = DELIMITER.get(m)?;
    let mut spec = match (LEFT.get(m)?, RIGHT.get(m)?) {
        (None, None) => {
            for key in [LEFT_KEY, RIGHT_KEY] {
                if key.given(m) {
                    return Err(usage(format!("--{} needs --left and --right", key.long)));
                }
            }
            join::default_spec(budget)
        }
        (Some(left), Some(right)) => {
            let side = |path: PathBuf, key: Flag<usize>| -> Result<Side, CliError> {
                Ok(Side {
                    delimiter: delimiter.unwrap_or_else(|| join::delimiter_for(&path)),
                    input: LineInput::Files(vec![path]),
                    key: key.value(m)?,
                })
            };
            JoinSpec {
                left: side(left, LEFT_KEY)?,
                right: side(right, RIGHT_KEY)?,
                ship: None,
                local: None,
                memory_budget: budget,
                spill_dir: None,
            }
        }
        (Some(_), None) => return Err(usage("--left needs --right")),
        (None, Some(_)) => return Err(usage("--right needs --left")),
    };
    spec.ship = SHIP.value(m)?;
    spec.local = LOCAL.value(m)?;
    spec.spill_dir = SPILL_DIR.get(m)?;
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

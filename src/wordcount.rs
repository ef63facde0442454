//! `weir wordcount`.

use std::path::PathBuf;

use weir_dataflows::jobs::wordcount;
use weir_runtime::input::LineInput;

use crate::cli::{self, CliError, Command};
use crate::flag::Flag;

pub fn command() -> Command {
    let mut c = Command::new(
        "wordcount",
        "weir wordcount [--input PATH ...] [--output DIR] [timely flags]",
        "Counts words: maximal runs of Unicode alphanumeric characters, lowercased.\n\
         Output lines: word<TAB>count. Input files are split across all workers.\n\
         Without --input, counts seeded generated text (the embedded default).",
        true,
    );
    c.flags(&[&INPUT]);
    c
}

const INPUT: Flag<PathBuf> = Flag::new("input", "PATH", "a text file to read").repeat();

/// The input named by `--input`, or the embedded default.
pub fn input(m: &getopts::Matches) -> Result<LineInput, CliError> {
    let files = INPUT.all(m)?;
    Ok(if files.is_empty() {
        wordcount::default_input()
    } else {
        LineInput::Files(files)
    })
}

pub fn main(args: &[String]) -> Result<(), CliError> {
    let Some((m, config, options)) = cli::parse_job(&command(), args)? else {
        return Ok(());
    };
    let input = input(&m)?;
    input.validate()?;
    cli::note(&m, format!("wordcount: input {}", input.describe()));
    let summary = wordcount::run(config, input, &options)?;
    cli::report("wordcount", &summary, &options);
    Ok(())
}

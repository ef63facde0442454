//! `weir wordcount`.

use std::path::PathBuf;

use weir_dataflows::jobs::wordcount;
use weir_runtime::input::LineInput;

use crate::cli::{self, CliError, Command};

pub fn command() -> Command {
    let mut c = Command::new(
        "wordcount",
        "weir wordcount [--input PATH ...] [--output DIR] [timely flags]",
        "Counts words: maximal runs of Unicode alphanumeric characters, lowercased.\n\
         Output lines: word<TAB>count. Input files are split across all workers.\n\
         Without --input, counts seeded generated text (the embedded default).",
        true,
    );
    c.opts
        .optmulti("", "input", "a text file to read (repeatable)", "PATH");
    c
}

/// The input named by `--input`, or the embedded default.
pub fn input(m: &getopts::Matches) -> LineInput {
    let files: Vec<PathBuf> = m.opt_strs("input").into_iter().map(PathBuf::from).collect();
    if files.is_empty() {
        wordcount::default_input()
    } else {
        LineInput::Files(files)
    }
}

pub fn main(args: &[String]) -> Result<(), CliError> {
    let Some((m, config, options)) = cli::parse_job(&command(), args)? else {
        return Ok(());
    };
    let input = input(&m);
    input.validate()?;
    cli::note(&m, format!("wordcount: input {}", input.describe()));
    let summary = wordcount::run(config, input, &options)?;
    cli::report("wordcount", &summary, &options);
    Ok(())
}

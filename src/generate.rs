//! `weir gen text|table`: writes seeded generated data (the same generators the
//! jobs use as their embedded defaults).

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use weir_dataflows::jobs::join;
use weir_runtime::generate::{Generator, TableSpec, TextSpec};

use crate::cli::{self, CliError, Command, usage};

pub fn command() -> Command {
    let mut c = Command::new(
        "gen",
        "weir gen text [--lines N] [--max-words N] [--vocabulary N] [--seed S] [--output FILE]\n       \
         weir gen table [--rows N] [--keys N] [--columns N] [--delimiter C] [--seed S] [--output FILE]",
        "Writes seeded generated data: the same seed gives the same file.\n\
         text: Zipf-distributed words, mixed case and punctuation. table: rows whose first\n\
         column is a key k0..k(N-1), for joins. Writes to stdout without --output.",
        false,
    );
    c.opts
        .optopt("", "output", "file to write (default: stdout)", "FILE")
        .optopt("", "seed", "random seed (default 42)", "S")
        .optopt("", "lines", "text: number of lines (default 100000)", "N")
        .optopt(
            "",
            "max-words",
            "text: maximum words per line (default 16)",
            "N",
        )
        .optopt(
            "",
            "vocabulary",
            "text: distinct words (default 20000)",
            "N",
        )
        .optopt("", "rows", "table: number of rows (default 100000)", "N")
        .optopt("", "keys", "table: distinct keys (default 10000)", "N")
        .optopt(
            "",
            "columns",
            "table: columns, the key included (default 4)",
            "N",
        )
        .optopt(
            "",
            "delimiter",
            "table: one character or 'tab' (default: from the output's extension, else comma)",
            "C",
        );
    c
}

pub fn main(args: &[String]) -> Result<(), CliError> {
    let command = command();
    let Some(kind) = args.first().filter(|a| !a.starts_with('-')) else {
        if args.iter().any(|a| a == "--help") {
            print!("{}", command.help());
            return Ok(());
        }
        return Err(usage("gen: say what to generate: text or table"));
    };
    let Some(m) = command.parse(&args[1..])? else {
        return Ok(());
    };
    let output = m.opt_str("output").map(PathBuf::from);
    let seed = cli::opt_or(&m, "seed", 42)?;
    let generator = match kind.as_str() {
        "text" => {
            reject(&m, &["rows", "keys", "columns", "delimiter"], "text")?;
            Generator::Text(TextSpec {
                lines: cli::opt_or(&m, "lines", 100_000)?,
                max_words: positive(cli::opt_or(&m, "max-words", 16)?, "max-words")?,
                vocabulary: positive(cli::opt_or(&m, "vocabulary", 20_000)?, "vocabulary")?,
                seed,
            })
        }
        "table" => {
            reject(&m, &["lines", "max-words", "vocabulary"], "table")?;
            let delimiter = crate::join::delimiter(&m)?
                .unwrap_or_else(|| output.as_deref().map_or(b',', join::delimiter_for));
            Generator::Table(TableSpec {
                rows: cli::opt_or(&m, "rows", 100_000)?,
                keys: positive(cli::opt_or(&m, "keys", 10_000)?, "keys")?,
                columns: positive(cli::opt_or(&m, "columns", 4)?, "columns")?,
                delimiter,
                seed,
            })
        }
        other => {
            return Err(usage(format!(
                "gen: unknown kind '{other}': expected text or table"
            )));
        }
    };
    let maker = generator.maker();
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        let mut line = String::new();
        for i in 0..generator.lines() {
            maker.line(i, &mut line);
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    match &output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| CliError::Runtime(anyhow::anyhow!("{}: {e}", path.display())))?;
            write(&mut BufWriter::new(file))
                .map_err(|e| CliError::Runtime(anyhow::anyhow!("{}: {e}", path.display())))?;
            eprintln!("gen: wrote {} to {}", generator.describe(), path.display());
        }
        None => {
            let stdout = std::io::stdout();
            match write(&mut BufWriter::new(stdout.lock())) {
                Ok(()) => {}
                // a closed pipe (`weir gen text | head`) is not an error
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(CliError::Runtime(anyhow::anyhow!("stdout: {e}"))),
            }
        }
    }
    Ok(())
}

fn positive<T: PartialEq + Default>(value: T, name: &str) -> Result<T, CliError> {
    if value == T::default() {
        Err(usage(format!("--{name} must be at least 1")))
    } else {
        Ok(value)
    }
}

fn reject(m: &getopts::Matches, options: &[&str], kind: &str) -> Result<(), CliError> {
    match options.iter().find(|o| m.opt_present(o)) {
        Some(o) => Err(usage(format!("gen {kind}: --{o} does not apply to {kind}"))),
        None => Ok(()),
    }
}

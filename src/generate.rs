//! `weir gen text|table`: writes seeded generated data (the same generators the
//! jobs use as their embedded defaults).

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use weir_dataflows::jobs::join;
use weir_runtime::generate::{Generator, TableSpec, TextSpec};

use crate::cli::{CliError, Command, usage};
use crate::flag::{self, Declared, Flag};

pub fn command() -> Command {
    let mut c = Command::new(
        "gen",
        "weir gen text [--lines N] [--max-words N] [--vocabulary N] [--seed S] [--output FILE]\n       \
         weir gen table [--rows N] [--keys N] [--columns N] [--delimiter C] [--seed S] [--output FILE]\n       \
         weir gen tpch [--scale SF] [--parts N] --output DIR\n       \
         weir gen nexmark [--events N] [--parts N] --output DIR",
        "Writes seeded generated data: the same seed gives the same file.\n\
         text: Zipf-distributed words, mixed case and punctuation. table: rows whose first\n\
         column is a key k0..k(N-1), for joins. Writes to stdout without --output.\n\
         tpch: TPC-H's eight tables as Parquet (the tpchgen crates), DIR/<table>/part-N.parquet.\n\
         nexmark: Nexmark's person, auction and bid events (the nexmark crate) as Parquet, the\n\
         same way; part N holds events N, N + parts, ...",
        false,
    );
    c.flags(&[
        &OUTPUT,
        &SEED,
        &LINES,
        &MAX_WORDS,
        &VOCABULARY,
        &ROWS,
        &KEYS,
        &COLUMNS,
        &DELIMITER,
        &SCALE,
        &PARTS,
        &EVENTS,
    ]);
    c
}

const OUTPUT: Flag<PathBuf> = Flag::new(
    "output",
    "PATH",
    "file to write (default: stdout); for tpch and nexmark, the directory",
);
const SEED: Flag<u64> = Flag::new("seed", "S", "random seed").default("42");
const LINES: Flag<u64> = Flag::new("lines", "N", "text: number of lines").default("100000");
const MAX_WORDS: Flag<u32> = Flag::parsed(
    "max-words",
    "N",
    "text: maximum words per line",
    flag::at_least_one,
)
.default("16");
const VOCABULARY: Flag<u32> = Flag::parsed(
    "vocabulary",
    "N",
    "text: distinct words",
    flag::at_least_one,
)
.default("20000");
const ROWS: Flag<u64> = Flag::new("rows", "N", "table: number of rows").default("100000");
const KEYS: Flag<u64> =
    Flag::parsed("keys", "N", "table: distinct keys", flag::at_least_one).default("10000");
const COLUMNS: Flag<u32> = Flag::parsed(
    "columns",
    "N",
    "table: columns, the key included",
    flag::at_least_one,
)
.default("4");
const SCALE: Flag<f64> = Flag::new("scale", "SF", "tpch: the scale factor").default("1");
const PARTS: Flag<usize> = Flag::parsed(
    "parts",
    "N",
    "tpch, nexmark: Parquet files per table (TPC-H's nation and region have one)",
    flag::at_least_one,
)
.default("4");
const EVENTS: Flag<u64> =
    Flag::new("events", "N", "nexmark: events in all three tables").default("1000000");
const DELIMITER: Flag<u8> = Flag::parsed(
    "delimiter",
    "C",
    "table: one character or 'tab' (default: from the output's extension, else comma)",
    crate::join::delimiter,
);

/// `gen tpch` and `gen nexmark`: tables as Parquet, a directory each.
fn tables(kind: &str, m: &getopts::Matches, output: Option<PathBuf>) -> Result<(), CliError> {
    // the flag of the other kind
    let (other, what) = match kind {
        "tpch" => (&EVENTS as &dyn Declared, "TPC-H"),
        _ => (&SCALE as &dyn Declared, "Nexmark events"),
    };
    let rejected: [&dyn Declared; 9] = [
        &LINES,
        &MAX_WORDS,
        &VOCABULARY,
        &ROWS,
        &KEYS,
        &COLUMNS,
        &DELIMITER,
        &SEED,
        other,
    ];
    reject(m, &rejected, kind)?;
    let Some(dir) = output else {
        return Err(usage(format!("gen {kind}: --output DIR is required")));
    };
    let counts = match kind {
        "tpch" => weir_sql::tpch::generate(&dir, SCALE.value(m)?, PARTS.value(m)?),
        _ => weir_sql::nexmark::generate(&dir, EVENTS.value(m)?, PARTS.value(m)?),
    }
    .map_err(|e| CliError::Runtime(e.into()))?;
    for (table, rows) in counts {
        eprintln!("gen: {table}: {rows} rows");
    }
    eprintln!(
        "gen: {what} written to {} (Parquet, a directory per table)",
        dir.display()
    );
    Ok(())
}

pub fn main(args: &[String]) -> Result<(), CliError> {
    let command = command();
    let Some(kind) = args.first().filter(|a| !a.starts_with('-')) else {
        if args.iter().any(|a| a == "--help") {
            print!("{}", command.help());
            return Ok(());
        }
        return Err(usage(
            "gen: say what to generate: text, table, tpch or nexmark",
        ));
    };
    let Some(m) = command.parse(&args[1..])? else {
        return Ok(());
    };
    let output = OUTPUT.get(&m)?;
    let seed = SEED.value(&m)?;
    let generator = match kind.as_str() {
        "text" => {
            reject(
                &m,
                &[&ROWS, &KEYS, &COLUMNS, &DELIMITER, &SCALE, &PARTS, &EVENTS],
                "text",
            )?;
            Generator::Text(TextSpec {
                lines: LINES.value(&m)?,
                max_words: MAX_WORDS.value(&m)?,
                vocabulary: VOCABULARY.value(&m)?,
                seed,
            })
        }
        "table" => {
            reject(
                &m,
                &[&LINES, &MAX_WORDS, &VOCABULARY, &SCALE, &PARTS, &EVENTS],
                "table",
            )?;
            let delimiter = DELIMITER
                .get(&m)?
                .unwrap_or_else(|| output.as_deref().map_or(b',', join::delimiter_for));
            Generator::Table(TableSpec {
                rows: ROWS.value(&m)?,
                keys: KEYS.value(&m)?,
                columns: COLUMNS.value(&m)?,
                delimiter,
                seed,
            })
        }
        "tpch" | "nexmark" => return tables(kind, &m, output),
        other => {
            return Err(usage(format!(
                "gen: unknown kind '{other}': expected text, table, tpch or nexmark"
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

fn reject(m: &getopts::Matches, flags: &[&dyn Declared], kind: &str) -> Result<(), CliError> {
    match flags.iter().find(|f| m.opt_present(f.long())) {
        Some(f) => Err(usage(format!(
            "gen {kind}: --{} does not apply to {kind}",
            f.long()
        ))),
        None => Ok(()),
    }
}

//! What every weir command shares: option parsing with timely's own flags, help
//! text, the two kinds of error and the result summary.

use std::path::PathBuf;

use weir_runtime::exec::{JobOptions, JobSummary};

pub use crate::error::{CliError, usage};
use crate::flag::{self, Declared, Flag};

/// The records of a job go to part files here.
pub const OUTPUT: Flag<PathBuf> = Flag::new(
    "output",
    "DIR",
    "write part-NNNNN files (one per worker) into DIR",
);
/// How many records a job prints.
pub const SHOW: Flag<usize> =
    Flag::new("show", "N", "print the records when there are at most N").default("20");
/// A job's memory budget, e.g. `512M`.
pub const MEMORY_BUDGET: Flag<u64> = Flag::parsed(
    "memory-budget",
    "SIZE",
    "memory for the rows joins, sorts and aggregations hold, per process, e.g. 512M \
     (default: 1/4 of available memory)",
    flag::size,
);

// timely's flags, installed by timely; read here to check them
const THREADS: Flag<usize> = Flag::new("threads", "N", "").default("1");
const PROCESSES: Flag<usize> = Flag::new("processes", "N", "").default("1");
const PROCESS: Flag<usize> = Flag::new("process", "P", "").default("0");
const HOSTFILE: Flag<PathBuf> = Flag::new("hostfile", "FILE", "");

/// A command's flags, with its help text. Its options list `--help`, its own
/// flags, its output flags, then timely's.
pub struct Command {
    pub name: &'static str,
    pub usage: &'static str,
    pub about: &'static str,
    timely: bool,
    flags: Vec<&'static dyn Declared>,
    output: Vec<&'static dyn Declared>,
}

impl Command {
    /// A command; `timely` adds timely's flags and the output flags.
    pub fn new(name: &'static str, usage: &'static str, about: &'static str, timely: bool) -> Self {
        let mut c = Command::bare(name, usage, about);
        if timely {
            c.output = vec![&OUTPUT, &SHOW];
            c.timely = true;
        }
        c
    }

    /// A job whose output is not records but files of its own (a model):
    /// timely's flags, and `output` in place of [`OUTPUT`].
    pub fn with_output(
        name: &'static str,
        usage: &'static str,
        about: &'static str,
        output: &'static dyn Declared,
    ) -> Self {
        let mut c = Command::bare(name, usage, about);
        c.output = vec![output];
        c.timely = true;
        c
    }

    fn bare(name: &'static str, usage: &'static str, about: &'static str) -> Self {
        Command {
            name,
            usage,
            about,
            timely: false,
            flags: Vec::new(),
            output: Vec::new(),
        }
    }

    /// Adds timely's flags.
    pub fn timely(&mut self) -> &mut Self {
        self.timely = true;
        self
    }

    /// Adds `flags`, in order.
    pub fn flags(&mut self, flags: &[&'static dyn Declared]) -> &mut Self {
        self.flags.extend_from_slice(flags);
        self
    }

    /// The flags declared by this command (timely's aside).
    #[cfg(test)]
    pub fn declared(&self) -> impl Iterator<Item = &'static dyn Declared> + '_ {
        self.flags.iter().chain(&self.output).copied()
    }

    fn options(&self) -> getopts::Options {
        let mut opts = getopts::Options::new();
        opts.optflag("", "help", "print this help");
        for flag in self.flags.iter().chain(&self.output) {
            flag.install(&mut opts);
        }
        if self.timely {
            timely::Config::install_options(&mut opts);
        }
        opts
    }

    /// The help text.
    pub fn help(&self) -> String {
        let mut text = format!("{}\n\nUsage: {}", self.about, self.usage);
        text = self.options().usage(&text);
        if self.timely {
            text.push_str(
                "\nTimely flags: -w threads per process, -n processes, -p this process's index,\n\
                 -h a hostfile of host:port lines (help is --help only).\n",
            );
        }
        text
    }

    /// Parses `args`; `Ok(None)` when `--help` was asked for (and printed).
    pub fn parse(&self, args: &[String]) -> Result<Option<getopts::Matches>, CliError> {
        let matches = self
            .options()
            .parse(args)
            .map_err(|e| usage(format!("{}: {e}", self.name)))?;
        if matches.opt_present("help") {
            print!("{}", self.help());
            return Ok(None);
        }
        if let Some(extra) = matches.free.first() {
            return Err(usage(format!(
                "{}: unexpected argument '{extra}'",
                self.name
            )));
        }
        Ok(Some(matches))
    }
}

/// Timely's configuration from its own flags, checked so that a bad value is a
/// usage error rather than a panic or a hang.
pub fn timely_config(m: &getopts::Matches) -> Result<timely::Config, CliError> {
    let threads = THREADS.value(m)?;
    let processes = PROCESSES.value(m)?;
    let process = PROCESS.value(m)?;
    if threads == 0 {
        return Err(usage("-w/--threads must be at least 1"));
    }
    if processes == 0 {
        return Err(usage("-n/--processes must be at least 1"));
    }
    if process >= processes {
        return Err(usage(format!(
            "-p/--process is {process}, but must be less than -n/--processes ({processes})"
        )));
    }
    if let Some(hostfile) = HOSTFILE.get(m)? {
        let text = std::fs::read_to_string(&hostfile).map_err(|e| {
            CliError::Runtime(anyhow::anyhow!("hostfile {}: {e}", hostfile.display()))
        })?;
        let hosts = text.lines().filter(|l| !l.trim().is_empty()).count();
        if hosts < processes {
            return Err(usage(format!(
                "hostfile {} lists {hosts} addresses, but -n/--processes is {processes}",
                hostfile.display()
            )));
        }
    }
    timely::Config::from_matches(m).map_err(|e| usage(format!("timely flags: {e}")))
}

/// Timely's configuration from its flags; with none of them, one process
/// with a worker per core.
pub fn timely_config_or_all_cores(m: &getopts::Matches) -> Result<timely::Config, CliError> {
    let given = [&THREADS, &PROCESSES, &PROCESS].iter().any(|f| f.given(m)) || HOSTFILE.given(m);
    if given {
        return timely_config(m);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(timely::Config::process(cores))
}

/// Parses a job's arguments into its matches, timely configuration and output
/// options; `Ok(None)` when `--help` was printed.
pub fn parse_job(
    command: &Command,
    args: &[String],
) -> Result<Option<(getopts::Matches, timely::Config, JobOptions)>, CliError> {
    let Some(m) = command.parse(args)? else {
        return Ok(None);
    };
    let config = timely_config(&m)?;
    let options = job_options(&m)?;
    Ok(Some((m, config, options)))
}

/// Whether this is process 0 of a cluster (or the only process).
pub fn process_zero(m: &getopts::Matches) -> bool {
    PROCESS.get(m).ok().flatten().is_none_or(|p| p == 0)
}

/// Prints a note on stderr from process 0 only (so a cluster says it once).
pub fn note(m: &getopts::Matches, text: impl std::fmt::Display) {
    if process_zero(m) {
        eprintln!("{text}");
    }
}

/// `--output` (checked here, so that a refused directory is the only thing said)
/// and `--show`.
pub fn job_options(m: &getopts::Matches) -> Result<JobOptions, CliError> {
    let output = OUTPUT.get(m)?;
    if let Some(dir) = &output {
        weir_runtime::exec::prepare_output(dir)?;
    }
    Ok(JobOptions {
        output,
        show: SHOW.value(m)?,
        progress: None,
    })
}

/// Prints a job's result from the process that hosts worker 0: the records (when
/// there were few) on stdout, a one-line summary on stderr.
pub fn report(job: &str, summary: &JobSummary, options: &JobOptions) {
    if !summary.leader {
        return;
    }
    if let (None, Some(records)) = (&options.output, &summary.records) {
        for record in records {
            println!("{record}");
        }
    }
    eprintln!("{job}: {}", summary_line(summary));
    if let Some(dir) = &options.output {
        eprintln!(
            "{job}: wrote {} part files to {}",
            summary.workers,
            dir.display()
        );
    }
}

/// `N records in, M records out in T s (R records/s) on W workers, peak RSS X MiB, spilled Y MiB to disk`.
pub fn summary_line(summary: &JobSummary) -> String {
    let secs = summary.elapsed.as_secs_f64();
    let mut line = format!(
        "{} records in, {} records out in {:.2} s ({:.0} records/s) on {} worker{}",
        summary.records_in,
        summary.records_out,
        secs,
        summary.records_in as f64 / secs.max(1e-9),
        summary.workers,
        if summary.workers == 1 { "" } else { "s" }
    );
    if let Some(rss) = summary.peak_rss {
        line.push_str(&format!(", peak RSS {}", size(rss)));
    }
    if summary.spilled_bytes > 0 {
        line.push_str(&format!(
            ", spilled {} to disk",
            size(summary.spilled_bytes)
        ));
    }
    line
}

/// A byte count for people, in the units [`parse_size`] reads (1024-based):
/// `332 KiB`, `11.8 MiB`, `1.40 GiB`, so that `--memory-budget 512M` prints
/// as `512.0 MiB`.
pub fn size(bytes: u64) -> String {
    weir_runtime::units::bytes(bytes)
}

/// Parses a size such as `512M`, `2G`, `64k` or `1000` (bytes); units are
/// 1024-based (`M` is MiB), as [`size`] prints them.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| "not a size (e.g. 512M, 2G)".to_string())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err("unknown unit (use K, M, G or T)".to_string()),
    };
    n.checked_mul(1 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| "not a usable size".to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_for_people() {
        assert_eq!(super::size(340_000), "332 KiB");
        assert_eq!(super::size(12_345_678), "11.8 MiB");
        assert_eq!(super::size(1_500_000_000), "1.40 GiB");
        // one unit in and out: what a user gives is what a summary prints
        assert_eq!(parse_size("512M").map(super::size), Ok("512.0 MiB".into()));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("0").is_err());
    }
}

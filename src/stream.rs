//! `weir stream <job>`: checkpointed, exactly-once streaming jobs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_progress::store::Restore;
use weir_streaming::dir_source::DirSource;
use weir_streaming::jobs::wordcount::{self, Input, Output};
use weir_streaming::kafka::sink::{Guarantee, KafkaSink};
use weir_streaming::kafka::source::{BROKER_TIMEOUT, KafkaSource};
use weir_streaming::run::{StreamOptions, StreamSummary};

use crate::cli::{self, CliError, Command};

pub fn command() -> Command {
    let mut c = Command::new(
        "stream wordcount",
        "weir stream wordcount --source dir:IN|kafka:TOPIC --sink dir:OUT|kafka:TOPIC\n\
         \x20      --checkpoint-dir CK [--brokers HOST:PORT] [--checkpoint-interval 500ms]\n\
         \x20      [--restore latest|PATH] [--stop-when-idle 3s] [timely flags]",
        "Counts the words of files as they arrive in IN (or of the records of a Kafka\n\
         topic), exactly once. Each epoch (one checkpoint interval) the words whose count\n\
         changed are written as word<TAB>count to OUT/epoch-<epoch>-w<worker>.tsv (or as\n\
         records keyed by word, in Kafka transactions), visible only once the checkpoint\n\
         that covers the epoch is complete. Files in IN must appear whole (write them\n\
         under a name starting with '.', then rename). After a crash, run the same\n\
         command with --restore latest: nothing visible is lost or repeated.",
        false,
    );
    c.opts.optopt(
        "",
        "source",
        "where lines come from: dir:PATH or kafka:TOPIC",
        "SPEC",
    );
    c.opts.optopt(
        "",
        "sink",
        "where results go: dir:PATH or kafka:TOPIC",
        "SPEC",
    );
    c.opts.optopt(
        "",
        "brokers",
        "Kafka bootstrap brokers (for kafka: sources and sinks)",
        "HOST:PORT[,...]",
    );
    checkpoint_options(
        &mut c.opts,
        "500ms",
        "exit 0 once no new input has come for this long and all is committed",
    );
    timely::Config::install_options(&mut c.opts);
    c
}

pub fn main(args: &[String]) -> Result<(), CliError> {
    match args.first().map(String::as_str) {
        Some("wordcount") => wordcount_main(&args[1..]),
        Some("produce") => crate::stream_kafka::produce_main(&args[1..]),
        Some("yahoo") => crate::stream_kafka::yahoo_main(&args[1..]),
        Some("verify") => crate::stream_kafka::verify_main(&args[1..]),
        Some("--help") | None => {
            print!(
                "Streaming jobs:\n  wordcount    exactly-once running word counts (files or Kafka)\n\
                 \x20 produce      write Yahoo-benchmark events to Kafka at a fixed rate\n\
                 \x20 yahoo        the Yahoo benchmark pipeline, exactly once on Kafka\n\
                 \x20 verify       check the committed output of yahoo\n\n\
                 Usage: weir stream <job> --help\n"
            );
            if args.is_empty() {
                Err(cli::usage("stream: no job given"))
            } else {
                Ok(())
            }
        }
        Some(other) => Err(cli::usage(format!(
            "stream: unknown job '{other}' (jobs: wordcount, produce, yahoo, verify)"
        ))),
    }
}

/// Declares the options every checkpointed streaming job shares.
pub fn checkpoint_options(opts: &mut getopts::Options, default_interval: &str, idle: &str) {
    opts.optopt("", "checkpoint-dir", "where checkpoints go", "DIR");
    opts.optopt(
        "",
        "checkpoint-interval",
        &format!("length of an epoch, each one a checkpoint (default {default_interval})"),
        "DURATION",
    );
    opts.optopt(
        "",
        "restore",
        "restore the newest intact checkpoint, or the checkpoint directory PATH",
        "latest|PATH",
    );
    opts.optopt("", "stop-when-idle", idle, "DURATION");
    opts.optopt(
        "",
        "broker-timeout",
        "how long a Kafka broker may stay unreachable before the job fails (default 30s)",
        "DURATION",
    );
    opts.optopt(
        "",
        "retain",
        "complete checkpoints to keep (default 3)",
        "N",
    );
}

/// The shared options' values (see [`checkpoint_options`]).
pub struct Checkpointing {
    pub options: StreamOptions,
    pub interval: Duration,
    pub stop_when_idle: Option<Duration>,
    pub broker_timeout: Duration,
}

pub fn checkpointing(
    m: &getopts::Matches,
    default_interval: Duration,
) -> Result<Checkpointing, CliError> {
    let checkpoint_dir: PathBuf = cli::required(m, "checkpoint-dir")?;
    let interval = duration(m, "checkpoint-interval")?.unwrap_or(default_interval);
    if interval.is_zero() {
        return Err(cli::usage("--checkpoint-interval must be more than 0"));
    }
    let retain: usize = cli::opt_or(m, "retain", 3)?;
    if retain == 0 {
        return Err(cli::usage("--retain must be at least 1"));
    }
    Ok(Checkpointing {
        stop_when_idle: duration(m, "stop-when-idle")?,
        broker_timeout: duration(m, "broker-timeout")?.unwrap_or(BROKER_TIMEOUT),
        interval,
        options: StreamOptions {
            restore: restore(m, &checkpoint_dir)?,
            checkpoint_dir,
            retain,
            progress: None,
        },
    })
}

pub fn duration(m: &getopts::Matches, name: &str) -> Result<Option<Duration>, CliError> {
    m.opt_str(name)
        .map(|text| {
            humantime::parse_duration(&text)
                .map_err(|e| cli::usage(format!("invalid value '{text}' for --{name}: {e}")))
        })
        .transpose()
}

/// A `--source`/`--sink` value.
enum Spec {
    Dir(PathBuf),
    Kafka(String),
}

/// `dir:PATH` or `kafka:TOPIC`.
fn spec(m: &getopts::Matches, name: &str) -> Result<Spec, CliError> {
    let spec: String = cli::required(m, name)?;
    match spec.split_once(':') {
        Some(("dir", path)) if !path.is_empty() => Ok(Spec::Dir(PathBuf::from(path))),
        Some(("kafka", topic)) if !topic.is_empty() => Ok(Spec::Kafka(topic.to_string())),
        _ => Err(cli::usage(format!(
            "--{name} '{spec}': expected dir:PATH or kafka:TOPIC"
        ))),
    }
}

/// `--brokers`, required where a Kafka source or sink is used.
fn brokers(m: &getopts::Matches, why: &str) -> Result<String, CliError> {
    m.opt_str("brokers")
        .ok_or_else(|| cli::usage(format!("{why} needs --brokers HOST:PORT")))
}

/// `latest`, or a checkpoint directory `chk-<epoch>` inside `checkpoints`.
fn restore(m: &getopts::Matches, checkpoints: &Path) -> Result<Option<Restore>, CliError> {
    let Some(text) = m.opt_str("restore") else {
        return Ok(None);
    };
    if text == "latest" {
        return Ok(Some(Restore::Latest));
    }
    let path = PathBuf::from(&text);
    let epoch = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("chk-"))
        .and_then(|e| e.parse::<u64>().ok())
        .ok_or_else(|| {
            cli::usage(format!(
                "--restore '{text}': expected 'latest' or a checkpoint directory chk-<epoch>"
            ))
        })?;
    let parent = path.parent().unwrap_or(Path::new("."));
    let same = match (parent.canonicalize(), checkpoints.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        return Err(cli::usage(format!(
            "--restore '{text}' is not inside --checkpoint-dir {}",
            checkpoints.display()
        )));
    }
    Ok(Some(Restore::Epoch(epoch)))
}

fn wordcount_main(args: &[String]) -> Result<(), CliError> {
    let command = command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    let config = cli::timely_config(&m)?;
    let input = spec(&m, "source")?;
    let output = spec(&m, "sink")?;
    let Checkpointing {
        options,
        interval,
        stop_when_idle,
        broker_timeout,
    } = checkpointing(&m, Duration::from_millis(500))?;
    let (input, from) = match input {
        Spec::Dir(dir) => {
            let from = dir.display().to_string();
            let source = DirSource {
                dir,
                interval,
                stop_when_idle,
            };
            (Input::Dir(source), from)
        }
        Spec::Kafka(topic) => {
            let source = KafkaSource {
                interval,
                stop_when_idle,
                broker_timeout,
                ..KafkaSource::new(&brokers(&m, "--source kafka:")?, &topic)
            };
            (Input::Kafka(source), format!("kafka:{topic}"))
        }
    };
    let (output, to) = match output {
        Spec::Dir(dir) => {
            let to = dir.display().to_string();
            (Output::Dir(dir), to)
        }
        Spec::Kafka(topic) => {
            let sink = KafkaSink {
                brokers: brokers(&m, "--sink kafka:")?,
                transactional_prefix: format!("weir-wordcount-{topic}"),
                guarantee: Guarantee::ExactlyOnce,
                committed_before: 0,
                broker_timeout,
            };
            let to = format!("kafka:{topic}");
            (Output::Kafka { topic, sink }, to)
        }
    };
    if let Input::Dir(source) = &input {
        source.validate()?;
    }
    cli::note(
        &m,
        format!(
            "stream wordcount: {from} -> {to}, checkpoints in {} every {}",
            options.checkpoint_dir.display(),
            humantime::format_duration(interval)
        ),
    );
    let summary = wordcount::run(config, input, output, &options)?;
    report("stream wordcount", &summary);
    Ok(())
}

pub fn report(job: &str, summary: &StreamSummary) {
    if !summary.leader {
        return;
    }
    for warning in &summary.warnings {
        eprintln!("{job}: warning: {warning}");
    }
    if let Some(epoch) = summary.restored {
        eprintln!("{job}: restored from the checkpoint of epoch {epoch}");
    }
    eprintln!(
        "{job}: {} records in, {} records out, {} checkpoints committed in {:.2} s on {} worker{}",
        summary.records_in,
        summary.records_out,
        summary.checkpoints,
        summary.elapsed.as_secs_f64(),
        summary.workers,
        if summary.workers == 1 { "" } else { "s" }
    );
}

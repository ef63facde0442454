//! `weir stream <job>`: checkpointed, exactly-once streaming jobs.

use std::path::PathBuf;
use std::time::Duration;

use weir_streaming::dir_source::DirSource;
use weir_streaming::jobs::wordcount::{self, Input, Output};
use weir_streaming::kafka::sink::{Guarantee, KafkaSink};
use weir_streaming::kafka::source::KafkaSource;

use crate::cli::{self, CliError, Command};
use crate::flag::Flag;
use crate::stream_options::{
    Checkpointing, checkpoint_flags, checkpointing, interval, report, stop_when_idle,
};

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
    c.flags(&[&SOURCE, &SINK, &BROKERS]);
    checkpoint_flags(&mut c, &INTERVAL, Some(&STOP_WHEN_IDLE));
    c.timely();
    c
}

const SOURCE: Flag<Spec> = Flag::parsed(
    "source",
    "SPEC",
    "where lines come from: dir:PATH or kafka:TOPIC",
    spec,
);
const SINK: Flag<Spec> = Flag::parsed(
    "sink",
    "SPEC",
    "where results go: dir:PATH or kafka:TOPIC",
    spec,
);
const BROKERS: Flag<String> = Flag::new(
    "brokers",
    "HOST:PORT[,...]",
    "Kafka bootstrap brokers (for kafka: sources and sinks)",
);
const INTERVAL: Flag<Duration> = interval("500ms");
const STOP_WHEN_IDLE: Flag<Duration> =
    stop_when_idle("exit 0 once no new input has come for this long and all is committed");

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

/// A `--source`/`--sink` value.
#[derive(Clone)]
enum Spec {
    Dir(PathBuf),
    Kafka(String),
}

/// `dir:PATH` or `kafka:TOPIC`.
fn spec(text: &str) -> Result<Spec, String> {
    match text.split_once(':') {
        Some(("dir", path)) if !path.is_empty() => Ok(Spec::Dir(PathBuf::from(path))),
        Some(("kafka", topic)) if !topic.is_empty() => Ok(Spec::Kafka(topic.to_string())),
        _ => Err("expected dir:PATH or kafka:TOPIC".to_string()),
    }
}

/// `--brokers`, required where a Kafka source or sink is used.
fn brokers(m: &getopts::Matches, why: &str) -> Result<String, CliError> {
    BROKERS
        .get(m)?
        .ok_or_else(|| cli::usage(format!("{why} needs --brokers HOST:PORT")))
}

fn wordcount_main(args: &[String]) -> Result<(), CliError> {
    let command = command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    let config = cli::timely_config(&m)?;
    let input = SOURCE.value(&m)?;
    let output = SINK.value(&m)?;
    let Checkpointing {
        options,
        interval,
        stop_when_idle,
        broker_timeout,
    } = checkpointing(&m, &INTERVAL, Some(&STOP_WHEN_IDLE))?;
    let (input, from) = match input {
        Spec::Dir(dir) => {
            let from = dir.display().to_string();
            let source = DirSource {
                dir,
                interval,
                stop_when_idle,
                event_time: None,
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

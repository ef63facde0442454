//! `weir stream produce | yahoo | verify`: the Yahoo streaming benchmark on
//! Kafka — a load generator, the exactly-once pipeline, and a checker of its
//! committed output.

use std::path::PathBuf;
use std::time::Duration;

use weir_streaming::jobs::yahoo::{
    self, DEAD_LETTERS, LATE, UNKNOWN_ADS, Yahoo, dead_letters_once, expected_from_input,
    load_campaigns, load_expected, verify,
};
use weir_streaming::jobs::yahoo_events::{Amount, EventGenerator, produce};
use weir_streaming::kafka::sink::{Guarantee, KafkaSink};
use weir_streaming::kafka::source::KafkaSource;

use crate::cli::{self, CliError, Command};
use crate::stream_options::{Checkpointing, checkpoint_options, checkpointing, duration, report};

pub fn produce_command() -> Command {
    let mut c = Command::new(
        "stream produce",
        "weir stream produce --brokers HOST:PORT --topic T --rate N/s (--duration D | --count N)\n\
         \x20      [--seed S] [--campaigns FILE]",
        "Writes events of the Yahoo streaming benchmark's shape (JSON: user_id, page_id,\n\
         ad_id, ad_type, event_type, event_time, ip_address) to topic T at N events per\n\
         second. event_time and the record timestamp are the creation time (ms since the\n\
         Unix epoch). --campaigns writes the seed's ad_id,campaign_id table.",
        false,
    );
    c.opts
        .optopt("", "brokers", "Kafka bootstrap brokers", "HOST:PORT");
    c.opts.optopt("", "topic", "topic to write", "T");
    c.opts
        .optopt("", "rate", "events per second (e.g. 10000/s)", "N/s");
    c.opts
        .optopt("", "duration", "how long to produce", "DURATION");
    c.opts
        .optopt("", "count", "how many events to produce", "N");
    c.opts
        .optopt("", "seed", "fixes campaigns and events (default 1)", "S");
    c.opts.optopt(
        "",
        "campaigns",
        "write the ad_id,campaign_id table here",
        "FILE",
    );
    c
}

pub fn produce_main(args: &[String]) -> Result<(), CliError> {
    let command = produce_command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    let brokers: String = cli::required(&m, "brokers")?;
    let topic: String = cli::required(&m, "topic")?;
    let rate_text: String = cli::required(&m, "rate")?;
    let rate: u64 = rate_text
        .strip_suffix("/s")
        .unwrap_or(&rate_text)
        .parse()
        .ok()
        .filter(|&r| r > 0)
        .ok_or_else(|| {
            cli::usage(format!(
                "invalid value '{rate_text}' for --rate: expected events per second, e.g. 10000/s"
            ))
        })?;
    let amount = match (duration(&m, "duration")?, cli::opt::<u64>(&m, "count")?) {
        (Some(d), None) => Amount::For(d),
        (None, Some(n)) => Amount::Count(n),
        _ => return Err(cli::usage("give one of --duration and --count")),
    };
    let seed: u64 = cli::opt_or(&m, "seed", 1)?;
    let mut generator = EventGenerator::new(seed);
    if let Some(path) = m.opt_str("campaigns") {
        generator.write_campaigns(&PathBuf::from(path))?;
    }
    KafkaSource::new(&brokers, &topic).partitions()?;
    let start = std::time::Instant::now();
    let sent = produce(&brokers, &topic, rate, amount, &mut generator, &|_| {})
        .map_err(weir_runtime::JobError::from)?;
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "stream produce: {sent} events to {topic} in {seconds:.2} s ({:.0}/s)",
        sent as f64 / seconds.max(1e-9)
    );
    Ok(())
}

pub fn yahoo_command() -> Command {
    let mut c = Command::new(
        "stream yahoo",
        "weir stream yahoo --brokers HOST:PORT --input-topic T --output-topic O --campaigns FILE\n\
         \x20      --checkpoint-dir D [--dead-letter-topic T.dead] [--checkpoint-interval 1s]\n\
         \x20      [--guarantee exactly-once|at-least-once] [--max-out-of-orderness 1s]\n\
         \x20      [--restore latest|PATH] [--stop-when-idle D] [timely flags]",
        "The Yahoo streaming benchmark: keeps the view events of T, joins ad_id to\n\
         campaign_id from FILE (CSV lines ad_id,campaign_id), counts views per campaign\n\
         in 10 s event-time tumbling windows and writes\n\
         {\"campaign_id\": ..., \"window_start\": MS, \"count\": N} to O. A window fires once\n\
         the watermark (event time seen, less the allowed disorder) passes its end.\n\
         Records that do not parse go unchanged to the dead-letter topic, with the error\n\
         and their position in headers. Exactly once: output and dead letters are\n\
         committed in Kafka transactions when the checkpoint covering them completes.\n\
         With --stop-when-idle, once no input has come for D every open window fires,\n\
         is committed, and the job exits 0.",
        false,
    );
    c.opts
        .optopt("", "brokers", "Kafka bootstrap brokers", "HOST:PORT");
    c.opts.optopt("", "input-topic", "events to read", "T");
    c.opts
        .optopt("", "output-topic", "window counts to write", "O");
    c.opts.optopt(
        "",
        "dead-letter-topic",
        "where malformed records go (default <input>.dead)",
        "T",
    );
    c.opts
        .optopt("", "campaigns", "CSV of ad_id,campaign_id", "FILE");
    c.opts.optopt(
        "",
        "guarantee",
        "exactly-once (default) or at-least-once",
        "G",
    );
    c.opts.optopt(
        "",
        "max-out-of-orderness",
        "how far behind the newest event time an event may come (default 1s)",
        "DURATION",
    );
    c.opts.optopt(
        "",
        "idle-timeout",
        "a partition without records this long stops holding the watermark back (default 5s)",
        "DURATION",
    );
    checkpoint_options(
        &mut c.opts,
        "1s",
        "fire every window and exit 0 once no input has come for this long",
    );
    timely::Config::install_options(&mut c.opts);
    c
}

pub fn yahoo_main(args: &[String]) -> Result<(), CliError> {
    let command = yahoo_command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    let config = cli::timely_config(&m)?;
    let brokers: String = cli::required(&m, "brokers")?;
    let input: String = cli::required(&m, "input-topic")?;
    let output: String = cli::required(&m, "output-topic")?;
    let campaigns: PathBuf = cli::required(&m, "campaigns")?;
    let dead = m
        .opt_str("dead-letter-topic")
        .unwrap_or_else(|| format!("{input}.dead"));
    let Checkpointing {
        options,
        interval,
        stop_when_idle,
        broker_timeout,
    } = checkpointing(&m, Duration::from_secs(1))?;
    let guarantee: Guarantee = match m.opt_str("guarantee") {
        Some(text) => text
            .parse()
            .map_err(|e: String| cli::usage(format!("--guarantee: {e}")))?,
        None => Guarantee::ExactlyOnce,
    };
    let disorder = duration(&m, "max-out-of-orderness")?.unwrap_or(Duration::from_secs(1));
    let idle = duration(&m, "idle-timeout")?.unwrap_or(Duration::from_secs(5));
    let idle_epochs = (idle.as_millis() / interval.as_millis().max(1)).max(1) as u64;
    let job = Yahoo {
        source: KafkaSource {
            interval,
            stop_when_idle,
            broker_timeout,
            idle_epochs,
            ..yahoo::source(&brokers, &input, disorder.as_millis() as u64)
        },
        output_topic: output.clone(),
        dead_letter_topic: dead.clone(),
        campaigns,
        sink: KafkaSink {
            brokers: brokers.clone(),
            transactional_prefix: format!("weir-yahoo-{output}"),
            guarantee,
            committed_before: 0,
            broker_timeout,
        },
    };
    cli::note(
        &m,
        format!(
            "stream yahoo: kafka:{input} -> kafka:{output} (dead letters: {dead}), {guarantee}, \
             checkpoints in {} every {}",
            options.checkpoint_dir.display(),
            humantime::format_duration(interval)
        ),
    );
    let summary = yahoo::run(config, job, &options)?;
    report("stream yahoo", &summary);
    if summary.leader {
        let get = |name: &str| summary.metrics.get(name).copied().unwrap_or(0);
        eprintln!(
            "stream yahoo: {} dead letters, {} late events dropped, {} views of unknown ads",
            get(DEAD_LETTERS),
            get(LATE),
            get(UNKNOWN_ADS)
        );
    }
    Ok(())
}

pub fn verify_command() -> Command {
    let mut c = Command::new(
        "stream verify",
        "weir stream verify --brokers HOST:PORT --topic O\n\
         \x20      (--expect FILE | --from-input T --campaigns FILE [--dead-letter-topic T.dead])",
        "Checks the committed output of `weir stream yahoo` in topic O: reads the raw log,\n\
         applies the transaction markers itself (as a read_committed consumer of a correct\n\
         broker sees it), and compares the window counts with FILE (JSON lines\n\
         {\"campaign_id\", \"window_start\", \"count\"}) or with the counts computed\n\
         sequentially from the input topic. Reports missing, duplicated and wrong\n\
         windows (and, with the input, malformed records not in the dead-letter topic\n\
         exactly once); exits 1 on any.",
        false,
    );
    c.opts
        .optopt("", "brokers", "Kafka bootstrap brokers", "HOST:PORT");
    c.opts.optopt("", "topic", "the output topic", "O");
    c.opts
        .optopt("", "expect", "expected window counts (JSON lines)", "FILE");
    c.opts
        .optopt("", "from-input", "compute the expected counts from T", "T");
    c.opts
        .optopt("", "campaigns", "CSV of ad_id,campaign_id", "FILE");
    c.opts.optopt(
        "",
        "dead-letter-topic",
        "also check the dead letters (default <input>.dead)",
        "T",
    );
    c
}

pub fn verify_main(args: &[String]) -> Result<(), CliError> {
    let command = verify_command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    let brokers: String = cli::required(&m, "brokers")?;
    let topic: String = cli::required(&m, "topic")?;
    let (expected, malformed, dead) = match (m.opt_str("expect"), m.opt_str("from-input")) {
        (Some(file), None) => (load_expected(&PathBuf::from(file))?, None, None),
        (None, Some(input)) => {
            let campaigns: PathBuf = cli::required(&m, "campaigns")?;
            let table = load_campaigns(&campaigns)?;
            let (expected, malformed) = expected_from_input(&brokers, &input, &table)?;
            let dead = m
                .opt_str("dead-letter-topic")
                .unwrap_or_else(|| format!("{input}.dead"));
            (expected, Some(malformed), Some(dead))
        }
        _ => return Err(cli::usage("give one of --expect and --from-input")),
    };
    let mut verdict = verify(&brokers, &topic, &expected)?;
    if let (Some(malformed), Some(dead)) = (malformed, dead) {
        let once = dead_letters_once(&brokers, &dead, &malformed)?;
        verdict.dead_letters = Some((malformed.len(), once));
    }
    println!("{}", verdict.describe());
    if verdict.ok() {
        println!("stream verify: OK");
        Ok(())
    } else {
        Err(CliError::Runtime(anyhow::anyhow!(
            "stream verify: the committed output of {topic} is not the expected one"
        )))
    }
}

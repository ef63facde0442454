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
use crate::flag::{self, Flag};
use crate::stream_options::{
    Checkpointing, checkpoint_flags, checkpointing, interval, report, stop_when_idle,
};

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
    c.flags(&[
        &BROKERS,
        &TOPIC,
        &RATE,
        &DURATION,
        &COUNT,
        &PRODUCE_SEED,
        &WRITE_CAMPAIGNS,
    ]);
    c
}

const BROKERS: Flag<String> = Flag::new("brokers", "HOST:PORT", "Kafka bootstrap brokers");
const TOPIC: Flag<String> = Flag::new("topic", "T", "topic to write");
const RATE: Flag<u64> = Flag::parsed("rate", "N/s", "events per second (e.g. 10000/s)", |text| {
    text.strip_suffix("/s")
        .unwrap_or(text)
        .parse()
        .ok()
        .filter(|&r| r > 0)
        .ok_or_else(|| "expected events per second, e.g. 10000/s".to_string())
});
const DURATION: Flag<Duration> = Flag::parsed(
    "duration",
    "DURATION",
    "how long to produce",
    flag::duration,
);
const COUNT: Flag<u64> = Flag::new("count", "N", "how many events to produce");
const PRODUCE_SEED: Flag<u64> = Flag::new("seed", "S", "fixes campaigns and events").default("1");
const CAMPAIGNS: Flag<PathBuf> = Flag::new("campaigns", "FILE", "CSV of ad_id,campaign_id");
const WRITE_CAMPAIGNS: Flag<PathBuf> = Flag::new(
    "campaigns",
    "FILE",
    "write the ad_id,campaign_id table here",
);

pub fn produce_main(args: &[String]) -> Result<(), CliError> {
    let command = produce_command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    let brokers = BROKERS.value(&m)?;
    let topic = TOPIC.value(&m)?;
    let rate = RATE.value(&m)?;
    let amount = match (DURATION.get(&m)?, COUNT.get(&m)?) {
        (Some(d), None) => Amount::For(d),
        (None, Some(n)) => Amount::Count(n),
        _ => return Err(cli::usage("give one of --duration and --count")),
    };
    let mut generator = EventGenerator::new(PRODUCE_SEED.value(&m)?);
    if let Some(path) = WRITE_CAMPAIGNS.get(&m)? {
        generator.write_campaigns(&path)?;
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
    c.flags(&[
        &BROKERS,
        &INPUT_TOPIC,
        &OUTPUT_TOPIC,
        &DEAD_LETTER_TOPIC,
        &CAMPAIGNS,
        &GUARANTEE,
        &MAX_OUT_OF_ORDERNESS,
        &IDLE_TIMEOUT,
    ]);
    checkpoint_flags(&mut c, &INTERVAL, Some(&STOP_WHEN_IDLE));
    c.timely();
    c
}

const INPUT_TOPIC: Flag<String> = Flag::new("input-topic", "T", "events to read");
const OUTPUT_TOPIC: Flag<String> = Flag::new("output-topic", "O", "window counts to write");
const DEAD_LETTER_TOPIC: Flag<String> = Flag::new(
    "dead-letter-topic",
    "T",
    "where malformed records go (default <input>.dead)",
);
const GUARANTEE: Flag<Guarantee> =
    Flag::new("guarantee", "G", "exactly-once or at-least-once").default("exactly-once");
const MAX_OUT_OF_ORDERNESS: Flag<Duration> = Flag::parsed(
    "max-out-of-orderness",
    "DURATION",
    "how far behind the newest event time an event may come",
    flag::duration,
)
.default("1s");
const IDLE_TIMEOUT: Flag<Duration> = Flag::parsed(
    "idle-timeout",
    "DURATION",
    "a partition without records this long stops holding the watermark back",
    flag::positive_duration,
)
.default("5s");
const INTERVAL: Flag<Duration> = interval("1s");
const STOP_WHEN_IDLE: Flag<Duration> =
    stop_when_idle("fire every window and exit 0 once no input has come for this long");

pub fn yahoo_main(args: &[String]) -> Result<(), CliError> {
    let command = yahoo_command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    let config = cli::timely_config(&m)?;
    let brokers = BROKERS.value(&m)?;
    let input = INPUT_TOPIC.value(&m)?;
    let output = OUTPUT_TOPIC.value(&m)?;
    let campaigns = CAMPAIGNS.value(&m)?;
    let dead = DEAD_LETTER_TOPIC
        .get(&m)?
        .unwrap_or_else(|| format!("{input}.dead"));
    let Checkpointing {
        options,
        interval,
        stop_when_idle,
        broker_timeout,
    } = checkpointing(&m, &INTERVAL, Some(&STOP_WHEN_IDLE))?;
    let guarantee = GUARANTEE.value(&m)?;
    let disorder = MAX_OUT_OF_ORDERNESS.value(&m)?;
    let idle = IDLE_TIMEOUT.value(&m)?;
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
    c.flags(&[
        &BROKERS,
        &VERIFY_TOPIC,
        &EXPECT,
        &FROM_INPUT,
        &CAMPAIGNS,
        &VERIFY_DEAD_LETTERS,
    ]);
    c
}

const VERIFY_TOPIC: Flag<String> = Flag::new("topic", "O", "the output topic");
const EXPECT: Flag<PathBuf> = Flag::new("expect", "FILE", "expected window counts (JSON lines)");
const FROM_INPUT: Flag<String> = Flag::new("from-input", "T", "compute the expected counts from T");
const VERIFY_DEAD_LETTERS: Flag<String> = Flag::new(
    "dead-letter-topic",
    "T",
    "also check the dead letters (default <input>.dead)",
);

pub fn verify_main(args: &[String]) -> Result<(), CliError> {
    let command = verify_command();
    let Some(m) = command.parse(args)? else {
        return Ok(());
    };
    let brokers = BROKERS.value(&m)?;
    let topic = VERIFY_TOPIC.value(&m)?;
    let (expected, malformed, dead) = match (EXPECT.get(&m)?, FROM_INPUT.get(&m)?) {
        (Some(file), None) => (load_expected(&file)?, None, None),
        (None, Some(input)) => {
            let table = load_campaigns(&CAMPAIGNS.value(&m)?)?;
            let (expected, malformed) = expected_from_input(&brokers, &input, &table)?;
            let dead = VERIFY_DEAD_LETTERS
                .get(&m)?
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

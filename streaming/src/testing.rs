//! Inputs and checks for the tests of streaming jobs (this crate's and the
//! command line's, and the demo's exactly-once check): seeded input files written the way writers must write them,
//! their true word totals, and a check of committed output.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use weir_runtime::text::for_each_word;

use crate::dir_sink::parse_output;
use crate::kafka::KafkaError;
use crate::kafka::producer::{IdempotentProducer, Produce};
use crate::kafka::wire::read_committed;

/// The text of input file `i`: 20 lines over a vocabulary of 37 words.
pub fn text(i: usize) -> String {
    (0..20)
        .map(|j| {
            let words: Vec<String> = (0..(i + j) % 5 + 1)
                .map(|k| format!("W{}", (i * 7 + j * 13 + k * 3) % 37))
                .collect();
            words.join(" ") + "\n"
        })
        .collect()
}

/// Writes input file `i` into `dir` as writers must: under a hidden name, then
/// renamed.
pub fn add_file(dir: &Path, i: usize) -> std::io::Result<()> {
    let name = format!("f{i:05}.txt");
    let hidden = dir.join(format!(".{name}"));
    std::fs::write(&hidden, text(i))?;
    std::fs::rename(hidden, dir.join(name))
}

/// Word totals of input files `files`, computed sequentially.
pub fn reference(files: impl IntoIterator<Item = usize>) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for i in files {
        for line in text(i).lines() {
            for_each_word(line, |w| *totals.entry(w.to_string()).or_insert(0) += 1);
        }
    }
    totals
}

/// Checks the visible output of a streaming word count against the true
/// totals: every file is an output file, every line `word<TAB>count`, no
/// (epoch, word) appears twice, each word's counts grow from epoch to epoch,
/// and the last one is the total. Returns the number of lines.
pub fn check_word_counts(dir: &Path, expected: &BTreeMap<String, u64>) -> Result<usize, String> {
    let mut lines: Vec<(u64, String, u64)> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let name = entry
            .map_err(|e| e.to_string())?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') {
            continue;
        }
        let (epoch, _) = parse_output(&name).ok_or_else(|| format!("stray file {name}"))?;
        let text = std::fs::read_to_string(dir.join(&name)).map_err(|e| e.to_string())?;
        for (n, line) in text.lines().enumerate() {
            let parsed = line
                .split_once('\t')
                .and_then(|(w, c)| Some((w.to_string(), c.parse::<u64>().ok()?)));
            let (word, count) =
                parsed.ok_or_else(|| format!("{name}:{}: bad line {line:?}", n + 1))?;
            lines.push((epoch, word, count));
        }
    }
    check_count_sequence(lines, expected)
}

/// Checks `(order, word, count)` lines of a word count's committed output: no
/// (order, word) twice, each word's counts grow in order, and the last ones are
/// the true totals. Returns the number of lines.
pub fn check_count_sequence(
    mut lines: Vec<(u64, String, u64)>,
    expected: &BTreeMap<String, u64>,
) -> Result<usize, String> {
    lines.sort();
    let mut seen = BTreeSet::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for (epoch, word, count) in &lines {
        if !seen.insert((*epoch, word.clone())) {
            return Err(format!("({epoch}, {word}) committed twice"));
        }
        if let Some(previous) = last.insert(word.clone(), *count)
            && previous >= *count
        {
            return Err(format!(
                "{word}: count {count} at epoch {epoch} after {previous}"
            ));
        }
    }
    if &last != expected {
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(w, c)| last.get(*w) != Some(c))
            .map(|(w, c)| format!("{w}: {:?} committed, {c} true", last.get(w)))
            .take(5)
            .collect();
        return Err(format!(
            "final counts differ from the true totals ({} words committed, {} true): {}",
            last.len(),
            expected.len(),
            wrong.join("; ")
        ));
    }
    Ok(lines.len())
}

/// Sends the lines of input files `files` to `topic`, one record per line.
pub fn produce_files(
    brokers: &str,
    topic: &str,
    files: impl IntoIterator<Item = usize>,
) -> Result<(), KafkaError> {
    send_files(&IdempotentProducer::open(brokers)?, topic, files)
}

/// Sends the lines of input files `files` to `topic` through `producer`, one
/// record per line, and waits until the broker has them.
pub fn send_files(
    producer: &IdempotentProducer,
    topic: &str,
    files: impl IntoIterator<Item = usize>,
) -> Result<(), KafkaError> {
    for i in files {
        for line in text(i).lines() {
            producer.send(&Produce::value(topic, line))?;
        }
    }
    producer.flush()
}

/// Checks the committed records (`word<TAB>count`, keyed by word) of a
/// streaming word count in `topic`, as [`check_count_sequence`] does, in
/// offset order (a word's records share a partition). Returns the number of
/// records.
pub fn check_kafka_word_counts(
    brokers: &str,
    topic: &str,
    expected: &BTreeMap<String, u64>,
) -> Result<usize, String> {
    let log = read_committed(brokers, topic).map_err(|e| e.to_string())?;
    if log.open > 0 {
        return Err(format!(
            "{} records held back by open transactions",
            log.open
        ));
    }
    let mut lines = Vec::new();
    for record in &log.records {
        let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
        let parsed = value
            .split_once('\t')
            .and_then(|(w, c)| Some((w.to_string(), c.parse::<u64>().ok()?)));
        let (word, count) = parsed.ok_or_else(|| {
            format!(
                "{topic}/{}@{}: bad record {value:?}",
                record.partition, record.offset
            )
        })?;
        let offset = u64::try_from(record.offset).map_err(|e| e.to_string())?;
        lines.push((offset, word, count));
    }
    check_count_sequence(lines, expected)
}

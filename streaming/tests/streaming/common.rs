use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_dataflows::JobError;
use weir_dataflows::jobs::wordcount::for_each_word;
use weir_progress::store::Restore;
use weir_streaming::dir_sink::parse_output;
use weir_streaming::dir_source::DirSource;
use weir_streaming::jobs::wordcount;
use weir_streaming::run::{StreamOptions, StreamSummary};

/// The directories of one streaming test.
pub struct Dirs {
    _root: tempfile::TempDir,
    pub input: PathBuf,
    pub output: PathBuf,
    pub checkpoints: PathBuf,
}

impl Dirs {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let input = root.path().join("in");
        std::fs::create_dir(&input).unwrap();
        Dirs {
            input,
            output: root.path().join("out"),
            checkpoints: root.path().join("ck"),
            _root: root,
        }
    }
}

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

/// Writes input file `i` as writers must: under a hidden name, then renamed.
pub fn add_file(dir: &Path, i: usize) {
    let name = format!("f{i:04}.txt");
    let hidden = dir.join(format!(".{name}"));
    std::fs::write(&hidden, text(i)).unwrap();
    std::fs::rename(hidden, dir.join(name)).unwrap();
}

/// Word totals of input files `files`, sequentially.
pub fn reference(files: impl IntoIterator<Item = usize>) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for i in files {
        for line in text(i).lines() {
            for_each_word(line, |w| *totals.entry(w.to_string()).or_insert(0) += 1);
        }
    }
    totals
}

/// Runs the job until idle.
pub fn run(
    config: timely::Config,
    dirs: &Dirs,
    restore: Option<Restore>,
) -> Result<StreamSummary, JobError> {
    let source = DirSource {
        dir: dirs.input.clone(),
        interval: Duration::from_millis(20),
        stop_when_idle: Some(Duration::from_millis(300)),
    };
    let options = StreamOptions {
        checkpoint_dir: dirs.checkpoints.clone(),
        restore,
        retain: 3,
        progress: None,
    };
    wordcount::run(config, source, &dirs.output, &options)
}

/// Runs the job on every process of `configs` (threads standing in for
/// processes); returns process 0's result.
pub fn run_cluster(
    configs: Vec<timely::Config>,
    dirs: &Dirs,
    restore: Option<Restore>,
) -> Result<StreamSummary, JobError> {
    std::thread::scope(|s| {
        let handles: Vec<_> = configs
            .into_iter()
            .map(|config| {
                let restore = restore.clone();
                s.spawn(move || run(config, dirs, restore))
            })
            .collect();
        let mut results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        results.remove(0)
    })
}

/// Checks the visible output of a job against the true totals: every line is
/// `word<TAB>count`, no (epoch, word) appears twice, each word's counts grow
/// from epoch to epoch, and the last is the total.
pub fn check_output(dir: &Path, expected: &BTreeMap<String, u64>) {
    let mut lines: Vec<(u64, String, u64)> = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let (epoch, _) = parse_output(&name).unwrap_or_else(|| panic!("stray file {name}"));
        for line in std::fs::read_to_string(dir.join(&name)).unwrap().lines() {
            let (word, count) = line.split_once('\t').unwrap();
            lines.push((epoch, word.to_string(), count.parse().unwrap()));
        }
    }
    lines.sort();
    let mut seen = BTreeSet::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for (epoch, word, count) in &lines {
        assert!(
            seen.insert((*epoch, word.clone())),
            "({epoch}, {word}) committed twice"
        );
        if let Some(previous) = last.insert(word.clone(), *count) {
            assert!(
                previous < *count,
                "{word}: count {count} at epoch {epoch} after {previous}"
            );
        }
    }
    assert_eq!(&last, expected);
}

/// Damages the newest file of the newest complete checkpoint; returns its path.
pub fn corrupt_newest(checkpoints: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(checkpoints)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("MANIFEST.json").exists())
        .collect();
    dirs.sort();
    let newest = dirs.last().unwrap();
    let victim = std::fs::read_dir(newest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap() != "MANIFEST.json")
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    victim
}

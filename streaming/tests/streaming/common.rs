use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_progress::store::Restore;
use weir_runtime::JobError;
use weir_streaming::dir_source::DirSource;
use weir_streaming::jobs::wordcount;
use weir_streaming::run::{StreamOptions, StreamSummary};
pub use weir_streaming::testing::reference;

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
        event_time: None,
    };
    let options = StreamOptions {
        checkpoint_dir: dirs.checkpoints.clone(),
        restore,
        retain: 3,
        progress: None,
    };
    wordcount::run(
        config,
        wordcount::Input::Dir(source),
        wordcount::Output::Dir(dirs.output.clone()),
        &options,
    )
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

/// Writes input file `i`.
pub fn add_file(dir: &Path, i: usize) {
    weir_streaming::testing::add_file(dir, i).unwrap();
}

/// Checks the committed output against `expected` (see
/// [`weir_streaming::testing::check_word_counts`]).
pub fn check_output(dir: &Path, expected: &BTreeMap<String, u64>) {
    if let Err(e) = weir_streaming::testing::check_word_counts(dir, expected) {
        panic!("{}: {e}", dir.display());
    }
}

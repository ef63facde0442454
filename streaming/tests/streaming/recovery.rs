use weir_progress::store::Restore;

use crate::common::{Dirs, add_file, check_output, corrupt_newest, reference, run_cluster};

fn process(workers: usize) -> Vec<timely::Config> {
    vec![timely::Config::process(workers)]
}

#[test]
fn restore_goes_on_where_the_last_run_stopped_and_rescales_2_to_3() {
    let dirs = Dirs::new();
    for i in 0..6 {
        add_file(&dirs.input, i);
    }
    run_cluster(process(2), &dirs, None).unwrap();
    for i in 6..12 {
        add_file(&dirs.input, i);
    }
    let summary = run_cluster(process(3), &dirs, Some(Restore::Latest)).unwrap();
    assert!(summary.restored.is_some());
    assert_eq!(summary.records_in, 6 * 20, "only the new files are read");
    check_output(&dirs.output, &reference(0..12));
}

#[test]
fn a_corrupt_part_falls_back_and_replays_without_duplicates() {
    let dirs = Dirs::new();
    let input = dirs.input.clone();
    // files arrive over several epochs, so the checkpoints differ
    let feeder = std::thread::spawn(move || {
        for i in 0..10 {
            add_file(&input, i);
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    });
    run_cluster(process(2), &dirs, None).unwrap();
    feeder.join().unwrap();
    let victim = corrupt_newest(&dirs.checkpoints);
    for i in 10..14 {
        add_file(&dirs.input, i);
    }
    let summary = run_cluster(process(2), &dirs, Some(Restore::Latest)).unwrap();
    let victim = victim.display().to_string();
    assert!(
        summary.warnings.iter().any(|w| w.contains(&victim)),
        "the warning names {victim}: {:?}",
        summary.warnings
    );
    check_output(&dirs.output, &reference(0..14));
}

#[test]
fn no_intact_checkpoint_is_an_error_not_a_fresh_start() {
    let dirs = Dirs::new();
    add_file(&dirs.input, 0);
    run_cluster(process(1), &dirs, None).unwrap();
    for dir in std::fs::read_dir(&dirs.checkpoints).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.file_name().unwrap() != "MANIFEST.json" {
                std::fs::write(&path, b"garbage").unwrap();
            }
        }
    }
    let err = run_cluster(process(1), &dirs, Some(Restore::Latest)).unwrap_err();
    assert!(err.to_string().contains("no valid checkpoint"), "{err}");
}

#[test]
fn a_fresh_start_over_an_earlier_runs_checkpoints_is_refused() {
    let dirs = Dirs::new();
    add_file(&dirs.input, 0);
    run_cluster(process(1), &dirs, None).unwrap();
    let err = run_cluster(process(1), &dirs, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("holds checkpoints of an earlier run"),
        "{err}"
    );
}

use std::time::Duration;

use weir_runtime::testing;

use crate::common::{Dirs, add_file, check_output, reference, run_cluster};

#[test]
fn counts_are_exact_while_files_arrive_on_every_layout() {
    for (layout, configs) in testing::layouts().unwrap() {
        let dirs = Dirs::new();
        for i in 0..5 {
            add_file(&dirs.input, i);
        }
        let input = dirs.input.clone();
        let feeder = std::thread::spawn(move || {
            for i in 5..15 {
                std::thread::sleep(Duration::from_millis(15));
                add_file(&input, i);
            }
        });
        let summary = run_cluster(configs, &dirs, None).unwrap();
        feeder.join().unwrap();
        assert_eq!(summary.records_in, 15 * 20, "{layout}");
        assert!(summary.checkpoints >= 2, "{layout}: {summary:?}");
        check_output(&dirs.output, &reference(0..15));
    }
}

#[test]
fn hidden_files_are_not_read_until_renamed() {
    let dirs = Dirs::new();
    add_file(&dirs.input, 0);
    std::fs::write(
        dirs.input.join(".f0001.txt"),
        weir_streaming::testing::text(1),
    )
    .unwrap();
    run_cluster(vec![timely::Config::thread()], &dirs, None).unwrap();
    check_output(&dirs.output, &reference([0]));
}

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

/// Regression: a worker that owned no file stopped once the directory had
/// been quiet for the stop time, while another worker was still reading; a
/// file that came for it after that was never read. Now no worker stops
/// before every worker has read all it owns.
#[test]
fn a_worker_without_files_stops_only_once_the_others_have_read_theirs() {
    use timely::dataflow::operators::Capture;
    use timely::dataflow::operators::capture::Event;
    use weir_progress::checkpoint::{Ack, Checkpoints, FINAL_EPOCH, Schedule};
    use weir_progress::recovery::Recovery;
    use weir_progress::store::CheckpointStore;
    use weir_runtime::source_ctx::SourceCtx;
    use weir_streaming::dir_source::{DirSource, WatchDir, owns};

    let input = tempfile::tempdir().unwrap();
    let checkpoints = tempfile::tempdir().unwrap();
    // one file, of worker 1, that takes it many epochs to read
    let name = (0..)
        .map(|i| format!("big-{i}.txt"))
        .find(|n| owns(n, 1, 2))
        .unwrap();
    let line = "x".repeat(99);
    std::fs::write(
        input.path().join(&name),
        format!("{line}\n").repeat(200_000),
    )
    .unwrap();
    let source = DirSource {
        dir: input.path().to_owned(),
        interval: Duration::from_millis(1),
        stop_when_idle: Some(Duration::from_millis(2)),
        event_time: None,
    };
    let store = CheckpointStore::local(checkpoints.path()).unwrap();
    let guards = timely::execute(timely::Config::process(2), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let ckpt = Checkpoints::new(store.clone(), Schedule { every: 1 }, None, index, peers);
        let (lines, acks) = worker.dataflow::<u64, _, _>(|scope| {
            let watched = scope.watch_dir(
                "lines",
                &source,
                &Recovery::default(),
                &ckpt,
                &SourceCtx::default(),
            );
            (watched.lines.capture(), watched.acks.capture())
        });
        (index, lines, acks)
    })
    .unwrap();
    let mut last_read = 0;
    let mut stopped = Vec::new();
    for (index, lines, acks) in guards.join().into_iter().map(Result::unwrap) {
        for event in lines.try_iter() {
            if let Event::Messages(stamp, reads) = event
                && !reads.is_empty()
            {
                last_read = last_read.max(stamp.least().copied().unwrap_or(0));
            }
        }
        for event in acks.try_iter() {
            if let Event::Messages(stamp, acks) = event
                && stamp.least() == Some(&FINAL_EPOCH)
            {
                for ack in acks {
                    if let Ack::Source(mark) = ack {
                        stopped.push((index, mark.next));
                    }
                }
            }
        }
    }
    assert_eq!(stopped.len(), 2, "{stopped:?}");
    for (worker, next) in stopped {
        assert!(
            next > last_read,
            "worker {worker} stopped before epoch {last_read}"
        );
    }
}

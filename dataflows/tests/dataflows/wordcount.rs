use std::io::Write;

use weir_dataflows::jobs::wordcount;
use weir_runtime::generate::{Generator, TextSpec};
use weir_runtime::input::LineInput;

use crate::common::{all_records, on_every_layout};

fn expected(input: &LineInput) -> Vec<String> {
    let mut lines: Vec<String> = wordcount::reference(input)
        .unwrap()
        .into_iter()
        .map(|(w, c)| format!("{w}\t{c}"))
        .collect();
    lines.sort();
    lines
}

fn check(input: LineInput) {
    let want = expected(&input);
    assert!(!want.is_empty());
    let results =
        on_every_layout(move |config| wordcount::run(config, input.clone(), &all_records()));
    for (layout, result) in results {
        let summary = result.unwrap();
        assert_eq!(summary.records.as_ref(), Some(&want), "{layout}");
        assert_eq!(summary.records_out, want.len() as u64, "{layout}");
    }
}

#[test]
fn generated_text_matches_reference_on_every_layout() {
    for seed in [1, 2] {
        check(LineInput::Generated(Generator::Text(TextSpec {
            lines: 3_000,
            max_words: 12,
            vocabulary: 500,
            seed,
        })));
    }
}

#[test]
fn files_split_by_bytes_match_reference_on_every_layout() {
    let dir = tempfile::tempdir().unwrap();
    let maker = Generator::Text(TextSpec {
        lines: 4_000,
        max_words: 9,
        vocabulary: 300,
        seed: 9,
    })
    .maker();
    let mut paths = Vec::new();
    let mut line = String::new();
    // uneven files, one empty, one without a final newline
    for (f, (from, to)) in [
        (0u64, 2_500u64),
        (2_500, 2_500),
        (2_500, 3_900),
        (3_900, 4_000),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("in{f}.txt"));
        let mut file = std::fs::File::create(&path).unwrap();
        for i in from..to {
            maker.line(i, &mut line);
            if i + 1 == to && f == 3 {
                write!(file, "{line}").unwrap();
            } else {
                writeln!(file, "{line}").unwrap();
            }
        }
        paths.push(path);
    }
    check(LineInput::Files(paths));
}

#[test]
fn output_dir_gets_one_part_per_worker_with_the_same_records() {
    let input = LineInput::Generated(Generator::Text(TextSpec {
        lines: 500,
        max_words: 5,
        vocabulary: 100,
        seed: 3,
    }));
    let want = expected(&input);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let options = weir_runtime::exec::JobOptions {
        output: Some(out.clone()),
        ..Default::default()
    };
    wordcount::run(timely::Config::process(3), input.clone(), &options).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["part-00000", "part-00001", "part-00002"]);
    let mut got: Vec<String> = names
        .iter()
        .flat_map(|n| {
            std::fs::read_to_string(out.join(n))
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    // a second run into the same directory is refused, and leaves the results alone
    let err = wordcount::run(timely::Config::process(1), input, &options).unwrap_err();
    assert!(err.to_string().contains("already holds results"), "{err}");
    assert!(out.join("part-00002").exists());
}

#[test]
fn malformed_input_fails_every_process_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.txt");
    let bad = dir.path().join("bad.txt");
    std::fs::write(&good, "one two\nthree\n".repeat(1000)).unwrap();
    std::fs::write(&bad, b"fine\nfine\nnot \xc3\x28 utf8\n").unwrap();
    let input = LineInput::Files(vec![good, bad.clone()]);
    let out = dir.path().join("out");
    let results =
        weir_runtime::testing::run_processes(weir_runtime::testing::cluster(2, 2).unwrap(), {
            let out = out.clone();
            move |config| {
                let options = weir_runtime::exec::JobOptions {
                    output: Some(out.clone()),
                    ..Default::default()
                };
                wordcount::run(config, input.clone(), &options)
            }
        });
    let want = format!("{}:3: invalid UTF-8 at byte 5 of the line", bad.display());
    for result in results {
        assert_eq!(result.unwrap_err().to_string(), want);
    }
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "no part files, no temp files"
    );
}

#[test]
fn progress_counter_sees_every_record_of_the_process() {
    let input = LineInput::Generated(Generator::Text(TextSpec {
        lines: 1_234,
        max_words: 4,
        vocabulary: 50,
        seed: 8,
    }));
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let options = weir_runtime::exec::JobOptions {
        progress: Some(std::sync::Arc::clone(&counter)),
        ..Default::default()
    };
    let summary = wordcount::run(timely::Config::process(3), input, &options).unwrap();
    assert_eq!(summary.records_in, 1_234);
    assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 1_234);
}

//! The ML jobs end to end: for `weir als`, a kill -9 of either of two
//! processes mid-training and a resume on another worker count give the
//! uninterrupted model, and `weir recommend` leaves out rated items; `weir
//! cocoa` writes its weights; bad input for both.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::support::{hostfile, kill_one_after_a_checkpoint, path, run, stderr, weir};

/// A seeded ratings file of `n` ratings (with a header, as MovieLens'), and
/// the items each user rated.
fn ratings(dir: &Path, n: usize) -> (std::path::PathBuf, BTreeMap<u64, HashSet<u64>>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut text = String::from("user_id:token\titem_id:token\trating:float\ttimestamp:float\n");
    let mut rated: BTreeMap<u64, HashSet<u64>> = BTreeMap::new();
    for _ in 0..n {
        let (user, item) = (rng.random_range(1..300u64), rng.random_range(1..200u64));
        let value = ((user % 5 + item % 3) % 5 + 1) as f64;
        text.push_str(&format!("{user}\t{item}\t{value}\t881250949\n"));
        rated.entry(user).or_default().insert(item);
    }
    let file = dir.join("ratings.tsv");
    std::fs::write(&file, text).unwrap();
    (file, rated)
}

/// `id<TAB>factor` lines of a model file, by id.
fn factors(dir: &Path, name: &str) -> BTreeMap<u64, Vec<f64>> {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .lines()
        .map(|line| {
            let (id, f) = line.split_once('\t').unwrap();
            let f = f.split(' ').map(|x| x.parse().unwrap()).collect();
            (id.parse().unwrap(), f)
        })
        .collect()
}

fn assert_same_model(got: &Path, want: &Path) {
    for name in ["user_factors.tsv", "item_factors.tsv"] {
        let (g, w) = (factors(got, name), factors(want, name));
        assert_eq!(g.len(), w.len(), "{name}");
        for (id, f) in &w {
            for (a, b) in f.iter().zip(&g[id]) {
                assert!(
                    (a - b).abs() <= 1e-12,
                    "{name} {id}: {b} resumed, {a} uninterrupted"
                );
            }
        }
    }
}

#[test]
fn als_survives_a_kill_9_of_either_process_and_resumes_on_3_workers() {
    let root = tempfile::tempdir().unwrap();
    let (file, _) = ratings(root.path(), 20_000);
    let als = |out: &Path| {
        let mut c = weir();
        c.args([
            "als",
            "--ratings",
            path(&file),
            "--iterations",
            "80",
            "--output",
            path(out),
        ]);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    let whole = root.path().join("whole");
    let out = als(&whole).arg("-w").arg("2").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let ckpt = root.path().join("ckpt");
    let hosts = hostfile(root.path(), 2);
    let mut children: Vec<_> = ["0", "1"]
        .iter()
        .map(|p| {
            let mut c = als(&root.path().join("first"));
            c.args(["--checkpoint-dir", path(&ckpt), "--checkpoint-every", "10"]);
            c.args(["-n", "2", "-p", p, "-h"]).arg(&hosts);
            c.spawn().unwrap()
        })
        .collect();
    let seed = kill_one_after_a_checkpoint(&mut children, &ckpt, Duration::from_secs(120), 50);

    let second = root.path().join("second");
    let out = als(&second)
        .args([
            "-w",
            "3",
            "--checkpoint-dir",
            path(&ckpt),
            "--restore",
            "latest",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "seed {seed}: {err}");
    assert!(
        err.contains("80 iterations (resumed at iteration"),
        "seed {seed}: {err}"
    );
    assert!(
        !err.contains("iteration 0:"),
        "seed {seed}: the resume starts mid-loop: {err}"
    );
    assert_same_model(&second, &whole);
}

#[test]
fn recommend_lists_the_best_unrated_items() {
    let root = tempfile::tempdir().unwrap();
    let (file, rated) = ratings(root.path(), 5_000);
    let model = root.path().join("model");
    let out = run(&[
        "als",
        "--ratings",
        path(&file),
        "--iterations",
        "3",
        "--output",
        path(&model),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[
        "recommend",
        "--model",
        path(&model),
        "--user",
        "7",
        "--top",
        "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<(u64, f64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (item, score) = l.split_once('\t').unwrap();
            (item.parse().unwrap(), score.parse().unwrap())
        })
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.windows(2).all(|w| w[0].1 >= w[1].1), "{lines:?}");
    assert!(
        lines.iter().all(|(item, _)| !rated[&7].contains(item)),
        "{lines:?}"
    );

    let out = run(&["recommend", "--model", path(&model), "--user", "100000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("user 100000 is not in the model"),
        "{}",
        stderr(&out)
    );
    std::fs::write(model.join("item_factors.tsv"), "1\t0.5 x\n").unwrap();
    let out = run(&["recommend", "--model", path(&model), "--user", "7"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("item_factors.tsv:1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn als_rejects_bad_input_with_the_position() {
    let root = tempfile::tempdir().unwrap();
    let bad = root.path().join("bad.csv");
    std::fs::write(&bad, "user,item,rating\n1,2,4\n1,3\n").unwrap();
    let out = run(&["als", "--ratings", path(&bad), "--format", "csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("bad.csv:3"), "{}", stderr(&out));

    // regression: a malformed first line gave ten lines of "train RMSE NaN"
    // before the error; the loop must not start on bad input
    let first = root.path().join("first.csv");
    std::fs::write(&first, "1,2\n1,3,4\n2,3,5\n").unwrap();
    for workers in ["1", "2"] {
        let out = run(&[
            "als",
            "--ratings",
            path(&first),
            "--format",
            "csv",
            "-w",
            workers,
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("first.csv:1"), "{err}");
        assert!(!err.contains("RMSE"), "an iteration ran: {err}");
    }

    let out = run(&["als", "--ratings", path(&root.path().join("missing.tsv"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.tsv"), "{}", stderr(&out));

    // exit codes follow the error's kind: a singular system is a failure at
    // run time (1), not bad usage (2, as it was): every option was valid
    let few = root.path().join("few.csv");
    std::fs::write(&few, "1,1,4\n1,2,3\n2,1,5\n").unwrap();
    let out = run(&[
        "als",
        "--ratings",
        path(&few),
        "--format",
        "csv",
        "--rank",
        "4",
        "--lambda",
        "0",
        "--test-fraction",
        "0",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("singular"), "{err}");

    for (args, needle) in [
        (&["--rank", "0"][..], "--rank"),
        (&["--format", "xml"][..], "xml"),
        (&["--test-fraction", "1.5"][..], "--test-fraction"),
        (
            &["--test", "t.tsv", "--test-fraction", "0.1"][..],
            "exclude each other",
        ),
        (&["--iterations", "0"][..], "--iterations"),
        (&["--restore", "latest"][..], "--checkpoint-dir"),
    ] {
        let out = run(&[&["als"][..], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn cocoa_writes_its_weights_and_rejects_bad_input() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("train.libsvm");
    std::fs::write(&data, "+1 1:1 2:0.5\n-1 1:-1 3:0.5\n+1 2:1\n-1 3:1\n").unwrap();
    let weights = root.path().join("w.tsv");
    let out = run(&[
        "cocoa",
        "--data",
        path(&data),
        "--test",
        path(&data),
        "--output",
        path(&weights),
        "-w",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("test accuracy 1.0000"),
        "{}",
        stderr(&out)
    );
    let lines: Vec<String> = std::fs::read_to_string(&weights)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("1\t") && lines[2].starts_with("3\t"),
        "{lines:?}"
    );

    std::fs::write(&data, "+1 1:1\n3 2:1\n").unwrap();
    let out = run(&["cocoa", "--data", path(&data)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("train.libsvm:2"), "{}", stderr(&out));
    for (args, needle) in [
        (&["--aggregation", "median"][..], "median"),
        (&["--lambda", "0"][..], "--lambda"),
        (&["--rounds", "0"][..], "--rounds"),
    ] {
        let out = run(&[&["cocoa"][..], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}
